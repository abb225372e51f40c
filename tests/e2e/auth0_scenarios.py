"""The dashboard's Auth0 login, end to end: the platform's real API, running from dist/, and the Auth0 tenant the
dashboard's config.js names (docs/e2e.md "The dashboard's Auth0 login", platform-facts §17).

These scenario functions take a running, synced ``Release``; ``scenarios.py`` binds each with one small
wrapper test, so they run on that module's releases.

Auth0 is a SaaS that cannot run here, so the test plays the tenant (``Auth0Tenant``):

- the domain is the one of the dashboard's config.js (the ConfigMap on the server), and resolves inside the
  cluster to a loopback address of its own (the kubelet's hosts files, ``extra_hosts``);
- it answers HTTPS on port 443 with a certificate for that domain from the public PKI's stand-in: a root CA made
  for the test that every image trusts (``Kubelet.public_ca``, NODE_EXTRA_CA_CERTS), as the real tenant's
  certificate chains to a public root;
- it signs RS256 access tokens with a key pair made for the test and serves its public key as a JWKS at
  ``/.well-known/jwks.json``; its ``/userinfo`` answers for the tokens it issued that carry its userinfo
  audience, as Auth0's does (a token it did not issue gets 401).

The dashboard's login asks Auth0 for an access token with ``audience`` = VITE_AUTH0_AUDIENCE and scope
``openid profile email`` (so the token's ``aud`` also names ``https://<domain>/userinfo``) at VITE_AUTH0_DOMAIN,
whose issuer is ``https://<domain>/``. The tokens here are those.

The API then needs the provisioning service (``PROVISIONING_API_URL``) for the user's role in the tenant, which
the test also plays on a loopback address of its own (``Provisioning``), with the contract the API's source has:
``GET /api/internal/users/<auth0 sub>/tenants/<customer id>/role`` with header ``X-Internal-Token``; 200
``{"success": true, "data": {"role", "customer_status"}}``, 404 for a user not in the tenant, 401 for a wrong
token (api/src/middleware/jwt-auth.ts, api/src/routes/auth/auth.ts).

The customer id: the API takes it from its hostname only for provisioned tenants (``api-client-<12 hex>.<base>``,
api/src/services/auth/tenant-resolution.ts); for the seed's hosts it falls back to the ``X-Tenant-ID`` header,
which the clients here send.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.release import TENANT, Release, openssl


def _stand_in_ips(r: Release) -> tuple[str, str]:
    """The Auth0 tenant's and the provisioning service's addresses: in 127.(40+n).0.0/16, n the release's
    address block (``Kubelet.net``), so that releases side by side each play their own. (The kubelet's Services
    are in 127.(10+n)/16, pods in 127.(20+n)/16, the edge tests' clients in 127.30.0.1x.)"""
    return f"127.{40 + r.kubelet.net}.0.1", f"127.{40 + r.kubelet.net}.0.2"


#: The clients of these scenarios, each its own key for the API's login limit (10 a minute per address).
CLIENT_EXCHANGE, CLIENT_BEARER, CLIENT_AUDIENCE = "127.30.0.21", "127.30.0.22", "127.30.0.23"
#: The customer the users belong to (the provisioning service's form, ``client-<12 hex>``).
CUSTOMER = f"client-{TENANT}"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(_unb64url(token.split(".")[1])))


def config_js(r: Release) -> dict[str, str]:
    """``window.env`` of the dashboard's config.js, from the ConfigMap as the server has it (what a browser
    would load)."""
    cm = r.kube.get(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{r.name}-dashboard", "namespace": r.namespace}}
    )
    assert cm is not None, f"ConfigMap {r.name}-dashboard is not on the server"
    out = {}
    for line in cm["data"]["config.js"].splitlines():
        key, sep, value = line.strip().rstrip(",").partition(": ")
        if sep and key.isidentifier():
            out[key] = json.loads(value)
    return out


def _public_host(r: Release, route: str) -> str:
    obj = next(o for o in r.objects() if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == f"{r.name}-{route}")
    return str(obj["spec"]["hostnames"][0])


# ---- the stand-ins ---------------------------------------------------------------------------------------


class _Server:
    """A threaded HTTP(S) server on one loopback address, logging every request (method, path, headers)."""

    def __init__(
        self, addr: tuple[str, int], answer: Any, log: list[tuple[str, str, dict[str, str]]], tls: Any = None
    ) -> None:
        self.requests = log

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                log.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body = answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(addr, Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class Auth0Tenant:
    """The Auth0 tenant of the dashboard's config.js, played on loopback (module docstring)."""

    domain: str
    dir: Path
    kid: str
    #: Tokens this tenant issued: its /userinfo answers for them (and for no other).
    issued: set[str] = field(default_factory=set)
    #: sub -> the profile /userinfo returns.
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every request the tenant answered in the release's life (method, path, headers).
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"

    @property
    def userinfo_audience(self) -> str:
        return f"https://{self.domain}/userinfo"

    def jwks(self) -> dict[str, Any]:
        """The public key as Auth0 publishes it (RSA, RS256, ``use: sig``)."""
        modulus = openssl("rsa", "-in", "tenant.key", "-noout", "-modulus", cwd=self.dir).decode().strip()
        n = bytes.fromhex(modulus.removeprefix("Modulus="))
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64url(n), "e": "AQAB"}]}

    def user(self, name: str) -> str:
        """A user of the tenant (a fresh ``sub``; the API caches roles per sub and customer)."""
        sub = f"auth0|e2e-{name}-{secrets.token_hex(6)}"
        self.users[sub] = {"sub": sub, "email": f"{name}@example.com", "email_verified": True, "name": f"E2E {name}"}
        return sub

    def token(
        self,
        sub: str,
        audience: str,
        *,
        issuer: str | None = None,
        key: str = "tenant.key",
        userinfo: bool = True,
        lifetime: int = 3600,
    ) -> str:
        """An access token as the tenant issues it for ``audience`` (scope ``openid profile email``: ``aud`` also
        names the userinfo audience). ``key``: another key signs it (``other.key``: not the tenant's, same kid);
        only tokens signed with the tenant's key count as issued."""
        now = int(time.time())
        aud = [audience, self.userinfo_audience] if userinfo else [audience]
        claims = {"iss": issuer or self.issuer, "sub": sub, "aud": aud, "iat": now, "exp": now + lifetime}
        claims |= {"scope": "openid profile email", "azp": "e2e-dashboard-client"}
        head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        body = _b64url(json.dumps(claims).encode())
        sig = openssl("dgst", "-sha256", "-sign", key, cwd=self.dir, input=f"{head}.{body}".encode())
        token = f"{head}.{body}.{_b64url(sig)}"
        if key == "tenant.key" and (issuer is None or issuer == self.issuer):
            self.issued.add(token)
        return token

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/.well-known/jwks.json":
            return 200, self.jwks()
        if path == "/userinfo":
            token = headers.get("authorization", "").removeprefix("Bearer ")
            claims = _claims(token) if token in self.issued else {}
            if not claims or self.userinfo_audience not in claims["aud"] or claims["exp"] < time.time():
                return 401, {"error": "invalid_token"}
            return 200, self.users[claims["sub"]]
        return 404, {"error": "not_found"}


@dataclass
class Provisioning:
    """The provisioning service's role lookup (module docstring), with the internal token the API must send."""

    internal_token: str
    #: (sub, customer) -> role.
    roles: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    PREFIX = "/api/internal/users/"

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        if headers.get("x-internal-token") != self.internal_token:
            return 401, {"success": False, "error": "Unauthorized"}
        parts = path.removeprefix(self.PREFIX).split("/")
        if not path.startswith(self.PREFIX) or len(parts) != 4 or parts[1::2] != ["tenants", "role"]:
            return 404, {"success": False, "error": "Not found"}
        sub, customer = urllib.parse.unquote(parts[0]), urllib.parse.unquote(parts[2])
        role = self.roles.get((sub, customer))
        if role is None:
            return 404, {"success": False, "error": "User not found in tenant"}
        return 200, {"success": True, "data": {"role": role, "customer_status": "active"}}

    def lookups(self, sub: str) -> list[dict[str, str]]:
        """The headers of every role lookup the API made for ``sub``."""
        return [h for _, p, h in self.requests if urllib.parse.unquote(p).startswith(f"{self.PREFIX}{sub}/")]


#: One tenant per release (its key and JWKS: the API caches the JWKS in Redis for JWKS_CACHE_TTL).
_TENANTS: dict[str, Auth0Tenant] = {}


def _tenant(r: Release, domain: str) -> Auth0Tenant:
    key = str(r.work)
    if key not in _TENANTS:
        d = r.work / "auth0-tenant"
        d.mkdir()
        for name in ("tenant.key", "other.key"):
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name, cwd=d)
        # The tenant's certificate for its domain, from the public PKI's stand-in (release.public_root_ca).
        assert r.kubelet.public_ca is not None, "the kubelet has no public root CA (release.py)"
        ca = r.kubelet.public_ca
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj",
                f"/CN={domain}", cwd=d)  # fmt: skip
        (d / "ext").write_text(f"subjectAltName=DNS:{domain}\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "tls.csr", "-CA", str(ca), "-CAkey", str(ca.parent / "ca.key"),
                "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "ext", cwd=d)  # fmt: skip
        _TENANTS[key] = Auth0Tenant(domain=domain, dir=d, kid=f"e2e-{secrets.token_hex(4)}")
    return _TENANTS[key]


@contextlib.contextmanager
def auth0_and_provisioning(r: Release) -> Iterator[tuple[Auth0Tenant, Provisioning]]:
    """The Auth0 tenant of the dashboard's config.js and the provisioning service of the API's
    PROVISIONING_API_URL, each on its loopback address, their names in the cluster's hosts files; both stopped
    and their names removed on exit."""
    domain = config_js(r)["VITE_AUTH0_DOMAIN"]
    tenant = _tenant(r, domain)
    from tests.e2e.scenarios import _container_env

    prov_url = urllib.parse.urlsplit(_container_env(r, "api")["PROVISIONING_API_URL"])
    assert prov_url.scheme == "http" and prov_url.hostname and prov_url.port, prov_url
    prov = Provisioning(internal_token=r.values["internal-auth-token-master"]["token"])
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tenant.dir / "tls.crt", tenant.dir / "tls.key")
    servers: list[_Server] = []
    try:
        auth0_ip, provisioning_ip = _stand_in_ips(r)
        servers.append(_Server((auth0_ip, 443), tenant.answer, tenant.requests, tls))
        servers.append(_Server((provisioning_ip, prov_url.port), prov.answer, prov.requests))
        with r.kubelet._lock:  # the kubelet rewrites the hosts files when a Service appears
            r.kubelet.extra_hosts[domain] = auth0_ip
            r.kubelet.extra_hosts[prov_url.hostname] = provisioning_ip
            r.kubelet.write_hosts()
        yield tenant, prov
    finally:
        with r.kubelet._lock:
            r.kubelet.extra_hosts.pop(domain, None)
            r.kubelet.extra_hosts.pop(str(prov_url.hostname), None)
            r.kubelet.write_hosts()
        for s in servers:
            s.close()


# ---- the dashboard's requests ------------------------------------------------------------------------------


def _request(
    r: Release, client: str, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    """A request from the dashboard in a browser: to the API's Service (the Gateway is played in
    edge_scenarios.py), with the API's public host and the dashboard's origin, from ``client``'s address."""
    conn = http.client.HTTPConnection(r.svc_ip("api"), 3002, timeout=30, source_address=(client, 0))
    hdrs = {"Host": _public_host(r, "api"), "Origin": f"https://{_public_host(r, 'dashboard')}"}
    hdrs |= {"X-Tenant-ID": CUSTOMER, **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None, got
    except json.JSONDecodeError:
        return resp.status, raw.decode(errors="replace"), got


def _exchange(r: Release, client: str, token: str) -> tuple[int, Any, dict[str, str]]:
    """``POST /api/v1/auth/auth0-exchange`` with the Auth0 access token (``auth0Token``, routes/auth/auth.ts)."""
    return _request(r, client, "POST", "/api/v1/auth/auth0-exchange", {"auth0Token": token})


def _me(r: Release, client: str, token: str) -> tuple[int, Any, dict[str, str]]:
    return _request(r, client, "GET", "/api/v1/auth/me", Authorization=f"Bearer {token}")


def _hs256_valid(token: str, secret: str) -> bool:
    head, body, sig = token.split(".")
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(_b64url(mac), sig)


# ---- scenarios ---------------------------------------------------------------------------------------------


def api_auth0_settings_are_the_dashboards(r: Release) -> dict[str, str]:
    """The running API's AUTH0_* are the values of the dashboard's config.js; returns config.js."""
    js = config_js(r)
    env = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api").env
    assert env.get("AUTH0_ENABLED") == "true"
    assert env.get("AUTH0_DOMAIN") == js["VITE_AUTH0_DOMAIN"]
    assert env.get("AUTH0_AUDIENCE") == js["VITE_AUTH0_AUDIENCE"]
    assert env.get("AUTH0_ISSUER") == f"https://{js['VITE_AUTH0_DOMAIN']}/"
    # The seed's placeholder client id names no Auth0 application: the API gets none (docs/settings.md).
    assert ("AUTH0_CLIENT_ID" in env) == (js["VITE_AUTH0_CLIENT_ID"] != "...")
    return js


def auth0_exchange_gives_the_dashboard_a_session(r: Release) -> None:
    """An Auth0 login of the dashboard, exchanged for the API's own session (``auth0-exchange``): the API asks
    the tenant's /userinfo who the token is, the provisioning service (with the internal token of the
    Secret) for the user's role in the customer, and answers with its own HS256 tokens. A token the tenant
    did not issue (signed by another key), and a user not in the customer, are refused."""
    js = api_auth0_settings_are_the_dashboards(r)
    with auth0_and_provisioning(r) as (tenant, prov):
        sub = tenant.user("operator")
        prov.roles[(sub, CUSTOMER)] = "operator"
        token = tenant.token(sub, js["VITE_AUTH0_AUDIENCE"])
        status, body, headers = _exchange(r, CLIENT_EXCHANGE, token)
        assert status == 200, body
        assert body["message"] == "Auth0 token exchange successful"
        user = body["data"]["user"]
        assert user == {
            "id": 0,
            "username": sub,
            "email": "operator@example.com",
            "role": "operator",
            "customerId": CUSTOMER,
            "auth0Sub": sub,
            "name": "E2E operator",
        }
        # The dashboard's browser may read the answer (CORS_ORIGINS names the dashboard's origin).
        assert headers.get("access-control-allow-origin") == f"https://{_public_host(r, 'dashboard')}"
        # The tenant was asked who the token is; the provisioning service, with the Secret's internal token.
        assert ("GET", "/userinfo", f"Bearer {token}") in [
            (m, p, h.get("authorization")) for m, p, h in tenant.requests
        ]
        lookups = prov.lookups(sub)
        assert len(lookups) == 1 and lookups[0]["x-internal-token"] == r.values["internal-auth-token-master"]["token"]
        # The session is the API's own: HS256 with JWT_SECRET, the role and customer in it, 15 minutes.
        access, refresh = body["data"]["accessToken"], body["data"]["refreshToken"]
        jwt_secret = r.values[f"api-jwt-{r.namespace}"]["token"]
        assert _hs256_valid(access, jwt_secret) and _hs256_valid(refresh, jwt_secret)
        claims = _claims(access)
        assert (claims["iss"], claims["aud"], claims["type"]) == ("iotistic-api", "iotistic-dashboard", "access")
        assert (claims["auth0Sub"], claims["customerId"], claims["role"]) == (sub, CUSTOMER, "operator")
        assert claims["exp"] - claims["iat"] == 900  # JWT_ACCESS_TOKEN_EXPIRY 15m
        # ... and the dashboard's next request with it is the user's.
        status, body, _ = _me(r, CLIENT_EXCHANGE, access)
        assert status == 200, body
        assert (body["data"]["user"]["username"], body["data"]["user"]["role"]) == (sub, "operator")
        assert body["data"]["user"]["customerId"] == CUSTOMER

        # Signed by another key (not the tenant's): the tenant's /userinfo refuses it, and so does the API.
        forged = tenant.token(sub, js["VITE_AUTH0_AUDIENCE"], key="other.key")
        status, body, _ = _exchange(r, CLIENT_EXCHANGE, forged)
        assert (status, body["message"]) == (401, "Invalid Auth0 token"), body
        # A real Auth0 user who is not in this customer: the provisioning service says 404, the API 403.
        stranger = tenant.user("stranger")
        status, body, _ = _exchange(r, CLIENT_EXCHANGE, tenant.token(stranger, js["VITE_AUTH0_AUDIENCE"]))
        assert (status, body["message"]) == (403, "User is not assigned to this tenant"), body
        assert len(prov.lookups(sub)) == 1  # the forged token never reached the role lookup


def auth0_access_token_is_verified_by_the_api(r: Release) -> None:
    """The Auth0 access token itself as the dashboard's bearer token: the API verifies it with the settings of
    the manifests (RS256, the tenant's JWKS at ``<AUTH0_ISSUER>.well-known/jwks.json``, issuer ``AUTH0_ISSUER``,
    audience ``AUTH0_AUDIENCE``), then asks provisioning for the role. A token for another audience, from
    another issuer, or signed by another key under the tenant's key id, is refused with 401."""
    js = api_auth0_settings_are_the_dashboards(r)
    with auth0_and_provisioning(r) as (tenant, prov):
        sub = tenant.user("viewer")
        prov.roles[(sub, CUSTOMER)] = "viewer"
        status, body, _ = _me(r, CLIENT_BEARER, tenant.token(sub, js["VITE_AUTH0_AUDIENCE"]))
        assert status == 200, body
        user = body["data"]["user"]
        assert (user["username"], user["role"], user["customerId"], user["isActive"]) == (sub, "viewer", CUSTOMER, True)
        lookups = prov.lookups(sub)
        assert len(lookups) == 1 and lookups[0]["x-internal-token"] == r.values["internal-auth-token-master"]["token"]
        # What only the platform's code can change: /auth/me hands every signed-in user, a viewer too, the API's
        # own broker account (MQTT_USERNAME/MQTT_PASSWORD, routes/auth/auth.ts).
        mqtt = r.values[f"mqtt-credentials-{r.namespace}"]
        assert user["brokerClient"]["username"] == mqtt["username"]
        assert user["brokerClient"]["password"] == mqtt["password"]
        # The JWKS came from the tenant, over HTTPS to its domain (once per JWKS_CACHE_TTL: Redis keeps it).
        assert "/.well-known/jwks.json" in [p for _, p, _ in tenant.requests]

        refused = {
            "another audience": tenant.token(sub, "https://other-api.example.com", userinfo=False),
            "another issuer": tenant.token(sub, js["VITE_AUTH0_AUDIENCE"], issuer="https://evil.example.com/"),
            "another key": tenant.token(sub, js["VITE_AUTH0_AUDIENCE"], key="other.key"),
        }
        details = {}
        for why, token in refused.items():
            status, body, _ = _me(r, CLIENT_BEARER, token)
            assert (status, body.get("message")) == (401, "Invalid Auth0 token"), (why, body)
            details[why] = body["details"]
        assert '"aud"' in details["another audience"], details
        assert '"iss"' in details["another issuer"], details
        assert "signature verification failed" in details["another key"], details
        assert len(prov.lookups(sub)) == 1  # no refused token reached the role lookup

        # Control: the trust is the public PKI's stand-in, and TLS is verified. The same fetch of the JWKS in the
        # API's container works, and fails on the certificate without NODE_EXTRA_CA_CERTS.
        c = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
        url = f"{tenant.issuer}.well-known/jwks.json"
        script = (
            "fetch(process.argv[1]).then(r => console.log('status', r.status),"
            " e => { console.log('error', (e.cause && e.cause.code) || e.message); process.exit(3); })"
        )
        trusted = r.kubelet.exec(c, ["node", "-e", script, url])
        assert (trusted.returncode, trusted.stdout.strip()) == (0, "status 200"), trusted
        bare = r.kubelet.exec(c, ["env", "-u", "NODE_EXTRA_CA_CERTS", "node", "-e", script, url])
        assert (bare.returncode, bare.stdout.strip()) == (3, "error UNABLE_TO_VERIFY_LEAF_SIGNATURE"), bare


def auth0_exchange_does_not_check_the_audience(r: Release) -> None:
    """What only the platform's code can change: ``auth0-exchange`` asks the tenant's /userinfo who the token
    is and never checks its audience (api/src/routes/auth/auth.ts; the bearer path does, in jwt-auth.ts). So
    an access token the same Auth0 tenant issued for another API (with ``openid``, so /userinfo accepts it)
    is exchanged for a session of this one. A token without the userinfo audience is refused by /userinfo."""
    api_auth0_settings_are_the_dashboards(r)
    with auth0_and_provisioning(r) as (tenant, prov):
        sub = tenant.user("elsewhere")
        prov.roles[(sub, CUSTOMER)] = "viewer"
        other_api = "https://other-api.example.com"
        status, body, _ = _exchange(r, CLIENT_AUDIENCE, tenant.token(sub, other_api))
        assert status == 200 and body["data"]["user"]["auth0Sub"] == sub, body
        status, body, _ = _exchange(r, CLIENT_AUDIENCE, tenant.token(sub, other_api, userinfo=False))
        assert (status, body["message"]) == (401, "Invalid Auth0 token"), body
