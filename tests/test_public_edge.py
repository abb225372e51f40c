"""The public edge routes only what is public (platform-facts §2.2, §17): the committed HTTPRoutes of
dist/, evaluated the way Gateway API matches paths, forward the API's public paths and never
``/mosquitto-auth/*`` nor ``/metrics``.

The matcher follows the HTTPRoute specification as the Gateway API CRDs state it (bundle v1.6.1,
``../shared/crds/gateway-api/standard-httproutes.yaml``, ``spec.rules.matches``):

- ``PathPrefix`` matches whole path elements (labels split by ``/``), a trailing ``/`` ignored: ``/abc``
  matches ``/abc``, ``/abc/`` and ``/abc/def``, never ``/abcd``; ``Exact`` matches the whole path,
  case-sensitively; no match given means ``PathPrefix /``.
- Precedence across all rules of the routes attached for a host: an ``Exact`` match, then the
  ``PathPrefix`` with the most characters, (then method, header and query matches: none in dist/, and a
  route using one is refused here rather than mis-evaluated), then the oldest route (dist/ has no
  creation time), then ``{namespace}/{name}`` alphabetically, then the first rule in list order.
- A request no rule matches gets 404 from the gateway.

The end-to-end proof with the real API behind these routes (a forged ``X-Forwarded-For`` no longer
escaping the login limit) is the real-programs test's; here are the manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
RELEASES = sorted(p.parent.name for p in DIST.glob("*/HTTPRoute.*-api.k8s.yaml"))

Route = dict[str, Any]


def http_routes(release: str) -> list[Route]:
    return [yaml.safe_load(p.read_text()) for p in sorted((DIST / release).glob("HTTPRoute.*.k8s.yaml"))]


def _element_prefix(value: str, path: str) -> bool:
    prefix = value.rstrip("/")
    if not prefix:  # "/" matches every path
        return True
    return path == prefix or path.startswith(prefix + "/")


def _path_match(match: dict[str, Any], path: str) -> tuple[int, int] | None:
    """(kind rank, prefix length) when ``match`` matches ``path`` (higher wins), else None."""
    unsupported = sorted(set(match) - {"path"})
    if unsupported:
        raise NotImplementedError(f"match on {unsupported}: not evaluated here")
    spec = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = spec.get("type", "PathPrefix"), spec.get("value", "/")
    if kind == "Exact":
        return (1, len(value)) if path == value else None
    if kind == "PathPrefix":
        return (0, len(value)) if _element_prefix(value, path) else None
    raise NotImplementedError(f"path match type {kind}: implementation-specific")


def route(routes: list[Route], host: str, target: str) -> tuple[str, str] | None:
    """(route namespace/name, backend Service) for a request to ``host`` and ``target`` (path and query),
    or None: the gateway answers 404."""
    path = target.split("?", 1)[0]
    best: tuple[Any, ...] | None = None
    for r in routes:
        if host not in r["spec"].get("hostnames", []):
            continue
        ident = f"{r['metadata']['namespace']}/{r['metadata']['name']}"
        for index, rule in enumerate(r["spec"]["rules"]):
            for match in rule.get("matches") or [{}]:
                score = _path_match(match, path)
                if score is None:
                    continue
                # Sort key: Exact first, longest prefix, then alphabetical route, then first rule.
                key = (-score[0], -score[1], ident, index)
                if best is None or key < best[0]:
                    backend = rule["backendRefs"][0]["name"]
                    best = (key, ident, backend)
    return None if best is None else (best[1], best[2])


#: Paths the public reaches on the API host (platform-facts §2.1, §2.2).
PUBLIC = [
    "/api",
    "/api/",
    "/api/v1",
    "/api/v1/auth/login",
    "/api/v1/devices?limit=10",
    "/api/docs",
    "/ws",
    "/ws/",
    "/ws?token=x",
    "/health",
]
#: Paths that must not leave the cluster: the broker's auth callbacks, metrics, and what is not the API's.
PRIVATE = [
    "/mosquitto-auth/user",
    "/mosquitto-auth/superuser",
    "/mosquitto-auth/acl",
    "/mosquitto-auth/user?username=a&password=b",
    "/mosquitto-auth",
    "/metrics",
    "/metrics/",
    "/metrics?name=x",
    "/",
    "/apix",
    "/api-docs",
    "/API/v1/auth/login",
    "/health/",
    "/health/x",
    "/healthz",
    "/wss",
]


@pytest.mark.parametrize("release", RELEASES)
def test_the_api_host_forwards_the_public_paths_to_the_api(release: str) -> None:
    routes = http_routes(release)
    api = next(r for r in routes if r["metadata"]["name"] == f"{release}-api")
    host = api["spec"]["hostnames"][0]
    for target in PUBLIC:
        assert route(routes, host, target) == (f"{api['metadata']['namespace']}/{release}-api", f"{release}-api"), (
            target
        )


@pytest.mark.parametrize("release", RELEASES)
def test_no_public_host_forwards_the_auth_callbacks_or_metrics_to_the_api(release: str) -> None:
    routes = http_routes(release)
    hosts = sorted({h for r in routes for h in r["spec"].get("hostnames", [])})
    assert len(hosts) >= 2
    api = next(r for r in routes if r["metadata"]["name"] == f"{release}-api")
    for target in PRIVATE:
        assert route(routes, api["spec"]["hostnames"][0], target) is None, f"{target} must be 404 at the gateway"
    for host in hosts:
        for target in PRIVATE:
            found = route(routes, host, target)
            assert found is None or found[1] != f"{release}-api", f"{host}{target} reaches the API"


# --- the matcher against the specification's own examples -------------------------------------------


def _route(name: str, rules: list[tuple[str, str, str]]) -> Route:
    return {
        "metadata": {"namespace": "ns", "name": name},
        "spec": {
            "hostnames": ["h"],
            "rules": [
                {"matches": [{"path": {"type": kind, "value": value}}], "backendRefs": [{"name": backend}]}
                for kind, value, backend in rules
            ],
        },
    }


def test_path_prefix_matches_whole_elements_and_ignores_a_trailing_slash() -> None:
    routes = [_route("r", [("PathPrefix", "/abc", "b")])]
    for target in ("/abc", "/abc/", "/abc/def"):
        assert route(routes, "h", target) == ("ns/r", "b"), target
    assert route(routes, "h", "/abcd") is None
    assert route([_route("r", [("PathPrefix", "/abc/", "b")])], "h", "/abc") == ("ns/r", "b")


def test_precedence_exact_then_longest_prefix_then_route_name_then_rule_order() -> None:
    routes = [
        _route("b", [("PathPrefix", "/", "root"), ("PathPrefix", "/foo", "foo"), ("Exact", "/foo/bar", "exact")]),
        _route("a", [("PathPrefix", "/foo", "a-foo")]),
    ]
    assert route(routes, "h", "/foo/bar") == ("ns/b", "exact")
    assert route(routes, "h", "/foo/baz") == ("ns/a", "a-foo"), "same prefix length: ns/a before ns/b"
    assert route(routes, "h", "/other") == ("ns/b", "root")
    assert route(routes, "h", "/Foo/bar") == ("ns/b", "root"), "case-sensitive"
    twice = [_route("c", [("PathPrefix", "/x", "first"), ("PathPrefix", "/x", "second")])]
    assert route(twice, "h", "/x/y") == ("ns/c", "first")
    assert route(routes, "other-host", "/foo") is None


def test_a_match_the_evaluator_does_not_implement_is_refused() -> None:
    r = _route("r", [("PathPrefix", "/", "b")])
    r["spec"]["rules"][0]["matches"][0]["headers"] = [{"name": "x", "value": "y"}]
    with pytest.raises(NotImplementedError):
        route([r], "h", "/")


@pytest.mark.parametrize("release", RELEASES)
def test_the_api_trusts_exactly_the_gateway_hop(release: str) -> None:
    """TRUST_PROXY 1: the client address is the X-Forwarded-For entry the gateway appended (Envoy does by
    default), so a forged entry before it is not the key of the login rate limit (platform-facts §17)."""
    api = yaml.safe_load((DIST / release / f"Deployment.{release}-api.k8s.yaml").read_text())
    (c,) = api["spec"]["template"]["spec"]["containers"]
    assert {"name": "TRUST_PROXY", "value": "1"} in c["env"]
