"""Review at fleet scale and errors to act on, through the real entry points (the console script's ``cli.py``):
``diff`` by release, selector, grouped and whole values, risky changes and ``--json``; ``synth --stdout``
(``helm template``) touching nothing; selectors; every error of a run listed with its line; ``kubectl diff
--server-side`` of a release against the suite's real kube-apiserver."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
ENV = {
    **os.environ,
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK8S_CHECK_UPGRADE": "false",
}


def cli(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env or ENV,
    )


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (relative name -> sha256 and mtime): what "touched nothing" compares."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            out[str(p.relative_to(path))] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_mtime_ns}"
    return out


def fleet(tmp_path: Path, **tiers: str) -> Path:
    """A copy of environments/ with some releases' tier changed (``iotistica="enterprise"``)."""
    envs = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", envs)
    for release, tier in tiers.items():
        f = envs / f"{release}.yaml"
        data = yaml.safe_load(f.read_text())
        f.write_text(f.read_text().replace(f"tier: {data['tier']}", f"tier: {tier}", 1))
    return envs


# --- synth --stdout ------------------------------------------------------------------------------------


def test_stdout_is_the_release_folder_as_one_stream_and_touches_nothing() -> None:
    before = tree(DIST)
    proc = cli("synth", "--stdout", "iotistica")
    assert proc.returncode == 0, proc.stderr
    files = sorted((DIST / "iotistica").glob("*.yaml"))
    assert proc.stdout == "---\n".join(p.read_text(encoding="utf-8") for p in files)
    assert tree(DIST) == before
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert len(docs) == len(files)


def test_stdout_in_a_read_only_checkout(tmp_path: Path) -> None:
    """A copy of the project without dist/, write bits removed: the stream is printed and the copy is unchanged
    (no dist/, no .synth-cache, no lock, no file at all). The suite runs as root, which write bits do not stop:
    the unchanged tree is the proof that nothing is written."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("app.py", "cli.py", "cdk8s.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, copy / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("constructs", "synth", "tiers", "ops", "environments"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in (".venv", "node_modules", "imports"):
        (copy / name).symlink_to(ROOT / name)
    before = tree(copy)
    argv = [sys.executable, str(copy / "cli.py"), "synth", "--stdout", "client-demo"]
    subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
    try:
        proc = subprocess.run(argv, cwd=copy, capture_output=True, text=True, timeout=600, env=ENV)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "---\n".join(p.read_text() for p in sorted((DIST / "client-demo").glob("*.yaml")))
    assert tree(copy) == before and not (copy / "dist").exists() and not (copy / ".synth-cache").exists()


def test_stdout_unknown_release_and_empty_selector_are_errors_naming_them() -> None:
    proc = cli("synth", "--stdout", "nosuch")
    assert proc.returncode == 2 and proc.stdout == ""
    releases = sorted(p.stem for p in (ROOT / "environments").glob("*.yaml"))
    assert proc.stderr.startswith("error: nosuch: no such release; the releases are ")
    assert all(r in proc.stderr for r in releases[:20])
    proc = cli("synth", "--stdout", "-l", "tier=gold")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: -l: tier=gold: matches no environment")
    proc = cli("validate", "-l", "tire=standard")
    assert proc.returncode == 2 and "unknown key 'tire'; did you mean 'tier'?" in proc.stderr


def test_selectors_pick_by_tier_and_cluster() -> None:
    tiers = {p.stem: yaml.safe_load(p.read_text())["tier"] for p in (ROOT / "environments").glob("*.yaml")}
    tier = sorted(tiers.values())[0]
    proc = cli("synth", "--stdout", "-l", f"tier={tier}")
    assert proc.returncode == 0, proc.stderr
    releases = {d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in yaml.safe_load_all(proc.stdout) if d}
    assert releases == {r for r, t in tiers.items() if t == tier}
    proc = cli("validate", "-l", "cluster=in-cluster")  # the default cluster: every environment
    assert proc.returncode == 0 and f"ok: {len(tiers)} environment(s) valid" in proc.stdout, proc.stderr


# --- diff ------------------------------------------------------------------------------------------------


def test_diff_of_a_tier_change_groups_repeats_and_marks_risks(tmp_path: Path) -> None:
    envs = fleet(tmp_path, iotistica="enterprise")
    proc = cli("--environments", str(envs), "diff", "-l", "release=iotistica")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    # the tier label, changed on every object, is one line
    label = [
        line for line in lines if line.startswith("= metadata.labels.iotistica.com/tier: standard -> enterprise on")
    ]
    assert len(label) == 1 and " objects in dist/iotistica" in label[0]
    assert not any(line.strip().startswith("metadata.labels.iotistica.com/tier") for line in lines)
    # a StatefulSet replacing a Deployment is marked risky
    assert any(
        line.startswith(
            "+ StatefulSet/iotistica/iotistica-redis  ! kind changed for the same name: Deployment -> "
            "StatefulSet (a StatefulSet replaces a Deployment)"
        )
        for line in lines
    )
    assert lines[-1].endswith("risky (!)")
    assert "## dist/" in proc.stdout and "## dist/iotistica-enterprise" not in proc.stdout  # only the selected
    # the same as JSON
    proc = cli("--environments", str(envs), "diff", "iotistica", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["releases"] == ["iotistica"] and report["whole_fleet"] is False
    assert any(r["reason"].startswith("kind changed") for r in report["risks"])
    tier = next(r for r in report["repeated"] if r["path"] == "metadata.labels.iotistica.com/tier")
    assert (tier["old"], tier["new"]) == ("standard", "enterprise") and len(tier["objects"]) > 10


def test_diff_shows_long_values_whole(tmp_path: Path) -> None:
    """A long value is a line diff of both values whole: never cut the same way on both sides."""
    envs = fleet(tmp_path)
    f = envs / "iotistica.yaml"
    data = yaml.safe_load(f.read_text())
    hosts = data["edge"]["hosts"]
    old_host = hosts["dashboard"] if isinstance(hosts["dashboard"], str) else hosts["dashboard"][0]
    f.write_text(f.read_text().replace(old_host, "a-much-longer-dashboard-host-name.iotistica.com"))
    proc = cli("--environments", str(envs), "diff", "iotistica")
    assert proc.returncode == 1, proc.stderr
    assert "..." not in proc.stdout.replace("(...)", "")
    assert "a-much-longer-dashboard-host-name.iotistica.com" in proc.stdout


def test_diff_unchanged_fleet_and_unknown_release() -> None:
    proc = cli("diff")
    assert proc.returncode == 0 and "no changes" in proc.stdout, proc.stdout + proc.stderr
    proc = cli("diff", "--json", "-l", "tier=gold")
    assert proc.returncode == 2 and json.loads(proc.stdout)["errors"][0]["key"] == "tier=gold"


def test_kubectl_diff_server_side_against_the_real_api_server(kube_api, kube_dist, tmp_path: Path) -> None:
    """The live diff of docs/operations.md: ``kubectl diff --server-side`` of a release against the real
    kube-apiserver that holds dist/ (as Argo CD would have synced it), then of ``synth --stdout`` of a changed
    environment: exit 1 and the changed field shown."""
    folder = DIST / "client-demo"
    files = [arg for p in sorted(folder.glob("*.yaml")) for arg in ("-f", str(p))]  # manifests, not the tenant record
    live = kube_api.kubectl("diff", "--server-side", "--force-conflicts", *files, check=False)
    assert live.returncode in (0, 1), live.stderr  # 1: a difference (e.g. fields the server defaults)
    assert "demo-changed.iotistica.com" not in live.stdout
    envs = fleet(tmp_path)
    f = envs / "client-demo.yaml"
    f.write_text(f.read_text().replace("dashboard: demo.iotistica.com", "dashboard: demo-changed.iotistica.com"))
    stream = cli("--environments", str(envs), "synth", "--stdout", "client-demo")
    assert stream.returncode == 0, stream.stderr
    changed = kube_api.kubectl(
        "diff", "--server-side", "--force-conflicts", "-f", "-", input=stream.stdout, check=False
    )
    assert changed.returncode == 1, changed.stderr
    assert "+" in changed.stdout and "demo-changed.iotistica.com" in changed.stdout


def test_synth_with_a_selector_writes_only_the_selected_releases(tmp_path: Path) -> None:
    tiers = {p.stem: yaml.safe_load(p.read_text())["tier"] for p in (ROOT / "environments").glob("*.yaml")}
    tier = sorted(tiers.values())[-1]
    out = tmp_path / "out"
    proc = cli("synth", "-l", f"tier={tier}", "--outdir", str(out))
    assert proc.returncode == 0, proc.stderr
    written = {p.name for p in out.iterdir() if p.is_dir()} - {"cluster", "argocd"}
    assert written == {r for r, t in tiers.items() if t == tier}
    proc = cli("synth", "-l", "tier=gold", "--outdir", str(tmp_path / "none"))
    assert proc.returncode == 2 and "tier=gold: matches no environment" in proc.stderr
    assert not (tmp_path / "none").exists()


def test_validate_and_diff_of_a_fleet_in_worker_processes(tmp_path: Path) -> None:
    """At PARALLEL_MIN environments and more, validate and diff run in worker processes (ops/fleet_parallel.py):
    the same findings, no change against a synth of the same fleet, one changed release found."""
    from ops.fleet_parallel import PARALLEL_MIN
    from scripts.bench import generate_environments

    envs, out = tmp_path / "environments", tmp_path / "dist"
    generate_environments(ROOT / "environments", envs, PARALLEL_MIN + 1)
    proc = subprocess.run(
        [sys.executable, "-O", str(ROOT / "app.py"), "--environments", str(envs), "--no-cache", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    proc = cli("--environments", str(envs), "validate")
    assert proc.returncode == 0 and f"ok: {PARALLEL_MIN + 1} environment(s) valid" in proc.stdout, proc.stderr
    proc = cli("--environments", str(envs), "diff", "--dist", str(out))
    assert proc.returncode == 0 and "no changes" in proc.stdout, proc.stdout + proc.stderr
    f = envs / "client-3.yaml"
    data = yaml.safe_load(f.read_text())
    data["edge"]["hosts"]["dashboard"] = "changed-" + data["edge"]["hosts"]["dashboard"]
    f.write_text(yaml.safe_dump(data))
    proc = cli("--environments", str(envs), "diff", "--dist", str(out), "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert {c["folder"] for c in report["changes"]} - {"argocd", "cluster"} == {"client-3"}
    (envs / "client-4.yaml").unlink()  # a release whose file is gone: its folder is all removed
    proc = cli("--environments", str(envs), "diff", "--dist", str(out), "--json")
    removed = [c for c in json.loads(proc.stdout)["changes"] if c["folder"] == "client-4"]
    assert removed and all(c["op"] == "removed" for c in removed)


# --- errors to act on ----------------------------------------------------------------------------------


def test_every_error_of_a_run_is_listed_with_its_line_and_nothing_is_written(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    shutil.copy2(ROOT / "environments" / "client-demo.yaml", envs / "client-demo.yaml")
    (envs / "empty.yaml").write_text("# nothing yet\n")
    (envs / "typo.yaml").write_text("release: typo\nnamespace: typo\ntier: standrd\n")
    (envs / "keys.yaml").write_text(
        "release: keys\nnamespace: keys\ntier: starter\napi:\n  replicaz: 3\n  hpa:\n    minReplicas: 6\n"
        "    maxReplicas: 4\n"
    )
    (envs / "tabs.yaml").write_text("release: tabs\nnamespace: tabs\ntier: starter\napi:\n\treplicas: 3\n")
    (envs / "colon.yaml").write_text("release: colon\nnamespace: colon\ntier: starter\napi:\n  image: a: b\n")
    expected = [
        f"error: {envs}/colon.yaml: line 5, column 11: invalid YAML: a second ':' on the line: quote a value "
        "that holds ': ', or fix the indentation (mapping values are not allowed here)",
        f"error: {envs}/empty.yaml: empty file (no settings; `iotistica-k8s new NAME --tier TIER` writes one)",
        f"error: {envs}/keys.yaml: api.hpa.minReplicas: must be <= maxReplicas (4), got 6 (line 7)",
        f"error: {envs}/keys.yaml: api.replicaz: unknown key; did you mean 'replicas'? (line 5)",
        f"error: {envs}/tabs.yaml: line 5, column 1: invalid YAML: a tab character: indent with spaces only "
        "(found character '\\t' that cannot start any token)",
        f"error: {envs}/typo.yaml: tier: unknown tier 'standrd'; did you mean 'standard'? expected one of demo, "
        "starter, standard, enterprise (line 3)",
    ]
    out = tmp_path / "out"
    for argv in (["validate"], ["diff"], ["synth", "--outdir", str(out)]):
        proc = cli("--environments", str(envs), *argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stderr.splitlines() == expected, argv
        assert "Traceback" not in proc.stderr
    assert not out.exists()
    proc = cli("--environments", str(envs), "validate", "--json")
    assert proc.returncode == 2
    errors = json.loads(proc.stdout)["errors"]
    assert [f"error: {e['text']}" for e in errors] == expected
    replicaz = next(e for e in errors if e["key"] == "api.replicaz")
    assert (replicaz["file"], replicaz["line"]) == (f"{envs}/keys.yaml", 5)
    proc = cli("--environments", str(envs), "explain", "typo", "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["errors"][0]["line"] == 3
