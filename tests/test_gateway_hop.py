"""The end-to-end test's gateway hop (tests/e2e/gateway_hop.py) against the texts it follows, without the
platform: Envoy's path normalisation cases (``PathUtilityTest`` of Envoy's path_utility_test.cc), Gateway API's
match precedence (the HTTPRoute CRD text, ../shared/crds/gateway-api), and one forward to a backend on loopback
(the X-Forwarded-For it appends)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.gateway_hop import BadPath, GatewayHop, normalize, send

GW = ("gw-ns", "gw")


@pytest.mark.parametrize(
    ("path", "want"),
    [
        # Envoy's NormalizeValidPaths cases (normalize_path)
        ("/a/b/../c", "/a/c"),
        ("/a/b/./c", "/a/b/c"),
        ("a/b/../c", "/a/c"),
        ("/a/b/../../../../c", "/c"),
        ("/a/..\\c", "/c"),
        ("/%c0%af", "/%c0%af"),
        ("/a/b/%2E%2E/c", "/a/c"),
        ("/a/b/%2E./c", "/a/c"),
        ("/a/b/%2E/c", "/a/b/c"),
        ("..", "/"),
        ("/../a/b", "/a/b"),
        ("/./a/b", "/a/b"),
        ("/xyz/..;foo=bar/abc", "/abc"),
        ("/..;foo=bar/abc", "/abc"),
        ("/xyz/..;foo=bar", "/"),
        ("/xyz/.;foo=bar/abc", "/xyz/abc"),
        # merge_slashes
        ("//metrics", "/metrics"),
        ("/api//v1///x", "/api/v1/x"),
        ("/api/%2e%2e/metrics", "/metrics"),
    ],
)
def test_normalize_as_envoy(path: str, want: str) -> None:
    assert normalize(path) == (want, False)


def test_escaped_slashes_are_unescaped_and_redirected() -> None:
    assert normalize("/api%2F..%2Fmetrics") == ("/metrics", True)
    assert normalize("/a%5cb") == ("/a/b", True)


@pytest.mark.parametrize("path", ["/xyz/.%00../abc", "/xyz/%00.%00./abc", "/xyz/AAAAA%%0000/abc"])
def test_invalid_paths_are_refused(path: str) -> None:  # Envoy's InvalidPaths cases
    with pytest.raises(BadPath):
        normalize(path)


def _route(name: str, rules: list[Obj], hostnames: list[str] | None = None, section: str = "https") -> Obj:
    return {
        "kind": "HTTPRoute",
        "metadata": {"namespace": "ns", "name": name},
        "spec": {
            "hostnames": hostnames or ["h"],
            "parentRefs": [{"name": GW[1], "namespace": GW[0], "sectionName": section}],
            "rules": rules,
        },
    }


Obj = dict[str, Any]


def _rule(backend: str, *matches: Obj) -> Obj:
    return {"matches": list(matches), "backendRefs": [{"name": backend, "port": 80}]}


def _pick(hop: GatewayHop, path: str, method: str = "GET", host: str = "h", **headers: str) -> str | None:
    path, _, query = path.partition("?")
    found = hop.select(method, host, path, query, headers)
    return None if found is None else str(found[1]["backendRefs"][0]["name"])


def test_precedence_as_gateway_api_specifies() -> None:
    foo = {"type": "PathPrefix", "value": "/foo"}
    routes = [
        _route("b", [_rule("root", {}), _rule("foo", {"path": {"type": "PathPrefix", "value": "/foo"}}),
                     _rule("exact", {"path": {"type": "Exact", "value": "/foo/bar"}})]),
        _route("a", [_rule("a-foo", {"path": {"type": "PathPrefix", "value": "/foo"}})]),
        _route("c", [_rule("post", {"path": foo, "method": "POST"}),
                     _rule("hdr", {"path": foo, "headers": [{"name": "x", "value": "1"}]})]),
    ]  # fmt: skip
    hop = GatewayHop(routes, lambda *a: ("127.0.0.1", 1), GW)
    assert _pick(hop, "/foo/bar") == "exact"
    assert _pick(hop, "/foo/baz") == "a-foo", "same prefix: ns/a before ns/b"
    assert _pick(hop, "/foo/baz", "POST") == "post", "a method match before header and route order"
    assert _pick(hop, "/foo/baz", x="1") == "hdr", "a header match before route order"
    assert _pick(hop, "/foox") == "root", "PathPrefix matches whole path elements"
    assert _pick(hop, "/Foo") == "root", "case-sensitive"
    assert _pick(hop, "/foo", host="other") is None


def test_attachment_hostnames_and_filters() -> None:
    routes = [
        _route("other-listener", [_rule("x", {})], section="mqtt"),
        _route("wild", [_rule("wild", {})], ["*.example.com"]),
        _route("exact", [_rule("exact", {"path": {"type": "Exact", "value": "/only"}})], ["api.example.com"]),
    ]
    hop = GatewayHop(routes, lambda *a: ("127.0.0.1", 1), GW)
    assert [r["metadata"]["name"] for r in hop.attached] == ["wild", "exact"]
    assert _pick(hop, "/x", host="app.example.com") == "wild"
    assert _pick(hop, "/x", host="api.example.com:443") is None, "an exact hostname wins over a wildcard one"
    assert _pick(hop, "/x", host="example.com") is None
    filtered = _route("f", [{**_rule("b", {}), "filters": [{"type": "URLRewrite"}]}])
    with pytest.raises(NotImplementedError):
        GatewayHop([filtered], lambda *a: ("127.0.0.1", 1), GW)


def test_a_forward_appends_the_client_to_x_forwarded_for() -> None:
    seen: list[Obj] = []

    class Backend(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        addr = backend.server_address
        route = _route("api", [_rule("api", {"path": {"type": "PathPrefix", "value": "/api"}})])
        with GatewayHop([route], lambda ns, name, port: (str(addr[0]), int(addr[1])), GW) as hop:
            got = send(hop.address, "GET", "/api/../api/x?q=1", "h", "127.30.0.99", None,
                        {"X-Forwarded-For": "203.0.113.7"})  # fmt: skip
            assert got[0] == 204
            assert send(hop.address, "GET", "/apix", "h", "127.30.0.99")[0] == 404
    finally:
        backend.shutdown()
        backend.server_close()
    (req,) = seen
    assert json.loads(json.dumps(req))["path"] == "/api/x?q=1"
    assert req["x-forwarded-for"] == "203.0.113.7, 127.30.0.99"
    assert req["x-forwarded-proto"] == "https" and req["host"] == "h"
