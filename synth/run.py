"""A synth from the app's options to its outcome: the stages in order, every failure as one line.

Takes the options ``app.py`` parsed (:func:`run`); gives the output folder replaced, or raises
``ConfigError`` / :class:`synth.output.OutputError` (bad input, exit 2), :class:`synth.signals.Interrupted`
(exit 128+N), or whatever failed (exit 1, described by :func:`describe_failure`, never blamed on an
environment file).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from synth import fleet
from synth.kernel import NodeMissing
from synth.output import CDK8S_STAGING, OutputError, resolve_outdir
from synth.pipeline import synthesize
from synth.workers import RenderWorker, spawning


def run(args: argparse.Namespace) -> None:
    """The synth behind ``app.main`` (raises ConfigError, OutputError, or whatever failed).

    After the checks of the options, the render worker starts (:class:`RenderWorker`), so that its
    start overlaps everything before rendering; it is ended on every way out, unused when every
    release and the shared charts hit the cache.
    """
    outdir, mirror = output_folders(args.outdir, args.cdk8s_cli)
    fleet.check_release_names(args.env)
    worker: RenderWorker | None = None
    try:
        with spawning():  # a signal now is taken inside the `try`, so the worker is always ended
            worker = RenderWorker()
        _synth(args, outdir, mirror, worker)
    finally:
        if worker is not None:
            worker.close()


def output_folders(outdir: str | None, cdk8s_cli: bool) -> tuple[Path, Path | None]:
    """The output folder, and the folder that receives a copy of it (the cdk8s CLI's scratch folder).

    ``--cdk8s-cli`` is how ``cdk8s.yaml`` runs the app: the cdk8s CLI deletes its ``output:`` folder
    before it runs the app, so that is a scratch folder (``.cdk8s-staging``), not ``dist/``. The app
    writes the real output folder and links the scratch folder to it for the CLI. When the
    CLI passes another folder (``--stdout``'s temporary folder, ``-o DIR``), that folder is the output.
    """
    if not cdk8s_cli:
        return resolve_outdir(outdir), None
    cli_out = os.environ.get("CDK8S_OUTDIR")
    if not cli_out:
        raise OutputError("--cdk8s-cli: $CDK8S_OUTDIR is not set (the cdk8s CLI sets it)")
    if resolve_outdir(cli_out) == CDK8S_STAGING.resolve():
        return resolve_outdir(outdir or "dist"), CDK8S_STAGING
    return resolve_outdir(cli_out), None  # `cdk8s synth --stdout` (a temporary folder) or `-o DIR`


def _synth(args: argparse.Namespace, outdir: Path, mirror: Path | None, worker: RenderWorker) -> None:
    from synth.cache import SynthCache

    loaded = fleet.load(args.environments, args.env)
    summary = synthesize(
        loaded.envs,
        outdir,
        partial=loaded.partial,
        labels=loaded.labels,
        all_envs=loaded.all_envs,
        # The cache keys a folder by its inputs, not by who rendered it: the cdk8s renderer never uses it.
        cache=None if args.no_cache or args.renderer != "python" else SynthCache(args.cache_dir),
        jobs=max(1, args.jobs),
        progress=True,
        mirror=mirror,
        renderer=args.renderer,
        worker=worker,
    )
    # One line on stdout: a folder removed because its environment file is gone is seen, not silent.
    print(summary.line(outdir), flush=True)


def describe_failure(exc: BaseException) -> str:
    """One line for an internal or environment failure: what failed, never an environment file."""
    from concurrent.futures.process import BrokenProcessPool

    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(detail) > 300:
        detail = detail[:297] + "..."
    if isinstance(exc, NodeMissing):
        what = "the cdk8s renderer cannot start"
    elif isinstance(exc, json.JSONDecodeError) or type(exc).__module__.startswith("jsii"):
        what = "the cdk8s renderer (jsii's node process) failed"
    elif isinstance(exc, BrokenProcessPool):
        what = "a synth worker process died"
    elif isinstance(exc, OSError):
        what = "a file system operation failed"
    else:
        what = "internal error"
    return f"{what} ({detail}); this is not a problem in the environment files"
