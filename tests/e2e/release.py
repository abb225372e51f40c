"""One release of dist/ running end to end: the operator's part, the database, Argo CD and the kubelet.

The operator's part is what the README and ``REQUIRED-SECRETS.md`` ask for, with invented values:
- every Secret the file marks "create before the first sync", in the release namespace;
- the license: a JWT (RS256) signed with a key pair made for the test, its public key in the Secret the
  API reads (``api-license-public-key-master``), platform-facts §4;
- the database server: TimescaleDB 2.28.3 (the vendored build, ``tests/realpostgres.py``) with
  password authentication (scram-sha-256) and TLS, reached by a cluster name
  (``iotistica-cnpg-cl01-rw.iotistica-cnpg-cl01.svc.cluster.local``, platform-facts §7); where the
  release has no db-init Job, the database and its application role are created as a DBA would
  (extensions first, by the superuser, platform-facts §17);
- cert-manager's part: the broker's Certificate becomes its TLS Secret, signed by a CA made for the test.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e import argocd
from tests.e2e.kubelet import Kubelet
from tests.e2e.platform_build import Built

ROOT = Path(__file__).resolve().parents[2]
#: Held while a release runs (fixed ports on loopback): e2e modules in parallel workers take turns.
PORTS_LOCK = Path(tempfile.gettempdir()) / "iotistica-e2e-ports.lock"
DB_HOST = "iotistica-cnpg-cl01-rw.iotistica-cnpg-cl01.svc.cluster.local"
TENANT = "73eddd385ce8"  # sha256(customer id)[0:12], the generator's form (platform-facts §1 row 2)

Obj = dict[str, Any]


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def openssl(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout


def license_jwt(key: Path, tenant: str = TENANT, plan: str = "professional") -> str:
    """A license with the claims the API reads (``LicenseData``, api/src/services/auth/license-validator.ts;
    platform-facts §4), signed RS256 with ``key``."""
    now = int(time.time())
    features: tuple[str, ...] = ("canExecuteJobs", "canScheduleJobs", "canRemoteAccess", "canOtaUpdates")
    features += ("canExportData", "hasAdvancedAlerts", "hasCustomDashboards")
    claims = {
        "tenantId": tenant,
        "clientId": tenant,
        "customerName": "E2E Test Customer",
        "plan": plan,
        "features": {"maxDevices": 1000, **{f: True for f in features}},
        "limits": {"maxJobTemplates": 100, "maxAlertRules": 100, "maxUsers": 50},
        "trial": {"isTrialMode": False, "gracePeriodDays": 14},
        "subscription": {
            "status": "active",
            "currentPeriodEndsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 365 * 86400)),
        },
        "issuedAt": now,
        "expiresAt": now + 365 * 86400,
        "iat": now,
        "exp": now + 365 * 86400,
    }
    head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps(claims).encode())
    sig = openssl("dgst", "-sha256", "-sign", str(key), cwd=key.parent, input=f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64url(sig)}"


def required_secrets(release_dir: Path) -> dict[str, list[str]]:
    """Secret -> keys, for the rows of REQUIRED-SECRETS.md the operator creates before the first sync."""
    out: dict[str, list[str]] = {}
    for line in (release_dir / "REQUIRED-SECRETS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and "create before the first sync" in cells[-1]:
            out[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return out


@dataclass
class Release:
    name: str
    namespace: str
    dir: Path
    kube: Any
    kubelet: Kubelet
    argo: argocd.ArgoCD
    pg: Any
    work: Path
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    mqtt_host: str = ""
    mqtt_ca: Path = Path()
    license_key: Path = Path()
    #: The objects the first sync applied (dist/'s, as a test changed them); a later ``sync()`` applies them again.
    synced: list[Obj] | None = None

    def objects(self) -> list[Obj]:
        return argocd.load(self.dir)

    def sync(self, wave_timeout: float = 180.0, objects: list[Obj] | None = None) -> argocd.SyncResult:
        """The platform Application first: this tenant's files of dist/cluster/<cluster>/ (its Namespaces and
        ClusterRoleBinding), then the tenant's Application (``objects``: the release's, as a test changed them)."""
        self.argo.sync_platform(argocd.platform_objects(self.dir))
        if objects is None:
            objects = self.objects() if self.synced is None else copy.deepcopy(self.synced)
        return self.argo.sync(objects, wave_timeout=wave_timeout)

    def svc_ip(self, short: str) -> str:
        return self.kubelet.service_ip(self.namespace, f"{self.name}-{short}")

    def db(self, sql: str, db: str | None = None) -> list[list[str]]:
        """SQL as the superuser (the test's view of the database, from outside the platform)."""
        return self.pg.psql(sql, db=db or self.values[_sql_secret(self)]["dbname"])

    def secret(self, name: str) -> dict[str, str]:
        """The Secret ``name`` of the release's namespace as the server has it now (hooks write some), decoded."""
        live = self.kube.get(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.namespace}}
        )
        assert live is not None, f"Secret {name} missing"
        return {k: base64.b64decode(v).decode() for k, v in (live.get("data") or {}).items()}

    def redis_password(self) -> str:
        """The password the redis-auth hook generated (Secret ``<release>-redis-auth``)."""
        return self.secret(f"{self.name}-redis-auth")["password"]

    def stream_key(self) -> str:
        """The ingestion stream's key, as the stream-key hook resolved it for ingestion (its runtime Secret)."""
        return self.secret(f"{self.name}-ingestion-runtime-env")["REDIS_INGESTION_STREAM_KEY"]

    def redis_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``redis-cli -a <password> ARGS...`` in the Redis pod (``kubectl exec``)."""
        redis = self.kubelet.container(self.namespace, f"Deployment/{self.name}-redis")
        return self.kubelet.exec(redis, ["redis-cli", "--no-auth-warning", "-a", self.redis_password(), *args])


def _sql_secret(r: Release) -> str:
    return next(n for n in r.values if n.startswith("sql-credentials-"))


def _secret_values(name: str, keys: list[str], pg: Any, jwt: str, pub: str, release: str) -> dict[str, str]:
    def tok() -> str:
        return secrets.token_urlsafe(24)

    if name.startswith("sql-credentials-"):
        ns = name.removeprefix("sql-credentials-")
        v = {"server": DB_HOST, "port": str(pg.port), "dbname": f"iotistic_{ns}".replace("-", "_")}
        v |= {"username": f"{ns}-app", "password": tok()}
    elif name.startswith("mqtt-credentials-"):
        v = {"username": "iotistic-api", "password": tok()}
    elif name == "pg-admin-credentials":
        from tests.realpostgres import SUPERUSER, SUPERUSER_PASSWORD

        v = {"username": SUPERUSER, "password": SUPERUSER_PASSWORD}
    elif name.startswith("api-license-credentials-"):
        v = {"key": jwt}
    elif name == "api-license-public-key-master":
        v = {"key": pub}
    elif name == "openai-credentials-master":
        v = {"key": "sk-e2e-" + tok()}
    elif name.startswith(("api-jwt-", "api-bootstrap-token-", "internal-auth-token-")):
        v = {"token": tok()}
    else:
        raise AssertionError(f"REQUIRED-SECRETS.md of {release} names Secret {name}: no invented value for it here")
    missing = [k for k in keys if k not in v]
    assert not missing, f"Secret {name}: keys {missing} have no invented value here"
    return {k: v[k] for k in keys}


def _tls(work: Path, hosts: list[str]) -> tuple[bytes, bytes, bytes]:
    """A CA and a server certificate for ``hosts`` (cert-manager's part)."""
    d = work / "pki"
    d.mkdir(exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=e2e-test-ca", cwd=d)  # fmt: skip
    san = ",".join(f"DNS:{h}" for h in hosts)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj",
            f"/CN={hosts[0]}", cwd=d)  # fmt: skip
    (d / "ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "tls.crt", "-days", "2", "-extfile", "ext", cwd=d)  # fmt: skip
    return (d / "tls.crt").read_bytes(), (d / "tls.key").read_bytes(), (d / "ca.crt").read_bytes()


def public_root_ca(work: Path) -> Path:
    """A root CA made for the test that stands in for the public PKI (``Kubelet.public_ca``): its certificate,
    with its key ``ca.key`` beside it for a test that plays a SaaS on loopback."""
    d = work / "public-pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=e2e public root CA", cwd=d)  # fmt: skip
    (d / "ca.crt").chmod(0o644)
    return d / "ca.crt"


def _pg_tls(pg: Any, work: Path) -> None:
    """TLS on the database server, as a managed server (CNPG) has it: ssl on, a server certificate."""
    d = work / "pg-tls"
    d.mkdir()
    d.chmod(0o755)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.crt",
            "-days", "2", "-subj", f"/CN={DB_HOST}", cwd=d)  # fmt: skip
    for f in ("server.key", "server.crt"):
        shutil.chown(d / f, "postgres", "postgres")
    (d / "server.key").chmod(0o600)
    pg.psql(f"ALTER SYSTEM SET ssl_cert_file = '{d / 'server.crt'}'")
    pg.psql(f"ALTER SYSTEM SET ssl_key_file = '{d / 'server.key'}'")
    pg.psql("ALTER SYSTEM SET ssl = on")
    pg.psql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while pg.psql("SHOW ssl") != [["on"]]:
        assert time.monotonic() < deadline, "ssl did not turn on"
        time.sleep(0.1)


def _secret(ns: str, name: str, data: dict[str, bytes], type_: str = "Opaque") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type_,
        "metadata": {"name": name, "namespace": ns},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


#: Address blocks for releases with pod addresses that run side by side (``Kubelet(net=...)``).
NETS = 4


@contextlib.contextmanager
def _net_slot(pod_addresses: bool) -> Iterator[int]:
    """The loopback this release may use. A release with pod addresses binds only addresses of its own block, so
    several run side by side (pytest-xdist workers, ``make e2e``): it shares ``PORTS_LOCK`` and holds one block's
    lock. A release without them binds the wildcard address, so it holds ``PORTS_LOCK`` alone."""
    held = []
    try:
        ports = open(PORTS_LOCK, "a+")  # noqa: SIM115 - held for the release's life
        held.append(ports)
        fcntl.flock(ports, fcntl.LOCK_SH if pod_addresses else fcntl.LOCK_EX)
        if not pod_addresses:
            yield 0
            return
        while True:
            for k in range(NETS):
                slot = open(PORTS_LOCK.with_name(f"{PORTS_LOCK.stem}-net{k}.lock"), "a+")  # noqa: SIM115
                try:
                    fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    slot.close()
                    continue
                held.append(slot)
                yield k
                return
            time.sleep(1)
    finally:
        for f in reversed(held):
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


@contextlib.contextmanager
def running_release(release: str, built: Built, *, pod_addresses: bool = False) -> Iterator[Release]:
    """A fresh API server, database server and kubelet for ``dist/<release>``, the operator's part done;
    not yet synced. Everything started here is ended on exit (also on failure and Ctrl-C). ``pod_addresses``:
    a pod address per replica and Service proxies (tests/e2e/podnet.py), for workloads with several replicas,
    and releases side by side."""
    rdir = ROOT / "dist" / release
    ns = argocd.tenant(rdir)["namespace"]
    with _net_slot(pod_addresses) as net, _running_release(release, built, rdir, ns, pod_addresses, net) as r:
        yield r


@contextlib.contextmanager
def _running_release(
    release: str, built: Built, rdir: Path, ns: str, pod_addresses: bool, net: int
) -> Iterator[Release]:
    from tests.realkube import running_kube_apiserver
    from tests.realpostgres import running_postgres

    # A release that just ended may still be letting its ports go: wait a little before calling them taken.
    deadline, busy = time.monotonic() + 60, []
    while not pod_addresses and (busy := Kubelet.ports_in_use(argocd.load(rdir))) and time.monotonic() < deadline:
        time.sleep(2)
    if busy:
        raise AssertionError(
            f"e2e {release}: ports in use on this machine: {', '.join(busy)} (the programs bind 0.0.0.0)"
        )
    work = Path(tempfile.mkdtemp(prefix=f"e2e-{release}-"))
    work.chmod(0o755)
    kubelet = None
    try:
        with running_kube_apiserver() as kube, running_postgres(timescaledb=True) as pg:
            _pg_tls(pg, work)
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "license.key", cwd=work)
            openssl("pkey", "-in", "license.key", "-pubout", "-out", "license.pub", cwd=work)
            jwt = license_jwt(work / "license.key")
            pub = (work / "license.pub").read_text()
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            values: dict[str, dict[str, str]] = {}
            for name, keys in required_secrets(rdir).items():
                values[name] = _secret_values(name, keys, pg, jwt, pub, release)
                kube.apply(_secret(ns, name, {k: v.encode() for k, v in values[name].items()}))
            objs = argocd.load(rdir)
            has_db_init = any(o["kind"] == "Job" and o["metadata"]["name"].endswith("-db-init") for o in objs)
            sql = next(v for n, v in values.items() if n.startswith("sql-credentials-"))
            if not has_db_init:
                # The DBA's part where the release has no db-init Job (platform-facts §17).
                pg.psql(f"CREATE ROLE \"{sql['username']}\" LOGIN PASSWORD '{sql['password']}'")
                pg.psql(f'CREATE DATABASE {sql["dbname"]} OWNER "{sql["username"]}"')
                pg.psql("CREATE EXTENSION IF NOT EXISTS timescaledb; CREATE EXTENSION IF NOT EXISTS pgcrypto",
                        db=sql["dbname"])  # fmt: skip
            cert = next(o for o in objs if o["kind"] == "Certificate")
            hosts = list(cert["spec"].get("dnsNames") or [cert["spec"]["commonName"]])
            crt, key, ca = _tls(work, hosts)
            kube.apply(
                _secret(
                    ns, cert["spec"]["secretName"], {"tls.crt": crt, "tls.key": key, "ca.crt": ca}, "kubernetes.io/tls"
                )  # fmt: skip
            )
            (work / "mqtt-ca.crt").write_bytes(ca)
            kubelet = Kubelet(
                kube, work / "node", built.apps | {"go-auth": built.go_auth}, [ns], pod_addresses=pod_addresses, net=net
            )
            kubelet.extra_hosts[DB_HOST] = "127.0.0.1"
            # The public PKI's stand-in, trusted by every image (tests/e2e/auth0_scenarios.py: the Auth0 tenant).
            kubelet.public_ca = public_root_ca(work)
            r = Release(
                release, ns, rdir, kube, kubelet, argocd.ArgoCD(kube, kubelet, ns), pg, work, values,
                hosts[0], work / "mqtt-ca.crt", work / "license.key",
            )  # fmt: skip
            # The public MQTT host reaches the broker (the Gateway passes TLS through, platform-facts §5).
            kubelet.extra_hosts[r.mqtt_host] = r.svc_ip("mosquitto")
            kubelet.write_hosts()
            kubelet.start()
            try:
                yield r
            finally:
                kubelet.stop()
    finally:
        if kubelet is not None:
            kubelet.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- what the tests sync ------------------------------------------------------------------------


def release_of_tier(tier: str) -> str:
    """The first release of dist/ (by name) whose tenant file says ``tier``; any valid fleet has one of each
    tier it uses. A fleet without one fails here, naming the tier."""
    for f in sorted((ROOT / "dist").glob("*/argocd-tenant.json")):
        if json.loads(f.read_text()).get("tier") == tier:
            return f.parent.name
    raise AssertionError(f"e2e: dist/ has no release of tier {tier}")


def probe_budget(r: Release) -> float:
    """The longest time a workload of the release may take to become ready by its own probes: the startup
    probe's budget (failureThreshold x period) plus one readiness period, and the kubelet's back-off for a program
    that exits twice while its dependencies come up (at once after the first exit, 10 s after the second)."""
    budget = 30.0
    for obj in r.objects():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            s = c.get("startupProbe") or {}
            rd = c.get("readinessProbe") or {}
            b = int(s.get("failureThreshold", 0)) * int(s.get("periodSeconds", 10)) + int(rd.get("periodSeconds", 10))
            budget = max(budget, b + 10.0)
    return budget


def api_deployment(objs: list[Obj], release: str) -> Obj:
    return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{release}-api")


def as_the_hpa_leaves_it(objs: list[Obj], release: str) -> list[Obj]:
    """The objects as Argo CD applies them and the HorizontalPodAutoscaler's first reconcile leaves them (no HPA
    controller runs here): a Deployment an HPA targets gets ``spec.replicas`` = ``minReplicas``."""
    for hpa in (o for o in objs if o["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        dep = next(o for o in objs if o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"])
        assert "replicas" not in dep["spec"], (
            f"{ref['name']}: the HPA owns spec.replicas (constructs/core/api_service.py)"
        )
        dep["spec"]["replicas"] = int(hpa["spec"]["minReplicas"])
    return objs


def two_api_replicas(r: Release) -> list[Obj]:
    """Scenario 6's first sync: the API at two replicas or more before any of its pods exists, so that they start
    in the same pass of the kubelet (the worst case for a migration race). A tier with an HPA starts at its
    ``minReplicas`` (the standard tier: 2); a tier with one replica (demo) is scaled to two, as an operator may."""
    objs = as_the_hpa_leaves_it(r.objects(), r.name)
    api = api_deployment(objs, r.name)
    api["spec"]["replicas"] = max(2, int(api["spec"].get("replicas", 1)))
    return objs


def api_replicas(r: Release) -> int:
    """The API's replicas as the first sync set them (``Release.synced``)."""
    assert r.synced is not None, f"{r.name}: not synced yet"
    return int(api_deployment(r.synced, r.name)["spec"]["replicas"])
