"""The gateway hop: a small reverse proxy on loopback that plays Envoy Gateway's listener for a release's
HTTPRoutes, so the end-to-end test reaches the real API the way the public does (docs/e2e.md, docs/hardening.md).

What it does, per request, in Envoy's order:

1. **Path normalisation, as Envoy Gateway configures Envoy by default** (no ClientTrafficPolicy ``path``):
   - escaped slashes (``%2F``, ``%2f``, ``%5C``, ``%5c``): ``escapedSlashesAction`` defaults to
     ``UnescapeAndRedirect`` (Envoy Gateway's ``PathSettings``): they are unescaped, the path is normalised,
     and the client gets a redirect (307) to the result instead of a forward;
   - ``normalize_path`` (RFC 3986 through Chromium's URL canonicaliser, as Envoy's ``PathUtil::canonicalPath``):
     ``\\`` is a ``/``; ``%2e``/``%2E`` count as ``.`` in dot segments (``/a/b/%2E%2E/c`` -> ``/a/c``); ``.``
     and ``..`` segments (also with ``;params``) are removed, never above the root; percent-escapes of
     unreserved characters are decoded, the others kept as sent (``/%5c%25`` stays); ``%00`` is refused (400);
   - ``merge_slashes`` (on unless ``disableMergeSlashes``): ``//`` -> ``/``.
   The query string is left alone. The normalised path is both what is matched and what is forwarded.
2. **Route selection, as Gateway API specifies** (the HTTPRoute CRD text, ``spec.rules.matches``): only
   routes whose ``parentRefs`` name this Gateway (and this listener's ``sectionName``, or none) attach; the
   ``Host`` must match a route hostname (an exact hostname wins over a wildcard one, as Envoy's virtual hosts
   do); across all rules of the attached routes the winner has an ``Exact`` path match, else the
   ``PathPrefix`` with most characters (PathPrefix matches whole path elements, a trailing ``/`` ignored;
   matching is case-sensitive), then a method match, then most header matches, then most query matches, then
   the oldest route, then ``{namespace}/{name}`` alphabetically, then the first rule in list order. A match
   with no ``path`` is ``PathPrefix /``. No match: **404**, nothing forwarded. Filters are not played: a
   route with one is refused when the hop is built, never silently ignored.
3. **Forwarding** to the rule's backendRef Service (``resolve``: the Service read from the kube-apiserver,
   its address as the e2e kubelet gives Services), with ``X-Forwarded-For`` extended by the client's
   address (Envoy Gateway's default ``use_remote_address``: one hop appends what it saw), ``X-Forwarded-Proto``
   of the listener (``https``) and ``X-Envoy-External-Address``. Upgrades (websockets) are tunnelled.

Not played: TLS termination (the listener's certificate is the platform team's; the hop speaks plain HTTP on
loopback), Envoy Gateway's own rate limit policy (BackendTrafficPolicy), retries and timeouts.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Obj = dict[str, Any]
#: backendRef (namespace, Service name, port) -> (address, port) to connect to.
Resolver = Callable[[str, str, int], tuple[str, int]]

_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPED_SLASH = re.compile(r"%(2[fF]|5[cC])")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class BadPath(ValueError):
    """A path Envoy's normalisation refuses (400)."""


def _unescape_unreserved(segment: str) -> str:
    def sub(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        if ch == "\0":
            raise BadPath("%00 in the path")
        return ch if ch in _UNRESERVED else m.group(0)

    if re.search(r"%(?![0-9A-Fa-f]{2})", segment):
        raise BadPath("a '%' that starts no escape")
    return re.sub(r"%([0-9A-Fa-f]{2})", sub, segment)


def normalize(path: str, merge_slashes: bool = True) -> tuple[str, bool]:
    """(normalised path, redirect) for a request path without its query, as Envoy Gateway's defaults do it
    (module docstring). ``redirect`` is True when escaped slashes were unescaped (UnescapeAndRedirect)."""
    redirect = bool(_ESCAPED_SLASH.search(path))
    if redirect:
        path = _ESCAPED_SLASH.sub(lambda m: "/" if m.group(1) in ("2f", "2F") else "\\", path)
    path = path.replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    out: list[str] = []
    segments = path[1:].split("/")
    for i, raw in enumerate(segments):
        seg = _unescape_unreserved(raw)
        bare = seg.split(";", 1)[0]
        last = i == len(segments) - 1
        if bare == ".":
            if last:
                out.append("")
            continue
        if bare == "..":
            if out:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    if merge_slashes:
        result = re.sub(r"/{2,}", "/", result)
    return result, redirect


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _path_score(spec: Obj | None, path: str) -> tuple[int, int] | None:
    spec = spec or {"type": "PathPrefix", "value": "/"}
    kind, value = spec.get("type", "PathPrefix"), spec.get("value", "/")
    if kind == "Exact":
        return (1, len(value)) if path == value else None
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        ok = not prefix or path == prefix or path.startswith(prefix + "/")
        return (0, len(value)) if ok else None
    if kind == "RegularExpression":  # precedence implementation-specific: ranked below every prefix
        return (-1, 0) if re.fullmatch(value, path) else None
    raise ValueError(f"path match type {kind!r}")


def _value_matches(spec: Obj, actual: str | None) -> bool:
    if actual is None:
        return False
    if spec.get("type", "Exact") == "RegularExpression":
        return re.fullmatch(spec["value"], actual) is not None
    return actual == spec["value"]


@dataclass
class Forwarded:
    client: str
    method: str
    target: str  # what the client sent
    forwarded: str  # what the backend got ("" when refused)
    status: str  # "forwarded", or the hop's own answer: "404", "307", "400", "411", "503"
    route: str = ""


@dataclass
class GatewayHop:
    """The listener ``listener`` of Gateway ``gateway`` (namespace, name) serving ``routes``."""

    routes: list[Obj]
    resolve: Resolver
    gateway: tuple[str, str]
    listener: str = "https"
    bind: str = "127.0.0.1"
    log: list[Forwarded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.attached = [r for r in self.routes if r["kind"] == "HTTPRoute" and self._attaches(r)]
        for r in self.attached:
            for rule in r["spec"].get("rules", []):
                if rule.get("filters"):
                    raise NotImplementedError(f"HTTPRoute {r['metadata']['name']}: filters are not played here")

    def _attaches(self, route: Obj) -> bool:
        ns = route["metadata"].get("namespace", "default")
        for p in route["spec"].get("parentRefs", []):
            if p.get("kind", "Gateway") != "Gateway" or p.get("group", "gateway.networking.k8s.io") != (
                "gateway.networking.k8s.io"
            ):
                continue
            if (p.get("namespace", ns), p["name"]) == self.gateway and p.get("sectionName") in (None, self.listener):
                return True
        return False

    # ---- selection ----------------------------------------------------------------------------

    def select(self, method: str, host: str, path: str, query: str, headers: Any) -> tuple[Obj, Obj] | None:
        """(route, rule) for a normalised request, or None (404)."""
        host = (host or "").lower()
        host = host.rsplit(":", 1)[0] if ":" in host and not host.endswith("]") else host
        exact = [r for r in self.attached if host in [h.lower() for h in r["spec"].get("hostnames", [])]]
        wild = [r for r in self.attached if not r["spec"].get("hostnames") or
                any(_host_matches(h.lower(), host) for h in r["spec"]["hostnames"])]  # fmt: skip
        routes = exact or wild  # an exact hostname wins over a wildcard one (Envoy's virtual hosts)
        params: dict[str, str] = {}
        for pair in query.split("&") if query else []:
            k, _, v = pair.partition("=")
            params.setdefault(k, v)
        best: tuple[tuple[Any, ...], Obj, Obj] | None = None
        for r in routes:
            ident = f"{r['metadata'].get('namespace', 'default')}/{r['metadata']['name']}"
            created = r["metadata"].get("creationTimestamp") or ""
            for index, rule in enumerate(r["spec"].get("rules", [])):
                for m in rule.get("matches") or [{}]:
                    score = _path_score(m.get("path"), path)
                    if score is None:
                        continue
                    if "method" in m and m["method"] != method:
                        continue
                    if not all(_value_matches(h, headers.get(h["name"])) for h in m.get("headers", [])):
                        continue
                    if not all(_value_matches(q, params.get(q["name"])) for q in m.get("queryParams", [])):
                        continue
                    key = (-score[0], -score[1], "method" not in m, -len(m.get("headers", [])),
                           -len(m.get("queryParams", [])), created, ident, index)  # fmt: skip
                    if best is None or key < best[0]:
                        best = (key, r, rule)
        return None if best is None else (best[1], best[2])

    # ---- serving ------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> GatewayHop:
        hop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                if not self.parse_request():
                    return
                hop._serve(self)
                self.close_connection = True

        self._server = ThreadingHTTPServer((self.bind, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway-hop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _reply(self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("content-length", "0")
        h.send_header("server", "envoy")
        h.send_header("connection", "close")
        h.end_headers()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        client = h.client_address[0]
        method, target = h.command, h.path
        path, sep, query = target.partition("?")
        entry = Forwarded(client, method, target, "", "")
        self.log.append(entry)
        try:
            norm, redirect = normalize(path)
        except BadPath:
            entry.status = "400"
            self._reply(h, 400)
            return
        if redirect:
            entry.status = "307"
            self._reply(h, 307, {"location": norm + sep + query})
            return
        chosen = self.select(method, h.headers.get("host", ""), norm, query, h.headers)
        if chosen is None:
            entry.status = "404"
            self._reply(h, 404)
            return
        route, rule = chosen
        entry.route = route["metadata"]["name"]
        backend = next(b for b in rule["backendRefs"] if int(b.get("weight", 1)) > 0)
        ns = backend.get("namespace", route["metadata"].get("namespace", "default"))
        addr = self.resolve(ns, backend["name"], int(backend["port"]))
        length = int(h.headers.get("content-length") or 0)
        if h.headers.get("transfer-encoding"):
            entry.status = "411"
            self._reply(h, 411)
            return
        body = h.rfile.read(length) if length else b""
        upgrade = "upgrade" in (h.headers.get("connection") or "").lower() and h.headers.get("upgrade")
        lines = [f"{method} {norm}{sep}{query} HTTP/1.1"]
        xff = [v.strip() for v in h.headers.get_all("x-forwarded-for", []) if v.strip()]
        for k, v in h.headers.items():
            if k.lower() in _HOP_BY_HOP or k.lower() in ("x-forwarded-for", "x-forwarded-proto", "content-length"):
                continue
            lines.append(f"{k}: {v}")
        lines.append(f"x-forwarded-for: {', '.join([*xff, client])}")
        lines.append("x-forwarded-proto: https")
        lines.append(f"x-envoy-external-address: {client}")
        if length or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        if upgrade:
            lines += [f"upgrade: {upgrade}", "connection: upgrade"]
        else:
            lines.append("connection: close")
        try:
            up = socket.create_connection(addr, timeout=30)
        except OSError:  # Envoy: "upstream connect error", 503
            entry.status = "503"
            self._reply(h, 503)
            return
        try:
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            try:
                first = up.recv(65536)
            except OSError:
                first = b""
            if not first:  # Envoy: "upstream connect error or disconnect/reset before headers", 503
                entry.status = "503"
                self._reply(h, 503)
                return
            entry.forwarded, entry.status = f"{norm}{sep}{query}", "forwarded"
            h.wfile.flush()
            h.connection.sendall(first)
            _pipe(h.connection, up)
        finally:
            up.close()


def _pipe(client: socket.socket, up: socket.socket) -> None:
    """Bytes both ways until the backend closes (its answer, or the end of an upgraded connection)."""
    socks = [client, up]
    while True:
        ready, _, _ = select.select(socks, [], [], 30)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            (up if s is client else client).sendall(data)


def send(
    addr: tuple[str, int], method: str, target: str, host: str, source: str = "127.0.0.1",
    body: Any = None, headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:  # fmt: skip
    """One request exactly as given (no client-side normalisation of ``target``): (status, headers, body)."""
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=30, source_address=(source, 0))
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        data = json.dumps(body).encode() if body is not None else b""
        hdrs = dict(headers or {})
        if body is not None:
            hdrs |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(data or None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()
