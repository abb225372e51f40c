#!/usr/bin/env python3
"""In-cluster Secret jobs of an Iotistica release (Argo CD Sync hooks), Python standard library only.

Commands:

- ``resolve-stream-key``: read the license JWT from ``api-license-credentials-{ns}``, take the claim
  ``tenantId`` (falling back to ``customerId``), normalise it as the API does (strip ``{}`` and a
  ``cust_``/``tenant_`` prefix; platform-facts §4) and write ``{release}-ingestion-runtime-env`` with
  ``INGESTION_TENANT_ID`` and ``REDIS_INGESTION_STREAM_KEY=tenant:{<id>}:agent:devices:ingestion``.
  The braces are required: ingestion refuses a key without them (platform-facts §3.4). A missing or
  malformed license fails the Job. The signature is not checked here (that needs the public key and
  the API verifies it at start-up); only the structure is.
  ``--license-file F`` prints the env for a JWT in a file instead (no cluster needed).
- ``ensure-redis-auth``: create ``{release}-redis-auth`` (key ``password``, random, immutable) if it
  does not exist. An existing Secret is never changed: no silent rotation.

Layers: the pure core (``decode_claims``, ``normalise_tenant``, ``runtime_env``, ``*_secret``) needs no
cluster; ``KubeApi`` is a thin client of three Secret calls (get, create, merge-patch) against the API
server with the pod's ServiceAccount token. Environment: ``NAMESPACE`` (downward API), ``RELEASE``;
``KUBE_API_URL`` overrides the in-cluster URL (plain http only on loopback, for tests).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TENANT_CLAIMS = ("tenantId", "customerId")
TENANT_PREFIXES = ("cust_", "tenant_")
#: What a normalised tenant may be: the API's ids are 12 hex characters or UUIDs. Anything else would
#: give ingestion and the API different stream keys, so it fails here instead.
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: Labels of the Secrets these jobs create. No app.kubernetes.io/instance: with Argo CD's label
#: tracking, that label would make Argo CD treat (and prune) them as its own.
MANAGED_BY = "iotistica-secret-jobs"


class JobError(Exception):
    """A failure the Job reports in one line and exits 1 for."""


# --------------------------------------------------------------------------------------------------
# Core: no cluster
# --------------------------------------------------------------------------------------------------


def _b64url(segment: str, what: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", segment):
        raise JobError(f"license is malformed: the JWT {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JobError(f"license is malformed: the JWT {what} is not base64url") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JobError(f"license is malformed: the JWT {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JobError(f"license is malformed: the JWT {what} is not a JSON object")
    return value


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of an RS256 JWT (structure checked, signature not)."""
    token = token.strip()
    if not token:
        raise JobError("license is empty")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise JobError(f"license is malformed: a JWT has 3 non-empty dot-separated parts, found {len(parts)}")
    header = _json_object(_b64url(parts[0], "header"), "header")
    if header.get("alg") != "RS256":
        raise JobError(f"license is malformed: expected an RS256 JWT, got alg {header.get('alg')!r}")
    _b64url(parts[2], "signature")
    return _json_object(_b64url(parts[1], "payload"), "payload")


def normalise_tenant(raw: str) -> str:
    """Strip ``{}`` and one ``cust_``/``tenant_`` prefix, as the API's tenant-keys code does."""
    value = raw.strip().replace("{", "").replace("}", "")
    for prefix in TENANT_PREFIXES:
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    if not TENANT_RE.match(value):
        raise JobError(f"license tenant id {raw!r} normalises to {value!r}, which is not a usable tenant id")
    return value


def tenant_from_claims(claims: dict[str, Any]) -> str:
    """``tenantId``, or ``customerId`` when ``tenantId`` is absent or empty."""
    for claim in TENANT_CLAIMS:
        value = claims.get(claim)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise JobError(f"license claim {claim} must be a string, got {type(value).__name__}")
        return normalise_tenant(value)
    raise JobError("license has neither a tenantId nor a customerId claim")


def runtime_env(tenant: str) -> dict[str, str]:
    """The ingestion runtime environment for a normalised tenant id (the stream key keeps its braces)."""
    return {
        "INGESTION_TENANT_ID": tenant,
        "REDIS_INGESTION_STREAM_KEY": f"tenant:{{{tenant}}}:agent:devices:ingestion",
    }


def _labels(release: str, name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "iotistica",
        "iotistica.com/release": release,
    }


def runtime_secret(name: str, namespace: str, release: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels(release, "ingestion-runtime-env", "ingestion"),
        },
        "type": "Opaque",
        "stringData": dict(sorted(env.items())),
    }


def redis_auth_secret(name: str, namespace: str, release: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels(release, "redis-auth", "redis"),
            "annotations": {
                "iotistica.com/rotation": "never automatic: delete this Secret and sync to get a new password, "
                "then restart redis, the API and ingestion",
            },
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {"password": password},
    }


def secret_value(secret: dict[str, Any], key: str) -> str | None:
    """A key of a Secret read from the API (``data`` is base64), or None."""
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise JobError(f"Secret key {key!r} is not valid base64-encoded UTF-8") from None


# --------------------------------------------------------------------------------------------------
# Cluster I/O: a thin client of the three Secret calls
# --------------------------------------------------------------------------------------------------


class KubeApi:
    def __init__(self, base_url: str, token: str, ca_file: str | None = None, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise JobError(f"refusing plain http to {base_url}: only loopback test servers may use http")
        if parts.scheme not in ("http", "https"):
            raise JobError(f"unsupported Kubernetes API URL {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None

    @classmethod
    def from_env(cls) -> KubeApi:
        token_file = os.environ.get("KUBE_TOKEN_FILE", f"{SA_DIR}/token")
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise JobError(f"cannot read the ServiceAccount token {token_file}: {exc.strerror}") from None
        url = os.environ.get("KUBE_API_URL")
        if not url:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise JobError("KUBERNETES_SERVICE_HOST is not set: not running in a cluster")
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(url, token, os.environ.get("KUBE_CA_FILE", f"{SA_DIR}/ca.crt"))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, content_type: str = "") -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}").get("message", "")
            except (json.JSONDecodeError, AttributeError):
                detail = ""
            return exc.code, {"message": detail}
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise JobError(f"{method} {path}: cannot reach the Kubernetes API: {exc}") from None

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/secrets"
        return f"{base}/{urllib.parse.quote(name)}" if name else base

    @staticmethod
    def _fail(method: str, what: str, status: int, body: Any) -> JobError:
        hint = " (RBAC: check the Job's Role)" if status in (401, 403) else ""
        return JobError(f"{method} Secret {what}: HTTP {status} {body.get('message', '')}{hint}".rstrip())

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        status, body = self._call("GET", self._path(namespace, name))
        if status == 404:
            return None
        if status != 200:
            raise self._fail("GET", name, status, body)
        return dict(body)

    def create_secret(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """True if created, False if it already existed (409)."""
        name = manifest["metadata"]["name"]
        status, body = self._call("POST", self._path(namespace), manifest)
        if status == 409:
            return False
        if status not in (200, 201):
            raise self._fail("POST", name, status, body)
        return True

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        """JSON merge patch. True if patched, False if the Secret does not exist (404)."""
        status, body = self._call("PATCH", self._path(namespace, name), patch, "application/merge-patch+json")
        if status == 404:
            return False
        if status != 200:
            raise self._fail("PATCH", name, status, body)
        return True


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------


def _need(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise JobError(f"environment variable {name} is not set")
    return value


def read_license(
    api: KubeApi,
    namespace: str,
    name: str,
    key: str,
    wait_seconds: float,
    poll: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """The JWT in Secret ``name``; waits up to ``wait_seconds`` for the Secret to appear."""
    deadline = clock() + wait_seconds
    while True:
        secret = api.get_secret(namespace, name)
        if secret is not None:
            break
        if clock() >= deadline:
            raise JobError(
                f"license Secret {namespace}/{name} not found after {wait_seconds:g}s: create it "
                f"(key {key!r}) or check the OnePasswordItem of the same name"
            )
        print(f"waiting for Secret {namespace}/{name} ...", flush=True)
        sleep(poll)
    value = secret_value(secret, key)
    if value is None or not value.strip():
        raise JobError(f"license Secret {namespace}/{name} has no key {key!r} (or it is empty)")
    return value


def resolve_stream_key(api: KubeApi) -> dict[str, str]:
    namespace, release = _need("NAMESPACE"), _need("RELEASE")
    license_name, runtime_name = _need("LICENSE_SECRET_NAME"), _need("RUNTIME_SECRET_NAME")
    field = os.environ.get("LICENSE_SECRET_FIELD", "key")
    wait = float(os.environ.get("LICENSE_WAIT_SECONDS", "120"))
    poll = float(os.environ.get("POLL_SECONDS", "5"))
    token = read_license(api, namespace, license_name, field, wait, poll)
    env = runtime_env(tenant_from_claims(decode_claims(token)))
    manifest = runtime_secret(runtime_name, namespace, release, env)
    patch = {"metadata": {"labels": manifest["metadata"]["labels"]}, "stringData": manifest["stringData"]}
    if api.patch_secret(namespace, runtime_name, patch):
        action = "updated"
    elif api.create_secret(namespace, manifest):
        action = "created"
    elif api.patch_secret(namespace, runtime_name, patch):  # created concurrently in between
        action = "updated"
    else:
        raise JobError(f"Secret {namespace}/{runtime_name} neither exists nor can be created")
    print(f"{action} Secret {namespace}/{runtime_name}: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    return env


def ensure_redis_auth(api: KubeApi, generate: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """'exists' or 'created'. Never prints or changes an existing password."""
    namespace, release, name = _need("NAMESPACE"), _need("RELEASE"), _need("REDIS_AUTH_SECRET_NAME")

    def check(secret: dict[str, Any]) -> str:
        if not secret_value(secret, "password"):
            raise JobError(
                f"Secret {namespace}/{name} exists without a non-empty key 'password'; it is left untouched "
                "(fix or delete it, then sync again)"
            )
        print(f"Secret {namespace}/{name} exists: left untouched (never rotated automatically)")
        return "exists"

    existing = api.get_secret(namespace, name)
    if existing is not None:
        return check(existing)
    if api.create_secret(namespace, redis_auth_secret(name, namespace, release, generate())):
        print(f"created Secret {namespace}/{name} with a random password")
        return "created"
    again = api.get_secret(namespace, name)  # lost a race with another run: the winner's password stays
    if again is None:
        raise JobError(f"Secret {namespace}/{name} was reported as existing but cannot be read")
    return check(again)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    resolve = sub.add_parser("resolve-stream-key", help="license JWT -> {release}-ingestion-runtime-env")
    resolve.add_argument("--license-file", help="decode this JWT and print the env (no cluster)")
    sub.add_parser("ensure-redis-auth", help="create {release}-redis-auth if it is missing")
    args = parser.parse_args(argv)
    try:
        if args.command == "resolve-stream-key" and args.license_file:
            with open(args.license_file, encoding="utf-8") as fh:
                env = runtime_env(tenant_from_claims(decode_claims(fh.read())))
            for key, value in sorted(env.items()):
                print(f"{key}={value}")
        elif args.command == "resolve-stream-key":
            resolve_stream_key(KubeApi.from_env())
        else:
            ensure_redis_auth(KubeApi.from_env())
    except JobError as exc:
        print(f"{args.command}: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
