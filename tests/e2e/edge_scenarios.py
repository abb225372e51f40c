"""The public edge, end to end: the release's HTTPRoutes played by the gateway hop (``gateway_hop.py``) in
front of the real API (docs/e2e.md "The public edge", docs/hardening.md).

These tests take the ``synced`` fixture of the module that collects them (``test_e2e_*.py``, through ``scenarios.py``),
so the release they use is the one that module starts, once; their names start with ``test_`` only here.

- Through the hop, the API's public paths (``/api``, ``/ws``, exactly ``/health``) reach the running API and
  everything else is refused at the edge (404, nothing forwarded), also after path normalisation tricks;
  sent directly to the API's Service, the private paths do answer: the edge refuses them, the API has them.
- The login rate limit keys on the client the gateway saw (``TRUST_PROXY`` = 1, the gateway's hop): a client
  forging a new ``X-Forwarded-For`` on every attempt is still limited. Control: the same API with
  ``TRUST_PROXY=true`` (trust every hop) lets the same forged sequence through.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.e2e.gateway_hop import GatewayHop, send
from tests.e2e.release import Release

#: The login limit: ``authRateLimitOptions.max`` of api/src/middleware/rate-limit.ts (10 per minute per client
#: address, on every route under /api/v1/auth; platform-facts §17).
LOGIN_LIMIT = 10
#: Loopback addresses the test's clients connect from (each its own rate-limit key; the other tests connect
#: from 127.0.0.1).
CLIENT_PATHS, CLIENT_FORGER, CLIENT_CONTROL = "127.30.0.11", "127.30.0.12", "127.30.0.13"
LIMITED = "Too many authentication attempts"


def _hop(r: Release, backend: tuple[str, int] | None = None) -> GatewayHop:
    """The Gateway the release's routes attach to, playing the listener of the API's route. Routes as Argo CD
    applies them (dist/; the e2e server does not serve Gateway API kinds, argocd.py), Services from the
    kube-apiserver, at the address the kubelet gives each Service (or ``backend`` for every Service)."""
    routes = [o for o in r.objects() if o["kind"] == "HTTPRoute"]
    api = next(o for o in routes if o["metadata"]["name"] == f"{r.name}-api")
    (parent,) = api["spec"]["parentRefs"]

    def resolve(ns: str, name: str, port: int) -> tuple[str, int]:
        svc = r.kube.get({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}})
        assert svc is not None, f"backendRef Service {ns}/{name} is not on the server"
        assert port in [p["port"] for p in svc["spec"]["ports"]], f"Service {ns}/{name} has no port {port}"
        return backend or (r.kubelet.service_ip(ns, name), port)

    return GatewayHop(routes, resolve, (parent["namespace"], parent["name"]), parent["sectionName"])


def _api_host(r: Release) -> str:
    route = next(o for o in r.objects() if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == f"{r.name}-api")
    return str(route["spec"]["hostnames"][0])


#: Public paths and the API's own answer through the hop: (method, target, body, extra headers, status).
WS_UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "ZTJlLWVkZ2UtdGVzdC1rZXk="}  # fmt: skip
PUBLIC: list[tuple[str, str, Any, dict[str, str], int]] = [
    ("GET", "/health", None, {}, 200),
    ("GET", "/api/v1/auth/me", None, {}, 401),  # the API's answer without a token
    # The API's websocket endpoint (api/src/services/websocket/manager.ts): an upgrade without a token is
    # refused by the API itself with 401; a path other than /ws gets no answer at all from it.
    ("GET", "/ws?type=global", None, WS_UPGRADE, 401),
]
#: Paths the hop normalises into a public one, and what the API receives.
NORMALISED_PUBLIC = [("//health", "/health"), ("/api/../health", "/health"), ("/api/%2e%2e/health", "/health"),
                     ("/api/./v1/auth/../auth/me", "/api/v1/auth/me")]  # fmt: skip
#: Refused at the edge: (method, target, the path Envoy would have matched after normalisation).
MQTT_AUTH = ["/mosquitto-auth/user", "/mosquitto-auth/superuser", "/mosquitto-auth/acl"]
REFUSED: list[tuple[str, str, str]] = [
    ("GET", "/metrics", "/metrics"),
    *[("POST", p, p) for p in MQTT_AUTH],
    ("GET", "/apix", "/apix"),
    ("GET", "/api-docs", "/api-docs"),
    ("GET", "/healthz", "/healthz"),
    ("GET", "/health/x", "/health/x"),
    ("GET", "/health/", "/health/"),
    ("GET", "/Health", "/Health"),
    ("GET", "/API/v1/auth/me", "/API/v1/auth/me"),
    ("GET", "/wsx", "/wsx"),
    ("GET", "/", "/"),
    ("GET", "//metrics", "/metrics"),
    ("GET", "/api/../metrics", "/metrics"),
    ("GET", "/api/%2e%2e/metrics", "/metrics"),
    ("GET", "/api/%2E%2E/metrics", "/metrics"),
    ("GET", "/api/..;x=y/metrics", "/metrics"),
    ("GET", "/ws/../metrics?x=1", "/metrics"),
    ("POST", "/api/v1/../../mosquitto-auth/user", "/mosquitto-auth/user"),
    ("POST", "//mosquitto-auth//user", "/mosquitto-auth/user"),
]
MQTT_BODY = {"username": "e2e-edge-nobody", "password": "wrong", "clientid": "e2e", "topic": "x", "acc": 1}


def test_edge_forwards_only_the_public_paths(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    host = _api_host(r)
    api = (r.svc_ip("api"), 3002)
    with _hop(r) as hop:
        for method, target, body, headers, want in PUBLIC:
            status, _, text = send(hop.address, method, target, host, CLIENT_PATHS, body, headers)
            assert status == want, (target, status, text)
            assert hop.log[-1].status == "forwarded" and hop.log[-1].route == f"{r.name}-api", hop.log[-1]
        status, _, text = send(hop.address, "GET", "/health", host, CLIENT_PATHS)
        assert json.loads(text)["status"] == "healthy", text
        for target, forwarded in NORMALISED_PUBLIC:
            status, _, text = send(hop.address, "GET", target, host, CLIENT_PATHS)
            assert (hop.log[-1].status, hop.log[-1].forwarded) == ("forwarded", forwarded), hop.log[-1]
            assert status in (200, 401), (target, status, text)  # /health, or /api/v1/auth/me without a token

        for method, target, _normalised in REFUSED:
            body = MQTT_BODY if method == "POST" else None
            status, _, text = send(hop.address, method, target, host, CLIENT_PATHS, body)
            assert status == 404, f"{method} {target} through the gateway: {status} {text[:200]}"
            assert (hop.log[-1].status, hop.log[-1].forwarded) == ("404", ""), hop.log[-1]

        # Escaped slashes: unescaped, normalised, and redirected (Envoy Gateway's UnescapeAndRedirect), never
        # forwarded; the redirect's target is refused like any other.
        status, headers, _ = send(hop.address, "GET", "/api%2F..%2Fmetrics", host, CLIENT_PATHS)
        assert (status, headers.get("location")) == (307, "/metrics"), (status, headers)
        assert send(hop.address, "GET", headers["location"], host, CLIENT_PATHS)[0] == 404
        # A NUL in the path is refused before any routing.
        assert send(hop.address, "GET", "/api/%00/x", host, CLIENT_PATHS)[0] == 400
        # Another host of the release (the dashboard's, PathPrefix /) never reaches the API: its requests go to
        # the dashboard's Service (503 here: the dashboard is the one workload not run, docs/e2e.md).
        dashboard = next(
            o for o in r.objects() if o["kind"] == "HTTPRoute" and o["metadata"]["name"].endswith("-dashboard")
        )
        for method, target, _normalised in REFUSED[:4]:
            send(hop.address, method, target, dashboard["spec"]["hostnames"][0], CLIENT_PATHS,
                  MQTT_BODY if method == "POST" else None)  # fmt: skip
            assert (hop.log[-1].route, hop.log[-1].status) == (dashboard["metadata"]["name"], "503"), hop.log[-1]
        # An unknown host: 404.
        assert send(hop.address, "GET", "/health", "unknown.example.com", CLIENT_PATHS)[0] == 404
        assert all(e.client == CLIENT_PATHS for e in hop.log)

    # Sent directly to the API's Service (inside the cluster), what the edge refused does answer: the API has
    # these endpoints, the edge keeps them in.
    status, _, text = send(api, "GET", "/metrics", "x", CLIENT_PATHS)
    assert status == 200 and "# HELP" in text, (status, text[:200])
    for path in MQTT_AUTH:
        status, _, text = send(api, "POST", path, "x", CLIENT_PATHS, MQTT_BODY)
        assert status != 404 and "result" in json.loads(text), (path, status, text)
    for method, target, normalised in REFUSED:
        if normalised in ("/metrics", *MQTT_AUTH):
            status, _, _ = send(api, method, normalised, "x", CLIENT_PATHS, MQTT_BODY if method == "POST" else None)
            assert status != 404, (target, normalised, status)


def _forged_logins(addr: tuple[str, int], host: str, source: str, n: int) -> list[tuple[int, str]]:
    """``n`` failed logins, each with a new forged X-Forwarded-For entry (documentation addresses)."""
    out = []
    for i in range(n):
        status, _, text = send(addr, "POST", "/api/v1/auth/login", host, source,
                                {"username": "e2e-edge-nobody", "password": "wrong-password-1"},
                                {"X-Forwarded-For": f"203.0.113.{i + 1}"})  # fmt: skip
        out.append((status, text))
    return out


def _limited(answers: list[tuple[int, str]]) -> list[bool]:
    return [LIMITED in text for _, text in answers]


def test_edge_forged_xff_does_not_escape_the_login_limit(synced: tuple[Release, Any]) -> None:
    """TRUST_PROXY=1: the API keys the limit on the entry the gateway appended (the client it saw)."""
    r, _ = synced
    with _hop(r) as hop:
        answers = _forged_logins(hop.address, _api_host(r), CLIENT_FORGER, LOGIN_LIMIT + 2)
        assert all(e.status == "forwarded" for e in hop.log)
    assert [s for s, _ in answers[:LOGIN_LIMIT]] == [401] * LOGIN_LIMIT, answers
    assert _limited(answers) == [False] * LOGIN_LIMIT + [True, True], answers
    assert {s for s, _ in answers[LOGIN_LIMIT:]} == {RATE_LIMITED_STATUS}, answers


#: What the API answers to a rate-limited login: 500, not 429 (platform-facts §17: the errorResponseBuilder of
#: api/src/middleware/rate-limit.ts returns a plain object without a statusCode, which the API sends as a 500),
#: with the limit's own message (LIMITED). Only the platform's code can make it 429.
RATE_LIMITED_STATUS = 500


def test_edge_control_trusting_every_hop_lets_the_forger_through(synced: tuple[Release, Any]) -> None:
    """The same API from the same Deployment with one env var changed, TRUST_PROXY=true (what "unset" meant
    before, platform-facts §17), behind the same hop: the forged sequence is never limited. Shows that the
    previous test would see a bypass. It listens on its own port (the programs bind 0.0.0.0)."""
    r, _ = synced
    live = r.kube.get({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": f"{r.name}-api", "namespace": r.namespace}})  # fmt: skip
    assert live is not None
    name, port = f"{r.name}-api-trust-all", 3902
    spec = copy.deepcopy(live["spec"])
    for labels in (spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
        labels["e2e.iotistica.com/control"] = "trust-all"
    spec["replicas"] = 1
    (c,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["TRUST_PROXY"]["value"] == "1" and env["PORT"]["value"] == "3002"
    env["TRUST_PROXY"]["value"], env["PORT"]["value"] = "true", str(port)
    for p in c["ports"]:
        p["containerPort"] = port
    meta = {"name": name, "namespace": r.namespace, "labels": live["metadata"].get("labels", {})}
    control = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    r.kube.create(control)
    owner = f"Deployment/{name}"
    try:
        startup = c["startupProbe"]
        budget = int(startup["failureThreshold"]) * int(startup["periodSeconds"]) + 20
        r.kubelet.wait(f"{name} ready", lambda: any(p.ready for p in r.kubelet.pods_of(owner, r.namespace)), budget)
        (pod,) = r.kubelet.pods_of(owner, r.namespace)
        with _hop(r, backend=(pod.ip, port)) as hop:
            answers = _forged_logins(hop.address, _api_host(r), CLIENT_CONTROL, LOGIN_LIMIT + 2)
        assert [s for s, _ in answers] == [401] * (LOGIN_LIMIT + 2), answers
        assert not any(_limited(answers)), answers
    finally:
        r.kube.delete(control)
        r.kubelet.wait(f"{name} gone", lambda: not r.kubelet.pods_of(owner, r.namespace), 60)
