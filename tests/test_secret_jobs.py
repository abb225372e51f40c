"""constructs/scripts/secret_jobs.py, run for real: the stream key resolver and the redis-auth generator.

- The licenses are real RS256 JWTs the tests sign with openssl (a fresh RSA key; the signature is
  checked with ``openssl dgst -verify`` so the fixtures are what the API would accept).
- The core (decode, normalise, render) runs without a cluster, in-process and through the CLI.
- The cluster layer runs as a subprocess with the environment of the synthesized Job, against a real
  kube-apiserver v1.28.4 (tests/realkube.py, fixture ``kube_dist``: dist/ applied, so the Job's
  ServiceAccount, Role and RoleBinding are the synthesized ones), authenticated with a ServiceAccount
  token from the TokenRequest API, as the kubelet mounts it. Each run is repeated: the Jobs are
  Argo CD Sync hooks and run on every sync.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import by, container
from tests.realkube import DistInstall, KubeApiServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "constructs" / "scripts" / "secret_jobs.py"
RELEASE, NS = "iotistica", "iotistica"
LICENSE, RUNTIME = f"api-license-credentials-{NS}", f"{RELEASE}-ingestion-runtime-env"
REDIS_AUTH = f"{RELEASE}-redis-auth"
OPENSSL = shutil.which("openssl") or "openssl"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("secret_jobs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jobs = load_module()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required to sign the test licenses")
    d = tmp_path_factory.mktemp("license-key")
    private, public = d / "private.pem", d / "public.pem"
    subprocess.run(
        [OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)],
        check=True,
        capture_output=True,
    )
    subprocess.run([OPENSSL, "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    return private, public


@pytest.fixture(scope="module")
def sign(rsa_key, tmp_path_factory):
    """sign(claims) -> an RS256 JWT, verified with the public key before it is returned."""
    private, public = rsa_key
    d = tmp_path_factory.mktemp("jwt")

    def _sign(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = header or {"alg": "RS256", "typ": "JWT"}
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
        (d / "in").write_bytes(signing_input.encode())
        sig = subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-sign", str(private), str(d / "in")], check=True, capture_output=True
        ).stdout
        (d / "sig").write_bytes(sig)
        verify = subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-verify", str(public), "-signature", str(d / "sig"), str(d / "in")],
            capture_output=True,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        return f"{signing_input}.{b64url(sig)}"

    return _sign


def license_claims(**claims: Any) -> dict[str, Any]:
    return {"clientId": "73eddd385ce8", "plan": "standard", "exp": 4102444800, **claims}


# --------------------------------------------------------------------------------------------------
# Core: no cluster
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, tenant",
    [
        ("73eddd385ce8", "73eddd385ce8"),  # the generator's form: sha256(customer)[0:12]
        ("{73eddd385ce8}", "73eddd385ce8"),
        ("cust_73eddd385ce8", "73eddd385ce8"),
        ("tenant_73eddd385ce8", "73eddd385ce8"),
        ("{tenant_abc-123}", "abc-123"),
        ("cust_{abc}", "abc"),
        ("  0b5e3c8e-6a43-4bd6-9a7c-1f2d3e4f5a6b ", "0b5e3c8e-6a43-4bd6-9a7c-1f2d3e4f5a6b"),
        ("cust_tenant_x", "tenant_x"),  # one prefix only
    ],
)
def test_normalise_tenant(raw: str, tenant: str) -> None:
    assert jobs.normalise_tenant(raw) == tenant


@pytest.mark.parametrize("raw", ["{}", "cust_", "tenant_{}", "a b", "a:b", "x/y", "-lead"])
def test_unusable_tenant_ids_fail(raw: str) -> None:
    with pytest.raises(jobs.JobError, match="not a usable tenant id"):
        jobs.normalise_tenant(raw)


def test_tenant_claim_falls_back_to_customer_id() -> None:
    assert jobs.tenant_from_claims({"tenantId": "tenant_a1", "customerId": "cust_b2"}) == "a1"
    assert jobs.tenant_from_claims({"customerId": "cust_b2"}) == "b2"
    assert jobs.tenant_from_claims({"tenantId": "  ", "customerId": "cust_b2"}) == "b2"
    with pytest.raises(jobs.JobError, match="neither a tenantId nor a customerId"):
        jobs.tenant_from_claims({"clientId": "x"})
    with pytest.raises(jobs.JobError, match="must be a string"):
        jobs.tenant_from_claims({"tenantId": 42})


def test_runtime_env_keeps_the_hash_tag_braces() -> None:
    env = jobs.runtime_env("73eddd385ce8")
    assert env == {
        "INGESTION_TENANT_ID": "73eddd385ce8",
        "REDIS_INGESTION_STREAM_KEY": "tenant:{73eddd385ce8}:agent:devices:ingestion",
    }


def test_decodes_a_real_rs256_license(sign) -> None:
    token = sign(license_claims(tenantId="{cust_73eddd385ce8}", customerName="ACME"))
    claims = jobs.decode_claims(token + "\n")
    assert claims["customerName"] == "ACME"
    assert jobs.tenant_from_claims(claims) == "73eddd385ce8"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: "", "license is empty"),
        (lambda t: t.rsplit(".", 1)[0], "3 non-empty dot-separated parts"),
        (lambda t: t + ".x", "3 non-empty dot-separated parts"),
        (lambda t: "!!!." + t.split(".", 1)[1], "header is not base64url"),
        (lambda t: t.split(".")[0] + "." + b64url(b"not json") + "." + t.split(".")[2], "payload is not JSON"),
        (lambda t: t.split(".")[0] + "." + b64url(b"[1, 2]") + "." + t.split(".")[2], "not a JSON object"),
        (lambda t: "not a jwt at all", "3 non-empty dot-separated parts"),
    ],
)
def test_malformed_licenses_fail(sign, mutate, message: str) -> None:
    with pytest.raises(jobs.JobError, match=message):
        jobs.decode_claims(mutate(sign(license_claims(tenantId="t1"))))


def test_only_rs256_licenses(sign) -> None:
    token = sign(license_claims(tenantId="t1"), header={"alg": "HS256", "typ": "JWT"})
    with pytest.raises(jobs.JobError, match="expected an RS256 JWT"):
        jobs.decode_claims(token)


def test_cli_prints_the_env_for_a_license_file(sign, tmp_path: Path) -> None:
    (tmp_path / "license.jwt").write_text(sign(license_claims(tenantId="tenant_73eddd385ce8")))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "resolve-stream-key", "--license-file", str(tmp_path / "license.jwt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "INGESTION_TENANT_ID=73eddd385ce8",
        "REDIS_INGESTION_STREAM_KEY=tenant:{73eddd385ce8}:agent:devices:ingestion",
    ]
    (tmp_path / "bad.jwt").write_text("a.b")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "resolve-stream-key", "--license-file", str(tmp_path / "bad.jwt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("resolve-stream-key: ERROR: license is malformed")


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(jobs.JobError, match="only loopback"):
        jobs.KubeApi("http://10.0.0.1:6443", "t")
    jobs.KubeApi("https://10.0.0.1:6443", "t")  # in-cluster: https with the ServiceAccount's CA


# --------------------------------------------------------------------------------------------------
# Cluster layer: the Job as synthesized, against the loopback API with the Job's Role
# --------------------------------------------------------------------------------------------------


class Cluster:
    """The release namespace on the real server, as the admin sees it (seed and read Secrets)."""

    def __init__(self, api: KubeApiServer, namespace: str = NS) -> None:
        self.api, self.namespace = api, namespace

    def _secret(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.namespace}}

    def put(self, name: str, data: dict[str, str]) -> None:
        """Create or replace a Secret (string values)."""
        self.api.delete(self._secret(name))
        self.api.create({**self._secret(name), "stringData": data})

    def get(self, name: str) -> dict[str, Any] | None:
        return self.api.get(self._secret(name))

    def value(self, name: str, key: str) -> str:
        secret = self.get(name)
        assert secret is not None, f"Secret {name} does not exist"
        return base64.b64decode(secret["data"][key]).decode()

    def delete(self, *names: str) -> None:
        for name in names:
            self.api.delete(self._secret(name))


def job_env(obj: dict[str, Any], api: KubeApiServer, token_file: Path, **extra: str) -> dict[str, str]:
    """The container env of the synthesized Job (downward API resolved), pointed at the real server with the
    token and CA a pod gets mounted."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in container(obj)["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}:
            env[e["name"]] = obj["metadata"]["namespace"]
        else:
            raise AssertionError(f"unexpected env source {e}")
    env.update(KUBE_API_URL=api.url, KUBE_TOKEN_FILE=str(token_file), KUBE_CA_FILE=str(api.ca_file), **extra)
    return env


def run_job(
    obj: dict[str, Any], api: KubeApiServer, tmp_path: Path, token: str | None = None, **extra: str
) -> subprocess.CompletedProcess:
    """The Job's container command, run here as its pod would run it (token of its ServiceAccount)."""
    spec = obj["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True
    token_file = tmp_path / "token"
    token_file.write_text(
        token if token is not None else api.token(obj["metadata"]["namespace"], spec["serviceAccountName"])
    )
    command = container(obj)["command"]
    assert command[0] == "python3" and command[1] == "/scripts/secret_jobs.py"
    return subprocess.run(
        [sys.executable, str(SCRIPT), *command[2:]],
        env=job_env(obj, api, token_file, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cluster(kube_api: KubeApiServer, kube_dist: DistInstall) -> Cluster:
    """The release namespace of dist/iotistica on the server, without the Secrets these Jobs read or write."""
    assert kube_dist.failures == {}
    c = Cluster(kube_api)
    c.delete(LICENSE, RUNTIME, REDIS_AUTH, "unrelated")
    return c


@pytest.fixture
def resolver(manifests, kube_api: KubeApiServer, cluster: Cluster):
    return by(manifests[RELEASE], "Job", f"{RELEASE}-stream-key-resolver"), kube_api, cluster


def test_resolver_creates_then_updates_the_runtime_secret(resolver, sign, tmp_path: Path) -> None:
    job, api, kube = resolver
    kube.put(LICENSE, {"key": sign(license_claims(tenantId="{cust_73eddd385ce8}"))})
    kube.put("unrelated", {"password": "other"})

    first = run_job(job, api, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(
        f"created Secret {NS}/{RUNTIME}: INGESTION_TENANT_ID=73eddd385ce8 "
        "REDIS_INGESTION_STREAM_KEY=tenant:{73eddd385ce8}:agent:devices:ingestion"
    )
    assert kube.value(RUNTIME, "REDIS_INGESTION_STREAM_KEY") == "tenant:{73eddd385ce8}:agent:devices:ingestion"
    assert kube.value(RUNTIME, "INGESTION_TENANT_ID") == "73eddd385ce8"
    secret = kube.get(RUNTIME)
    assert secret is not None
    labels = secret["metadata"]["labels"]
    assert labels["iotistica.com/release"] == RELEASE and labels["app.kubernetes.io/part-of"] == "iotistica"
    assert "app.kubernetes.io/instance" not in labels, "Argo CD's label tracking would prune a runtime Secret"
    version = secret["metadata"]["resourceVersion"]

    again = run_job(job, api, tmp_path)  # every sync: same data, a patch that changes nothing
    assert again.returncode == 0 and f"updated Secret {NS}/{RUNTIME}" in again.stdout, again.stderr
    assert kube.value(RUNTIME, "INGESTION_TENANT_ID") == "73eddd385ce8"
    assert kube.get(RUNTIME)["metadata"]["resourceVersion"] == version, "a no-op patch writes nothing"

    kube.put(LICENSE, {"key": sign(license_claims(customerId="cust_0a1b2c3d4e5f"))})  # a new license
    third = run_job(job, api, tmp_path)
    assert third.returncode == 0, third.stderr
    assert kube.value(RUNTIME, "REDIS_INGESTION_STREAM_KEY") == "tenant:{0a1b2c3d4e5f}:agent:devices:ingestion"
    assert kube.value("unrelated", "password") == "other"


def test_resolver_waits_for_the_license_then_fails_loudly(resolver, tmp_path: Path) -> None:
    job, api, kube = resolver
    proc = run_job(job, api, tmp_path, LICENSE_WAIT_SECONDS="0.6", POLL_SECONDS="0.2")
    assert proc.returncode == 1
    assert f"license Secret {NS}/{LICENSE} not found after 0.6s" in proc.stderr
    assert proc.stdout.count("waiting for Secret") >= 2
    assert kube.get(RUNTIME) is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"key": "not-a-jwt"}, "license is malformed"),
        ({"other": "x"}, "has no key 'key'"),
        ({"key": "  "}, "has no key 'key' (or it is empty)"),
    ],
)
def test_resolver_fails_on_a_bad_license(resolver, tmp_path: Path, data, message: str) -> None:
    job, api, kube = resolver
    kube.put(LICENSE, data)
    kube.put(
        RUNTIME, {"INGESTION_TENANT_ID": "old", "REDIS_INGESTION_STREAM_KEY": "tenant:{old}:agent:devices:ingestion"}
    )
    proc = run_job(job, api, tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert kube.value(RUNTIME, "INGESTION_TENANT_ID") == "old", "a bad license never overwrites the runtime env"


def test_resolver_license_without_tenant_fails(resolver, sign, tmp_path: Path) -> None:
    job, api, kube = resolver
    kube.put(LICENSE, {"key": sign(license_claims())})
    proc = run_job(job, api, tmp_path)
    assert proc.returncode == 1 and "neither a tenantId nor a customerId" in proc.stderr


def test_resolver_needs_the_namespace_wide_create_rule(
    manifests, kube_api: KubeApiServer, sign, tmp_path: Path
) -> None:
    """Why the Role's create rule has no resourceNames: Kubernetes never matches create against names. The
    Job's ServiceAccount, Role (create limited by name) and RoleBinding in a namespace of this test's own."""
    objs = manifests[RELEASE]
    scratch = "secret-jobs-create-by-name"
    name = f"{RELEASE}-stream-key-resolver"
    kube_api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": scratch}})
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        obj = copy.deepcopy(by(objs, kind, name))
        obj["metadata"]["namespace"] = scratch
        if kind == "Role":
            obj["rules"] = [{**r, "resourceNames": [RUNTIME]} if r["verbs"] == ["create"] else r for r in obj["rules"]]
        if kind == "RoleBinding":
            obj["subjects"] = [{**s, "namespace": scratch} for s in obj["subjects"]]
        kube_api.apply(obj)
    Cluster(kube_api, scratch).put(LICENSE, {"key": sign(license_claims(tenantId="t1"))})
    job = copy.deepcopy(by(objs, "Job", name))
    job["metadata"]["namespace"] = scratch
    proc = run_job(job, kube_api, tmp_path)
    assert proc.returncode == 1 and "HTTP 403" in proc.stderr and "RBAC" in proc.stderr, proc.stderr
    assert 'cannot create resource "secrets"' in proc.stderr, proc.stderr


def test_resolver_with_a_wrong_token_fails(resolver, sign, tmp_path: Path) -> None:
    job, api, kube = resolver
    kube.put(LICENSE, {"key": sign(license_claims(tenantId="t1"))})
    proc = run_job(job, api, tmp_path, token="not-a-token")
    assert proc.returncode == 1 and "HTTP 401" in proc.stderr
    other = api.token(NS, f"{RELEASE}-redis-auth-generator")  # a real token of another Job's account
    proc = run_job(job, api, tmp_path, token=other)
    assert proc.returncode == 1 and "HTTP 403" in proc.stderr and "RBAC" in proc.stderr


@pytest.fixture
def generator(manifests, kube_api: KubeApiServer, cluster: Cluster):
    return by(manifests[RELEASE], "Job", f"{RELEASE}-redis-auth-generator"), kube_api, cluster


def test_generator_creates_once_and_never_rotates(generator, tmp_path: Path) -> None:
    job, api, kube = generator
    first = run_job(job, api, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"created Secret {NS}/{REDIS_AUTH} with a random password"
    secret = kube.get(REDIS_AUTH)
    assert secret is not None
    password = kube.value(REDIS_AUTH, "password")
    assert len(password) >= 40 and password not in first.stdout + first.stderr
    assert secret["immutable"] is True and secret["type"] == "Opaque"
    assert "app.kubernetes.io/instance" not in secret["metadata"]["labels"]

    for _ in range(2):
        again = run_job(job, api, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "exists: left untouched" in again.stdout
    assert kube.value(REDIS_AUTH, "password") == password
    assert kube.get(REDIS_AUTH)["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]

    kube.delete(REDIS_AUTH)  # what an operator does to rotate (the Secret's annotation says so)
    assert run_job(job, api, tmp_path).returncode == 0
    assert kube.value(REDIS_AUTH, "password") != password, "random per run that creates it"


def test_generator_keeps_an_existing_secret(generator, tmp_path: Path) -> None:
    job, api, kube = generator
    kube.put(REDIS_AUTH, {"password": "set-by-an-operator"})
    proc = run_job(job, api, tmp_path)
    assert proc.returncode == 0 and "left untouched" in proc.stdout
    assert kube.value(REDIS_AUTH, "password") == "set-by-an-operator"


def test_generator_refuses_a_secret_without_password(generator, tmp_path: Path) -> None:
    job, api, kube = generator
    kube.put(REDIS_AUTH, {"pass": "typo"})
    proc = run_job(job, api, tmp_path)
    assert proc.returncode == 1 and "without a non-empty key 'password'" in proc.stderr
    assert kube.get(REDIS_AUTH)["data"] == {"pass": base64.b64encode(b"typo").decode()}


def test_generator_loses_a_race_gracefully(monkeypatch) -> None:
    """Two runs at once: the second create gets 409 and keeps the winner's password."""
    monkeypatch.setenv("NAMESPACE", NS)
    monkeypatch.setenv("RELEASE", RELEASE)
    monkeypatch.setenv("REDIS_AUTH_SECRET_NAME", REDIS_AUTH)
    winner = {"data": {"password": base64.b64encode(b"winner").decode()}}
    calls: list[str] = []

    class Racing:
        def get_secret(self, namespace: str, name: str):
            calls.append("get")
            return None if calls.count("get") == 1 else winner

        def create_secret(self, namespace: str, manifest):
            calls.append("create")
            return False

    assert jobs.ensure_redis_auth(Racing(), generate=lambda: "loser") == "exists"
    assert calls == ["get", "create", "get"]
