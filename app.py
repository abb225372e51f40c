#!/usr/bin/env python3
"""The iotistica-k8s cdk8s app: every environment of ``environments/`` into ``dist/<release>/``.

Usage: ``python app.py [--env RELEASE ...] [--environments DIR] [--outdir DIR] [--jobs N] [--no-cache]
[--renderer python|cdk8s]`` (``make synth``, ``iotistica-k8s synth`` and ``cdk8s synth`` run it).

How an environment file becomes ``dist/``: each ``environments/<release>.yaml`` is validated into an
``Environment`` (tiers/: its tier preset merged in, the rules across environments checked); each
environment becomes one ``ReleaseChart`` (constructs/release_chart.py), and the fleet together the
shared charts (constructs/shared_charts.py: ``cluster/``, ``argocd/``); the synth engine (synth/, its
stages in synth/__init__.py) renders them into a staging folder and promotes it to the output folder.

- The output folder is ``--outdir``, else ``$CDK8S_OUTDIR`` (the cdk8s convention), else ``dist``. A
  relative path is resolved against the project root (this file's folder), never the current
  directory, so ``app.py``, ``iotistica-k8s synth`` and ``cdk8s synth`` always mean the same folder.
- Synth replaces only a folder it owns: absent, empty, or holding the marker file
  ``.iotistica-k8s-output`` and nothing but generated output. Anything else is refused with one line
  and exit code 2, and nothing is touched.
- All environments are validated before anything is built. A bad environment file prints one line
  naming the file and the key path and exits 2; the output folder is left untouched.
- The synth writes into a private staging folder beside the output and promotes it under an
  exclusive lock, so a failed or interrupted synth never leaves a half-written output, and concurrent
  synths never interleave. With ``--env``, only those releases' folders (and ``cluster/``,
  ``argocd/``) are replaced, and the folders of releases that no longer have an environment file are
  removed.
- ``--cdk8s-cli`` is how ``cdk8s.yaml`` runs this app (synth/run.py ``output_folders``).
- Run as a program (``python app.py``, ``iotistica-k8s synth``), the app runs itself under
  ``python -O`` as ``make synth`` and ``cdk8s.yaml`` do (:func:`run_optimized`): jsii's runtime type
  checks of every binding call would double a synth's time. ``PYTHONOPTIMIZE`` set (even to 0) keeps
  the interpreter as it was started; ``main()`` called in a process (the tests) never re-runs it.

Exit codes: 0 ok; 1 an internal or environment failure (it names what failed, never an environment
file); 2 bad input (an environment file, an option, or an output folder this project does not own);
128+N interrupted by signal N (SIGINT 130, SIGTERM 143), staging removed, output folder unchanged
unless it had already been promoted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import synth.kernel  # noqa: F401  first: the jsii kernel starts only if something asks it for something

ROOT = Path(__file__).resolve().parent
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Synthesize Iotistica environments into dist/<release>/.")
    parser.add_argument("--env", action="append", default=[], metavar="RELEASE", help="only this release (repeatable)")
    parser.add_argument("--environments", type=Path, default=ROOT / "environments", help="environment files folder")
    parser.add_argument(
        "--outdir",
        default=None,
        help="output folder (default: $CDK8S_OUTDIR or dist); a relative path is relative to the project root",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="render every environment (ignore and do not fill .synth-cache/)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / ".synth-cache", help="incremental synth cache (default: .synth-cache)"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for large synths (default: cores)"
    )
    parser.add_argument(
        "--renderer",
        choices=("python", "cdk8s"),
        default="python",
        help="who renders each object: Python (default) or its cdk8s object in the jsii kernel (same output)",
    )
    parser.add_argument(
        "--cdk8s-cli",
        action="store_true",
        help="run by `cdk8s synth` (cdk8s.yaml): write the output folder, then link $CDK8S_OUTDIR to it",
    )
    return parser.parse_args(argv)


def run_optimized(argv: Sequence[str]) -> None:
    """Replace this process with ``python -O app.py ARGV`` unless it runs optimized already, or
    ``PYTHONOPTIMIZE`` says how it should run; returns only when it does nothing.

    The same process (``exec``: same pid, signals and exit code), before anything heavy is imported.
    Under ``-O`` the jsii bindings skip their runtime type checks (``if __debug__``), which cost a
    synth more than the rest of its Python work; the output is the same bytes (``make synth`` has
    always run ``-O``; the tests, in process, keep the checks).
    """
    if sys.flags.optimize or "PYTHONOPTIMIZE" in os.environ:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-O", str(ROOT / "app.py"), *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Run a synth; every outcome is an exit code and one line on stderr per error (see the module doc)."""
    from synth.output import OutputError
    from synth.run import describe_failure, run
    from synth.signals import Interrupted, handled
    from tiers.errors import ConfigError, error_lines

    args = parse_args(sys.argv[1:] if argv is None else argv)
    with handled():  # SIGINT/SIGTERM unwind the synth: every `finally` removes what it made
        try:
            run(args)
        except ConfigError as exc:  # every error of the run, one line each
            for line in error_lines(exc):
                print(f"error: {line}", file=sys.stderr)
            return EXIT_CONFIG
        except OutputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except Interrupted as exc:
            print(f"error: interrupted by {exc}; staging removed, the output folder is unchanged", file=sys.stderr)
            return 128 + exc.signum
        except Exception as exc:
            print(f"error: {describe_failure(exc)}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    run_optimized(sys.argv[1:])
    sys.exit(main())
