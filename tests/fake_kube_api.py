"""A loopback stand-in for the three Kubernetes API calls the Secret hook Jobs make, with RBAC.

The Kubernetes API server cannot run here, so this emulates exactly what constructs/scripts/secret_jobs.py
uses, with the semantics that matter:

- ``GET /api/v1/namespaces/{ns}/secrets/{name}``, ``POST /api/v1/namespaces/{ns}/secrets`` (409 when the
  name exists; ``stringData`` becomes base64 ``data``) and ``PATCH .../secrets/{name}`` with
  ``application/merge-patch+json`` (404 when missing; 422 when the Secret is immutable and its data would
  change);
- a bearer token (401 otherwise) and authorisation by the rules of a Role taken from the synthesized
  manifests, as Kubernetes RBAC evaluates them: a rule with ``resourceNames`` never matches ``create``
  (the name is not part of a create's authorisation attributes); other namespaces are forbidden.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/api/v1/namespaces/"


@dataclass
class FakeKube:
    namespace: str
    token: str
    rules: list[dict[str, Any]]
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (verb, name or None, HTTP status) of every request, in order.
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    url: str = ""

    def put(self, name: str, data: dict[str, str], **extra: Any) -> None:
        """Seed a Secret (string values; stored base64 as the API does)."""
        self.secrets[name] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            **extra,
        }

    def value(self, name: str, key: str) -> str:
        return base64.b64decode(self.secrets[name]["data"][key]).decode()

    def allowed(self, verb: str, name: str | None) -> bool:
        for rule in self.rules:
            if "secrets" not in rule.get("resources", []) or "" not in rule.get("apiGroups", []):
                continue
            if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
                continue
            names = rule.get("resourceNames")
            if not names:
                return True
            if verb != "create" and name in names:
                return True
        return False


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any], verb: str, name: str | None) -> None:
            kube.log.append((verb, name, status))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, verb: str) -> tuple[str | None, bool]:
            """(secret name or None, ok). Sends the error response itself when not ok."""
            path = self.path.split("?")[0]
            rest = path[len(PREFIX) :].split("/") if path.startswith(PREFIX) else []
            if len(rest) not in (2, 3) or rest[1] != "secrets":
                self._send(404, {"message": f"no route {path}"}, verb, None)
                return None, False
            name = rest[2] if len(rest) == 3 else None
            if self.headers.get("Authorization") != f"Bearer {kube.token}":
                self._send(401, {"message": "Unauthorized"}, verb, name)
                return None, False
            if rest[0] != kube.namespace or not kube.allowed(verb, name):
                self._send(403, {"message": f"secrets {name!r} is forbidden: cannot {verb}"}, verb, name)
                return None, False
            return name, True

        def _body(self) -> dict[str, Any]:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

        def do_GET(self) -> None:  # noqa: N802
            name, ok = self._route("get")
            if not ok:
                return
            if name not in kube.secrets:
                self._send(404, {"message": f"secrets {name!r} not found"}, "get", name)
            else:
                self._send(200, kube.secrets[name], "get", name)

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            name, ok = self._route("create")
            if not ok:
                return
            name = body.get("metadata", {}).get("name")
            if name in kube.secrets:
                self._send(409, {"message": f"secrets {name!r} already exists"}, "create", name)
                return
            secret = {k: v for k, v in body.items() if k != "stringData"}
            data = dict(secret.get("data") or {})
            for k, v in (body.get("stringData") or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            secret["data"] = data
            kube.secrets[name] = secret
            self._send(201, secret, "create", name)

        def do_PATCH(self) -> None:  # noqa: N802
            body = self._body()
            name, ok = self._route("patch")
            if not ok:
                return
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                self._send(415, {"message": "unsupported patch type"}, "patch", name)
                return
            if name not in kube.secrets:
                self._send(404, {"message": f"secrets {name!r} not found"}, "patch", name)
                return
            secret = json.loads(json.dumps(kube.secrets[name]))
            labels = body.get("metadata", {}).get("labels")
            if labels:
                secret.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            data = dict(secret.get("data") or {})
            for k, v in (body.get("stringData") or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            if secret.get("immutable") and data != secret.get("data"):
                self._send(422, {"message": "field is immutable when `immutable` is set"}, "patch", name)
                return
            secret["data"] = data
            kube.secrets[name] = secret
            self._send(200, secret, "patch", name)

    return Handler


@contextlib.contextmanager
def serving(kube: FakeKube) -> Iterator[FakeKube]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(kube))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kube.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield kube
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
