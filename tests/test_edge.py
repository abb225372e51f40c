"""The edge concern: Gateway API routes, the API rate limit, the broker Certificate, ServiceMonitors, CORS.

The seed's numbers first: API 3002, dashboard 80, MQTT over TLS 8883 (passthrough), plain MQTT 1883
and websockets 9001 off by default, 1,000 requests per minute, ClusterIssuer letsencrypt-production,
/metrics every 30 s; then the settings and their validation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import BASE, SHIPPED, by, container, env_from, env_map, error_of, kinds, synth_env
from tiers.errors import ConfigError
from tiers.loader import load_environment

GATEWAY = {"name": "iotistica-gateway", "namespace": "envoy-gateway-system"}
V1 = "gateway.networking.k8s.io/v1"
HOSTS = {
    "client-demo": ("demo-api.iotistica.com", "demo.iotistica.com", "mqtt-demo.iotistica.com"),
    "iotistica-starter": ("starter-api.iotistica.com", "starter.iotistica.com", "mqtt-starter.iotistica.com"),
    "iotistica": ("api.iotistica.com", "app.iotistica.com", "mqtt.iotistica.com"),
    "iotistica-enterprise": (
        "enterprise-api.iotistica.com",
        "enterprise.iotistica.com",
        "mqtt-enterprise.iotistica.com",
    ),
}


def backends(route: dict) -> list[tuple[str, int]]:
    return sorted({(b["name"], b["port"]) for r in route["spec"]["rules"] for b in r["backendRefs"]})


# --- routes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SHIPPED)
def test_http_routes_reach_api_3002_and_dashboard_80_through_the_https_listener(manifests, release) -> None:
    objs = manifests[release]
    api_host, dashboard_host, _ = HOSTS[release]
    api = by(objs, "HTTPRoute", f"{release}-api")
    dashboard = by(objs, "HTTPRoute", f"{release}-dashboard")
    for route in (api, dashboard):
        assert route["apiVersion"] == V1
        assert route["spec"]["parentRefs"] == [{**GATEWAY, "sectionName": "https"}]
    assert backends(api) == [(f"{release}-api", 3002)]
    assert backends(dashboard) == [(f"{release}-dashboard", 80)]
    assert api["spec"]["hostnames"] == [api_host]
    assert dashboard["spec"]["hostnames"] == [dashboard_host]
    # the backends are the Services' own ports
    assert {p["port"] for p in by(objs, "Service", f"{release}-api")["spec"]["ports"]} == {3002}
    assert {p["port"] for p in by(objs, "Service", f"{release}-dashboard")["spec"]["ports"]} == {80}


def test_api_websocket_path_has_no_request_timeout(manifests) -> None:
    rules = by(manifests["client-demo"], "HTTPRoute", "client-demo-api")["spec"]["rules"]
    assert rules[0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/ws"}}]
    assert rules[0]["timeouts"] == {"request": "0s"}
    # Only the public paths, never "/" (tests/test_public_edge.py evaluates them).
    assert [r["matches"] for r in rules[1:]] == [
        [{"path": {"type": "PathPrefix", "value": "/api"}}],
        [{"path": {"type": "Exact", "value": "/health"}}],
    ]
    assert all("timeouts" not in r for r in rules[1:])


@pytest.mark.parametrize("release", SHIPPED)
def test_mqtt_tls_is_passed_through_to_mosquitto_8883(manifests, release) -> None:
    objs = manifests[release]
    route = by(objs, "TLSRoute", f"{release}-mosquitto")
    assert route["apiVersion"] == V1
    assert route["spec"]["parentRefs"] == [{**GATEWAY, "sectionName": "mqtt-tls"}]
    assert route["spec"]["hostnames"] == [HOSTS[release][2]]
    assert backends(route) == [(f"{release}-mosquitto", 8883)]
    ports = {p["name"]: p["port"] for p in by(objs, "Service", f"{release}-mosquitto")["spec"]["ports"]}
    assert ports["mqtts"] == 8883


@pytest.mark.parametrize("release", SHIPPED)
def test_plain_mqtt_websockets_and_nodered_routes_are_off_by_default(manifests, release) -> None:
    objs = manifests[release]
    assert not kinds(objs, "TCPRoute")
    assert sorted(o["metadata"]["name"] for o in kinds(objs, "HTTPRoute")) == [
        f"{release}-api",
        f"{release}-dashboard",
    ]


def test_optional_routes_when_enabled() -> None:
    env = env_from("client-demo", edge={"routes": {"mqtt": True, "websockets": True}}, nodered={"enabled": True})
    objs = synth_env(env)
    tcp = by(objs, "TCPRoute", "client-demo-mosquitto")
    assert tcp["apiVersion"] == V1
    assert tcp["spec"]["parentRefs"] == [{**GATEWAY, "sectionName": "mqtt"}]
    assert backends(tcp) == [("client-demo-mosquitto", 1883)]
    ws = by(objs, "HTTPRoute", "client-demo-mosquitto-ws")
    assert ws["spec"]["hostnames"] == ["mqtt-demo.iotistica.com"]
    assert backends(ws) == [("client-demo-mosquitto", 9001)]
    assert ws["spec"]["rules"] == [
        {
            "backendRefs": [{"name": "client-demo-mosquitto", "port": 9001}],
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "timeouts": {"request": "0s"},
        }
    ]
    nodered = by(objs, "HTTPRoute", "client-demo-nodered")
    assert nodered["spec"]["hostnames"] == ["nr-client-demo.iotistica.com"]  # derived from edge.domain
    assert backends(nodered) == [("client-demo-nodered", 1880)]
    assert by(objs, "Service", "client-demo-nodered")["spec"]["ports"][0]["port"] == 1880


def test_gateway_reference_and_api_versions_are_settings() -> None:
    env = env_from(
        "client-demo",
        edge={
            "gateway": {"name": "edge", "namespace": "gw", "listeners": {"https": "web", "mqttTls": "mqtts"}},
            "apiVersions": {
                "httpRoute": "gateway.networking.k8s.io/v1beta1",
                "tlsRoute": "gateway.networking.k8s.io/v1alpha2",
            },
        },
    )
    objs = synth_env(env)
    api = by(objs, "HTTPRoute", "client-demo-api")
    assert api["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert api["spec"]["parentRefs"] == [{"name": "edge", "namespace": "gw", "sectionName": "web"}]
    tls = by(objs, "TLSRoute", "client-demo-mosquitto")
    assert tls["apiVersion"] == "gateway.networking.k8s.io/v1alpha2"
    assert tls["spec"]["parentRefs"] == [{"name": "edge", "namespace": "gw", "sectionName": "mqtts"}]


# --- rate limit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SHIPPED)
def test_api_route_is_limited_to_1000_requests_per_minute(manifests, release) -> None:
    policy = by(manifests[release], "BackendTrafficPolicy", f"{release}-api-rate-limit")
    assert policy["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
    assert policy["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": f"{release}-api"}],
        "rateLimit": {"local": {"rules": [{"limit": {"requests": 1000, "unit": "Minute"}}]}},
    }


def test_rate_limit_is_configurable_and_follows_the_api_route() -> None:
    objs = synth_env(env_from("client-demo", edge={"rateLimit": {"requests": 50, "unit": "Second"}}))
    limit = by(objs, "BackendTrafficPolicy", "client-demo-api-rate-limit")["spec"]["rateLimit"]["local"]
    assert limit == {"rules": [{"limit": {"requests": 50, "unit": "Second"}}]}
    assert not kinds(synth_env(env_from("client-demo", edge={"rateLimit": {"enabled": False}})), "BackendTrafficPolicy")
    objs = synth_env(env_from("client-demo", edge={"routes": {"api": False}}))
    assert not kinds(objs, "BackendTrafficPolicy")
    assert [o["metadata"]["name"] for o in kinds(objs, "HTTPRoute")] == ["client-demo-dashboard"]


# --- certificate ------------------------------------------------------------------------------------


def mounted_tls_secret(objs: list[dict], release: str) -> str:
    deployment = by(objs, "Deployment", f"{release}-mosquitto")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
    assert mounts["certs"] == "/mosquitto/certs"
    return volumes["certs"]["secret"]["secretName"]


@pytest.mark.parametrize("release", SHIPPED)
def test_certificate_secret_is_the_secret_mosquitto_mounts_for_8883(manifests, release) -> None:
    objs = manifests[release]
    cert = by(objs, "Certificate", f"{release}-mosquitto-tls")
    assert cert["spec"]["secretName"] == mounted_tls_secret(objs, release) == f"{release}-mosquitto-tls"
    conf = by(objs, "ConfigMap", f"{release}-mosquitto")["data"]["mosquitto.conf"]
    assert "listener 8883" in conf and "certfile /mosquitto/certs/tls.crt" in conf
    host = HOSTS[release][2]
    assert cert["spec"]["commonName"] == host and cert["spec"]["dnsNames"] == [host]
    assert cert["spec"]["issuerRef"] == {
        "name": "letsencrypt-production",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_names_agree_with_a_custom_secret_and_issuer() -> None:
    env = env_from(
        "client-demo",
        mosquitto={"tls": {"secretName": "broker-cert"}},
        edge={"certificate": {"issuerName": "letsencrypt-staging", "issuerKind": "Issuer"}},
    )
    objs = synth_env(env)
    cert = by(objs, "Certificate", "client-demo-mosquitto-tls")
    assert cert["spec"]["secretName"] == mounted_tls_secret(objs, "client-demo") == "broker-cert"
    assert cert["spec"]["issuerRef"]["name"] == "letsencrypt-staging"
    assert cert["spec"]["issuerRef"]["kind"] == "Issuer"


def test_no_certificate_and_no_tls_route_without_the_tls_listener() -> None:
    objs = synth_env(
        env_from("client-demo", mosquitto={"tls": {"enabled": False}}, edge={"routes": {"mqttTls": False}})
    )
    assert not kinds(objs, "Certificate") and not kinds(objs, "TLSRoute")


# --- monitoring -------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SHIPPED)
def test_service_monitors_scrape_metrics_every_30s_on_the_services_http_port(manifests, environments, release) -> None:
    objs = manifests[release]
    monitors = kinds(objs, "ServiceMonitor")
    if not environments[release].monitoring.enabled:
        assert not monitors and not kinds(objs, "PrometheusRule")
        return
    assert release in ("iotistica", "iotistica-enterprise")
    # Redis Cluster's exporter sidecars add their own (tests/test_redis_cluster_repair.py checks it).
    redis = [f"{release}-redis-headless"] if environments[release].redis.cluster.enabled else []
    assert sorted(m["metadata"]["name"] for m in monitors) == [f"{release}-api", f"{release}-ingestion", *redis]
    for app, port in (("api", 3002), ("ingestion", 3003)):
        service = by(objs, "Service", f"{release}-{app}")
        monitor = by(objs, "ServiceMonitor", f"{release}-{app}")
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["interval"] == "30s" and endpoint["scrapeTimeout"] == "10s"
        assert [p["port"] for p in service["spec"]["ports"] if p["name"] == endpoint["port"]] == [port]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert all(service["metadata"]["labels"][k] == v for k, v in selector.items())
        # every other Service with those labels (the headless one) is dropped by the relabeling
        assert endpoint["relabelings"] == [
            {"action": "keep", "sourceLabels": ["__meta_kubernetes_service_name"], "regex": f"{release}-{app}"}
        ]
    alike = [
        s["metadata"]["name"]
        for s in kinds(objs, "Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]
    assert (f"{release}-ingestion-headless" in alike) == (release == "iotistica-enterprise")


def test_monitoring_labels_reach_the_prometheus_selectors() -> None:
    env = env_from("client-demo", monitoring={"enabled": True, "labels": {"release": "kube-prometheus-stack"}})
    objs = synth_env(env)
    for o in kinds(objs, "ServiceMonitor") + kinds(objs, "PrometheusRule"):
        assert o["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == "client-demo"
    assert len(kinds(objs, "PrometheusRule")) == 1


# --- hosts, CORS and their validation ---------------------------------------------------------------


def test_cors_origins_are_derived_from_the_dashboard_hosts(manifests) -> None:
    def cors(objs: list[dict], release: str) -> str:
        return env_map(container(by(objs, "Deployment", f"{release}-api")))["CORS_ORIGINS"]

    assert cors(manifests["client-demo"], "client-demo") == "https://demo.iotistica.com"  # the seed's value
    assert cors(manifests["iotistica"], "iotistica") == "https://app.iotistica.com"
    env = env_from("client-demo", edge={"hosts": {"dashboardAliases": ["demo.example.com"]}})
    objs = synth_env(env)
    assert cors(objs, "client-demo") == "https://demo.iotistica.com,https://demo.example.com"
    assert by(objs, "HTTPRoute", "client-demo-dashboard")["spec"]["hostnames"] == [
        "demo.iotistica.com",
        "demo.example.com",
    ]
    explicit = env_from("client-demo", api={"corsOrigins": ["https://*.iotistica.com"]})
    assert cors(synth_env(explicit), "client-demo") == "https://*.iotistica.com"


@pytest.mark.parametrize("release", SHIPPED)
def test_shipped_hosts_agree_with_the_dashboard_config(environments, release) -> None:
    env = environments[release]
    api, dashboard, mqtt = HOSTS[release]
    assert (env.edge.host("api", release), env.edge.host("dashboard", release)) == (api, dashboard)
    assert env.edge.host("mqtt", release) == mqtt
    config = env.dashboard_config  # set in the file, or derived from its own hosts
    assert config.api_url == f"https://{api}"
    assert config.auth0_callback_url == f"https://{dashboard}/auth/callback"
    assert env.api.cors_origins is None  # derived


def test_hosts_are_derived_from_the_domain_when_unset() -> None:
    env = env_from("client-demo", edge={"hosts": {"api": None, "dashboard": None, "mqtt": None}})
    assert [env.edge.host(k, "client-demo") for k in ("api", "dashboard", "mqtt", "nodered")] == [
        "api-client-demo.iotistica.com",
        "client-demo.iotistica.com",
        "mqtt-client-demo.iotistica.com",
        "nr-client-demo.iotistica.com",
    ]


@pytest.mark.parametrize(
    ("edge", "expected"),
    [
        ({"hosts": {"api": "Api.Example.com"}}, "edge.hosts.api: must be a fully qualified DNS name"),
        ({"hosts": {"mqtt": "*.iotistica.com"}}, "edge.hosts.mqtt: must be a fully qualified DNS name"),
        ({"hosts": {"dashboard": "localhost"}}, "edge.hosts.dashboard: must be a fully qualified"),
        ({"hosts": {"api": ""}}, "edge.hosts.api: must be a fully qualified DNS name"),
        ({"hosts": {"dashboardAliases": ["x..com"]}}, "edge.hosts.dashboardAliases.0: must be a fully qualified"),
        ({"domain": None}, "edge.hosts.api: must be set while edge.routes.api is on (edge.domain is null)"),
        (
            {"domain": None, "hosts": {"api": "a.example.com", "dashboard": "d.example.com"}},
            "edge.hosts.mqtt: must be set while edge.routes.mqttTls is on (edge.domain is null)",
        ),
        (
            {"hosts": {"api": "x.example.com", "dashboard": "x.example.com"}},
            "edge.hosts.dashboard: 'x.example.com' is already routed by edge.hosts.api on the same HTTPS listener",
        ),
        ({"apiVersions": {"tlsRoute": "gateway.networking.k8s.io/v1beta1"}}, "edge.apiVersions.tlsRoute: input should"),
        ({"rateLimit": {"requests": 0}}, "edge.rateLimit.requests: input should be greater than or equal to 1"),
        ({"rateLimit": {"unit": "minute"}}, "edge.rateLimit.unit: input should be"),
        ({"gateway": {"listeners": {"https": "HTTPS"}}}, "edge.gateway.listeners.https: must be a DNS"),
        ({"certificate": {"issuerKind": "Vault"}}, "edge.certificate.issuerKind: input should be"),
    ],
)
def test_edge_settings_are_validated_at_their_key_path(tmp_path: Path, edge: dict, expected: str) -> None:
    msg = error_of(tmp_path, {**BASE, "edge": edge})
    assert msg.startswith(f"environments/acme.yaml: {expected}"), msg


def test_hosts_of_disabled_routes_may_stay_unset(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    edge = {"domain": None, "routes": {"api": False, "dashboard": False, "mqttTls": False}}
    edge["certificate"] = {"enabled": False}
    config = {"apiUrl": "https://api.example.com", "auth0CallbackUrl": "https://a.example.com/auth/callback"}
    data = {**BASE, "edge": edge, "api": {"corsOrigins": ["https://a.example.com"]}, "dashboard": {"config": config}}
    path.write_text(yaml.safe_dump(data))
    env = load_environment(path, "environments/acme.yaml")
    assert env.edge.host("api", "acme") is None
    # The dashboard still runs: without a host to derive them from, its URLs must be set.
    del data["dashboard"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"dashboard\.config\.apiUrl: must be set: there is no edge\.hosts\.api"):
        load_environment(path, "environments/acme.yaml")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"mosquitto": {"tls": {"enabled": False}}},
            "edge.routes.mqttTls: needs mosquitto.tls.enabled: true",
        ),
        ({"api": {"corsOrigins": []}}, "api.corsOrigins: must list an origin"),
        (
            {"edge": {"domain": None, "routes": {"api": False, "dashboard": False, "mqttTls": False}}},
            "edge.hosts.mqtt: must be set while edge.certificate.enabled is on",
        ),
        (
            {
                "edge": {
                    "domain": None,
                    "hosts": {"mqtt": "m.example.com"},
                    "routes": {"api": False, "dashboard": False},
                }
            },
            "api.corsOrigins: must be set: there is no dashboard host to derive it from",
        ),
        ({"monitoring": {"scrapeTimeout": "1m"}}, "monitoring.scrapeTimeout: must be <= interval (30s), got 1m"),
        ({"monitoring": {"labels": {"app.kubernetes.io/name": "x"}}}, "monitoring.labels.app.kubernetes.io/name:"),
        (
            {"monitoring": {"alerts": {"dwellLatencyCriticalSeconds": 30}}},
            "monitoring.alerts.dwellLatencyCriticalSeconds: must be > dwellLatencyWarningSeconds (30), got 30",
        ),
        ({"monitoring": {"alerts": {"streamWatermarkPercent": 0}}}, "monitoring.alerts.streamWatermarkPercent:"),
    ],
)
def test_cross_field_rules(tmp_path: Path, data: dict, expected: str) -> None:
    msg = error_of(tmp_path, {**BASE, **data})
    assert msg.startswith(f"environments/acme.yaml: {expected}"), msg
