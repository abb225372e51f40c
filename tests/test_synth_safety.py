"""Synthesis never destroys what it does not own, and never fails unclearly.

Every case drives a real entry point as a subprocess (``app.py``, ``make synth``, the console script
``iotistica-k8s``, the cdk8s CLI), with real signals sent to a real process group and real processes
racing on one cache. Cases that must break a file run in a temporary copy of the project (the
copy's ``.venv``, ``node_modules``, ``imports`` and ``.synth-cache`` link to this checkout's).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from synth import output, pipeline, workers
from synth.cache import OUTPUTS

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
CONSOLE = str(ROOT / ".venv" / "bin" / "iotistica-k8s")
ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK8S_CHECK_UPGRADE": "false"}
ENV.pop("CDK8S_OUTDIR", None)
BROKEN = "error: environments/iotistica.yaml: api.hpa.minReplicas: must be <= maxReplicas (4), got 6 (line 3)"
NOT_THE_FILES = "this is not a problem in the environment files"


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (hidden ones too) by relative path; symlinked folders not followed."""
    if not path.exists():
        return {}
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not Path(dirpath, d).is_symlink())
        for name in sorted(filenames):
            file = Path(dirpath, name)
            out[str(file.relative_to(path))] = b"<link>" if file.is_symlink() else file.read_bytes()
    return out


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=600)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def staging_left(folder: Path) -> list[str]:
    """Synth staging folders (``.<output>.synth-<pid>-<random>``) in ``folder``."""
    return [p.name for p in folder.iterdir() if re.match(r"^\..+\.synth-\d+-", p.name)]


def project_copy(dest: Path) -> Path:
    """A runnable copy of the project: code, environments and dist/ copied, the heavy parts linked."""
    dest.mkdir()
    for name in (
        "app.py",
        "cli.py",
        "cdk8s.yaml",
        "Makefile",
        "requirements.lock",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
        "fleet.yaml",
    ):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("constructs", "synth", "tiers", "ops", "environments", "dist"):
        shutil.copytree(ROOT / name, dest / name)
    (ROOT / ".synth-cache").mkdir(exist_ok=True)
    for name in (".venv", "node_modules", "imports", ".synth-cache"):
        (dest / name).symlink_to(ROOT / name)
    return dest


def environments(folder: Path, count: int) -> Path:
    """``count`` valid demo-tier environments (parallel synths need at least ``workers.PARALLEL_MIN``)."""
    folder.mkdir()
    for i in range(count):
        name = f"client-{i:02d}"
        hosts = {
            "api": f"api-{name}.example.com",
            "dashboard": f"{name}.example.com",
            "mqtt": f"mqtt-{name}.example.com",
        }
        data = {"release": name, "namespace": name, "tier": "demo", "edge": {"hosts": hosts}}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``, from /proc: (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append((int(entry.name), cmdline))
    return found


def wait_for(predicate, proc: subprocess.Popen[str]) -> None:
    """Poll until ``predicate()`` holds; fails if the process ends first (no time limit of our own)."""
    while not predicate():
        assert proc.poll() is None, f"ended before the condition held: {proc.communicate()}"
        time.sleep(0.05)  # polling interval, not a timing assertion


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[Path]:
    yield project_copy(tmp_path / "project")


# --------------------------------------------------------------------------------------------------
# 1. Only a folder synth owns is replaced; relative output paths mean the project root
# --------------------------------------------------------------------------------------------------


def test_outdir_dot_refuses_the_checkout_and_touches_nothing(copy: Path) -> None:
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = tree(copy)
    proc = run("make", "-s", "synth", cwd=copy, env={**ENV, "CDK8S_OUTDIR": "."})
    assert proc.returncode != 0
    assert f"error: {copy}: is not empty and has no {output.MARKER} marker" in proc.stderr
    assert "Traceback" not in proc.stderr
    after = tree(copy)
    assert {k: v for k, v in after.items() if k in before} == before, "nothing may change"
    assert not staging_left(copy)


def test_outdir_environments_is_refused(copy: Path) -> None:
    before = tree(copy / "environments")
    proc = run(PY, "app.py", "--outdir", "environments", cwd=copy)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith(f"error: {copy}/environments: is not empty and has no {output.MARKER} marker")
    assert line.endswith("refusing to replace it, nothing was written")
    assert tree(copy / "environments") == before


@pytest.mark.parametrize(
    "foreign, reason",
    [
        ("notes.txt", "holds 'notes.txt', which synth did not generate"),
        ("client-demo/kustomization.yaml", "holds client-demo/'kustomization.yaml', which synth did not generate"),
        (".gitkeep", "holds '.gitkeep', which synth did not generate"),
    ],
)
def test_marked_folder_with_foreign_content_is_refused(tmp_path: Path, foreign: str, reason: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(ROOT / "dist", out)
    (out / foreign).write_text("mine\n")
    before = tree(out)
    proc = run(PY, "app.py", "--env", "client-demo", "--outdir", str(out))
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: {out}: {reason}; refusing to replace it, nothing was written"
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_relative_outdir_is_relative_to_the_project_root(copy: Path, tmp_path: Path) -> None:
    # From another directory holding dist/app.js: app.py writes the project's dist/, not ./dist.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "dist").mkdir(parents=True)
    (elsewhere / "dist" / "app.js").write_text("console.log('not yours')\n")
    before = tree(copy / "dist")
    proc = run(str(copy / ".venv/bin/python"), str(copy / "app.py"), "--env", "client-demo", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert tree(elsewhere) == {"dist/app.js": b"console.log('not yours')\n"}
    assert tree(copy / "dist") == before  # rewritten in place with the same bytes
    # The console script resolves the same way: `--outdir environments` from a directory whose
    # ./environments is empty means the project's environments/, which is refused.
    (elsewhere / "environments").mkdir()
    proc = run(CONSOLE, "synth", "--outdir", "environments", cwd=elsewhere)
    assert proc.returncode == 2
    assert one_line(proc.stderr).startswith(f"error: {ROOT}/environments: is not empty and has no {output.MARKER}")
    assert not any((elsewhere / "environments").iterdir())


# --------------------------------------------------------------------------------------------------
# 2. A broken file: one line, exit 2, dist/ byte-identical, through every entry point
# --------------------------------------------------------------------------------------------------


def test_broken_environment_is_one_line_through_every_entry_point(copy: Path) -> None:
    env_file = copy / "environments" / "iotistica.yaml"
    data = yaml.safe_load(env_file.read_text())
    data["api"] = {"hpa": {"minReplicas": 6}}
    env_file.write_text(yaml.safe_dump(data))
    before = tree(copy / "dist")

    proc = run(PY, "app.py", cwd=copy)
    assert (proc.returncode, one_line(proc.stderr)) == (2, BROKEN)
    proc = run("make", "-s", "synth", cwd=copy)
    assert proc.returncode != 0 and BROKEN in proc.stderr.splitlines()
    proc = run(CONSOLE, "--environments", "environments", "synth", cwd=copy)
    assert (proc.returncode, one_line(proc.stderr)) == (2, BROKEN)
    proc = run("node_modules/.bin/cdk8s", "synth", cwd=copy)
    assert proc.returncode != 0
    assert BROKEN in proc.stderr.splitlines(), proc.stderr
    assert "Traceback" not in proc.stderr

    assert tree(copy / "dist") == before, "dist/ must stay byte-identical"
    assert not (copy / ".cdk8s-staging").exists()
    assert not staging_left(copy)


def test_cdk8s_cli_promotes_dist_and_lists_the_manifests(copy: Path) -> None:
    (copy / "dist" / "iotistica" / "Service.iotistica-api.k8s.yaml").write_text("stale\n")
    proc = run("node_modules/.bin/cdk8s", "synth", cwd=copy)
    assert proc.returncode == 0, proc.stderr
    assert tree(copy / "dist") == tree(ROOT / "dist")
    assert tree(copy / ".cdk8s-staging") == tree(ROOT / "dist")
    assert "  - .cdk8s-staging/iotistica/Deployment.iotistica-api.k8s.yaml" in proc.stdout.splitlines()
    # --stdout: the CLI's temporary folder is the output; dist/ is not touched.
    before = tree(copy / "dist")
    proc = run("node_modules/.bin/cdk8s", "synth", "--stdout", cwd=copy)
    assert proc.returncode == 0, proc.stderr
    assert "name: iotistica-api\n" in proc.stdout and "kind: Deployment\n" in proc.stdout
    assert tree(copy / "dist") == before


def test_cdk8s_yaml_output_is_the_apps_scratch_folder() -> None:
    config = yaml.safe_load((ROOT / "cdk8s.yaml").read_text())
    assert config["output"] == output.CDK8S_STAGING.name != "dist"
    assert "--cdk8s-cli" in config["app"].split()


# --------------------------------------------------------------------------------------------------
# 3. Failures that are not the input's fault: exit 1, one line naming what failed
# --------------------------------------------------------------------------------------------------


def test_env_option_that_is_a_path_is_one_line() -> None:
    expected = (
        "error: --env ./client-demo: not a release name (give the file name without folder or .yaml, e.g. client-acme)"
    )
    proc = run(PY, "app.py", "--env", "./client-demo")
    assert (proc.returncode, one_line(proc.stderr)) == (2, expected)
    proc = run("make", "-s", "synth", "ENV=./client-demo")
    assert proc.returncode != 0 and expected in proc.stderr.splitlines() and "Traceback" not in proc.stderr


def _without_dac_override(*argv: str) -> list[str]:
    """Root ignores file modes; drop the capabilities that let it (a real permission error)."""
    if os.geteuid() != 0:
        return list(argv)
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *argv]


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="needs setpriv to drop root's override")
def test_read_only_output_and_root_are_exit_1_naming_the_folder(copy: Path) -> None:
    before = tree(copy / "dist")
    try:
        (copy / "dist").chmod(0o555)
        proc = run(*_without_dac_override(PY, "app.py"), cwd=copy)
        line = one_line(proc.stderr)
        assert proc.returncode == 1, line
        assert "Permission denied" in line and f"{copy}/dist" in line and line.endswith(NOT_THE_FILES)
        assert tree(copy / "dist") == before
        assert not staging_left(copy)
        (copy / "dist").chmod(0o755)
        copy.chmod(0o555)
        proc = run(*_without_dac_override(PY, "app.py", "--env", "client-demo"), cwd=copy)
        line = one_line(proc.stderr)
        assert proc.returncode == 1, line
        assert "Permission denied" in line and str(copy) in line and line.endswith(NOT_THE_FILES)
        assert "environments/" not in line
    finally:
        copy.chmod(0o755)
        (copy / "dist").chmod(0o755)
    assert tree(copy / "dist") == before


def _worker_node(proc: subprocess.Popen[str]) -> int | None:
    """A jsii node process whose parent is a synth worker (not the main process), if one runs."""
    procs = dict(session_processes(proc.pid))
    for pid, cmdline in procs.items():
        if "node" in cmdline.split(" ")[0]:
            ppid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != proc.pid and ppid in procs:
                return pid
    return None


def _parallel_synth(
    tmp_path: Path, renderer: str = "python", count: int = workers.PARALLEL_MIN
) -> subprocess.Popen[str]:
    envs = environments(tmp_path / "envs", count)
    argv = [PY, str(ROOT / "app.py"), "--environments", str(envs), "--outdir", str(tmp_path / "out")]
    return subprocess.Popen(
        [*argv, "--no-cache", "--jobs", "2", "--renderer", renderer],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _workers_rendering(tmp_path: Path) -> bool:
    """A render worker has written a release's first file into its part of the staging folder."""
    return any(p.is_file() for p in tmp_path.glob(".out.synth-*/out/.part-*/*/*"))


def _render_worker(proc: subprocess.Popen[str]) -> int | None:
    """A synth worker process (a spawned Python child of the synth), if one runs."""
    return next((pid for pid, cmdline in session_processes(proc.pid) if "spawn_main" in cmdline), None)


def _assert_internal_failure(proc: subprocess.Popen[str], err: str, tmp_path: Path, what: str) -> None:
    line = one_line(err)
    assert proc.returncode == 1, line
    assert line.startswith(f"error: {what} (") and line.endswith(NOT_THE_FILES), line
    assert str(tmp_path / "envs") not in line and ".yaml" not in line
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envs"], "staging removed"
    assert session_processes(proc.pid) == [], "workers (and their node children) end with the synth"


def _sigkill_one(proc: subprocess.Popen[str], ready: Callable[[], bool], target: Callable[[], int | None]) -> str:
    """Once ``ready()``, SIGKILL the process ``target()`` names; the synth's stderr."""
    try:
        wait_for(ready, proc)
        pid = target()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return err


def test_a_crashed_jsii_child_is_an_internal_failure_not_a_config_error(tmp_path: Path) -> None:
    proc = _parallel_synth(tmp_path, renderer="cdk8s")  # the renderer that runs a jsii kernel per worker
    err = _sigkill_one(proc, lambda: _worker_node(proc) is not None, lambda: _worker_node(proc))
    _assert_internal_failure(proc, err, tmp_path, "the cdk8s renderer (jsii's node process) failed")


def test_a_killed_render_worker_is_an_internal_failure_not_a_config_error(tmp_path: Path) -> None:
    proc = _parallel_synth(tmp_path, count=60)
    err = _sigkill_one(proc, lambda: _workers_rendering(tmp_path), lambda: _render_worker(proc))
    _assert_internal_failure(proc, err, tmp_path, "a synth worker process died")


# --------------------------------------------------------------------------------------------------
# 4. Duplicate keys and aliases
# --------------------------------------------------------------------------------------------------


def test_duplicate_keys_and_alias_bombs_are_refused(tmp_path: Path) -> None:
    envs, out = tmp_path / "environments", tmp_path / "out"
    envs.mkdir()
    (envs / "acme.yaml").write_text("release: acme\nnamespace: acme\ntier: standard\ntier: demo\n")
    proc = run(PY, "app.py", "--environments", str(envs), "--outdir", str(out))
    assert (proc.returncode, one_line(proc.stderr)) == (
        2,
        f"error: {envs}/acme.yaml: tier: line 4: duplicate key (first at line 3)",
    )
    # A second edge: that would have wiped the hosts.
    text = "release: acme\nnamespace: acme\ntier: demo\nedge:\n  hosts: {api: a.example.com}\nedge: {}\n"
    (envs / "acme.yaml").write_text(text)
    proc = run(PY, "app.py", "--environments", str(envs), "--outdir", str(out))
    assert one_line(proc.stderr) == f"error: {envs}/acme.yaml: edge: line 6: duplicate key (first at line 4)"
    # 10^8 leaves from ten lines: refused at the first anchor, before anything is expanded.
    bomb = ["release: acme", "namespace: acme", "tier: demo", "x0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (envs / "acme.yaml").write_text("\n".join([*bomb, "scheduling: {affinity: *a8}", ""]))
    expected = f"error: {envs}/acme.yaml: line 4: YAML anchor &a0 is not allowed in environment files"
    proc = run(PY, "app.py", "--environments", str(envs), "--outdir", str(out))
    assert (proc.returncode, one_line(proc.stderr)) == (2, expected)
    proc = run(CONSOLE, "--environments", str(envs), "validate")
    assert (proc.returncode, one_line(proc.stderr)) == (2, expected)
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# 5. Signals: workers and their node children end with the synth, staging is removed
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "renderer"), [(signal.SIGTERM, "python"), (signal.SIGINT, "python"), (signal.SIGTERM, "cdk8s")]
)
def test_signal_during_parallel_synth_ends_everything(tmp_path: Path, signum: int, renderer: str) -> None:
    proc = _parallel_synth(tmp_path, renderer, count=60 if renderer == "python" else workers.PARALLEL_MIN)
    try:
        wait_for(lambda: _workers_rendering(tmp_path), proc)
        if renderer == "cdk8s":
            wait_for(lambda: _worker_node(proc) is not None, proc)  # and their jsii kernels run
        os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum
    assert one_line(err) == f"error: interrupted by {name}; staging removed, the output folder is unchanged"
    assert session_processes(proc.pid) == [], "no worker or node process may outlive the synth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envs"], "no staging folder, no output"


# --------------------------------------------------------------------------------------------------
# 6. Concurrent synths sharing one cache and one output folder
# --------------------------------------------------------------------------------------------------


def test_two_cold_synths_race_on_one_cache_and_one_output(tmp_path: Path) -> None:
    envs, out, cache = tmp_path / "environments", tmp_path / "out", tmp_path / "cache"
    envs.mkdir()
    shutil.copy2(ROOT / "environments" / "client-demo.yaml", envs)
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out), "--cache-dir", str(cache)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    assert results == [(0, ""), (0, "")], results
    assert tree(out / "client-demo") == tree(ROOT / "dist" / "client-demo")
    assert sorted(p.name for p in out.iterdir()) == sorted([output.MARKER, "argocd", "client-demo", "cluster"])
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")], "no temporary cache folder left"
    entries = [p for p in cache.iterdir() if p.name != OUTPUTS]
    assert len(entries) == 2  # the release and the shared charts, each stored once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "environments", "out"]


# --------------------------------------------------------------------------------------------------
# 7. No orphan after an environment file is deleted
# --------------------------------------------------------------------------------------------------


def test_partial_synth_prunes_releases_whose_file_is_gone(tmp_path: Path) -> None:
    envs, out = tmp_path / "environments", tmp_path / "out"
    envs.mkdir()
    for name in ("client-demo", "iotistica-starter"):
        shutil.copy2(ROOT / "environments" / f"{name}.yaml", envs)
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out)]
    assert run(*argv).returncode == 0
    assert (out / "iotistica-starter").is_dir()
    (envs / "iotistica-starter.yaml").unlink()
    proc = run(*argv, "--env", "client-demo")
    assert proc.returncode == 0, proc.stderr
    # The one summary line shows the folder removed with its file (the shared folders lose its own files:
    # its AppProject, its Namespace and ClusterRoleBinding).
    assert proc.stdout == f"synth: {out}: 2 written (argocd, cluster), 1 unchanged, 1 removed (iotistica-starter)\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([output.MARKER, "argocd", "client-demo", "cluster"])
    assert not [f for f in (out / "argocd").iterdir() if "iotistica-starter" in f.read_text()]
    assert tree(out / "client-demo") == tree(ROOT / "dist" / "client-demo")


def test_partial_synth_writes_no_application_for_a_folder_it_did_not_write(tmp_path: Path) -> None:
    """An environment file added but not synthesized (`make synth ENV=other`) gets no AppProject and no
    files in the platform folder (and no tenant file: the ApplicationSet makes no Application whose
    `path: dist/<release>` would not exist); its own synth adds them (app.py, what `make synth` runs)."""
    envs, out = tmp_path / "environments", tmp_path / "out"
    envs.mkdir()
    shutil.copy2(ROOT / "environments" / "client-demo.yaml", envs)
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out)]
    proc = run(*argv)
    assert proc.stdout == f"synth: {out}: 3 written (argocd, client-demo, cluster), 0 unchanged, 0 removed\n"
    assert run(PY, "cli.py", "--environments", str(envs), "new", "beta", "--tier", "standard").returncode == 0
    proc = run(*argv, "--env", "client-demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"synth: {out}: 0 written, 3 unchanged, 0 removed\n"
    assert not (out / "beta").exists()
    assert sorted(p.name for p in (out / "argocd").iterdir()) == [
        "AppProject.client-demo.k8s.yaml",
        "AppProject.iotistica-platform.k8s.yaml",
        "Application.iotistica-apps.k8s.yaml",
        "Application.iotistica-cluster-in-cluster.k8s.yaml",
        "ApplicationSet.iotistica-tenants.k8s.yaml",
    ]
    assert not (out / "cluster" / "in-cluster" / "Namespace.beta.k8s.yaml").exists()
    proc = run(*argv, "--env", "beta")
    assert proc.stdout == f"synth: {out}: 3 written (argocd, beta, cluster), 0 unchanged, 0 removed\n"
    assert "- namespace: beta\n" in (out / "argocd" / "AppProject.beta.k8s.yaml").read_text()
    assert (out / "beta" / "argocd-tenant.json").is_file()
    assert (out / "cluster" / "in-cluster" / "Namespace.beta.k8s.yaml").is_file()


# --------------------------------------------------------------------------------------------------
# What is created is ignored by git, and `make clean` removes it
# --------------------------------------------------------------------------------------------------


def test_gitignore_covers_what_synth_creates_and_make_clean_removes_it(copy: Path) -> None:
    created = [".dist.synth-1234-abcd1234/out/x", ".cdk8s-staging/x.k8s.yaml", ".synth-cache/.tmp-ab-1-cd/x"]
    proc = run("git", "check-ignore", "--no-index", *created)
    assert proc.stdout.split() == created
    assert run("git", "check-ignore", "--no-index", "dist/x/Deployment.x.k8s.yaml").returncode == 1
    before = tree(copy / "dist")
    for leftover in (".dist.synth-1-x/out/client-demo", ".cdk8s-staging/argocd", ".old-dist-1", "dist/.old-api-1"):
        (copy / leftover).mkdir(parents=True)
    assert run("make", "-s", "clean", cwd=copy).returncode == 0
    assert not [p for p in copy.iterdir() if re.match(r"\.(dist\.synth|old-dist|cdk8s-staging)", p.name)]
    assert tree(copy / "dist") == before
    assert (ROOT / ".synth-cache").is_dir(), "the link is removed, never what it points to"


def test_committed_dist_carries_the_marker() -> None:
    assert (ROOT / "dist" / output.MARKER).read_text() == output.MARKER_TEXT
    assert output.foreign_entry(ROOT / "dist") is None


# --------------------------------------------------------------------------------------------------
# 8. The render worker starts before the environments are read; it always ends with the synth
# --------------------------------------------------------------------------------------------------


def _spawned_worker(proc: subprocess.Popen[str]) -> bool:
    """The render worker process exists (a spawned Python child; it may still be in the synth's group)."""
    return any("spawn_main" in cmdline for pid, cmdline in session_processes(proc.pid) if pid != proc.pid)


def test_a_warm_synth_ends_its_unused_render_worker_and_leaves_nothing_behind(tmp_path: Path) -> None:
    envs, out, cache, tmp = tmp_path / "envs", tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    shutil.copytree(ROOT / "environments", envs)
    tmp.mkdir()
    env = {**ENV, "TMPDIR": str(tmp)}  # the worker's folder, and jsii's copy of its runtime, would be here
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out), "--cache-dir", str(cache)]
    for _ in ("cold", "warm"):  # rendered by the worker, then every release and the shared charts hit
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
        _, err = proc.communicate(timeout=600)
        assert (proc.returncode, err) == (0, "")
        assert session_processes(proc.pid) == [], "the worker and its node child end with the synth"
        assert list(tmp.iterdir()) == [], "no temporary folder is left behind"
        assert tree(out) == tree(ROOT / "dist")


def test_a_render_worker_that_everything_hit_is_never_given_work(tmp_path: Path) -> None:
    from synth.cache import SynthCache
    from tiers.loader import load_environments

    envs = load_environments(ROOT / "environments")
    pipeline.synthesize(envs, tmp_path / "cold", partial=False, all_envs=envs, cache=SynthCache(tmp_path / "cache"))
    worker = workers.RenderWorker()
    try:
        cache = SynthCache(tmp_path / "cache")
        pipeline.synthesize(envs, tmp_path / "warm", partial=False, all_envs=envs, cache=cache, worker=worker)
        assert (cache.hits, cache.misses) == (len(envs) + 1, 0)
        pids = list(getattr(worker.pool, "_processes", {}))
        assert len(pids) == 1, "one worker was started at once"
    finally:
        worker.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not Path(worker.tmpdir).exists()
    assert tree(tmp_path / "warm") == tree(tmp_path / "cold")


def test_a_broken_file_ends_the_render_worker_started_before_it_was_read(tmp_path: Path) -> None:
    envs, out, tmp = environments(tmp_path / "envs", 3), tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    (envs / "client-01.yaml").write_text((envs / "client-01.yaml").read_text().replace("tier: demo", "tier: nope"))
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out)]
    env = {**ENV, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert one_line(err).startswith(f"error: {envs}/client-01.yaml: tier: unknown tier 'nope'")
    assert session_processes(proc.pid) == []
    assert list(tmp.iterdir()) == [] and not out.exists()


def test_ctrl_c_to_the_whole_group_as_the_worker_starts_is_one_line(tmp_path: Path) -> None:
    # A terminal's Ctrl-C signals the foreground process group: the worker too, until it leads its own.
    envs, out, tmp = environments(tmp_path / "envs", 40), tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    argv = [PY, "app.py", "--environments", str(envs), "--outdir", str(out), "--no-cache"]
    env = {**ENV, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: _spawned_worker(proc), proc)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert one_line(err) == "error: interrupted by SIGINT; staging removed, the output folder is unchanged"
    assert session_processes(proc.pid) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envs", "tmp"] and list(tmp.iterdir()) == []
