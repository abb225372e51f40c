"""A real kube-apiserver v1.28.4 (vendored) on Debian's etcd, on loopback, for tests: started and stopped here.

Where it comes from: ``../shared/vendor/kube-apiserver-v1.28.4-linux-amd64.xz`` beside the checkout (the vendor
README: upstream v1.28.4, unmodified), checked against ``SHA256SUMS`` and decompressed into a temporary folder;
etcd is Debian's ``etcd-server`` (scripts/ensure-system-deps.sh installs it). Certificates are made with
``openssl`` at start-up; nothing is written outside the temporary folder, which is removed at the end.

The server is a vanilla 1.28 control plane without controller-manager or scheduler (platform-facts §16):
``--authorization-mode=RBAC``, the admission plugins NamespaceLifecycle, ServiceAccount, PodSecurity and
ValidatingAdmissionPolicy (beta in 1.28: feature gate and ``admissionregistration.k8s.io/v1beta1`` runtime
config on), ServiceAccount tokens signed by a test key. What 1.28 accepts, it accepts, bugs included.

Interface (for any test that needs a real API server):

- ``mode()``: one report line, ``kube-apiserver 1.28.4: real`` or ``kube-apiserver 1.28.4: skipped: <why>``.
- ``skip_reason()``: None when the server can run here, else the one-line reason (a missing or damaged file).
- ``running_kube_apiserver()``: a context manager yielding a ``KubeApiServer``; etcd and the server are
  killed on exit, on failure and on Ctrl-C (and by the kernel if the test process dies: PDEATHSIG).
- ``KubeApiServer``: ``url``, ``ca_file``, ``kubeconfig`` (admin: group ``system:masters``), ``request()``
  (HTTPS as admin, optionally impersonating), ``apply()`` (server-side apply), ``token()`` (TokenRequest),
  ``kubectl(*args, as_user=None, input=None)`` (the machine's kubectl with the admin kubeconfig).

The session fixture ``kube_api`` (tests/conftest.py) starts one server per test session, or skips with
``skip_reason()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import http.client
import json
import lzma
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.realservers import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT.parent / "shared" / "vendor"
VERSION = "1.28.4"
BINARY = f"kube-apiserver-v{VERSION}-linux-amd64.xz"
ETCD = "/usr/bin/etcd"
COMPONENT = f"kube-apiserver {VERSION}"
#: The user the admin client certificate names (group system:masters: every right, no RBAC).
ADMIN = "iotistica-test-admin"
FIELD_MANAGER = "iotistica-tests"

Obj = dict[str, Any]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def vendor_problem(vendor: Path = VENDOR, name: str = BINARY) -> str | None:
    """None when ``vendor/name`` is there and matches ``vendor/SHA256SUMS``; else one line naming the file."""
    path, sums = vendor / name, vendor / "SHA256SUMS"
    if not path.is_file():
        return f"{path} missing"
    if not sums.is_file():
        return f"{sums} missing"
    expected = {
        parts[1].lstrip("*"): parts[0]
        for parts in (line.split() for line in sums.read_text(errors="replace").splitlines())
        if len(parts) == 2
    }
    if name not in expected:
        return f"{sums} has no line for {name}"
    if sha256(path) != expected[name]:
        return f"{path} damaged (sha256 differs from SHA256SUMS)"
    return None


@functools.lru_cache(maxsize=1)
def skip_reason() -> str | None:
    """Why the real server cannot run here (one line naming the missing or damaged file), or None."""
    problem = vendor_problem()
    if problem:
        return problem
    for tool in (ETCD, shutil.which("openssl") or "/usr/bin/openssl"):
        if not Path(tool).is_file():
            return f"{tool} missing (scripts/ensure-system-deps.sh installs etcd-server and openssl)"
    return None


def mode() -> str:
    """One line for the test report: does the real API server run in this session?"""
    reason = skip_reason()
    return f"{COMPONENT}: real" if reason is None else f"{COMPONENT}: skipped: {reason}"


# --------------------------------------------------------------------------------------------------
# Process handling: nothing outlives the tests
# --------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )


def _tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


# --------------------------------------------------------------------------------------------------
# Certificates (openssl, EC P-256: fast to make, accepted for serving, clients and token signing)
# --------------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])}: {proc.stderr.strip()}")


def _key(name: str, cwd: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)


def _signed(name: str, subject: str, ext: str, cwd: Path) -> None:
    _key(name, cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd,
    )  # fmt: skip


def make_certificates(d: Path) -> None:
    """ca.{key,crt}; server.{key,crt} for 127.0.0.1/localhost; admin.{key,crt} (system:masters); sa.{key,pub}."""
    _key("ca", d)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=iotistica-test-ca", "-days", "2", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    _signed(
        "server",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n",
        d,
    )
    _signed(
        "admin",
        f"/O=system:masters/CN={ADMIN}",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        d,
    )
    _key("sa", d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class KubeError(Exception):
    """A request the server refused; ``status`` and the Status object ``body`` (its ``message``)."""

    def __init__(self, method: str, path: str, status: int, body: Obj) -> None:
        self.status, self.body = status, body
        super().__init__(f"{method} {path}: HTTP {status}: {body.get('message', body)}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


@dataclass
class KubeApiServer:
    """A running server. ``request``/``apply``/``token`` speak HTTPS as the admin user (system:masters)."""

    url: str
    ca_file: Path
    client_cert: Path
    client_key: Path
    kubeconfig: Path
    workdir: Path
    _discovery: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: Obj | list[Any] | str | None = None,
        *,
        content_type: str = "application/json",
        as_user: str | None = None,
        as_groups: Iterable[str] = (),
        query: dict[str, str] | None = None,
        token: str | None = None,
        check: bool = True,
    ) -> tuple[int, Obj]:
        """One API call. ``as_user``/``as_groups``: impersonation (a ServiceAccount's username gets its groups
        from the server). ``token``: authenticate with a bearer token instead of the admin certificate.
        Raises KubeError for a status >= 400 when ``check``; else returns (status, body)."""
        host = urllib.parse.urlsplit(self.url)
        if token is None:
            ctx = self._ssl
        else:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        conn = http.client.HTTPSConnection(host.hostname or "127.0.0.1", host.port, context=ctx, timeout=30)
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if as_user is not None:
            headers["Impersonate-User"] = as_user
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            for g in as_groups:
                conn.putheader("Impersonate-Group", g)
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            out = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            out = {"message": raw.decode(errors="replace")}
        if check and resp.status >= 400:
            raise KubeError(method, path, resp.status, out)
        return resp.status, out

    # ---- discovery and paths ----

    def refresh_discovery(self, group_versions: Iterable[str] | None = None) -> None:
        """Resource names of every served group/version, or of ``group_versions`` only (after CRDs were added)."""
        if group_versions is None:
            versions = ["v1"]
            for group in self.request("GET", "/apis")[1]["groups"]:
                versions += [v["groupVersion"] for v in group["versions"]]
        else:
            versions = sorted(set(group_versions))
        for gv in versions:
            status, body = self.request("GET", "/api/v1" if gv == "v1" else f"/apis/{gv}", check=False)
            if status != 200:
                continue
            for r in body.get("resources", []):
                if "/" not in r["name"]:
                    self._discovery[(gv, r["kind"])] = (r["name"], bool(r["namespaced"]))

    def path(self, obj: Obj, *, named: bool = True) -> str:
        """The REST path of an object (its collection with ``named=False``)."""
        key = (obj["apiVersion"], obj["kind"])
        if key not in self._discovery:
            self.refresh_discovery()
        if key not in self._discovery:
            raise KeyError(f"the server serves no {obj['kind']} in {obj['apiVersion']}")
        resource, namespaced = self._discovery[key]
        base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        meta = obj.get("metadata", {})
        if namespaced:
            base += f"/namespaces/{meta['namespace']}"
        base += f"/{resource}"
        return f"{base}/{meta['name']}" if named else base

    # ---- the calls tests make most ----

    def apply(
        self, obj: Obj, *, as_user: str | None = None, dry_run: bool = False, field_manager: str = FIELD_MANAGER
    ) -> Obj:
        """Server-side apply (PATCH application/apply-patch+yaml; JSON is YAML), forcing conflicts."""
        query = {"fieldManager": field_manager, "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request(
            "PATCH", self.path(obj), obj, content_type="application/apply-patch+yaml", as_user=as_user, query=query
        )[1]

    def create(self, obj: Obj, *, as_user: str | None = None, dry_run: bool = False) -> Obj:
        query = {"dryRun": "All"} if dry_run else None
        return self.request("POST", self.path(obj, named=False), obj, as_user=as_user, query=query)[1]

    def get(self, obj: Obj) -> Obj | None:
        status, body = self.request("GET", self.path(obj), check=False)
        if status == 404:
            return None
        if status >= 400:
            raise KubeError("GET", self.path(obj), status, body)
        return body

    def delete(self, obj: Obj) -> None:
        status, body = self.request("DELETE", self.path(obj), check=False)
        if status not in (200, 202, 404):
            raise KubeError("DELETE", self.path(obj), status, body)

    def token(self, namespace: str, service_account: str, seconds: int = 600) -> str:
        """A ServiceAccount token from the TokenRequest API (as the kubelet gets one for a pod)."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        return str(self.request("POST", path, body)[1]["status"]["token"])

    def kubectl(
        self, *args: str, as_user: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The machine's kubectl with the admin kubeconfig (``--as`` for ``as_user``). Skips the calling
        test with one line when no kubectl is installed."""
        binary = shutil.which("kubectl")
        if binary is None:
            import pytest

            pytest.skip("kubectl missing (not on PATH)")
        cmd = [binary, "--kubeconfig", str(self.kubeconfig), *(["--as", as_user] if as_user else []), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc


def _write_kubeconfig(path: Path, url: str, d: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(d / "ca.crt")}}],
        "users": [
            {"name": ADMIN, "user": {"client-certificate": str(d / "admin.crt"), "client-key": str(d / "admin.key")}}
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": ADMIN}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))


def _wait_ready(api: KubeApiServer, procs: dict[str, subprocess.Popen], logs: dict[str, Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(logs[name])}")
        try:
            status, body = api.request("GET", "/readyz", check=False)
            if status == 200:
                return
            last = str(body.get("message", status))
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"kube-apiserver not ready after {timeout:g}s ({last}):\n{_tail(logs['kube-apiserver'])}")


@contextlib.contextmanager
def running_kube_apiserver(timeout: float = 60.0) -> Iterator[KubeApiServer]:
    """etcd + kube-apiserver v1.28.4 on free loopback ports, in a temporary folder; stopped and removed on exit.
    The caller checks ``skip_reason()`` first."""
    reason = skip_reason()
    if reason is not None:
        raise RuntimeError(f"{COMPONENT} cannot run: {reason}")
    d = Path(tempfile.mkdtemp(prefix="realkube-"))
    procs: dict[str, subprocess.Popen] = {}
    logs = {"etcd": d / "etcd.log", "kube-apiserver": d / "kube-apiserver.log"}
    try:
        binary = d / "kube-apiserver"
        with lzma.open(VENDOR / BINARY) as src, binary.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        binary.chmod(0o755)
        certs = d / "pki"
        certs.mkdir()
        make_certificates(certs)

        client, peer, secure = free_port(), free_port(), free_port()
        procs["etcd"] = _start(
            [
                ETCD, "--name", "test", "--data-dir", str(d / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"test=http://127.0.0.1:{peer}",
                "--log-level", "warn",
            ],
            logs["etcd"],
        )  # fmt: skip
        procs["kube-apiserver"] = _start(
            [
                str(binary),
                f"--etcd-servers=http://127.0.0.1:{client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'server.crt'}",
                f"--tls-private-key-file={certs / 'server.key'}",
                f"--client-ca-file={certs / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",  # as clusters run it (kubeadm): Pod Security decides, not this flag
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,ValidatingAdmissionPolicy",
                "--feature-gates=ValidatingAdmissionPolicy=true",
                "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--logging-format=text",
                "-v=0",
            ],
            logs["kube-apiserver"],
        )
        url = f"https://127.0.0.1:{secure}"
        api = KubeApiServer(url, certs / "ca.crt", certs / "admin.crt", certs / "admin.key", d / "kubeconfig", d)
        _write_kubeconfig(api.kubeconfig, url, certs)
        _wait_ready(api, procs, logs, timeout)
        yield api
    finally:
        for name in ("kube-apiserver", "etcd"):
            if name in procs:
                stop(procs[name])
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# dist/ on the server: the upstream CRDs, then every object, server-side applied
# --------------------------------------------------------------------------------------------------

CRDS = ROOT.parent / "shared" / "crds"
DIST = ROOT / "dist"
#: Upstream CRDs (../shared/crds) a 1.28 server cannot take as published (platform-facts §16), and what the
#: test server gets instead. dist/ is never changed for the test server: these are the server's limits.
CRD_LIMITS_1_28 = {
    "certificates.cert-manager.io": (
        "spec.versions[*].selectableFields removed (a 1.30+ field; 1.28's server-side apply fails on it)",
        "selectableFields: field not declared in schema",
    ),
    "tlsroutes.gateway.networking.k8s.io": (
        "x-kubernetes-validations rules calling isIP() removed (CEL's IP library arrived in 1.31)",
        "undeclared reference to 'isIP'",
    ),
    "securitypolicies.gateway.envoyproxy.io": (
        "not installed (a rule's estimated CEL cost exceeds 1.28's budget; dist/ has no SecurityPolicy)",
        "estimated rule cost exceeds budget",
    ),
}
#: Namespaces dist/ expects to exist and does not create: Argo CD's own install makes ``argocd``.
PREEXISTING_NAMESPACES = ("argocd",)


def controller_manager_stand_ins(namespaces: Iterable[str]) -> list[tuple[str, Obj]]:
    """What a cluster's kube-controller-manager makes and this server (no controller-manager) lacks: the
    ServiceAccount ``default`` of every namespace (pods without a serviceAccountName run as it)."""
    return [
        (f"<default ServiceAccount of {ns}>", {"apiVersion": "v1", "kind": "ServiceAccount",
                                               "metadata": {"name": "default", "namespace": ns}})
        for ns in sorted(set(namespaces))
    ]  # fmt: skip


def _yaml_docs(path: Path) -> list[Obj]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are 4 MB of YAML
    return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]


def upstream_crds() -> list[Obj]:
    return [doc for path in sorted(CRDS.glob("*/*.yaml")) for doc in _yaml_docs(path)]


def _strip_rules(node: Any, needle: str) -> None:
    if isinstance(node, dict):
        rules = node.get("x-kubernetes-validations")
        if isinstance(rules, list):
            kept = [r for r in rules if needle not in r.get("rule", "")]
            if kept:
                node["x-kubernetes-validations"] = kept
            else:
                del node["x-kubernetes-validations"]
        for value in node.values():
            _strip_rules(value, needle)
    elif isinstance(node, list):
        for value in node:
            _strip_rules(value, needle)


def crd_for_1_28(crd: Obj) -> Obj | None:
    """The CRD as the test's 1.28 server gets it (CRD_LIMITS_1_28), or None when it is not installed."""
    import copy

    name = crd["metadata"]["name"]
    if name not in CRD_LIMITS_1_28:
        return crd
    crd = copy.deepcopy(crd)
    if name == "certificates.cert-manager.io":
        for version in crd["spec"]["versions"]:
            version.pop("selectableFields", None)
        return crd
    if name == "tlsroutes.gateway.networking.k8s.io":
        _strip_rules(crd["spec"], "isIP(")
        return crd
    return None


def dist_objects(dist: Path = DIST) -> list[tuple[str, Obj]]:
    """(path relative to dist/, object) for every object of every release, cluster/<cluster>/ and argocd/."""
    return [
        (str(path.relative_to(dist)), doc)
        for path in sorted([*dist.glob("*/*.yaml"), *dist.glob("cluster/*/*.yaml")])
        for doc in _yaml_docs(path)
        if isinstance(doc, dict) and "kind" in doc
    ]


def as_v1beta1(obj: Obj) -> Obj:
    """A committed admissionregistration.k8s.io/v1 policy object as 1.28 serves it (v1beta1): the apiVersion
    is the only difference (tests/test_kube_admission.py proves the v1beta1 rendering has the same bodies)."""
    if obj["apiVersion"] == "admissionregistration.k8s.io/v1":
        return {**obj, "apiVersion": "admissionregistration.k8s.io/v1beta1"}
    return obj


@dataclass
class DistInstall:
    """What ``install_dist`` found: refusals are (name or path, server message)."""

    crd_refusals: dict[str, str] = field(default_factory=dict)
    crd_failures: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)


#: Objects are applied in waves, each wave in parallel: what later objects need (namespaces; the accounts and
#: roles that bindings name) first.
WAVES = ({"Namespace"}, {"ServiceAccount", "ClusterRole", "Role"})


def _wave(obj: Obj) -> int:
    return next((i for i, kinds in enumerate(WAVES) if obj["kind"] in kinds), len(WAVES))


def apply_all(api: KubeApiServer, items: list[tuple[str, Obj]], workers: int = 4) -> dict[str, str]:
    """Server-side apply (as admin) in waves, ``workers`` requests at a time; returns {label: error}."""
    from concurrent.futures import ThreadPoolExecutor

    failures: dict[str, str] = {}

    def one(item: tuple[str, Obj]) -> None:
        try:
            api.apply(item[1])
        except (KubeError, KeyError) as exc:
            failures[item[0]] = str(exc)

    with ThreadPoolExecutor(workers) as pool:
        for wave in range(len(WAVES) + 1):
            list(pool.map(one, [it for it in items if _wave(it[1]) == wave]))
    return failures


def wait_served(api: KubeApiServer, kinds: Iterable[tuple[str, str]], timeout: float = 30.0) -> None:
    """Until discovery lists every (apiVersion, kind): a new CRD is served a moment after it is created."""
    wanted = set(kinds)
    deadline = time.monotonic() + timeout
    while True:
        api.refresh_discovery({gv for gv, _ in wanted - set(api._discovery)})
        missing = wanted - set(api._discovery)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not served after {timeout:g}s: {sorted(missing)}")
        time.sleep(0.2)


def install_dist(api: KubeApiServer, dist: Path = DIST) -> DistInstall:
    """Every upstream CRD as published (recording what 1.28 refuses, then the CRD_LIMITS_1_28 form), the
    namespaces dist/ expects, then every object of dist/ (policies as v1beta1), server-side applied as admin."""
    result = DistInstall()
    crds = {crd["metadata"]["name"]: crd for crd in upstream_crds()}
    result.crd_refusals = apply_all(api, [(name, crd) for name, crd in crds.items()])
    adapted = {name: crd_for_1_28(crds[name]) for name in result.crd_refusals}
    result.crd_failures = apply_all(api, [(name, crd) for name, crd in adapted.items() if crd is not None])
    served = {
        (f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])
        for name, crd in crds.items()
        if name not in result.crd_failures and adapted.get(name, crd) is not None
        for v in crd["spec"]["versions"]
        if v.get("served")
    }
    namespaces = [
        (n, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}) for n in PREEXISTING_NAMESPACES
    ]
    objects = [(rel, as_v1beta1(obj)) for rel, obj in dist_objects(dist)]
    custom = {gv for gv, _ in served}
    in_namespaces = {o["metadata"]["namespace"] for _, o in objects if o.get("metadata", {}).get("namespace")}
    namespaces += controller_manager_stand_ins(in_namespaces | set(PREEXISTING_NAMESPACES))
    # the built-in kinds while the new CRDs are being established, then the custom resources
    result.failures = apply_all(api, namespaces + [(r, o) for r, o in objects if o["apiVersion"] not in custom])
    wait_served(api, served)
    result.failures |= apply_all(api, [(r, o) for r, o in objects if o["apiVersion"] in custom])
    result.applied = [rel for rel, _ in objects if rel not in result.failures]
    return result
