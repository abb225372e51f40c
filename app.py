#!/usr/bin/env python3
"""Synthesize every environment of ``environments/`` into ``dist/<release>/`` in one process.

Usage: ``python app.py [--env RELEASE ...] [--environments DIR] [--outdir DIR]``

- The output directory is ``--outdir``, else ``$CDK8S_OUTDIR`` (the cdk8s convention), else ``dist``.
- All environments are validated before anything is built. A bad environment file prints one line
  naming the file and the key path and exits 2; ``dist/`` is left untouched.
- The synth writes into a temporary sibling folder and swaps it in, so a failed synth never leaves a
  half-written or stale ``dist/``. With ``--env``, only those releases' folders are replaced.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synth_cache import SynthCache, code_fingerprint
from synth_cache import key as cache_key
from tiers.loader import ConfigError, load_environments
from tiers.models import Environment

ROOT = Path(__file__).resolve().parent
EXIT_CONFIG = 2
CACHE_DIR = ROOT / ".synth-cache"
SHARED_FOLDERS = ("argocd", "cluster")
#: Render in worker processes only when there is enough work to pay for their start (~1 s each).
PARALLEL_MIN = 8
#: Environments one worker process renders before a fresh one replaces it (memory: see build()).
ENVS_PER_WORKER = 50
#: Report progress on stderr when more environments than this are synthesized.
PROGRESS_MIN = 10
# jsii's Node 20 end-of-life banner is noise for operators (DEVELOPERS.md); it does not affect output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Synthesize Iotistica environments into dist/<release>/.")
    parser.add_argument("--env", action="append", default=[], metavar="RELEASE", help="only this release (repeatable)")
    parser.add_argument("--environments", type=Path, default=ROOT / "environments", help="environment files folder")
    parser.add_argument("--outdir", type=Path, default=None, help="output folder (default: $CDK8S_OUTDIR or dist)")
    parser.add_argument(
        "--no-cache", action="store_true", help="render every environment (ignore and do not fill .synth-cache/)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=CACHE_DIR, help="incremental synth cache (default: .synth-cache)"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for large synths (default: cores)"
    )
    return parser.parse_args(argv)


def release_charts(scope: Any, envs: Sequence[Environment], labels: dict[str, str] | None = None) -> list[Any]:
    """One ReleaseChart per environment; a construct's ValueError becomes a one-line ConfigError."""
    from constructs.release_chart import ReleaseChart

    charts = []
    for env in envs:
        try:
            charts.append(ReleaseChart(scope, env))
        except ValueError as exc:
            label = (labels or {}).get(env.release, f"environments/{env.release}.yaml")
            raise ConfigError(label, "", str(exc)) from None
    return charts


def render(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None = None,
    shared: Sequence[Environment] | None = None,
) -> None:
    """Render release charts (and, when ``shared`` is given, the shared charts) into ``outdir`` with cdk8s."""
    from cdk8s import App, YamlOutputType

    from constructs import manifest_writer
    from constructs.shared_charts import ARGOCD, CLUSTER, ArgoCdChart, ClusterChart

    app = App(outdir=str(outdir), yaml_output_type=YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE)
    charts = [(env.release, chart) for env, chart in zip(envs, release_charts(app, envs, labels), strict=True)]
    if shared is not None:
        charts += [(CLUSTER, ClusterChart(app, list(shared))), (ARGOCD, ArgoCdChart(app, list(shared)))]
    # Same files as app.synth(); the YAML is written in Python (constructs/manifest_writer.py).
    manifest_writer.synth(app, charts, outdir)
    # issue 4: the human-readable list of Secrets beside each release's manifests (not applied).
    from constructs.required_secrets import write_required_secrets

    write_required_secrets(envs, outdir)


def _render_part(
    envs: list[dict[str, Any]], outdir: str, labels: dict[str, str], shared: list[dict[str, Any]] | None
) -> None:
    """A worker process's share of the synth (models travel as JSON-able dicts)."""
    from tiers.models import Environment

    def models(items: list[dict[str, Any]]) -> list[Environment]:
        return [Environment.model_validate(d) for d in items]

    render(models(envs), Path(outdir), labels, models(shared) if shared is not None else None)


def _worker_context() -> Any:
    """Fork the workers when this process has not started the jsii kernel: they inherit the loaded
    models and libraries (pydantic, tiers) instead of importing them again; each worker then starts
    its own kernel once and renders many environments. Spawn otherwise (a forked kernel pipe would
    be shared)."""
    if "fork" in multiprocessing.get_all_start_methods() and "cdk8s" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_init() -> None:
    """A worker starts as a spawned one would: default signal handlers (not the parent's, which a
    fork inherits), and its jsii kernel stopped and waited for when the worker ends."""
    import signal
    from multiprocessing.util import Finalize

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def stop_kernel() -> None:
        from constructs import jsii_wire

        jsii_wire.stop_kernel()

    Finalize(None, stop_kernel, exitpriority=10)


def _move_children(src: Path, dst: Path) -> None:
    if src.is_dir():
        for child in sorted(src.iterdir()):
            child.rename(dst / child.name)
        src.rmdir()


def build(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None = None,
    all_envs: Sequence[Environment] | None = None,
    *,
    cache: SynthCache | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> None:
    """Synthesize ``envs`` (and the shared charts, from ``all_envs``) into ``outdir`` (must not exist).

    Environments whose cache key hits are copied from the cache; the rest are rendered, across
    ``jobs`` worker processes when there are at least ``PARALLEL_MIN`` of them.
    """
    shared = list(all_envs if all_envs is not None else envs)
    outdir.mkdir(parents=True)
    code = code_fingerprint() if cache is not None else ""
    todo: list[tuple[Environment, str]] = []
    for env in envs:
        entry = cache_key(code, "release", env.model_dump_json())
        if cache is None or not cache.fetch(entry, outdir / env.release):
            todo.append((env, entry))
    shared_entry = cache_key(code, "shared", *(e.model_dump_json() for e in shared))
    shared_todo = cache is None or not cache.fetch(shared_entry, outdir / ".shared")
    _move_children(outdir / ".shared", outdir)
    total, done = len(envs), len(envs) - len(todo)
    if progress and total > PROGRESS_MIN and cache is not None:
        print(f"synth: {done}/{total} environments from the cache", file=sys.stderr)

    if todo or shared_todo:
        chunks = _chunks([env for env, _ in todo], jobs if len(todo) >= PARALLEL_MIN else 1)
        dump = [[e.model_dump(mode="json") for e in chunk] for chunk in chunks] or [[]]
        shared_dump = [e.model_dump(mode="json") for e in shared] if shared_todo else None
        parts = [outdir / f".part-{i}" for i in range(len(dump))]
        if len(dump) == 1:
            render([env for env, _ in todo], parts[0], labels, shared if shared_todo else None)
        else:
            context = _worker_context()
            # A worker process renders at most ENVS_PER_WORKER environments, then a fresh one takes
            # over: its jsii kernel keeps every object it made, so memory grows with the environments.
            per_process = max(1, ENVS_PER_WORKER // max(len(chunk) for chunk in dump))
            with context.Pool(min(jobs, len(dump)), initializer=_worker_init, maxtasksperchild=per_process) as pool:
                results = [
                    pool.apply_async(_render_part, (chunk, str(part), labels or {}, shared_dump if i == 0 else None))
                    for i, (chunk, part) in enumerate(zip(dump, parts, strict=True))
                ]
                for result, chunk in zip(results, dump, strict=True):
                    result.get()
                    done += len(chunk)
                    if progress and total > PROGRESS_MIN:
                        print(f"synth: {done}/{total} environments", file=sys.stderr)
                pool.close()
                pool.join()  # the workers stop their kernels (_worker_init)
        for part in parts:
            _move_children(part, outdir)
        if cache is not None:
            for env, entry in todo:
                cache.store(entry, outdir / env.release)
            if shared_todo:
                staging = outdir.parent / f".shared-{os.getpid()}"
                staging.mkdir()
                for folder in SHARED_FOLDERS:
                    if (outdir / folder).exists():
                        shutil.copytree(outdir / folder, staging / folder)
                cache.store(shared_entry, staging)
                shutil.rmtree(staging)
    if cache is not None:
        cache.prune()


def _chunks(items: list[Environment], jobs: int) -> list[list[Environment]]:
    """Contiguous chunks, a few per worker so progress moves and work balances."""
    if not items:
        return []
    count = 1 if jobs <= 1 else min(len(items), jobs * 4)
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _swap(src: Path, dst: Path) -> None:
    """Replace ``dst`` by ``src`` with two renames; the old tree is removed afterwards."""
    old = None
    if dst.exists():
        old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old)


def synthesize(
    envs: Sequence[Environment],
    outdir: Path,
    *,
    partial: bool,
    labels: dict[str, str] | None = None,
    all_envs: Sequence[Environment] | None = None,
    cache: SynthCache | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> None:
    """Build into a staging folder beside ``outdir``, then swap the result in (whole, or per folder)."""
    outdir = outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.synth-", dir=outdir.parent))
    try:
        build(envs, staging / "out", labels, all_envs, cache=cache, jobs=jobs, progress=progress)
        if partial:
            outdir.mkdir(exist_ok=True)
            for folder in [*(env.release for env in envs), *SHARED_FOLDERS]:
                src = staging / "out" / folder
                if src.exists():
                    _swap(src, outdir / folder)
                elif (outdir / folder).exists():
                    shutil.rmtree(outdir / folder)
        else:
            _swap(staging / "out", outdir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    outdir = args.outdir or Path(os.environ.get("CDK8S_OUTDIR") or "dist")
    env_dir: Path = args.environments
    try:
        # Every environment is validated, also with --env: the shared charts describe all of them.
        all_envs = load_environments(env_dir, base=Path.cwd())
        if args.env:
            known = {e.release: e for e in all_envs}
            missing = sorted(set(args.env) - set(known))
            if missing:  # the release is the file name, so a name not among them has no file
                load_environments(env_dir, missing, base=Path.cwd())  # raises "file not found"
            envs = [known[name] for name in sorted(set(args.env))]
        else:
            envs = all_envs
        labels = {e.release: str(env_dir / f"{e.release}.yaml") for e in all_envs}
        synthesize(
            envs,
            outdir,
            partial=bool(args.env),
            labels=labels,
            all_envs=all_envs,
            cache=None if args.no_cache else SynthCache(args.cache_dir),
            jobs=max(1, args.jobs),
            progress=True,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
