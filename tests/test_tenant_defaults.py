"""A tenant's own URLs come from its own hosts, never from another tenant's; naming another tenant's host is
refused by synth and validate alike (tiers/fleet.py), through the real entry points.

Platform-wide endpoints (one Auth0 tenant, one provisioning service) are shared by design: the scans leave
out exactly those settings (tiers.fleet.PLATFORM_WIDE_KEYS, their config.js and environment variable names).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ENV_DIR, by, synth_env
from tiers import TIERS
from tiers.fleet import PLATFORM_WIDE_KEYS, Sources, hosts, validate_fleet
from tiers.loader import load_environment, load_environments

ROOT = Path(__file__).resolve().parent.parent
#: Where the platform-wide settings land in the output: config.js keys and the API's environment variables
#: (its AUTH0_* are the dashboard's Auth0 values, the issuer https://<auth0Domain>/ among them).
PLATFORM_WIDE_OUTPUT = (
    *("VITE_AUTH0_DOMAIN", "VITE_AUTH0_AUDIENCE", "VITE_PROVISIONING_API_URL", "PROVISIONING_API_URL"),
    *("AUTH0_DOMAIN", "AUTH0_ISSUER", "AUTH0_AUDIENCE"),
)
HOSTNAME = re.compile(r"[a-z0-9][a-z0-9.-]*")


def test_the_platform_wide_output_names_match_the_platform_wide_settings() -> None:
    assert PLATFORM_WIDE_KEYS == {
        "dashboard.config.auth0Domain",
        "dashboard.config.auth0Audience",
        "dashboard.config.provisioningApiUrl",
        "api.provisioningApiUrl",
    }


def strings(value: Any) -> Iterator[str]:
    """Every string of an object, without the platform-wide values (an env var of that name, a config.js line)."""
    if isinstance(value, dict):
        if value.get("name") in PLATFORM_WIDE_OUTPUT and "value" in value:
            return
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield "\n".join(line for line in value.splitlines() if line.strip().split(":")[0] not in PLATFORM_WIDE_OUTPUT)


def foreign_hosts(objs: list[dict[str, Any]], others: dict[str, str]) -> list[tuple[str, str]]:
    """(object, host) for every host of another tenant named in any string of these objects."""
    found = []
    for o in objs:
        for text in strings(o):
            for word in HOSTNAME.findall(text.lower()):
                if word.rstrip(".-") in others:
                    found.append((f"{o['kind']}/{o['metadata']['name']}", word))
    return found


def claims(envs: list[Any], but: str) -> dict[str, str]:
    return {host: e.release for e in envs if e.release != but for _, host in hosts(e)}


def config_js(objs: list[dict[str, Any]], release: str) -> dict[str, str]:
    text = by(objs, "ConfigMap", f"{release}-dashboard")["data"]["config.js"]
    return dict(re.findall(r'^\s*(\w+): ("[^"\n]*")', text, re.M))


def test_shipped_tenants_name_no_other_tenants_host() -> None:
    envs = load_environments(ENV_DIR)
    assert envs
    for env in envs:
        objs = [
            doc
            for f in sorted((ROOT / "dist" / env.release).glob("*.yaml"))
            for doc in yaml.safe_load_all(f.read_text())
            if doc
        ]
        assert objs, env.release
        assert foreign_hosts(objs, claims(envs, env.release)) == [], env.release


@pytest.mark.parametrize("tier", TIERS)
def test_a_tenant_with_only_its_hosts_gets_its_own_urls_everywhere(tmp_path: Path, tier: str) -> None:
    own = {"api": "api.acme.example", "dashboard": "app.acme.example", "mqtt": "mqtt.acme.example"}
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump({"release": "acme", "namespace": "acme", "tier": tier, "edge": {"hosts": own}}))
    env = load_environment(path, "environments/acme.yaml")
    shipped = load_environments(ENV_DIR)
    objs = synth_env(env)
    assert foreign_hosts(objs, claims(shipped, "acme")) == []
    assert foreign_hosts(objs, {"api.acme.example": "x"}) != []  # the scan finds a host where there is one
    config = {k: json.loads(v) for k, v in config_js(objs, "acme").items()}
    assert config["VITE_API_URL"] == "https://api.acme.example"
    assert config["VITE_AUTH0_CALLBACK_URL"] == "https://app.acme.example/auth/callback"
    api = by(objs, "Deployment", "acme-api")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in api["env"]}["CORS_ORIGINS"] == "https://app.acme.example"
    # Platform-wide by design: the one Auth0 tenant and provisioning service of every tenant.
    assert config["VITE_AUTH0_AUDIENCE"] == "https://api.iotistica.com"
    assert config["VITE_PROVISIONING_API_URL"] == "https://api.iotistica.com/provisioning"


#: A tenant added to the shipped fleet, on its database server (max_connections as the fleet declares it).
ACME = {"release": "acme", "namespace": "acme", "tier": "demo"}


def _fleet_errors(tmp_path: Path, tenant: dict[str, Any]) -> list[str]:
    fleet = tmp_path / "environments"
    shutil.copytree(ENV_DIR, fleet)
    shutil.copy(ENV_DIR.parent / "fleet.yaml", tmp_path / "fleet.yaml")  # what tenants share (docs/fleet.md)
    (fleet / "acme.yaml").write_text(yaml.safe_dump(ACME | tenant))
    envs = load_environments(fleet, base=tmp_path)
    return [str(e) for e in validate_fleet(envs, Sources.of(envs, fleet, tmp_path))]


@pytest.mark.parametrize(
    ("tenant", "key", "host", "owner"),
    [
        (
            {"dashboard": {"config": {"apiUrl": "https://api.iotistica.com"}}},
            "dashboard.config.apiUrl",
            "api.iotistica.com",
            "iotistica.yaml (edge.hosts.api)",
        ),
        (
            {"dashboard": {"config": {"auth0CallbackUrl": "https://demo.iotistica.com/auth/callback"}}},
            "dashboard.config.auth0CallbackUrl",
            "demo.iotistica.com",
            "client-demo.yaml (edge.hosts.dashboard)",
        ),
        (
            {"api": {"corsOrigins": ["https://enterprise.iotistica.com"]}},
            "api.corsOrigins.0",
            "enterprise.iotistica.com",
            "iotistica-enterprise.yaml (edge.hosts.dashboard)",
        ),
        (
            {"api": {"extraEnv": {"BROKER": "mqtts://mqtt.iotistica.com:8883"}}},
            "api.extraEnv.BROKER",
            "mqtt.iotistica.com",
            "iotistica.yaml (edge.hosts.mqtt)",
        ),
    ],
)
def test_naming_another_tenants_host_is_refused(
    tmp_path: Path, tenant: dict[str, Any], key: str, host: str, owner: str
) -> None:
    errors = _fleet_errors(tmp_path, tenant)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"environments/acme.yaml: {key}: names {host!r}, a host of environments/{owner}; ")


@pytest.mark.parametrize(
    "tenant",
    [
        {"dashboard": {"config": {"apiUrl": "https://eu.api.iotistica.com"}}},  # a longer host, not theirs
        {"api": {"corsOrigins": ["https://*.iotistica.com"]}},
        {"dashboard": {"config": {"auth0Audience": "https://api.iotistica.com"}}},  # platform-wide
    ],
)
def test_other_names_are_not_refused(tmp_path: Path, tenant: dict[str, Any]) -> None:
    assert _fleet_errors(tmp_path, tenant) == []


@pytest.mark.parametrize("entry", ["validate", "synth"])
def test_the_refusal_through_the_real_entry_points(tmp_path: Path, entry: str) -> None:
    fleet = tmp_path / "environments"
    shutil.copytree(ENV_DIR, fleet)
    shutil.copy(ENV_DIR.parent / "fleet.yaml", tmp_path / "fleet.yaml")  # what tenants share (docs/fleet.md)
    (fleet / "acme.yaml").write_text(
        "release: acme\nnamespace: acme\ntier: demo\ndashboard:\n  config:\n"
        "    auth0CallbackUrl: https://app.iotistica.com/auth/callback\n"
    )
    out = tmp_path / "dist"
    argv = (
        [str(ROOT / "cli.py"), "--environments", str(fleet), "validate"]
        if entry == "validate"
        else [str(ROOT / "app.py"), "--environments", str(fleet), "--outdir", str(out), "--no-cache"]
    )
    env = {"PATH": "/usr/bin:/bin", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "HOME": str(tmp_path)}
    env["CDK8S_CHECK_UPGRADE"] = "false"
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "error: environments/acme.yaml: dashboard.config.auth0CallbackUrl: names 'app.iotistica.com', a host of "
        "environments/iotistica.yaml (edge.hosts.dashboard); a tenant's own URLs point at its own hosts (leave it "
        "unset to derive it from this file's edge.hosts)\n"
    )
    assert not out.exists()
