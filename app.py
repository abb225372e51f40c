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
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tiers.loader import ConfigError, load_environments
from tiers.models import Environment

ROOT = Path(__file__).resolve().parent
EXIT_CONFIG = 2
# jsii's Node 20 end-of-life banner is noise for operators (DEVELOPERS.md); it does not affect output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Synthesize Iotistica environments into dist/<release>/.")
    parser.add_argument("--env", action="append", default=[], metavar="RELEASE", help="only this release (repeatable)")
    parser.add_argument("--environments", type=Path, default=ROOT / "environments", help="environment files folder")
    parser.add_argument("--outdir", type=Path, default=None, help="output folder (default: $CDK8S_OUTDIR or dist)")
    return parser.parse_args(argv)


def build(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None = None,
    all_envs: Sequence[Environment] | None = None,
) -> None:
    """Synthesize ``envs`` (and the shared charts, from ``all_envs``) into ``outdir`` (must not exist)."""
    from cdk8s import App, YamlOutputType

    from constructs.release_chart import ReleaseChart
    from constructs.shared_charts import ArgoCdChart, ClusterChart

    app = App(outdir=str(outdir), yaml_output_type=YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE)
    for env in envs:
        try:
            ReleaseChart(app, env)
        except ValueError as exc:
            label = (labels or {}).get(env.release, env.release)
            raise ConfigError(label, "", str(exc)) from None
    shared = list(all_envs if all_envs is not None else envs)
    ClusterChart(app, shared)
    ArgoCdChart(app, shared)
    app.synth()


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
) -> None:
    outdir = outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.synth-", dir=outdir.parent))
    try:
        build(envs, staging / "out", labels, all_envs)
        if partial:
            from constructs.shared_charts import SHARED_FOLDERS

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
        envs = load_environments(env_dir, args.env, base=Path.cwd())
        labels = {e.release: str(env_dir / f"{e.release}.yaml") for e in envs}
        synthesize(envs, outdir, partial=bool(args.env), labels=labels)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
