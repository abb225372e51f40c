"""ApiService: the seed's probes, env table, Secret wiring, heap, HPA and PDB, per tier."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import BASE, by, container, env_from, env_map, error_of, kinds, synth_env

SECRET_WIRING = {
    # variable: (secret, key)  -- seed "Required Secrets" + platform-facts §2.4, §4
    "DB_HOST": ("sql-credentials-{ns}", "server"),
    "DB_PORT": ("sql-credentials-{ns}", "port"),
    "DB_NAME": ("sql-credentials-{ns}", "dbname"),
    "DB_USER": ("sql-credentials-{ns}", "username"),
    "DB_PASSWORD": ("sql-credentials-{ns}", "password"),
    "MQTT_USERNAME": ("mqtt-credentials-{ns}", "username"),
    "MQTT_PASSWORD": ("mqtt-credentials-{ns}", "password"),
    "JWT_SECRET": ("api-jwt-{ns}", "token"),
    "IOTISTIC_LICENSE_KEY": ("api-license-credentials-{ns}", "key"),
    "LICENSE_PUBLIC_KEY": ("api-license-public-key-master", "key"),
    "OPENAI_API_KEY": ("openai-credentials-master", "key"),
    "INTERNAL_AUTH_TOKEN": ("internal-auth-token-master", "token"),
    "INITIAL_ADMIN_BOOTSTRAP_TOKEN": ("api-bootstrap-token-master", "token"),
}


@pytest.mark.parametrize("release", ["client-demo", "iotistica", "iotistica-starter", "iotistica-enterprise"])
def test_every_seed_secret_is_wired_by_name_and_key(manifests, environments, release) -> None:
    ns = environments[release].namespace
    env = env_map(container(by(manifests[release], "Deployment", f"{release}-api")))
    for var, (secret, key) in SECRET_WIRING.items():
        assert env[var] == {"secretKeyRef": {"name": secret.format(ns=ns), "key": key}}, var


def test_probes_exactly_as_the_seed(manifests) -> None:
    c = container(by(manifests["client-demo"], "Deployment", "client-demo-api"))
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert (c["startupProbe"]["periodSeconds"], c["startupProbe"]["failureThreshold"]) == (5, 36)  # 3-minute budget
    assert c["livenessProbe"]["periodSeconds"] == 10
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["ports"] == [{"containerPort": 3002, "name": "http", "protocol": "TCP"}]


def test_env_table_values_set_where_code_defaults_differ(manifests) -> None:
    env = env_map(container(by(manifests["client-demo"], "Deployment", "client-demo-api")))
    assert env["PORT"] == "3002"
    assert env["DB_POOL_SIZE"] == "20"  # code default 50
    assert env["DB_STATEMENT_TIMEOUT_MS"] == "45000"  # code default 60000
    # node-pg ignores the code's `statementTimeout`; PGOPTIONS is what the server applies (docs/environments.md).
    assert env["PGOPTIONS"] == "-c statement_timeout=45000"
    job = env_map(container(by(manifests["client-demo"], "Job", "client-demo-api-migrations")))
    assert (job["DB_STATEMENT_TIMEOUT_MS"], job["PGOPTIONS"]) == ("45000", "-c statement_timeout=45000")
    assert env["MQTT_AUTH_CACHE_TTL_SECONDS"] == "300"  # code default 30
    assert env["MQTT_PERSIST_DB"] == "true"  # the seed's MQTT_PERSIST_TO_DB is read nowhere
    assert "MQTT_PERSIST_TO_DB" not in env
    assert env["DISK_SPOOL_ENABLED"] == "true" and env["DISK_SPOOL_MAX_SIZE_MB"] == "1000"
    assert env["AI_PROVIDER"] == "openai"  # code default ollama
    assert env["JWT_ACCESS_TOKEN_EXPIRY"] == "15m" and env["JWT_REFRESH_TOKEN_EXPIRY"] == "7d"
    assert env["CORS_ORIGINS"] == "https://demo.iotistica.com"
    assert env["NODE_ENV"] == "production"


def test_broker_url_points_at_this_release(manifests) -> None:
    env = env_map(container(by(manifests["iotistica"], "Deployment", "iotistica-api")))
    # The full name: the API hands it to virtual agents in fleet namespaces (platform-facts §17).
    assert env["MQTT_BROKER_URL"] == "mqtt://iotistica-mosquitto.iotistica.svc.cluster.local:1883"
    by(manifests["iotistica"], "Service", "iotistica-mosquitto")


def test_stream_maxlen_matches_ingestion(manifests) -> None:
    for release, objs in manifests.items():
        api = env_map(container(by(objs, "Deployment", f"{release}-api")))
        kind = "StatefulSet" if release == "iotistica-enterprise" else "Deployment"
        ing = env_map(container(by(objs, kind, f"{release}-ingestion")))
        assert api["REDIS_INGESTION_STREAM_MAXLEN"] == ing["REDIS_INGESTION_STREAM_MAXLEN"], release


@pytest.mark.parametrize(
    "release, limit, heap",
    [("client-demo", "1Gi", 768), ("iotistica", "2Gi", 1536), ("iotistica-enterprise", "4Gi", 3072)],
)
def test_node_heap_fits_the_memory_limit(manifests, release, limit, heap) -> None:
    c = container(by(manifests[release], "Deployment", f"{release}-api"))
    assert c["resources"]["limits"]["memory"] == limit
    assert env_map(c)["NODE_OPTIONS"] == f"--max-old-space-size={heap}"


@pytest.mark.parametrize(
    "release, requests, limits",
    [
        ("client-demo", {"cpu": "100m", "memory": "256Mi"}, {"cpu": "500m", "memory": "1Gi"}),  # seed demo table
        ("iotistica-starter", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "500m", "memory": "1Gi"}),  # starter
        ("iotistica", {"cpu": "1000m", "memory": "512Mi"}, {"cpu": "2000m", "memory": "2Gi"}),  # standard
        ("iotistica-enterprise", {"cpu": "2000m", "memory": "2Gi"}, {"cpu": "4000m", "memory": "4Gi"}),  # enterprise
    ],
)
def test_resources_per_tier(manifests, release, requests, limits) -> None:
    c = container(by(manifests[release], "Deployment", f"{release}-api"))
    assert c["resources"] == {"requests": requests, "limits": limits}


def test_starter_api_workers_recorded(manifests) -> None:
    dep = by(manifests["iotistica-starter"], "Deployment", "iotistica-starter-api")
    assert dep["metadata"]["annotations"]["iotistica.com/api-workers"] == "6"


@pytest.mark.parametrize(
    "release, lo, hi, cpu, mem", [("iotistica", 2, 4, 70, 80), ("iotistica-enterprise", 4, 10, 65, 75)]
)
def test_hpa_with_seed_numbers_and_no_replicas_field(manifests, release, lo, hi, cpu, mem) -> None:
    objs = manifests[release]
    hpa = by(objs, "HorizontalPodAutoscaler", f"{release}-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (lo, hi)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]}
    assert targets == {"cpu": cpu, "memory": mem}
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{release}-api"}
    assert "replicas" not in by(objs, "Deployment", f"{release}-api")["spec"], "ArgoCD self-heal would fight the HPA"
    assert by(objs, "PodDisruptionBudget", f"{release}-api")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("release", ["client-demo", "iotistica-starter"])
def test_small_tiers_one_replica_no_hpa_no_pdb(manifests, release) -> None:
    objs = manifests[release]
    assert by(objs, "Deployment", f"{release}-api")["spec"]["replicas"] == 1
    names = {o["metadata"]["name"] for o in kinds(objs, "HorizontalPodAutoscaler") + kinds(objs, "PodDisruptionBudget")}
    assert f"{release}-api" not in names


def test_pdb_when_two_replicas_without_hpa() -> None:
    objs = synth_env(env_from("client-demo", api={"replicas": 2}))
    assert by(objs, "Deployment", "client-demo-api")["spec"]["replicas"] == 2
    assert by(objs, "PodDisruptionBudget", "client-demo-api")["spec"]["maxUnavailable"] == 1


def test_service_account_and_log_label(manifests) -> None:
    objs = manifests["client-demo"]
    sa = by(objs, "ServiceAccount", "iotistic-api")
    assert sa["metadata"]["namespace"] == "demo"
    pod = by(objs, "Deployment", "client-demo-api")["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "iotistic-api"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["metadata"]["labels"]["app"] == "iotistic-api"  # kubectl logs -l app=iotistic-api
    svc = by(objs, "Service", "client-demo-api")["spec"]
    assert svc["ports"] == [{"name": "http", "port": 3002, "protocol": "TCP", "targetPort": "http"}]


def test_extra_env_cannot_redefine_managed_variables() -> None:
    with pytest.raises(ValueError, match="api.extraEnv: may not redefine managed variables: DB_POOL_SIZE"):
        synth_env(env_from("client-demo", api={"extraEnv": {"DB_POOL_SIZE": "99"}}))


# ---- the dashboard's Auth0 login: the API's side (platform-facts §2 Auth, §17) --------------------------


def _config_js(objs: list, release: str) -> dict[str, str]:
    """window.env of the dashboard's config.js, as the browser reads it."""
    text = by(objs, "ConfigMap", f"{release}-dashboard")["data"]["config.js"]
    return {k: json.loads(v) for k, v in re.findall(r'^\s*(\w+): ("[^"\n]*")', text, re.M)}


def _auth0_env(objs: list, release: str) -> dict[str, str]:
    env = env_map(container(by(objs, "Deployment", f"{release}-api")))
    return {k: v for k, v in env.items() if k.startswith("AUTH0_")}


@pytest.mark.parametrize("release", ["client-demo", "iotistica", "iotistica-starter", "iotistica-enterprise"])
def test_the_api_takes_its_auth0_settings_from_the_dashboards_config(manifests, release) -> None:
    """The API verifies what the dashboard's login gets from Auth0: the same domain (issuer https://<domain>/,
    JWKS there) and audience; the seed's placeholder client id '...' is no client id and is left out."""
    js = _config_js(manifests[release], release)
    assert js["VITE_AUTH0_CLIENT_ID"] == "..."  # the seed's placeholder, in every shipped tier
    assert _auth0_env(manifests[release], release) == {
        "AUTH0_ENABLED": "true",
        "AUTH0_DOMAIN": js["VITE_AUTH0_DOMAIN"],
        "AUTH0_ISSUER": f"https://{js['VITE_AUTH0_DOMAIN']}/",
        "AUTH0_AUDIENCE": js["VITE_AUTH0_AUDIENCE"],
    }
    assert js["VITE_AUTH0_DOMAIN"] == "auth.iotistica.com" and js["VITE_AUTH0_AUDIENCE"] == "https://api.iotistica.com"


def test_a_real_client_id_and_another_tenant_reach_both_sides() -> None:
    config = {"auth0Domain": "login.acme.example", "auth0Audience": "urn:acme:api", "auth0ClientId": "AbC123xyz"}
    objs = synth_env(env_from("iotistica", dashboard={"config": config}))
    js = _config_js(objs, "iotistica")
    assert (js["VITE_AUTH0_DOMAIN"], js["VITE_AUTH0_AUDIENCE"], js["VITE_AUTH0_CLIENT_ID"]) == (
        "login.acme.example",
        "urn:acme:api",
        "AbC123xyz",
    )
    assert _auth0_env(objs, "iotistica") == {
        "AUTH0_ENABLED": "true",
        "AUTH0_DOMAIN": "login.acme.example",
        "AUTH0_ISSUER": "https://login.acme.example/",
        "AUTH0_AUDIENCE": "urn:acme:api",
        "AUTH0_CLIENT_ID": "AbC123xyz",  # the API also accepts tokens for the client id (jwt-auth.ts)
    }


def test_no_auth0_domain_means_no_auth0_login_on_either_side() -> None:
    objs = synth_env(env_from("client-demo", dashboard={"config": {"auth0Domain": None}}))
    assert not any(k.startswith("VITE_AUTH0_") for k in _config_js(objs, "client-demo"))  # as the chart did
    assert _auth0_env(objs, "client-demo") == {"AUTH0_ENABLED": "false"}


def _internet_egress(objs: list, release: str) -> list:
    """The API's egress rules to the internet (an ipBlock with the private ranges cut out)."""
    spec = by(objs, "NetworkPolicy", f"{release}-api")["spec"]
    return [r for r in spec["egress"] if any("except" in (p.get("ipBlock") or {}) for p in r["to"])]


def test_the_api_may_reach_its_auth0_tenant_without_openai() -> None:
    """JWKS and /userinfo are HTTPS to the Auth0 tenant: the internet rule stays with aiProvider ollama."""
    with_auth0 = synth_env(env_from("client-demo", api={"aiProvider": "ollama"}))
    assert [r["ports"] for r in _internet_egress(with_auth0, "client-demo")] == [[{"port": 443, "protocol": "TCP"}]]
    neither = synth_env(
        env_from("client-demo", api={"aiProvider": "ollama"}, dashboard={"config": {"auth0Domain": None}})
    )
    assert _internet_egress(neither, "client-demo") == []


@pytest.mark.parametrize(
    "config, error",
    [
        (
            {"auth0Domain": "https://auth.iotistica.com"},
            "dashboard.config.auth0Domain: must be a DNS name",
        ),
        ({"auth0Domain": "auth.iotistica.com/"}, "dashboard.config.auth0Domain: must be a DNS name"),
        ({"auth0Audience": ""}, "dashboard.config.auth0Audience"),
        ({"auth0ClientId": ""}, "dashboard.config.auth0ClientId"),
    ],
)
def test_auth0_settings_the_api_could_not_use_are_refused(tmp_path, config, error) -> None:
    assert error in error_of(tmp_path, {**BASE, "dashboard": {"config": config}})


def test_extra_env_cannot_redefine_the_auth0_settings() -> None:
    with pytest.raises(ValueError, match="may not redefine managed variables: AUTH0_AUDIENCE"):
        synth_env(env_from("client-demo", api={"extraEnv": {"AUTH0_AUDIENCE": "https://other"}}))
