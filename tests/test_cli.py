"""The operator CLI: every command, its exit codes, and the generated docs being current."""

from __future__ import annotations

import json
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


def test_validate_warns_on_capacity_and_strict_fails(capsys) -> None:
    rc, out, _ = run(capsys, "validate", "iotistica")
    assert rc == 0
    assert "warning: environments/iotistica.yaml: database.maxConnections: at HPA max the pools open 240" in out
    rc, out, _ = run(capsys, "validate", "--strict", "iotistica")
    assert rc == 1 and out.startswith("error: environments/iotistica.yaml: database.maxConnections")


def test_validate_bad_input_is_one_line_exit_2(capsys, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("release: x\nnamespace: x\ntier: gold\n")
    rc, out, err = run(capsys, "--environments", str(tmp_path), "validate")
    assert rc == 2 and out == ""
    assert err.strip().endswith(
        "x.yaml: tier: unknown tier 'gold'; expected one of demo, starter, standard, enterprise"
    )


def test_explain_reports_capacity_and_secrets(capsys) -> None:
    rc, out, _ = run(capsys, "explain", "iotistica-enterprise")
    assert rc == 0
    assert "stream buffer            24 s (MAXLEN 1,200,000 / 50,000 r/s)" in out  # only ~24 s at 50k r/s
    assert "warning: ingestion.streamMaxlen: the stream holds only 24 s" in out
    assert "db connections (HPA max) 600 of max_connections 100" in out
    assert "sql-credentials-iotistica-enterprise" in out and "iotistica-enterprise-redis-auth" in out
    assert "StatefulSet iotistica-enterprise-redis" in out


def test_diff_between_two_environments(capsys) -> None:
    rc, out, _ = run(capsys, "diff", "client-demo", "iotistica")
    assert rc == 1
    assert "+ HorizontalPodAutoscaler/{release}-api" in out
    assert "~ Deployment/{release}-api" in out
    assert "spec.template.spec.containers.api.resources.limits.memory: 1Gi -> 2Gi" in out
    assert out.strip().splitlines()[-1].endswith("changed")


def test_diff_same_environment_is_empty(capsys) -> None:
    rc, out, _ = run(capsys, "diff", "iotistica", "iotistica")
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
    rc, out, _ = run(capsys, "diff", "--dist", str(fake))
    assert rc == 1 and "## dist/iotistica" in out and "spec.revisionHistoryLimit: 9 -> 5" in out


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


def test_readme_settings_reference_is_current() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == settings_reference(), "run `iotistica-k8s docs`"
    assert "| `api.hpa.minReplicas` | int |" in section
