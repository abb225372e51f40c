#!/usr/bin/env python3
"""Wall-time, CPU and memory benchmark of the synth, relative to the cost of merely starting cdk8s.

Usage: .venv/bin/python scripts/bench.py [--repeats N] [--sizes 10,50] [--markdown] [--check] [--no-optimize]
       .venv/bin/python scripts/bench.py --entry-points [--repeats N] [--sizes 200]
       .venv/bin/python scripts/bench.py --commands [--repeats N] [--sizes 1,124,1000]

``--commands``: a cold synth, ``validate`` and ``diff`` (no change) of the same generated fleets side by side, with
their ratios to the synth (goal: at most 1.5x, docs/performance.md).

Cases (each run as a fresh process from the repo root, with ``python -O`` as ``make synth`` runs it
unless --no-optimize; the median of --repeats runs is kept):

- floor: ``python -c "import cdk8s, cdk8s_plus_27"`` (starts the jsii kernel and loads both assemblies);
- the same imports as a synth makes them, ``import app`` first (app.py defers the assembly loads:
  the kernel, Node, never starts; for reference, not a goal);
- shipped: ``python app.py --outdir <tmp>`` (the environments/ folder as committed);
- generated-N: N environments written to a temp folder, round-robin over environments/*.yaml, as
  ``client-<i>.yaml`` with ``release`` and ``namespace`` set to ``client-<i>`` and each host under
  ``edge.hosts`` prefixed with ``c<i>-`` (hosts are unique across the fleet; everything else kept),
  then ``python app.py --environments <dir> --outdir <tmp>``;
- generated-N across C clusters (``--fleet-size`` 1000, ``--clusters`` 3): the same N files, each naming
  ``cluster-<c>`` and database server ``pg-<c>`` round-robin, with a fleet.yaml of C clusters and C
  servers beside them (docs/fleet.md), cold;
- the fleet rules (tiers/fleet.py, ``--rules-sizes`` 100,1000,3000): validate_fleet and fleet_capacity
  on N loaded environments over C clusters, timed in this process (``--rules-only``: only these);
- one changed among N (the largest size): the warm cache holds all N, and before each run one
  environment's namespace is set to a value never synthesized before (its release folder and the
  shared charts are rendered, the rest copied); once into a new folder, once over the output of
  the run before, as ``make synth`` replaces ``dist/`` (the goal's case: files with the same bytes
  are linked from it, synth/files.py).

``--entry-points`` measures the ways to run a synth instead, each from a copy of the project (code
copied; .venv, node_modules and imports/ linked) whose environments/ is the shipped fleet or N
generated ones, writing its dist/ over the previous run's, its cache removed before each run (every
environment rendered): ``make synth``, ``cdk8s synth``, ``iotistica-k8s synth`` (``python cli.py
synth``: what the console script runs), ``python app.py``, and ``PYTHONOPTIMIZE=0 python app.py``
(jsii's runtime type checks on: how the last three ran before they ran themselves under ``-O``).

Each run's CPU time is the child's rusage (its waited-for descendants, the jsii Node processes and
the worker processes, included). Memory is sampled from /proc every 20 ms over the whole process
tree: the peak of the summed RSS of all processes, and the peak per worker (a Python process that
does synth work, the synth itself included, plus the jsii kernel it started, if any: Node).

A case's previous output is moved aside before its next run and deleted after the last run (see
:func:`run`: deleting it just before would bill the next run for it on this machine's file system).

Objects = YAML documents written under the outdir. Runs are interleaved (one round of every case per
repeat), so machine noise hits all cases alike: compare ratios, not absolute times
(docs/performance.md). The goals (docs/performance.md) are checked at the end: shipped
environments cold <= 2x floor; N generated cold <= 60 ms per environment; peak memory <= 300 MiB per
worker; one changed environment among N, warm, <= 1.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 2.0
GOAL_RATIO_NEXT = 1.5
GOAL_PER_ENV_MS = 60.0
GOAL_WORKER_MIB = 300.0
GOAL_CHANGED_S = 1.5
SAMPLE_S = 0.02
PAGE = os.sysconf("SC_PAGE_SIZE")

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
    before: Callable[[int], None] | None = None  # called with the run number before each run
    in_place: bool = False  # the previous run's output stays, as `make synth` finds dist/
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)  # added to the children's environment
    times: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peak_total: list[int] = field(default_factory=list)  # bytes
    peak_worker: list[int] = field(default_factory=list)  # bytes
    workers: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


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


def generate_environments(source: Path, target: Path, n: int, clusters: int = 0) -> None:
    """Write ``client-1.yaml`` .. ``client-<n>.yaml``, round-robin over ``source/*.yaml``, and a fleet file
    beside ``target`` (``target/../fleet.yaml``): the project's, or with ``clusters`` > 0 one of that many
    clusters, each with its own database server, the clients spread over them round-robin."""
    templates = []
    for path in sorted(source.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise SystemExit(f"bench: {path}: not a mapping")
        templates.append(data)
    if not templates:
        raise SystemExit(f"bench: no environment files in {source}")
    target.mkdir(parents=True)
    fleet_file = source.parent / "fleet.yaml"
    if clusters:
        (target.parent / "fleet.yaml").write_text(yaml.safe_dump(fleet_of(clusters, n)), encoding="utf-8")
    elif fleet_file.exists():
        # The project's fleet file, each server sized for its share of the clients (a real operator adds
        # servers; the bench measures synth, not the capacity rule, which refuses an overfull server).
        fleet = yaml.safe_load(fleet_file.read_text(encoding="utf-8")) or {}
        for server in fleet.get("databaseServers") or []:
            server["maxConnections"] = max(int(server.get("maxConnections", 0)), 160 * n + 10)
        (target.parent / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False), encoding="utf-8")
    for i in range(1, n + 1):
        data = copy.deepcopy(templates[(i - 1) % len(templates)])
        data["release"] = data["namespace"] = f"client-{i}"
        if clusters:
            c = (i - 1) % clusters + 1
            data["cluster"] = {**(data.get("cluster") or {}), "name": f"cluster-{c}"}
            data["database"] = {**(data.get("database") or {}), "server": f"pg-{c}"}
        # Each client its own hostnames, as a real new client gets them (the fleet refuses shared hosts).
        hosts = (data.get("edge") or {}).get("hosts") or {}
        for key, value in hosts.items():
            if isinstance(value, str):
                hosts[key] = f"c{i}-{value}"
            elif isinstance(value, list):
                hosts[key] = [f"c{i}-{v}" for v in value]
        (target / f"client-{i}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def fleet_of(clusters: int, n: int) -> dict[str, object]:
    """A fleet file of ``clusters`` clusters,
    each with a database server whose max_connections holds its share of ``n`` tenants (160 each at most)."""
    per_server = 160 * (n // clusters + 1) + 10
    return {
        "clusters": [
            {
                "name": f"cluster-{c}",
                "destinationServer": f"https://cluster-{c}.example.com:6443",
                "kubernetesMinor": 31,
            }
            for c in range(1, clusters + 1)
        ],
        "databaseServers": [
            {"name": f"pg-{c}", "maxConnections": per_server, "cluster": f"cluster-{c}"} for c in range(1, clusters + 1)
        ],
    }


def fleet_rules(sizes: list[int], clusters: int, repeats: int) -> list[tuple[int, float, float, float]]:
    """(environments, load ms, rules ms, function calls per environment) at each size: the rules across
    environments (tiers/fleet.py: validate_fleet and fleet_capacity) on N generated environments over
    ``clusters`` clusters, in this process: load wall time once, the rules' CPU time as the median of
    ``repeats`` (at least 5) runs.
    Linear rules keep the rules' time per environment flat (up to the memory caches: thousands of models),
    and their Python function calls per environment (counted by cProfile over one more run: exact, not
    timed) constant."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from tiers.fleet import Sources, fleet_capacity, validate_fleet
    from tiers.loader import load_environments, load_fleet_file

    rows = []
    with tempfile.TemporaryDirectory(prefix="iotistica-bench-rules-") as tmp_str:
        for n in sizes:
            folder = Path(tmp_str) / f"fleet-{n}" / "environments"
            generate_environments(ROOT / "environments", folder, n, clusters)
            start = time.perf_counter()
            envs = load_environments(folder)
            load_ms = (time.perf_counter() - start) * 1000
            sources = Sources(
                labels={e.release: f"environments/{e.release}.yaml" for e in envs},
                status={},
                fleet=load_fleet_file(folder),
            )
            times = []
            for _ in range(max(repeats, 5)):
                start = time.process_time()  # CPU time: other processes on the machine do not count
                errors = validate_fleet(envs, sources) + fleet_capacity(envs, sources)
                times.append((time.process_time() - start) * 1000)
            if errors:
                raise SystemExit(f"bench: the generated fleet of {n} breaks a rule: {errors[0]}")
            profile = cProfile.Profile()
            profile.runcall(validate_fleet, envs, sources)
            profile.runcall(fleet_capacity, envs, sources)
            calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
            rows.append((n, load_ms, statistics.median(times), calls / n))
    return rows


def rules_table(rows: list[tuple[int, float, float, float]], clusters: int) -> str:
    lines = [
        f"| fleet rules, {clusters} clusters | load ms (wall) | rules CPU ms (median) | rules µs per environment "
        "| function calls per environment |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {load:.0f} | {rules:.1f} | {rules / n * 1000:.1f} | {calls:.1f} |" for n, load, rules, calls in rows
    ]
    return "\n".join(lines)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def _rss_and_name(pid: int) -> tuple[int, str]:
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError, IndexError):
        return 0, ""
    name = os.path.basename(argv[0].decode(errors="replace"))
    if name.startswith("python") and any(b"resource_tracker" in a for a in argv):
        name = "resource_tracker"  # multiprocessing's helper: no synth work
    return rss, name


def sample_tree(root: int) -> tuple[int, dict[int, int]]:
    """(summed RSS of the tree, {worker pid: its RSS}). A worker is a Python process that does synth
    work (the synth itself, each render worker, the floor's interpreter); its RSS includes the
    subtree of a jsii kernel it started, if any (jsii's runtime runs Node in a Node child).
    """
    rss: dict[int, int] = {}
    names: dict[int, str] = {}
    kids: dict[int, list[int]] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        rss[pid], names[pid] = _rss_and_name(pid)
        kids[pid] = _children(pid)
        stack += kids[pid]

    def subtree(pid: int) -> int:
        return rss.get(pid, 0) + sum(subtree(k) for k in kids.get(pid, []))

    workers: dict[int, int] = {}
    for pid, name in names.items():
        if name.startswith("python"):
            nodes = [k for k in kids[pid] if names.get(k, "").startswith("node")]
            workers[pid] = rss[pid] + sum(subtree(k) for k in nodes)
    return sum(rss.values()), workers


#: Where earlier outputs are moved instead of deleted (set by main; removed after the last run).
TRASH: list[Path] = []


def run(case: Case, env: dict[str, str], python: list[str], number: int = 0) -> float:
    if case.outdir is not None and case.outdir.exists() and not case.in_place:
        # Moved aside, deleted after the last run: on this machine's ext4 (no journal), creating files
        # shortly after ~10,000 were deleted makes the inode allocator skip each recently deleted one
        # (recently_deleted() in the kernel's profile), which would bill one run for the previous
        # run's clean-up, more with every run. A synth never deletes ~10,000 files just before itself.
        trash = TRASH[0] / f"{len(list(TRASH[0].iterdir()))}"
        case.outdir.rename(trash)
    if case.before is not None:
        case.before(number)
    peak_total = 0
    peak_worker: dict[int, int] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*python, *case.argv],
        cwd=case.cwd,
        env={**env, **case.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [
        threading.Thread(target=lambda s=stream, b=buf: b.append(s.read()), daemon=True)
        for stream, buf in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))
    ]
    for t in readers:
        t.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total, workers = sample_tree(proc.pid)
        peak_total = max(peak_total, total)
        for w, rss in workers.items():
            peak_worker[w] = max(peak_worker.get(w, 0), rss)
        time.sleep(SAMPLE_S)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    if proc.returncode != 0:
        sys.stderr.write(
            f"bench: case {case.name} failed (exit {proc.returncode}):\n{''.join(out_chunks)}{''.join(err_chunks)}"
        )
        raise SystemExit(1)
    case.cpus.append(usage.ru_utime + usage.ru_stime)
    case.peak_total.append(max(peak_total, usage.ru_maxrss * 1024))
    case.peak_worker.append(max(peak_worker.values(), default=0))
    case.workers = max(case.workers, len(peak_worker))
    if case.outdir is not None:
        objects = count_documents(case.outdir)
        if case.objects is not None and objects != case.objects:
            raise SystemExit(f"bench: case {case.name}: {objects} objects, {case.objects} in an earlier run")
        case.objects = objects
    return elapsed


def forget_warm_up(case: Case) -> None:
    """Drop what a run that is not counted recorded (CPU, peak memory, workers); its time was never kept."""
    for field_list in (case.cpus, case.peak_total, case.peak_worker):
        field_list.clear()
    case.workers = 0


def rounds(cases: list[Case], env: dict[str, str], python: list[str], repeats: int, *, quiet: bool) -> None:
    """``repeats`` rounds of every case, interleaved (machine noise hits all cases alike)."""
    for r in range(repeats):
        if not quiet:
            print(f"bench: round {r + 1}/{repeats}", file=sys.stderr)
        for case in cases:
            case.times.append(run(case, env, python, r + 1))


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def table(cases: list[Case]) -> str:
    floor = cases[0].median
    rows = [
        "| case | environments | objects | wall s (median) | per environment ms | per object ms | ratio to floor "
        "| CPU s | peak RSS MiB, all | peak RSS MiB, per worker (workers) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        envs = str(c.environments) if c.environments else "-"
        objs = str(c.objects) if c.objects is not None else "-"
        per_env = f"{c.median / c.environments * 1000:.0f}" if c.environments else "-"
        per_obj = f"{c.median / c.objects * 1000:.1f}" if c.objects else "-"
        ratio = c.median / floor
        worker = f"{mib(max(c.peak_worker))} ({c.workers})" if c.workers else "- (0)"
        rows.append(
            f"| {c.name} | {envs} | {objs} | {c.median:.2f} | {per_env} | {per_obj} | {ratio:.2f}x "
            f"| {c.cpu:.2f} | {mib(max(c.peak_total))} | {worker} |"
        )
    return "\n".join(rows)


def goals(
    floor: Case, shipped: Case, big: Case, changed: Case, over: Case, multi: Case | None = None
) -> tuple[str, bool]:
    """The issue's table: case, measured, goal, PASS/FAIL (all goals must pass for --check)."""
    ratio = shipped.median / floor.median
    per_env = big.median / big.environments * 1000 if big.environments else 0.0
    worker = max(big.peak_worker) / 2**20
    rows = [
        (
            "shipped environments, cold",
            f"{shipped.median:.2f} s = {ratio:.2f}x the floor ({floor.median:.2f} s)",
            f"<= {GOAL_RATIO:g}x (then {GOAL_RATIO_NEXT:g}x: {'met' if ratio <= GOAL_RATIO_NEXT else 'not yet'})",
            ratio <= GOAL_RATIO,
        ),
        (
            f"{big.environments} generated environments, cold",
            f"{big.median:.2f} s = {per_env:.0f} ms per environment on {os.cpu_count()} CPUs",
            f"<= {GOAL_PER_ENV_MS:g} ms per environment",
            per_env <= GOAL_PER_ENV_MS,
        ),
        (
            f"peak memory, all processes, {big.environments} environments cold",
            f"{mib(max(big.peak_total))} MiB in all; {worker:.0f} MiB per worker ({big.workers} workers)",
            f"<= {GOAL_WORKER_MIB:g} MiB per worker",
            big.workers > 0 and worker <= GOAL_WORKER_MIB,
        ),
        (
            f"one changed environment among {big.environments}, warm",
            f"{over.median:.2f} s over the previous output ({changed.median:.2f} s into a new folder)",
            f"<= {GOAL_CHANGED_S:g} s",
            over.median <= GOAL_CHANGED_S,
        ),
    ]
    if multi is not None and multi.environments:
        multi_per_env = multi.median / multi.environments * 1000
        rows.append(
            (
                multi.name,
                f"{multi.median:.2f} s = {multi_per_env:.0f} ms per environment on {os.cpu_count()} CPUs",
                f"<= {GOAL_PER_ENV_MS:g} ms per environment",
                multi_per_env <= GOAL_PER_ENV_MS,
            )
        )
    lines = ["| case | now | goal | verdict |", "|---|---|---|---|"]
    lines += [f"| {name} | {now} | {goal} | {'PASS' if ok else 'FAIL'} |" for name, now, goal, ok in rows]
    return "\n".join(lines), all(ok for *_, ok in rows)


def project_copy(dest: Path, environments: Path) -> Path:
    """A runnable copy of the project with ``environments`` as its environments/ (see the module doc)."""
    dest.mkdir()
    for name in ("app.py", "cli.py", "cdk8s.yaml", "Makefile", "requirements.lock", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("constructs", "synth", "tiers", "ops"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copytree(environments, dest / "environments")
    if (environments.parent / "fleet.yaml").exists():
        shutil.copy2(environments.parent / "fleet.yaml", dest / "fleet.yaml")
    for name in (".venv", "node_modules", "imports", "package.json", "package-lock.json"):
        (dest / name).symlink_to(ROOT / name)
    return dest


def entry_points(args: argparse.Namespace, sizes: list[int]) -> int:
    """The ``--entry-points`` table: every way to run a synth, on the shipped fleet and N generated."""
    env = child_env()
    env.pop("PYTHONOPTIMIZE", None)
    shipped_dir = ROOT / "environments"
    with tempfile.TemporaryDirectory(prefix="iotistica-bench-") as tmp_str:
        tmp = Path(tmp_str)
        TRASH[:] = [tmp / "trash"]
        TRASH[0].mkdir()
        cases: list[Case] = []
        fleets = [("shipped", shipped_dir)]
        for n in sizes:
            generate_environments(shipped_dir, tmp / f"envs-{n}", n)
            fleets.append((f"generated {n}", tmp / f"envs-{n}"))
        for label, folder in fleets:
            copy = project_copy(tmp / f"project-{label.replace(' ', '-')}", folder)
            count = len(list(folder.glob("*.yaml")))

            def cold(number: int, copy: Path = copy) -> None:
                shutil.rmtree(copy / ".synth-cache", ignore_errors=True)

            python = str(copy / ".venv" / "bin" / "python")
            for name, argv, extra in (
                # Setup taken as done (-o): the copy links the project's .venv and node_modules.
                ("make synth", ["make", "-s", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "synth"], {}),
                ("cdk8s synth", [str(copy / "node_modules" / ".bin" / "cdk8s"), "synth"], {}),
                ("iotistica-k8s synth (python cli.py synth)", [python, "cli.py", "synth"], {}),
                ("python app.py", [python, "app.py"], {}),
                ("python app.py without -O (PYTHONOPTIMIZE=0: as before)", [python, "app.py"], {"PYTHONOPTIMIZE": "0"}),
            ):
                case = Case(f"{label}: {name}", argv, count, copy / "dist", before=cold, in_place=True)
                case.cwd, case.env = copy, extra
                cases.append(case)
        for case in cases:
            run(case, env, [])  # warm-up (page cache, .pyc files, dist/ written once); not counted
        for case in cases:
            forget_warm_up(case)
        rounds(cases, env, [], args.repeats, quiet=args.markdown)
    rows = ["| entry point | environments | objects | wall s (median) | CPU s |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {c.name} | {c.environments} | {c.objects} | {c.median:.2f} | {c.cpu:.2f} |" for c in cases]
    if not args.markdown:
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.repeats} repeats, median, cold cache\n")
    print("\n".join(rows))
    return 0


#: validate and diff of a fleet against a cold synth of the same fleet (docs/performance.md).
GOAL_COMMAND_RATIO = 1.5


def commands(args: argparse.Namespace, sizes: list[int]) -> int:
    """The ``--commands`` table: a cold synth (``python -O app.py --no-cache``, what ``make synth`` runs with an
    empty cache), ``iotistica-k8s validate`` and ``iotistica-k8s diff`` (no change: against that synth's own
    output) of the same generated fleet, side by side, each as the operator runs it (``python cli.py``)."""
    env = child_env()
    env.pop("PYTHONOPTIMIZE", None)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="iotistica-bench-") as tmp_str:
        tmp = Path(tmp_str)
        TRASH[:] = [tmp / "trash"]
        TRASH[0].mkdir()
        rows: list[tuple[int, Case, Case, Case]] = []
        cases: list[Case] = []
        for n in sizes:
            gen = tmp / f"envs-{n}"
            generate_environments(ROOT / "environments", gen, n)
            reference = tmp / f"reference-{n}"  # what diff compares with: a synth of the same fleet
            subprocess.run(
                [python, "-O", "app.py", "--environments", str(gen), "--no-cache", "--outdir", str(reference)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            out = tmp / f"out-{n}"
            synth = Case(
                f"{n}: synth, cold",
                [python, "-O", "app.py", "--environments", str(gen), "--no-cache", "--outdir", str(out)],
                n,
                out,
            )
            validate = Case(f"{n}: validate", [python, "cli.py", "--environments", str(gen), "validate"], n)
            diff = Case(
                f"{n}: diff", [python, "cli.py", "--environments", str(gen), "diff", "--dist", str(reference)], n
            )
            rows.append((n, synth, validate, diff))
            cases += [synth, validate, diff]
        for case in cases:
            run(case, env, [])  # warm-up (page cache, .pyc files); not counted
            forget_warm_up(case)
        rounds(cases, env, [], args.repeats, quiet=args.markdown)
    ok = True
    lines = [
        "| environments | synth, cold s | validate s | validate / synth | diff s | diff / synth | goal "
        "| CPU s: synth, validate, diff |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for n, synth, validate, diff in rows:
        rv, rd = validate.median / synth.median, diff.median / synth.median
        passed = rv <= GOAL_COMMAND_RATIO and rd <= GOAL_COMMAND_RATIO
        ok = ok and passed
        lines.append(
            f"| {n} | {synth.median:.2f} | {validate.median:.2f} | {rv:.2f}x | {diff.median:.2f} | {rd:.2f}x "
            f"| <= {GOAL_COMMAND_RATIO}x {'PASS' if passed else 'FAIL'} "
            f"| {synth.cpu:.2f}, {validate.cpu:.2f}, {diff.cpu:.2f} |"
        )
    if not args.markdown:
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.repeats} repeats, median\n")
    print("\n".join(lines))
    return 1 if args.check and not ok else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported (default 3)")
    parser.add_argument("--sizes", default="10,50,200", help="generated environment counts (default 10,50,200)")
    parser.add_argument(
        "--fleet-size",
        type=int,
        default=1000,
        help="tenants of the several-clusters case (cold; default 1000; 0: leave the case out)",
    )
    parser.add_argument("--clusters", type=int, default=3, help="clusters of that case and of --rules (default 3)")
    parser.add_argument(
        "--rules-sizes",
        default="100,1000,3000",
        help="environment counts the fleet rules are timed at, in this process (default 100,1000,3000; '' skips)",
    )
    parser.add_argument("--rules-only", action="store_true", help="time only the fleet rules (--rules-sizes)")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--no-optimize", action="store_true", help="run the children without -O (with jsii's runtime type checks)"
    )
    parser.add_argument(
        "--entry-points", action="store_true", help="compare make synth, cdk8s synth, iotistica-k8s synth, app.py"
    )
    parser.add_argument(
        "--commands", action="store_true", help="synth (cold), validate and diff of the same fleets side by side"
    )
    args = parser.parse_args(argv)
    if args.commands and args.sizes == parser.get_default("sizes"):
        args.sizes = "1,124,1000"
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if any(n < 1 for n in sizes):
        parser.error("--sizes must be >= 1")
    try:
        rule_sizes = [int(s) for s in args.rules_sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--rules-sizes must be comma-separated integers")
    if args.clusters < 1 or args.fleet_size < 0 or any(n < 1 for n in rule_sizes):
        parser.error("--clusters must be >= 1, --fleet-size >= 0, --rules-sizes >= 1")
    if args.entry_points:
        return entry_points(args, sizes)
    if args.rules_only:
        print(rules_table(fleet_rules(rule_sizes, args.clusters, args.repeats), args.clusters))
        return 0
    if args.commands:
        return commands(args, sizes)

    env = child_env()
    if args.no_optimize:  # app.py runs itself under -O unless PYTHONOPTIMIZE is set (even to 0)
        env["PYTHONOPTIMIZE"] = "0"
    python = [sys.executable] if args.no_optimize else [sys.executable, "-O"]
    shipped_dir = ROOT / "environments"
    shipped_count = len(list(shipped_dir.glob("*.yaml")))
    with tempfile.TemporaryDirectory(prefix="iotistica-bench-") as tmp_str:
        tmp = Path(tmp_str)
        TRASH[:] = [tmp / "trash"]
        TRASH[0].mkdir()
        # Cold cases render everything (--no-cache); warm cases re-run with an unchanged input against a
        # primed incremental cache (the everyday `make synth` after a small change is between the two).
        cache = tmp / "cache"
        cases = [
            Case("floor (import cdk8s, cdk8s_plus_27)", ["-c", "import cdk8s, cdk8s_plus_27"]),
            # What a synth pays for the same imports: app.py defers the assembly loads, Node never starts.
            Case("imports as a synth makes them (import app first)", ["-c", "import app, cdk8s, cdk8s_plus_27"]),
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
        big_n = max(sizes)
        multi = None
        if args.fleet_size:
            # Several clusters (fleet.yaml): every tenant names its cluster and database server.
            gen = tmp / f"fleet-{args.fleet_size}-clusters" / "environments"
            generate_environments(shipped_dir, gen, args.fleet_size, args.clusters)
            out = tmp / "out-clusters"
            multi = Case(
                f"{args.fleet_size} generated across {args.clusters} clusters, cold",
                ["app.py", "--environments", str(gen), "--no-cache", "--outdir", str(out)],
                args.fleet_size,
                out,
            )
            cases.append(multi)

        def one_changed(tag: str, name: str, in_place: bool) -> Case:
            """N environments whose client-1 gets a namespace never synthesized before, before each
            run (``client-1-<tag>-<run>``: a cache miss for that release and the shared charts)."""
            folder = tmp / f"envs-{big_n}-{tag}"
            generate_environments(shipped_dir, folder, big_n)
            changed_file = folder / "client-1.yaml"
            changed_text = changed_file.read_text(encoding="utf-8")

            def change(number: int) -> None:
                data = yaml.safe_load(changed_text)
                data["namespace"] = f"client-1-{tag}-{number}"
                changed_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

            out = tmp / f"out-{tag}"
            argv = ["app.py", "--environments", str(folder), "--cache-dir", str(cache), "--outdir", str(out)]
            return Case(name, argv, big_n, out, before=change, in_place=in_place)

        changed = one_changed("run", f"one changed among {big_n}, warm cache", in_place=False)
        # The same over the output of the run before, as `make synth` finds dist/ (its own namespaces:
        # never the one the case above just put in the cache).
        over = one_changed("over", f"one changed among {big_n}, warm cache, over its previous output", in_place=True)
        cases += [changed, over]

        run(cases[0], env, python)  # warm-up (page cache, .pyc files); not counted
        for case in cases:
            if "warm cache" in case.name:
                run(case, env, python)  # primes the cache; not counted
                forget_warm_up(case)
        rounds(cases, env, python, args.repeats, quiet=args.markdown)

    big = next(c for c in cases if c.name == f"generated {big_n}, cold")
    shipped = next(c for c in cases if c.name == "shipped environments, cold")
    goal_table, ok = goals(cases[0], shipped, big, changed, over, multi)
    rules = rules_table(fleet_rules(rule_sizes, args.clusters, args.repeats), args.clusters) if rule_sizes else ""
    if not args.markdown:
        flags = "python" if args.no_optimize else "python -O"
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]} ({flags}), {args.repeats} repeats, median\n")
    print(table(cases))
    print()
    print(goal_table)
    if rules:
        print()
        print(rules)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
