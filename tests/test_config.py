"""Config: layering like Helm's -f, frozen models, and one-line errors naming file and key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.helpers import BASE, error_of, write
from tiers.loader import ConfigError, deep_merge, load_environment
from tiers.models import Environment

ROOT = Path(__file__).resolve().parent.parent


# --- layering ------------------------------------------------------------------------------------


def test_deep_merge_rightmost_wins_and_keeps_siblings() -> None:
    base = {"api": {"hpa": {"minReplicas": 2, "maxReplicas": 4}, "replicas": 2}, "list": [1, 2]}
    over = {"api": {"hpa": {"maxReplicas": 6}}, "list": [3]}
    assert deep_merge(base, over) == {"api": {"hpa": {"minReplicas": 2, "maxReplicas": 6}, "replicas": 2}, "list": [3]}


def test_precedence_environment_over_tier_over_defaults(tmp_path: Path) -> None:
    env = load_environment(write(tmp_path, "acme", {**BASE, "api": {"hpa": {"maxReplicas": 6}}}))
    assert env.api.hpa.max_replicas == 6  # environment file
    assert env.api.hpa.min_replicas == 2  # standard tier preset
    assert env.api.db_statement_timeout_ms == 45000  # model default (the seed's value)


def test_models_are_frozen() -> None:
    env = Environment.model_validate(BASE)
    with pytest.raises(ValidationError):
        env.api.replicas = 3  # type: ignore[misc]


# --- errors: one line, file and key path -----------------------------------------------------------


def test_fails_hpa_min_above_max_with_exact_message(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "api": {"hpa": {"minReplicas": 6}}})
    assert msg == "environments/acme.yaml: api.hpa.minReplicas: must be <= maxReplicas (4), got 6 (line 3)"


def test_fails_unknown_tier(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "tier": "gold"})
    assert (
        msg == "environments/acme.yaml: tier: unknown tier 'gold'; expected one of demo, starter, standard, "
        "enterprise (line 3)"
    )


def test_fails_unknown_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, {**BASE, "api": {"replicaz": 2}}) == (
        "environments/acme.yaml: api.replicaz: unknown key; did you mean 'replicas'? (line 2)"
    )


def test_fails_wrong_type(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "api": {"replicas": "many"}})
    assert msg.startswith("environments/acme.yaml: api.replicas: input should be a valid integer")
    assert "got 'many'" in msg


def test_fails_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_environment(tmp_path / "nope.yaml", "environments/nope.yaml")
    assert str(exc.value) == "environments/nope.yaml: file not found"


def test_fails_invalid_yaml(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "release: acme\napi: [unclosed\n")
    assert msg.startswith("environments/acme.yaml: line ") and "invalid YAML" in msg


def test_fails_not_a_mapping(tmp_path: Path) -> None:
    assert error_of(tmp_path, "- a\n- b\n") == "environments/acme.yaml: must be a mapping of settings, got list"


def test_fails_release_not_matching_file_name(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "release": "other", "namespace": "other"})
    assert msg == "environments/acme.yaml: release: must match the file name ('acme'), got 'other' (line 2)"


def test_fails_release_not_dns(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "release": "Acme_1"}, name="Acme_1")
    assert msg.startswith("environments/Acme_1.yaml: release: must be a DNS-1123 label")


def test_fails_namespace_too_long(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "namespace": "n" * 64})
    assert (
        msg == "environments/acme.yaml: namespace: must be at most 63 characters, got 64 ('" + "n" * 64 + "') (line 1)"
    )


def test_fails_bare_star_cors(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "api": {"corsOrigins": ["https://a.example", "*"]}})
    assert msg.startswith("environments/acme.yaml: api.corsOrigins.1: a bare '*' makes the API refuse to start")


def test_wildcard_cors_is_allowed(tmp_path: Path) -> None:
    env = load_environment(write(tmp_path, "acme", {**BASE, "api": {"corsOrigins": ["https://*.iotistica.com"]}}))
    assert env.api.cors_origins == ["https://*.iotistica.com"]


def test_fails_redis_limit_without_headroom(tmp_path: Path) -> None:
    msg = error_of(
        tmp_path, {**BASE, "redis": {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}}}
    )
    assert msg == (
        "environments/acme.yaml: redis.resources.limits.memory: must exceed maxmemoryMb (2048 MiB) by 25% "
        "(>= 2560Mi), got 2Gi (line 5)"
    )


def test_fails_enterprise_without_redis_cluster(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "tier": "enterprise", "redis": {"cluster": {"enabled": False}}})
    assert msg == (
        "environments/acme.yaml: redis.cluster.enabled: must be true on the enterprise tier "
        "(the seed requires Redis Cluster) (line 4)"
    )


def test_fails_persistent_spool_shared_by_deployment_replicas(tmp_path: Path) -> None:
    data = {**BASE, "ingestion": {"workloadKind": "Deployment", "spool": {"persistence": {"enabled": True}}}}
    msg = error_of(tmp_path, data)
    assert msg.startswith("environments/acme.yaml: ingestion.workloadKind: a Deployment with a persistent spool")


def test_persistent_spool_with_several_pods_becomes_a_statefulset(tmp_path: Path) -> None:
    env = load_environment(
        write(tmp_path, "acme", {**BASE, "ingestion": {"spool": {"persistence": {"enabled": True}}}})
    )
    assert env.ingestion.kind == "StatefulSet"


def test_fails_latest_image(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "api": {"image": {"repository": "iotistic/api", "tag": "latest"}}})
    assert msg == "environments/acme.yaml: api.image.tag: must be a pinned tag (not 'latest'), got 'latest' (line 4)"


def test_fails_bad_memory_quantity(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**BASE, "api": {"resources": {"limits": {"memory": "2GB"}}}})
    assert msg == (
        "environments/acme.yaml: api.resources.limits.memory: must be a memory quantity such as 512Mi or 4Gi, "
        "got '2GB' (line 4)"
    )


def test_fails_duplicate_namespace(tmp_path: Path) -> None:
    write(tmp_path, "a", {**BASE, "release": "a", "namespace": "shared"})
    write(tmp_path, "b", {**BASE, "release": "b", "namespace": "shared"})
    from tiers.fleet import load_fleet

    with pytest.raises(ConfigError) as exc:
        load_fleet(tmp_path, base=tmp_path)  # the fleet's rule set (tiers/fleet.py); no git here: the later name
    assert str(exc.value) == "b.yaml: namespace: namespace 'shared' is already used by a.yaml (namespace)"


# --- the command line: one line on stderr, exit 2, dist untouched --------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        ({**BASE, "api": {"hpa": {"minReplicas": 6}}}, "api.hpa.minReplicas: must be <= maxReplicas (4), got 6"),
        ({**BASE, "tier": "gold"}, "tier: unknown tier 'gold'"),
        ({**BASE, "bogus": 1}, "bogus: unknown key"),
        ({**BASE, "api": {"replicas": "x"}}, "api.replicas: input should be a valid integer"),
    ],
)
def test_fails_cli_one_line_and_dist_untouched(tmp_path: Path, content: dict, expected: str) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    write(envs, "acme", content)
    out = tmp_path / "dist"
    (out / "acme").mkdir(parents=True)
    sentinel = out / "acme" / "keep.yaml"
    sentinel.write_text("untouched\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--environments", str(envs), "--outdir", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: environments/acme.yaml: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in out.rglob("*")) == ["acme", "keep.yaml"] and sentinel.read_text() == "untouched\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "environments"], "no staging folder left behind"


def test_fails_cli_missing_environment(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--env", "nope", "--outdir", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: environments/nope.yaml: file not found"
    assert not (tmp_path / "dist").exists()
