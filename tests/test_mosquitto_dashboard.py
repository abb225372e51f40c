"""MosquittoBroker, Dashboard and Node-RED: config in ConfigMaps, checksums, ports, the optional parts."""

from __future__ import annotations

from tests.helpers import by, container, env_from, env_map, kinds, synth_env


def test_mosquitto_config(manifests) -> None:
    objs = manifests["client-demo"]
    conf = by(objs, "ConfigMap", "client-demo-mosquitto")["data"]["mosquitto.conf"].splitlines()
    for line in (
        "allow_anonymous false",
        "listener 1883",
        "listener 8883",
        "listener 9001",
        "protocol websockets",
        "certfile /mosquitto/certs/tls.crt",
        "keyfile /mosquitto/certs/tls.key",
        "auth_plugin /mosquitto/go-auth.so",
        "auth_opt_backends http",
        "auth_opt_http_host client-demo-api",
        "auth_opt_http_port 3002",
        "auth_opt_http_getuser_uri /mosquitto-auth/user",
        "auth_opt_http_superuser_uri /mosquitto-auth/superuser",
        "auth_opt_http_aclcheck_uri /mosquitto-auth/acl",
        "auth_opt_http_method POST",
        "auth_opt_http_response_mode status",
    ):
        assert line in conf, line
    # The auth callback goes to a Service of this release on the API's port.
    assert by(objs, "Service", "client-demo-api")["spec"]["ports"][0]["port"] == 3002


def test_mosquitto_workload(manifests) -> None:
    objs = manifests["client-demo"]
    dep = by(objs, "Deployment", "client-demo-mosquitto")  # kubectl exec deploy/client-demo-mosquitto
    c = container(dep)
    assert c["image"] == "iegomez/mosquitto-go-auth:3.0.0-mosquitto_2.0.18"
    certs = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "certs")
    assert certs["secret"]["secretName"] == "client-demo-mosquitto-tls"
    assert {"mountPath": "/mosquitto/certs", "name": "certs", "readOnly": True} in c["volumeMounts"]
    assert {
        "mountPath": "/etc/mosquitto/mosquitto.conf",
        "name": "config",
        "readOnly": True,
        "subPath": "mosquitto.conf",
    } in c["volumeMounts"]
    ports = {p["name"]: p["port"] for p in by(objs, "Service", "client-demo-mosquitto")["spec"]["ports"]}
    assert ports == {"mqtt": 1883, "mqtts": 8883, "websockets": 9001}


def test_mosquitto_checksum_rolls_pod() -> None:
    a = by(synth_env(env_from("client-demo")), "Deployment", "client-demo-mosquitto")
    b = by(
        synth_env(env_from("client-demo", mosquitto={"authHttpTimeoutSeconds": 9})),
        "Deployment",
        "client-demo-mosquitto",
    )
    ann = lambda d: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]  # noqa: E731
    assert ann(a) != ann(b)


def test_mosquitto_tls_secret_name_configurable() -> None:
    objs = synth_env(env_from("client-demo", mosquitto={"tls": {"secretName": "mqtt-cert"}}))
    dep = by(objs, "Deployment", "client-demo-mosquitto")
    assert any(v.get("secret", {}).get("secretName") == "mqtt-cert" for v in dep["spec"]["template"]["spec"]["volumes"])


def test_dashboard_config_js_has_the_seed_keys(manifests) -> None:
    objs = manifests["client-demo"]
    data = by(objs, "ConfigMap", "client-demo-dashboard")["data"]
    js = data["config.js"]
    assert js.startswith("window.env = {")
    for expected in (
        'VITE_API_URL: "https://demo-api.iotistica.com"',
        'VITE_AUTH0_DOMAIN: "auth.iotistica.com"',
        'VITE_AUTH0_CLIENT_ID: "..."',
        'VITE_AUTH0_AUDIENCE: "https://api.iotistica.com"',
        'VITE_AUTH0_CALLBACK_URL: "https://demo.iotistica.com/auth/callback"',
        'VITE_PROVISIONING_API_URL: "https://api.iotistica.com/provisioning"',
        'APP_VERSION: "v0.0.22-rc.1"',
    ):
        assert expected in js
    assert "location = /config.js" in data["nginx.conf"] and "no-cache" in data["nginx.conf"]
    dep = by(objs, "Deployment", "client-demo-dashboard")
    c = container(dep)
    assert {
        "mountPath": "/usr/share/nginx/html/config.js",
        "name": "config",
        "readOnly": True,
        "subPath": "config.js",
    } in c["volumeMounts"]
    svc = by(objs, "Service", "client-demo-dashboard")["spec"]["ports"]
    assert svc == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]


def test_dashboard_config_per_environment(manifests) -> None:
    js = by(manifests["iotistica"], "ConfigMap", "iotistica-dashboard")["data"]["config.js"]
    assert 'VITE_API_URL: "https://api.iotistica.com"' in js


def test_nodered_off_by_default_and_optional(manifests) -> None:
    for release, objs in manifests.items():
        assert not [o for o in objs if o["metadata"]["name"] == f"{release}-nodered"]
    objs = synth_env(env_from("client-demo", nodered={"enabled": True}))
    dep = by(objs, "Deployment", "client-demo-nodered")
    assert env_map(container(dep))["IOTISTIC_BASE_URL"] == "http://client-demo-api:3002"
    assert by(objs, "Service", "client-demo-nodered")["spec"]["ports"][0]["port"] == 1880


def test_scheduling_is_configurable_per_environment_and_component() -> None:
    objs = synth_env(
        env_from(
            "client-demo",
            scheduling={
                "nodeSelector": {"role": "worker"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "iot", "effect": "NoSchedule"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                            ]
                        }
                    }
                },
            },
            redis={"scheduling": {"nodeSelector": {"role": "cache"}}},
        )
    )
    api = by(objs, "Deployment", "client-demo-api")["spec"]["template"]["spec"]
    assert api["nodeSelector"] == {"role": "worker"}
    assert api["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "iot", "effect": "NoSchedule"}]
    assert api["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    redis = by(objs, "Deployment", "client-demo-redis")["spec"]["template"]["spec"]
    assert redis["nodeSelector"] == {"role": "cache"} and "tolerations" not in redis
    assert kinds(objs, "Deployment")
