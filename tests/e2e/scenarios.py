"""End to end, scenarios 1 to 4 and 7: a release of dist/ synced by Argo CD's rules to a real kube-apiserver and
run by a kubelet made of the real programs (the platform's api/ and ingestion/, Redis, mosquitto with go-auth,
TimescaleDB with TLS, the hook Jobs' scripts). See docs/e2e.md. Marked ``e2e`` (``make e2e``; ``-m "not e2e"``
leaves them out).

The tests take the ``synced`` release of the test module that collects them (``test_e2e_*.py``, one per
release; tests/e2e/conftest.py); their names start with ``test_`` so that those modules collect them."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import socket
import subprocess
import time
import uuid
from typing import Any

import pytest

from tests.e2e import platform_build
from tests.e2e.release import Release, probe_budget

MISSING = platform_build.missing()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MISSING is not None, reason=f"e2e: {MISSING}"),
    pytest.mark.timeout(600),
]


def _resource_versions(r: Release) -> dict[str, str]:
    out = {}
    for obj in r.objects():
        if obj["kind"] in ("Job",) or not r.argo.served(obj):
            continue
        live = r.kube.get(obj)
        assert live is not None, f"{obj['kind']}/{obj['metadata']['name']} missing on the server"
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = live["metadata"]["resourceVersion"]
    for name in (f"{r.name}-redis-auth", f"{r.name}-ingestion-runtime-env"):
        live = r.kube.get({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": r.namespace}})
        assert live is not None, f"Secret {name} (written by a hook Job) missing"
        out[f"Secret/{name}"] = live["metadata"]["resourceVersion"]
    return out


def _restarts(r: Release) -> dict[str, tuple[str, int]]:
    return {
        f"{p.name}/{c.name}": (p.template_hash, c.restarts)
        for p in list(r.kubelet.pods.values())
        if not p.owner.startswith("Job/")
        for c in p.containers
    }


# ---- scenario 1 ----------------------------------------------------------------------------------


def test_every_workload_ready_and_every_hook_succeeds(synced: tuple[Release, Any]) -> None:
    r, result = synced
    hooks = sorted(o["metadata"]["name"] for o in r.objects() if o["kind"] == "Job")
    assert result.hooks == {h: "Succeeded" for h in hooks}
    workloads = sorted(
        f"{o['kind']}/{o['metadata']['name']}" for o in r.objects() if o["kind"] in ("Deployment", "StatefulSet")
    )
    ready = sorted(
        w for w in workloads if w not in result.not_run and all(p.ready for p in r.kubelet.pods_of(w, r.namespace))
    )
    # The dashboard's image is the one workload not run (no vendored build of it; docs/e2e.md).
    assert result.not_run == [f"Deployment/{r.name}-dashboard"]
    assert ready == [w for w in workloads if w not in result.not_run], r.kubelet.report()
    # Hooks with HookSucceeded are gone from the server after they succeeded.
    for h in hooks:
        assert (
            r.kube.get({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": h, "namespace": r.namespace}})
            is None
        )


def test_settings_over_time_start(synced: tuple[Release, Any]) -> None:
    """Scenario 7: a statement of the API blocked on a lock (autoscale_scenarios.py) starts here; the end of this
    module checks that the server cancelled it after DB_STATEMENT_TIMEOUT_MS."""
    from tests.e2e import autoscale_scenarios

    autoscale_scenarios.statement_timeout_start(synced[0])


def test_a_second_sync_changes_nothing(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    before, restarts = _resource_versions(r), _restarts(r)
    result = r.sync(wave_timeout=probe_budget(r))
    assert set(result.hooks.values()) == {"Succeeded"}
    assert _resource_versions(r) == before
    time.sleep(1.5)  # one kubelet reconcile round
    assert _restarts(r) == restarts, r.kubelet.report()


def test_services_resolve_to_addresses_of_their_own(synced: tuple[Release, Any]) -> None:
    """From inside a pod: the short and the full Service names resolve to the Service's own 127.x address."""
    r, _ = synced
    c = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
    names = {f"{r.name}-redis", f"{r.name}-redis.{r.namespace}.svc.cluster.local", f"{r.name}-mosquitto"}
    script = "const dns=require('dns');Promise.all(process.argv.slice(1).map(n=>dns.promises.lookup(n)))" \
             ".then(a=>console.log(JSON.stringify(a.map(x=>x.address))))"  # fmt: skip
    out = r.kubelet.exec(c, ["node", "-e", script, *sorted(names)])
    assert out.returncode == 0, out.stderr
    got = dict(zip(sorted(names), json.loads(out.stdout), strict=True))
    for n, ip in got.items():
        assert ip == r.svc_ip(n.split(".")[0].removeprefix(f"{r.name}-")), (n, ip)
    assert len({r.svc_ip("redis"), r.svc_ip("mosquitto"), r.svc_ip("api")}) == 3


# ---- the platform's HTTP API, as a client outside the cluster reaches it (the Service; the Gateway is not run)


def _api(r: Release, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(r.svc_ip("api"), 3002, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **headers} if data else dict(headers)
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return resp.status, raw.decode(errors="replace")


ADMIN_PASSWORD = "e2e-Admin-password-1"


def _bootstrap_and_login(r: Release) -> str:
    """The operator's documented first login (docs/e2e.md, README): bootstrap-admin with the token, then login."""
    token = r.values["api-bootstrap-token-master"]["token"]
    status, body = _api(
        r, "POST", "/api/v1/auth/bootstrap-admin", {"password": ADMIN_PASSWORD}, **{"x-bootstrap-token": token}
    )
    assert status == 200, body
    status, body = _api(r, "POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200, body
    ACCESS_TOKENS[r.name] = str(body["data"]["accessToken"])
    return ACCESS_TOKENS[r.name]


#: The last access token a login gave, per release (the auth rate limit allows 10 attempts a minute).
ACCESS_TOKENS: dict[str, str] = {}


# ---- scenario 2 ----------------------------------------------------------------------------------


def test_first_login_by_the_documented_steps(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    # Before the bootstrap call nobody can log in as admin (the platform-config hook created it without a password).
    status, _ = _api(r, "POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 401
    # A wrong token is refused.
    status, _ = _api(
        r, "POST", "/api/v1/auth/bootstrap-admin", {"password": ADMIN_PASSWORD}, **{"x-bootstrap-token": "x"}
    )
    assert status == 401
    access = _bootstrap_and_login(r)
    status, me = _api(r, "GET", "/api/v1/auth/me", Authorization=f"Bearer {access}")
    assert status == 200, me
    assert "admin" in json.dumps(me)
    # What the token can do afterwards (docs/e2e.md): while INITIAL_ADMIN_BOOTSTRAP_TOKEN is set, it resets the
    # admin password again and revokes the admin's refresh tokens (api/src/services/auth/auth.ts).
    token = r.values["api-bootstrap-token-master"]["token"]
    status, _ = _api(
        r, "POST", "/api/v1/auth/bootstrap-admin", {"password": ADMIN_PASSWORD + "x"}, **{"x-bootstrap-token": token}
    )
    assert status == 200
    status, _ = _api(r, "POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 401


# ---- scenario 3 ----------------------------------------------------------------------------------


def _outside(
    r: Release, argv: list[str], timeout: float = 30, namespace: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A program outside the cluster (``namespace`` None: only public names resolve, as public DNS has them), or
    resolving as a pod of ``namespace`` does: in a private mount namespace with that hosts file over /etc/hosts
    (the machine's own file is never changed)."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    hosts = str(r.kubelet.hosts_for(namespace))
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, hosts, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _provision_agent(r: Release, name: str) -> tuple[str, dict[str, Any]]:
    """An agent provisioned as agents and their operator do it: admin login, a fleet, a provisioning key, then
    ``POST /api/v1/agent/register`` with the key and the agent's public key. Returns (agent uuid, mqtt answer)."""
    # An earlier login's token if there is one (the auth rate limit allows 10 attempts a minute per client).
    access = ACCESS_TOKENS.get(r.name) or _bootstrap_and_login(r)
    auth = {"Authorization": f"Bearer {access}"}
    status, fleet = _api(r, "POST", "/api/v1/fleets", {"fleet_name": f"e2e-{name}"}, **auth)
    assert status in (200, 201), fleet
    fleet_uuid = fleet.get("fleet_uuid")
    assert fleet_uuid, json.dumps(fleet)
    status, key = _api(r, "POST", "/api/v1/provisioning-keys", {"fleetUuid": fleet_uuid, "maxDevices": 5}, **auth)
    assert status in (200, 201), key
    prov_key = (key.get("data") or key).get("key") or (key.get("data") or key).get("provisioningKey")
    assert prov_key, json.dumps(key)
    agent = str(uuid.uuid4())
    # The agent's key pair (proof of possession): its public key in PEM, as the agent sends it.
    key_pem = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                             capture_output=True, check=True).stdout  # fmt: skip
    pub_pem = subprocess.run(["openssl", "pkey", "-pubout"], input=key_pem, capture_output=True, check=True).stdout
    reg = {"uuid": agent, "deviceName": name, "deviceType": "standalone", "deviceApiKey": secrets.token_hex(16),
           "devicePublicKey": pub_pem.decode()}  # fmt: skip
    status, answer = _api(r, "POST", "/api/v1/agent/register", reg, **{"x-provisioning-key": prov_key})
    assert status in (200, 201), answer
    answer = answer.get("data") or answer
    return agent, answer["mqtt"]


def test_an_agent_is_provisioned_connects_through_go_auth_and_its_reading_lands(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    agent, mqtt = _provision_agent(r, "e2e-agent")
    broker = mqtt["brokerConfig"]
    # The broker address an agent is handed is the public MQTT host over TLS (platform-config hook), not localhost.
    assert (broker["protocol"], broker["host"], broker["port"], broker["useTls"]) == ("mqtts", r.mqtt_host, 8883, True)
    topic = mqtt["topics"]["publish"][0].removesuffix("#") + "endpoints/e2e"
    db = r.values[next(n for n in r.values if n.startswith("sql-credentials-"))]["dbname"]
    # The agent publishes a reading every second, as agents do, until the first lands in `readings` (the API
    # subscribes MQTT_STARTUP_DELAY_MS, 15 s, after it started; a reading sent before has no subscriber).
    deadline = time.monotonic() + 60
    rows: list[list[str]] = []
    sent = 0
    while time.monotonic() < deadline and not rows:
        sent += 1
        reading = {
            "deviceName": "e2e-sensor",
            "protocol": "modbus",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "data": {"readings": [{"metric": "e2e_temperature", "value": 21.5, "unit": "C"}]},
        }
        pub = _outside(
            r,
            ["mosquitto_pub", "-h", broker["host"], "-p", str(broker["port"]), "--cafile", str(r.mqtt_ca),
             "-u", mqtt["username"], "-P", mqtt["password"], "-i", f"agent-{agent[:8]}", "-q", "1",
             "-t", topic, "-m", json.dumps(reading)],
        )  # fmt: skip
        assert pub.returncode == 0, pub.stderr
        time.sleep(1.0)
        rows = r.pg.psql(f"SELECT DISTINCT metric_name, value FROM readings WHERE agent_uuid = '{agent}'", db=db)
    assert rows == [["e2e_temperature", "21.5"]], r.kubelet.report()
    # A wrong password is refused by go-auth (the API's /mosquitto-auth/user answers 4xx).
    bad = _outside(
        r,
        ["mosquitto_pub", "-h", broker["host"], "-p", "8883", "--cafile", str(r.mqtt_ca), "-u", mqtt["username"],
         "-P", "wrong", "-t", topic, "-m", "{}"],
    )  # fmt: skip
    assert bad.returncode != 0


def test_the_seeds_operational_checks(synced: tuple[Release, Any]) -> None:
    """Stream depth with XLEN on the stream key (in the Redis pod) and mosquitto_sub on $SYS (with credentials)."""
    r, _ = synced
    key = r.stream_key()
    redis = r.kubelet.container(r.namespace, f"Deployment/{r.name}-redis")
    out = r.kubelet.exec(redis, ["redis-cli", "XLEN", key])
    assert out.returncode == 0 and out.stdout.strip().isdigit(), (out.stdout, out.stderr)
    creds = r.values[next(n for n in r.values if n.startswith("mqtt-credentials-"))]
    sub = _outside(
        r,
        ["mosquitto_sub", "-h", r.svc_ip("mosquitto"), "-p", "1883", "-u", creds["username"], "-P", creds["password"],
         "-t", "$SYS/broker/version", "-C", "1", "-W", "20"],
    )  # fmt: skip
    assert sub.returncode == 0 and sub.stdout.startswith("mosquitto version"), (sub.stdout, sub.stderr)


# ---- scenario 4 ----------------------------------------------------------------------------------


def test_a_virtual_agents_configuration_names_resolve_from_the_agents_namespace(synced: tuple[Release, Any]) -> None:
    """The API deploys a virtual agent with IOTISTICA_API = its CLOUD_API_URL and MQTT_BROKER_URL = its own
    MQTT_BROKER_URL (``getDefaultBrokerConfig``: the env wins over the database, virtual-agent-deployer.ts). Both
    names must resolve from the virtual agents' namespace and reach the API and the broker there."""
    from urllib.parse import urlsplit

    r, _ = synced
    api = next(o for o in r.objects() if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{r.name}-api")
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    agents_ns = env.get("VIRTUAL_AGENT_NAMESPACE") or "virtual-agents"
    r.kubelet.write_hosts([agents_ns])
    for var, svc in (("CLOUD_API_URL", "api"), ("MQTT_BROKER_URL", "mosquitto")):
        host = urlsplit(env[var]).hostname
        got = _outside(r, ["getent", "ahostsv4", host], namespace=agents_ns)
        assert got.returncode == 0, f"{var}={env[var]}: {host} does not resolve from namespace {agents_ns}"
        assert got.stdout.split()[0] == r.svc_ip(svc), (var, got.stdout)
    # The short name, which the API passed before (platform-facts §17), does not resolve there.
    assert _outside(r, ["getent", "ahostsv4", f"{r.name}-mosquitto"], namespace=agents_ns).returncode != 0
    # And the API answers at the URL the agent gets (its /health), from the agents' namespace.
    url = env["CLOUD_API_URL"].rstrip("/") + "/health"
    got = _outside(r, ["python3", "-c", f"import urllib.request;print(urllib.request.urlopen({url!r}).status)"],
                   namespace=agents_ns)  # fmt: skip
    assert got.stdout.strip() == "200", got.stderr


# ---- scenario 7 (a first slice) ------------------------------------------------------------------


def _container_env(r: Release, workload: str) -> dict[str, str]:
    dep = next(o for o in r.objects() if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{r.name}-{workload}")
    return {e["name"]: str(e.get("value")) for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def test_settings_take_effect_in_the_running_programs(synced: tuple[Release, Any]) -> None:
    """Checked from outside each program: the database sees TLS connections named as the manifests name them;
    Redis runs with the ConfigMap's memory settings and refuses a client without the password; the broker
    refuses an anonymous client; ingestion's pool is the size DB_POOL_SIZE says (its /metrics)."""
    r, _ = synced
    db = r.values[next(n for n in r.values if n.startswith("sql-credentials-"))]["dbname"]
    rows = r.pg.psql(
        "SELECT a.application_name, bool_and(s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
        f" WHERE a.datname = '{db}' AND a.application_name LIKE 'iotistic-%' GROUP BY 1 ORDER BY 1"
    )
    by_app = {name: (ssl, int(n)) for name, ssl, n in rows}
    # DB_SSL=true: every connection of the API (and of ingestion, which connects when it writes and lets idle
    # connections go) is encrypted, under the application names the programs default to.
    assert "iotistic-api" in by_app and set(by_app) <= {"iotistic-api", "iotistic-ingestion"}, rows
    assert all(ssl == "t" for ssl, _ in by_app.values()), rows
    # DB_POOL_SIZE bounds each program's connections.
    for app, workload in (("iotistic-api", "api"), ("iotistic-ingestion", "ingestion")):
        assert by_app.get(app, ("t", 0))[1] <= int(_container_env(r, workload)["DB_POOL_SIZE"]), rows

    redis_conf = next(o for o in r.objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{r.name}-redis")
    conf = dict(
        line.split(None, 1) for line in redis_conf["data"]["redis.conf"].splitlines() if line and line[0] != "#"
    )
    redis = r.kubelet.container(r.namespace, f"Deployment/{r.name}-redis")
    for key in ("maxmemory-policy", "maxmemory"):
        out = r.kubelet.exec(redis, ["redis-cli", "CONFIG", "GET", key]).stdout.split()
        want = conf[key].strip()
        if key == "maxmemory":  # redis.conf says 1536mb; CONFIG GET answers bytes
            want = str(int(want.removesuffix("mb")) * 2**20) if want.endswith("mb") else want
        assert out[-1] == want, (key, out)
    noauth = subprocess.run(
        ["redis-cli", "-h", r.svc_ip("redis"), "-p", "6379", "--no-auth-warning", "PING"],
        capture_output=True, text=True, timeout=10, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert "NOAUTH" in noauth.stdout + noauth.stderr, noauth.stdout

    anon = subprocess.run(
        ["mosquitto_sub", "-h", r.svc_ip("mosquitto"), "-p", "1883", "-t", "$SYS/#", "-C", "1", "-W", "5"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert anon.returncode != 0  # allow_anonymous false

    conn = http.client.HTTPConnection(r.svc_ip("ingestion"), 3003, timeout=10)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    conn.close()
    line = next(x for x in metrics.splitlines() if x.startswith("iotistic_ingestion_db_pool_configured_max"))
    assert float(line.split()[-1]) == float(_container_env(r, "ingestion")["DB_POOL_SIZE"]), line


# ---- scenario 7 (more settings) ------------------------------------------------------------------

_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _metric(r: Release, workload: str, port: int, name: str) -> float:
    return metric_at(r.svc_ip(workload), port, name)


def metric_at(ip: str, port: int, name: str) -> float:
    """One sample of ``name`` on ``http://ip:port/metrics`` (a Service's address, or a pod's own)."""
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    line = next((x for x in text.splitlines() if x.split("{")[0].split(" ")[0] == name), None)
    assert line is not None, f"{ip}:{port}/metrics has no {name}"
    return float(line.split()[-1])


def _pod_logs(r: Release, workload: str) -> str:
    """The workload's logs as ``kubectl logs`` shows them (every container run of every pod)."""
    pods = r.kubelet.pods_of(f"Deployment/{r.name}-{workload}", r.namespace)
    return "\n".join(p.logs() for p in pods)


def test_more_settings_take_effect_in_the_running_programs(synced: tuple[Release, Any]) -> None:
    """CORS_ORIGINS, JWT_ACCESS_TOKEN_EXPIRY and LOG_LEVEL of the API; WORKER_COUNT and the autoscaler's bounds
    of ingestion; every directive of the Redis ConfigMap that Redis reports; the broker's listeners (TLS only
    on 8883, websockets on 9001). Each checked from outside the program."""
    r, _ = synced
    api_env, ing_env = _container_env(r, "api"), _container_env(r, "ingestion")

    # CORS_ORIGINS: an allowed origin is echoed in the preflight answer; any other origin is not.
    allowed = api_env["CORS_ORIGINS"].split(",")[0].strip()
    for origin, want in ((allowed, allowed), ("https://not-allowed.example", None)):
        conn = http.client.HTTPConnection(r.svc_ip("api"), 3002, timeout=10)
        conn.request(
            "OPTIONS", "/api/v1/auth/login", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.getheader("access-control-allow-origin") == want, (origin, resp.status, resp.getheaders())

    # JWT_ACCESS_TOKEN_EXPIRY: the access token's lifetime (exp - iat) as the setting says (an earlier login's
    # token, if any: the auth rate limit allows 10 attempts a minute and the tests before made them).
    access = ACCESS_TOKENS.get(r.name) or _bootstrap_and_login(r)
    claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    expiry = api_env["JWT_ACCESS_TOKEN_EXPIRY"]
    assert claims["exp"] - claims["iat"] == int(expiry[:-1]) * _DURATION[expiry[-1]], claims

    # LOG_LEVEL=info: info lines and no debug line in the logs, as kubectl logs shows them.
    for workload, env_ in (("api", api_env), ("ingestion", ing_env)):
        assert env_["LOG_LEVEL"] == "info"
        logs = _pod_logs(r, workload)
        assert "[info]" in logs and "[debug]" not in logs, workload

    # Ingestion's workers: WORKER_COUNT at start, within the autoscaler's bounds (its /metrics).
    workers = _metric(r, "ingestion", 3003, "iotistic_ingestion_worker_count")
    assert int(ing_env["AUTOSCALE_MIN_WORKERS"]) <= workers <= int(ing_env["AUTOSCALE_MAX_WORKERS"]), workers
    assert workers == float(ing_env["WORKER_COUNT"]), workers

    # Redis: every directive of redis.conf that CONFIG GET reports is what the ConfigMap says.
    redis_conf = next(o for o in r.objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{r.name}-redis")
    checked = []
    for line in redis_conf["data"]["redis.conf"].splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, want = line.partition(" ")
        if key == "bind":  # the addresses: not comparable on a shared loopback
            continue
        got = r.redis_cli("CONFIG", "GET", key)
        lines = got.stdout.splitlines()
        assert len(lines) == 2, (key, got.stdout, got.stderr)
        want = want.strip().strip('"')
        if want.endswith("mb"):
            want = str(int(want[:-2]) * 2**20)
        assert lines[1] == want, (key, lines[1], want)
        checked.append(key)
    assert {"save", "appendonly", "maxmemory", "maxmemory-policy"} <= set(checked), checked

    # The broker: 8883 speaks only TLS (a plain MQTT CONNECT gets no CONNACK), 9001 is websockets.
    creds = r.values[next(n for n in r.values if n.startswith("mqtt-credentials-"))]
    plain = subprocess.run(
        ["mosquitto_sub", "-h", r.svc_ip("mosquitto"), "-p", "8883", "-u", creds["username"], "-P", creds["password"],
         "-t", "$SYS/broker/version", "-C", "1", "-W", "5"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert plain.returncode != 0
    with socket.create_connection((r.svc_ip("mosquitto"), 9001), timeout=10) as s:
        s.sendall(
            b"GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        assert s.recv(200).startswith(b"HTTP/1.1 101"), "9001 is not a websockets listener"


# ---- scenario 7, ingestion's autoscaler (autoscale_scenarios.py), in the background of the edge and Auth0 tests,
# which use only the API: it pauses ingestion for longer than its lag thresholds.
def test_settings_autoscale_start(synced: tuple[Release, Any]) -> None:
    from tests.e2e import autoscale_scenarios

    autoscale_scenarios.autoscale_start(synced[0])


# ---- the public edge (edge_scenarios.py: the gateway hop in front of the real API) -------------------
# Bound here so that they run on this module's releases (its ``synced`` fixture), each started once.
from tests.e2e import edge_scenarios  # noqa: E402

test_edge_forwards_only_the_public_paths = edge_scenarios.test_edge_forwards_only_the_public_paths
test_edge_forged_xff_does_not_escape_the_login_limit = (
    edge_scenarios.test_edge_forged_xff_does_not_escape_the_login_limit
)
test_edge_control_trusting_every_hop_lets_the_forger_through = (
    edge_scenarios.test_edge_control_trusting_every_hop_lets_the_forger_through
)


# ---- the dashboard's Auth0 login (auth0_scenarios.py: the Auth0 tenant and provisioning played on loopback) ---
from tests.e2e import auth0_scenarios  # noqa: E402


def test_auth0_exchange_gives_the_dashboard_a_session(synced: tuple[Release, Any]) -> None:
    auth0_scenarios.auth0_exchange_gives_the_dashboard_a_session(synced[0])


def test_auth0_access_token_is_verified_by_the_api(synced: tuple[Release, Any]) -> None:
    auth0_scenarios.auth0_access_token_is_verified_by_the_api(synced[0])


def test_auth0_exchange_does_not_check_the_audience(synced: tuple[Release, Any]) -> None:
    auth0_scenarios.auth0_exchange_does_not_check_the_audience(synced[0])


def test_settings_autoscale_lag_thresholds_and_cooldown(synced: tuple[Release, Any]) -> None:
    from tests.e2e import autoscale_scenarios

    autoscale_scenarios.autoscale_join(synced[0])


# ---- scenario 7, the remaining settings (settings_scenarios.py), on this module's releases ----------
from tests.e2e import settings_scenarios  # noqa: E402


def test_settings_statement_timeout_in_the_api_sessions(synced: tuple[Release, Any]) -> None:
    settings_scenarios.statement_timeout_in_the_api_sessions(synced[0])


def test_settings_redis_sees_stream_maxlen_auth_cache_ttl_and_batch(synced: tuple[Release, Any]) -> None:
    settings_scenarios.redis_sees_stream_cache_and_batch_settings(synced[0])


def test_settings_heap_limit_in_the_running_programs(synced: tuple[Release, Any]) -> None:
    settings_scenarios.heap_limit_in_the_running_programs(synced[0])


def test_settings_spool_directories_in_use(synced: tuple[Release, Any]) -> None:
    settings_scenarios.spool_directories_in_use(synced[0])
