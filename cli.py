"""iotistica-k8s: the operator CLI (synth, validate, images, diff, explain, graph, migrate, new, schema, docs).

Exit codes: 0 success (and, for ``diff``, no differences); 1 a check failed, ``diff`` found
differences, or an internal or environment failure (one line naming what failed, never an
environment file); 2 bad input (one line naming the file and the key path, nothing written);
``synth`` also 128+N when interrupted by signal N (see app.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# As a console script, this file runs from the venv: put the repo root on sys.path before anything
# imports the `constructs` library, so that our constructs/ folder merges into it.
ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app  # noqa: E402
from ops.diff import cmd_diff  # noqa: E402
from ops.explain import cmd_explain  # noqa: E402
from ops.fleet_render import (  # noqa: E402
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    Manifest,
    _containers,
    identity_clashes,
    policy_problems,
    render,
    render_shared,
)
from ops.graph_cmd import GRAPH_FORMATS, cmd_graph  # noqa: E402
from ops.images_cmd import cmd_images, fleet_images  # noqa: E402
from ops.migrate_cmd import cmd_migrate  # noqa: E402
from ops.reference_docs import cmd_docs, cmd_schema, environment_schema, schema_text  # noqa: E402
from ops.scaffold import cmd_new  # noqa: E402
from ops.selection import add_selector_option  # noqa: E402
from ops.stdout import cmd_stdout  # noqa: E402
from ops.validate import cmd_validate  # noqa: E402
from synth.output import OutputError  # noqa: E402
from synth.run import describe_failure  # noqa: E402
from tiers import TIERS  # noqa: E402
from tiers.errors import ConfigError, error_json, error_lines  # noqa: E402

# The commands live in the ops package, one module per concern; these names stay importable from here.
# The models (pydantic, ~0.4 s) are imported inside the commands that use them: `synth` re-runs itself
# under `python -O` (app.py) before it pays for them.
__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "GRAPH_FORMATS",
    "Manifest",
    "_containers",
    "environment_schema",
    "fleet_images",
    "identity_clashes",
    "main",
    "parser",
    "policy_problems",
    "render",
    "render_shared",
    "schema_text",
]


def cmd_synth(args: argparse.Namespace) -> int:
    if args.stdout:
        return cmd_stdout(args)
    names = list(args.env)
    if args.selector:  # the releases the selector picks, then a synth of those as `make synth ENV=...`
        from ops.fleet_render import _load
        from ops.selection import select

        names = [e.release for e in select(_load(args.environments, []), names, args.selector)]
    # app.main owns the synth's exit codes, signal handling and the resolution of --outdir.
    argv = [f"--env={e}" for e in names] + ["--environments", str(args.environments)]
    if args.outdir:
        argv += ["--outdir", args.outdir]
    if args.from_command_line:  # as `python app.py`: under `python -O`, as fast as `make synth`
        app.run_optimized(argv)
    return app.main(argv)


# --------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iotistica-k8s",
        description="Operate Iotistica environments: synthesize, validate, diff, explain, scaffold.",
        epilog="Exit codes: 0 ok; 1 a check failed, diff found changes, or an internal failure; 2 bad input.",
    )
    p.add_argument("--environments", type=Path, default=ROOT / "environments", help="environment files folder")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write dist/ (like make synth)", description="Synthesize into dist/<release>/.")
    s.add_argument("env", nargs="*", metavar="ENV", help="only these releases (default: all)")
    add_selector_option(s)
    s.add_argument(
        "--stdout",
        action="store_true",
        help="print the releases as one YAML stream (as helm template) and write nothing: no dist/, cache or lock",
    )
    s.add_argument(
        "--outdir", help="output folder (default: $CDK8S_OUTDIR or dist); relative to the project root, not the cwd"
    )
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser(
        "validate",
        help="check models, rules, schema, policy and capacity; write nothing",
        description="Validate environments without writing anything. "
        "Capacity risks are warnings, errors with --strict.",
    )
    s.add_argument("env", nargs="*", metavar="ENV", help="only these releases (default: all)")
    s.add_argument(
        "--strict", action="store_true", help="capacity warnings are errors; list the images without a digest"
    )
    add_selector_option(s)
    s.add_argument("--json", action="store_true", help="every finding as JSON on stdout (for CI bots)")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser(
        "images",
        help="list the fleet's images and digests; --resolve records digests in tiers/images.lock",
        description="Every image the fleet deploys, with the digest tiers/images.lock records. --resolve asks each "
        "image's registry (OCI distribution API) and records the digest it serves; an unreachable registry is "
        "reported and nothing is made up (exit 1 when an image is left unresolved).",
    )
    s.add_argument("--resolve", action="store_true", help="ask the registries and record the digests")
    s.add_argument("--lock", type=Path, help="the images lock (default: tiers/images.lock)")
    s.set_defaults(func=cmd_images)

    s = sub.add_parser(
        "diff",
        help="object-level diff: working change vs dist/ (all, ENV..., or -l), or --compare A B",
        description="What a synth would change in the committed dist/: the whole fleet (shared folders included), "
        "the releases named, or those -l selects. A change repeated on several objects is one line; risky changes "
        "are marked '!'. --compare A B: environment A against B (release and namespace normalised). "
        "Exit 1 when there are differences.",
    )
    s.add_argument("env", nargs="*", metavar="ENV", help="only these releases (default: all)")
    add_selector_option(s)
    s.add_argument("--compare", nargs=2, metavar=("A", "B"), help="environment A against environment B")
    s.add_argument("--json", action="store_true", help="the report as JSON (for CI bots)")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the committed output (default: dist)")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser(
        "explain", help="what an environment deploys, and its capacity", description="Explain one environment."
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument("--json", action="store_true", help="as JSON (for CI bots)")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser(
        "new", help="write a new environment file with comments", description="Scaffold environments/ENV.yaml."
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument("--tier", required=True, choices=TIERS)
    s.add_argument("--namespace", help="default: ENV")
    s.add_argument("--cluster", help="a cluster of fleet.yaml (default: its only one)")
    s.add_argument("--database-server", help="a database server of fleet.yaml (default: its only one)")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser(
        "schema", help="print the JSON Schema of environment files", description="JSON Schema for editors."
    )
    s.add_argument("--fleet", action="store_true", help="the fleet file's (fleet.yaml) instead")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser(
        "graph",
        help="draw an environment from dist/: flows its NetworkPolicies allow, or who may do what",
        description="Draw dist/ENV as Graphviz SVG/PNG/DOT or Mermaid text. Network view: hosts, routes, "
        "Services, workloads, Secrets, hook Jobs, fleet namespaces, and every connection the NetworkPolicies "
        "allow (not drawn = denied). Rights view: ServiceAccounts, their roles and bindings, admission policies.",
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    s.add_argument("--format", choices=GRAPH_FORMATS, help="default: the output's suffix, else svg")
    s.add_argument("--view", choices=("network", "rights"), default="network", help="default: network")
    s.add_argument("--dpi", type=int, help="PNG resolution (Graphviz default: 96)")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the synthesized output (default: dist)")
    s.set_defaults(func=cmd_graph)

    s = sub.add_parser(
        "docs",
        help="regenerate the settings reference (docs/settings.md), environment.schema.json, docs/topology/",
        description="Regenerate generated docs from the models; --check only reports staleness (exit 1).",
    )
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    s.set_defaults(func=cmd_docs)

    s = sub.add_parser(
        "migrate",
        help="plan the move of a live Helm release to Argo CD",
        description="Compare `helm get manifest RELEASE -n NS` output with dist/ENV/: objects adopted in place "
        "(immutable changes and their cost), left behind (safe delete order), new, and data at risk; then the "
        "steps. Exit 0 when the first sync alone is safe, 1 when it needs steps, 2 for bad input.",
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument(
        "--from",
        dest="sources",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="output of `helm get manifest` (repeatable)",
    )
    s.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    s.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the plan here (default: stdout)")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the synthesized output (default: dist)")
    s.set_defaults(func=cmd_migrate)
    return p


#: Commands that render the fleet in memory: from the command line they run under ``python -O``, as synth does
#: (app.py ``run_optimized``: the jsii bindings' runtime type checks cost more than the rest; same output).
OPTIMIZED = frozenset({"validate", "diff", "explain", "synth"})


def _run_optimized(argv: Sequence[str]) -> None:
    """Replace this process with ``python -O cli.py ARGV`` unless it runs optimized already or ``PYTHONOPTIMIZE``
    says how it should run."""
    if sys.flags.optimize or "PYTHONOPTIMIZE" in os.environ:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-O", str(ROOT / "cli.py"), *argv])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.from_command_line = argv is None  # the console script or `python cli.py`, not a caller in process
    if args.from_command_line and args.command in OPTIMIZED and (args.command != "synth" or args.stdout):
        _run_optimized(sys.argv[1:])
    try:
        return int(args.func(args))
    except ConfigError as exc:  # every error of the run, one line each (--json: as JSON on stdout)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "errors": [error_json(e) for e in exc.errors]}, indent=2))
        for line in error_lines(exc):
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # internal or environment failure: one line, never blamed on a file
        print(f"error: {describe_failure(exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
