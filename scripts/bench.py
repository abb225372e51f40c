#!/usr/bin/env python3
"""Wall-time benchmark of the synth, relative to the cost of merely starting cdk8s.

Usage: .venv/bin/python scripts/bench.py [--repeats N] [--sizes 10,50] [--markdown] [--check]

Cases (each run as a fresh process from the repo root; the median of --repeats runs is kept):

- floor: ``python -c "import cdk8s, cdk8s_plus_27"`` (starts the jsii kernel and loads both assemblies);
- shipped: ``python app.py --outdir <tmp>`` (the environments/ folder as committed);
- generated-N: N environments written to a temp folder, round-robin over environments/*.yaml, as
  ``client-<i>.yaml`` with ``release`` and ``namespace`` set to ``client-<i>`` (everything else kept),
  then ``python app.py --environments <dir> --outdir <tmp>``.

Objects = YAML documents written under the outdir. Runs are interleaved (one round of every case per
repeat), so machine noise hits all cases alike: compare ratios, not absolute times
(docs/performance-notes.md). Goal: shipped environments <= 2x floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 2.0

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass
class Case:
    name: str
    argv: list[str]  # after the python executable
    environments: int | None = None
    outdir: Path | None = None  # passed as --outdir; None for the floor
    objects: int | None = None
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CDK8S_CHECK_UPGRADE"] = "false"
    env.pop("CDK8S_OUTDIR", None)  # every synth case passes --outdir explicitly
    return env


def count_documents(outdir: Path) -> int:
    count = 0
    for path in sorted(outdir.rglob("*")):
        if path.suffix in (".yaml", ".yml") and path.is_file():
            count += sum(1 for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader) if doc)
    return count


def generate_environments(source: Path, target: Path, n: int) -> None:
    """Write ``client-1.yaml`` .. ``client-<n>.yaml``, round-robin over ``source/*.yaml``."""
    templates = []
    for path in sorted(source.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise SystemExit(f"bench: {path}: not a mapping")
        templates.append(data)
    if not templates:
        raise SystemExit(f"bench: no environment files in {source}")
    target.mkdir(parents=True)
    for i in range(1, n + 1):
        data = dict(templates[(i - 1) % len(templates)])
        data["release"] = data["namespace"] = f"client-{i}"
        (target / f"client-{i}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def run(case: Case, env: dict[str, str]) -> float:
    if case.outdir is not None and case.outdir.exists():
        shutil.rmtree(case.outdir)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *case.argv], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(f"bench: case {case.name} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        raise SystemExit(1)
    if case.outdir is not None:
        objects = count_documents(case.outdir)
        if case.objects is not None and objects != case.objects:
            raise SystemExit(f"bench: case {case.name}: {objects} objects, {case.objects} in an earlier run")
        case.objects = objects
    return elapsed


def table(cases: list[Case]) -> str:
    floor = cases[0].median
    rows = [
        "| case | environments | objects | wall s (median) | per environment ms | per object ms | ratio to floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        envs = str(c.environments) if c.environments else "-"
        objs = str(c.objects) if c.objects is not None else "-"
        per_env = f"{c.median / c.environments * 1000:.0f}" if c.environments else "-"
        per_obj = f"{c.median / c.objects * 1000:.1f}" if c.objects else "-"
        ratio = c.median / floor
        rows.append(f"| {c.name} | {envs} | {objs} | {c.median:.2f} | {per_env} | {per_obj} | {ratio:.2f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported (default 3)")
    parser.add_argument("--sizes", default="10,50,200", help="generated environment counts (default 10,50,200)")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal check fails")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if any(n < 1 for n in sizes):
        parser.error("--sizes must be >= 1")

    env = child_env()
    shipped_dir = ROOT / "environments"
    shipped_count = len(list(shipped_dir.glob("*.yaml")))
    with tempfile.TemporaryDirectory(prefix="iotistica-bench-") as tmp_str:
        tmp = Path(tmp_str)
        # Cold cases render everything (--no-cache); warm cases re-run with an unchanged input against a
        # primed incremental cache (the everyday `make synth` after a small change is between the two).
        cache = tmp / "cache"
        cases = [
            Case("floor (import cdk8s, cdk8s_plus_27)", ["-c", "import cdk8s, cdk8s_plus_27"]),
            Case(
                "shipped environments, cold",
                ["app.py", "--no-cache", "--outdir", str(tmp / "out-shipped")],
                shipped_count,
                tmp / "out-shipped",
            ),
            Case(
                "shipped environments, warm cache",
                ["app.py", "--cache-dir", str(cache), "--outdir", str(tmp / "out-shipped-warm")],
                shipped_count,
                tmp / "out-shipped-warm",
            ),
        ]
        for n in sizes:
            gen = tmp / f"envs-{n}"
            generate_environments(shipped_dir, gen, n)
            out = tmp / f"out-{n}"
            base = ["app.py", "--environments", str(gen)]
            cases.append(Case(f"generated {n}, cold", [*base, "--no-cache", "--outdir", str(out)], n, out))
            warm = tmp / f"out-{n}-warm"
            cases.append(
                Case(f"generated {n}, warm cache", [*base, "--cache-dir", str(cache), "--outdir", str(warm)], n, warm)
            )

        run(cases[0], env)  # warm-up (page cache, .pyc files); not counted
        for case in cases:
            if "warm cache" in case.name:
                run(case, env)  # primes the cache; not counted
        for r in range(args.repeats):
            if not args.markdown:
                print(f"bench: round {r + 1}/{args.repeats}", file=sys.stderr)
            for case in cases:
                case.times.append(run(case, env))

    ratio = cases[1].median / cases[0].median
    verdict = "PASS" if ratio <= GOAL_RATIO else "FAIL"
    if args.markdown:
        print(table(cases))
    else:
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.repeats} repeats, median wall time\n")
        print(table(cases))
        print(f"\nshipped environments <= {GOAL_RATIO:g}x floor: {verdict} ({ratio:.2f}x)")
    return 1 if args.check and verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
