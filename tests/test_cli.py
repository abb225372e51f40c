"""The operator CLI: every command, its exit codes, and the generated docs being current."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import cli
from tiers.reference import END, START, settings_reference

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("command", ["synth", "validate", "diff", "explain", "new", "schema", "docs"])
def test_help_on_every_command(command: str) -> None:
    proc = subprocess.run([str(ROOT / ".venv/bin/iotistica-k8s"), command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: iotistica-k8s" in proc.stdout


def test_console_script_runs_from_anywhere(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/iotistica-k8s"), "validate", "client-demo"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "ok: 1 environment(s) valid"
    assert proc.stderr == ""


def test_validate_warns_on_capacity_and_strict_fails_on_stderr(capsys, tmp_path: Path) -> None:
    # The seed's DB_POOL_SIZE 20 on the standard tier, without the preset's departure.
    shutil.copy(ROOT / "fleet.yaml", tmp_path / "fleet.yaml")
    tmp_path = tmp_path / "environments"
    tmp_path.mkdir()
    for f in (ROOT / "environments").glob("*.yaml"):
        extra = "api:\n  dbPoolSize: 20\n" if f.stem == "iotistica" else ""
        (tmp_path / f.name).write_text(f.read_text() + extra)
    rc, out, err = run(capsys, "--environments", str(tmp_path), "validate", "iotistica")
    assert rc == 0 and out.startswith("ok: 1 environment(s) valid, ")
    assert "warning: " in err and "iotistica.yaml: database.connectionBudget: at HPA max the pools open 88" in err
    rc, out, err = run(capsys, "--environments", str(tmp_path), "validate", "--strict", "iotistica")
    assert rc == 1 and "error: " in err and "database.connectionBudget" in err
    # stdout: only the images without a digest, which --strict lists (docs/hardening.md)
    assert all(line.startswith("unpinned: ") for line in out.splitlines())


def test_every_shipped_environment_passes_strict(capsys) -> None:
    rc, out, err = run(capsys, "validate", "--strict")
    lines = out.strip().splitlines()
    count = len(list((ROOT / "environments").glob("*.yaml")))  # every file of environments/, however many
    assert (rc, err) == (0, "") and lines[-1] == f"ok: {count} environment(s) valid"
    # The images tiers/images.lock has no digest for are listed, never a failure (docs/hardening.md).
    assert all(line.startswith("unpinned: ") for line in lines[:-1])


def test_validate_bad_input_is_one_line_exit_2(capsys, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("release: x\nnamespace: x\ntier: gold\n")
    rc, out, err = run(capsys, "--environments", str(tmp_path), "validate")
    assert rc == 2 and out == ""
    assert err.strip().endswith(
        "x.yaml: tier: unknown tier 'gold'; expected one of demo, starter, standard, enterprise (line 3)"
    )


def test_explain_reports_capacity_and_secrets(capsys) -> None:
    rc, out, _ = run(capsys, "explain", "iotistica-enterprise")
    assert rc == 0
    # 60 s at the rated 50,000 r/s (the environment file's departure from the seed's 1,200,000).
    assert "stream buffer            60 s (MAXLEN 3,000,000 / 50,000 r/s)" in out
    assert "warning:" not in out
    assert "db connections (HPA max) 160 of 160 (API 10 pods x 8, ingestion 20 pods x 4)" in out
    assert "db budget                160 server connections on iotistica-cnpg-cl01 (max_connections 500)" in out
    required, made = out.split("secrets the cluster makes")
    required = required.split("required secrets")[1]
    assert "sql-credentials-iotistica-enterprise" in required and "pg-admin-credentials" in required
    for name in ("redis-auth", "ingestion-runtime-env", "mosquitto-tls"):
        assert f"iotistica-enterprise-{name}" in made.split("capacity:")[0]
        assert f"iotistica-enterprise-{name}" not in required
    assert "StatefulSet iotistica-enterprise-redis" in out


def test_diff_between_two_environments(capsys) -> None:
    rc, out, _ = run(capsys, "diff", "--compare", "client-demo", "iotistica")
    assert rc == 1
    assert "+ HorizontalPodAutoscaler/{namespace}/{release}-api" in out
    assert "~ Deployment/{namespace}/{release}-api" in out
    assert "spec.template.spec.containers.api.resources.limits.memory: 1Gi -> 2Gi" in out
    assert out.strip().splitlines()[-1].endswith("changed")


def test_diff_same_environment_is_empty(capsys) -> None:
    rc, out, _ = run(capsys, "diff", "--compare", "iotistica", "iotistica")
    assert rc == 0 and out.strip().endswith("0 added, 0 removed, 0 changed")


def test_diff_working_change_against_dist(capsys, tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "diff")
    assert rc == 0 and "no changes" in out, out
    # A changed committed copy shows up as a field change.
    fake = tmp_path / "dist"
    subprocess.run(["cp", "-r", str(ROOT / "dist"), str(fake)], check=True)
    dep = fake / "iotistica" / "Deployment.iotistica-api.k8s.yaml"
    doc = yaml.safe_load(dep.read_text())
    doc["spec"]["revisionHistoryLimit"] = 9
    dep.write_text(yaml.safe_dump(doc))
    (fake / "iotistica" / "REQUIRED-SECRETS.md").write_text("stale\n")
    rc, out, err = run(capsys, "diff", "--dist", str(fake))
    assert "not a git checkout" in err  # a copy outside the repository is compared as it is on disk
    assert rc == 1 and "## dist/iotistica" in out and "spec.revisionHistoryLimit: 9 -> 5" in out
    assert "-stale" in out  # REQUIRED-SECRETS.md is compared too


def test_new_writes_a_valid_commented_file(capsys, tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "--environments", str(tmp_path), "new", "client-acme", "--tier", "starter")
    assert rc == 0
    text = (tmp_path / "client-acme.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../environment.schema.json")
    data = yaml.safe_load(text)
    assert data["release"] == "client-acme" and data["tier"] == "starter" and data["namespace"] == "client-acme"
    rc, _, err = run(capsys, "--environments", str(tmp_path), "new", "client-acme", "--tier", "starter")
    assert rc == 2 and "already exists" in err
    rc, _, err = run(capsys, "--environments", str(tmp_path), "new", "Bad_Name", "--tier", "demo")
    assert (
        rc == 2
        and "Bad_Name.yaml: release: must be a DNS-1123 label" in err
        and not (tmp_path / "Bad_Name.yaml").exists()
    )
    rc, out, _ = run(capsys, "--environments", str(tmp_path), "validate")
    assert rc == 0


def test_schema_is_json_schema_and_committed_copy_is_current(capsys) -> None:
    rc, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert rc == 0 and schema["title"] == "Iotistica environment"
    assert {"release", "namespace", "tier", "api"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert (ROOT / "environment.schema.json").read_text() == out, "run `iotistica-k8s docs`"


def test_settings_reference_page_is_current() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    section = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == settings_reference(), "run `iotistica-k8s docs`"
    assert "| `api.hpa.minReplicas` | int |" in section


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_graph_without_graphviz_says_how_to_install_it(tmp_path: Path, fmt: str) -> None:
    """No `dot` on PATH (a machine without Debian's graphviz): one line naming the package and the
    formats that work without it, exit 1, nothing written; mermaid and dot still work."""
    env = {"PATH": str(tmp_path), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "HOME": str(tmp_path)}
    out = tmp_path / f"demo.{fmt}"
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "cli.py"), "graph", "client-demo", "-o", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout, out.exists()) == (1, "", False)
    assert proc.stderr == (
        f"error: graph --format {fmt}: needs Graphviz's `dot` program, which is not on PATH: install Debian's "
        "graphviz package (`apt-get install graphviz`, or scripts/ensure-system-deps.sh as root); "
        "--format mermaid and --format dot work without it\n"
    )
    for other in ("mermaid", "dot"):
        proc = subprocess.run(
            [str(ROOT / ".venv/bin/python"), str(ROOT / "cli.py"), "graph", "client-demo", "--format", other],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and proc.stderr == "" and "client-demo" in proc.stdout, (other, proc.stderr)
