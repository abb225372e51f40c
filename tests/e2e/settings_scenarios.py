"""Scenario 7, the settings the first two slices of ``scenarios.py`` leave: each setting the manifests
pass is seen taking effect in the running program, from outside it (docs/e2e.md, scenario 7):

- ``DB_STATEMENT_TIMEOUT_MS``: the database server's own value of ``statement_timeout`` in each session the
  running API holds (the backend's ``StatementTimeout``, read from the server process; PostgreSQL offers no
  view of another session's settings), and no ``lock_timeout``;
- ``REDIS_INGESTION_STREAM_MAXLEN``, ``MQTT_AUTH_CACHE_TTL_SECONDS`` and ingestion's batch settings
  (``BATCH_SIZE``, the profile's ``FLUSH_INTERVAL_MS``): Redis' own log of the commands it receives
  (``MONITOR``) while an agent publishes one reading;
- ``NODE_OPTIONS=--max-old-space-size``: V8's heap limit in the running API and ingestion, read over Node's
  inspector (opened with SIGUSR1, as ``kill -USR1`` in the container would, and closed again).

Every expected value comes from the live objects on the kube-apiserver (the Deployments' env, the runtime
Secret) or from the program's own profile catalog for the profile the manifests choose; none is written here.
Each function takes the running ``Release``; ``scenarios.py`` binds each with one small wrapper test,
so they run on its ``synced`` releases.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.gateway_hop import send
from tests.e2e.release import Release

#: The loopback address this module's HTTP clients connect from: a rate-limit key of its own (the login limit
#: counts per client address; the other tests use 127.0.0.1, 127.30.0.1x and 127.30.0.2x).
CLIENT = "127.30.0.31"


# ---- the live objects ------------------------------------------------------------------------------


def live_deployment(r: Release, workload: str) -> dict[str, Any]:
    dep = r.kube.get({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": f"{r.name}-{workload}", "namespace": r.namespace}})  # fmt: skip
    assert dep is not None, f"Deployment {r.name}-{workload} is not on the server"
    return dict(dep)


def live_env(r: Release, workload: str) -> dict[str, str]:
    """The literal env of the workload's container as the kube-apiserver has it, with its ``envFrom`` Secrets
    underneath (a value in ``env`` wins, as the kubelet does it)."""
    (c,) = live_deployment(r, workload)["spec"]["template"]["spec"]["containers"]
    out: dict[str, str] = {}
    for src in c.get("envFrom", []):
        name = (src.get("secretRef") or {}).get("name")
        if name:
            secret = r.kube.get({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": {"name": name, "namespace": r.namespace}})  # fmt: skip
            data = (secret or {}).get("data") or {}
            out |= {src.get("prefix", "") + k: base64.b64decode(v).decode() for k, v in data.items()}
    out |= {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}
    return out


def ingestion_setting(r: Release, env: dict[str, str], key: str) -> str:
    """What ingestion runs with for a profile key: the env's value, else its profile's default from the
    program's own catalog (``applyIngestionProfile``, ingestion/src/config/profile.ts)."""
    if env.get(key):
        return env[key]
    catalog = json.loads((Path(r.kubelet.apps["ingestion"]) / "dist/config/profile-catalog.json").read_text())
    return str(catalog[env.get("INGESTION_PROFILE") or "balanced"][key])


# ---- DB_STATEMENT_TIMEOUT_MS: the database server's value in each of the API's sessions -----------------


def _symbols(exe: str, names: tuple[str, ...]) -> dict[str, int]:
    out = subprocess.run(["nm", "-D", "--defined-only", exe], capture_output=True, text=True, check=True).stdout
    found = {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 3}
    missing = [n for n in names if n not in found]
    assert not missing, f"{exe} exports no {missing}"
    return {n: found[n] for n in names}


def backend_globals(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    """The server's own value of C ``int`` globals (GUC variables) in backend ``pid``: the symbol's address
    in the postgres binary (exported for extensions), plus where the binary is mapped in that process."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    offsets = _symbols(exe, names)
    base = None
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and f[5] == exe and int(f[2], 16) == 0:
            base = int(f[0].split("-")[0], 16)
            break
    assert base is not None, f"backend {pid}: {exe} not mapped"
    with open(f"/proc/{pid}/mem", "rb") as mem:
        out = {}
        for name, off in offsets.items():
            mem.seek(base + off)
            out[name] = struct.unpack("<i", mem.read(4))[0]
    return out


def statement_timeout_in_the_api_sessions(r: Release) -> None:
    """Every session the running API holds has the server-side ``statement_timeout`` DB_STATEMENT_TIMEOUT_MS
    says, and no ``lock_timeout``. (Waiting for a cancelled statement would take the whole 45 s: not here.)"""
    env = live_env(r, "api")
    want = int(env["DB_STATEMENT_TIMEOUT_MS"])
    assert send((r.svc_ip("api"), 3002), "GET", "/health", "api", CLIENT)[0] == 200
    rows = r.db("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'iotistic-api'")  # fmt: skip
    assert rows, "the API holds no database session"
    for (pid,) in rows:
        got = backend_globals(int(pid), ("StatementTimeout", "LockTimeout"))
        assert got == {"StatementTimeout": want, "LockTimeout": 0}, (pid, got, want)


# ---- Redis' view: stream MAXLEN, the go-auth answer cache, ingestion's reads -------------------------------


class Monitor:
    """``redis-cli MONITOR`` on the Redis Service (with the password), outside the cluster: Redis' own log of
    every command it runs, kept as lines."""

    def __init__(self, r: Release) -> None:
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            ["redis-cli", "-h", r.svc_ip("redis"), "-p", "6379", "--no-auth-warning", "-a", r.redis_password(),
             "MONITOR"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace",
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> list[re.Match[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for line in list(self.lines) if (m := pattern.search(line))]
            if found:
                return found
            time.sleep(0.1)
        seen = sorted({m[1].upper() for line in list(self.lines) if (m := re.search(r'\] "([^"]+)"', line))})
        raise AssertionError(f"Redis received no command matching {pattern.pattern} within {timeout:g} s: {seen}")

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=5)


# Command names and keywords as the clients send them (ioredis sends them in lower case).
XADD = re.compile(r'(?i)"XADD" "([^"]+)" "MAXLEN" "~" "(\d+)" "\*"')
AUTH_CACHE_SET = re.compile(r'(?i)"SET" "mqtt-auth-cache:[^"]*:(acl|superuser):[^"]*" ".*" "EX" "(\d+)"$')
XREADGROUP = re.compile(r'(?i)"XREADGROUP" "GROUP" "[^"]*" "[^"]*" "COUNT" "(\d+)" "BLOCK" "(\d+)" "STREAMS" "([^"]+)"')


def redis_sees_stream_cache_and_batch_settings(r: Release) -> None:
    """While a new agent publishes one reading, Redis receives:
    - from the API: ``XADD <stream key> MAXLEN ~ <REDIS_INGESTION_STREAM_MAXLEN>`` (api/src/services/telemetry/
      publisher.ts), on the stream key the runtime Secret gives ingestion;
    - from the API answering go-auth: the answer cache written with ``EX`` within ±10 % (the code's jitter) of
      ``MQTT_AUTH_CACHE_TTL_SECONDS`` (the ACL and superuser answers; api/src/mqtt/auth-cache.ts);
    - from ingestion's workers: ``XREADGROUP ... COUNT <BATCH_SIZE> BLOCK <FLUSH_INTERVAL_MS>`` on that stream
      (ingestion/src/services/worker.ts), the profile's default where the manifests set no value."""
    api, ing = live_env(r, "api"), live_env(r, "ingestion")
    stream = ing["REDIS_INGESTION_STREAM_KEY"]
    from tests.e2e.scenarios import _provision_agent

    _, mqtt = _provision_agent(r, "e2e-settings")
    topic = mqtt["topics"]["publish"][0].removesuffix("#") + "endpoints/e2e"
    reading = {"deviceName": "e2e-settings", "protocol": "modbus",
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
               "data": {"readings": [{"metric": "e2e_settings", "value": 1, "unit": "C"}]}}  # fmt: skip
    monitor = Monitor(r)
    try:
        time.sleep(0.3)  # MONITOR is on before the agent connects
        # One publish, repeated each second only while the API has not subscribed yet (it subscribes
        # MQTT_STARTUP_DELAY_MS after it starts; earlier publishes have no subscriber, docs/e2e.md).
        deadline = time.monotonic() + 30
        while True:
            pub = subprocess.run(
                ["mosquitto_pub", "-h", r.svc_ip("mosquitto"), "-p", "1883", "-u", mqtt["username"], "-P",
                 mqtt["password"], "-q", "1", "-t", topic, "-m", json.dumps(reading)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert pub.returncode == 0, pub.stderr
            try:
                xadds = monitor.wait_for(XADD, 1 if time.monotonic() < deadline else 5)
                break
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
        cache = monitor.wait_for(AUTH_CACHE_SET, 5)
        reads = [m for m in monitor.wait_for(XREADGROUP, 5) if m[3] == stream]
        if not reads:
            reads = [m for m in monitor.wait_for(XREADGROUP, 5) if m[3] == stream]
    finally:
        monitor.stop()
    assert {(m[1], m[2]) for m in xadds} == {(stream, api["REDIS_INGESTION_STREAM_MAXLEN"])}, xadds
    ttl = int(api["MQTT_AUTH_CACHE_TTL_SECONDS"])
    for m in cache:
        assert 0.9 * ttl - 1 <= int(m[2]) <= 1.1 * ttl + 1, (m[0][:120], ttl)
    assert "acl" in {m[1] for m in cache}, [m[0][:120] for m in cache]
    want = (ingestion_setting(r, ing, "BATCH_SIZE"), ingestion_setting(r, ing, "FLUSH_INTERVAL_MS"))
    assert reads and {(m[1], m[2]) for m in reads} == {want}, ([m[0] for m in reads], want)


# ---- NODE_OPTIONS: V8's heap limit in the running programs -------------------------------------------------

INSPECTOR = ("127.0.0.1", 9229)  # where SIGUSR1 opens Node's inspector
INSPECTOR_LOCK = Path(tempfile.gettempdir()) / "iotistica-e2e-inspector.lock"


def _ws_send(sock: socket.socket, text: str) -> None:
    data = text.encode()
    mask = secrets.token_bytes(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("inspector closed the connection")
        buf += chunk
    return buf


def _ws_recv(sock: socket.socket) -> str:
    b0, b1 = _recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", _recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", _recv_exact(sock, 8))[0]
    return _recv_exact(sock, n).decode()


def _inspector_target() -> str:
    with socket.create_connection(INSPECTOR, timeout=5) as s:
        s.sendall(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:9229\r\nConnection: close\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += _recv_exact(s, 1)
        length = int(re.search(rb"(?i)content-length: *(\d+)", raw)[1])  # type: ignore[index]
        body = _recv_exact(s, length)
    (target, *_) = json.loads(body)
    return str(target["webSocketDebuggerUrl"]).split("9229", 1)[1]


CLOSE_AFTER_MS = 300


def heap_size_limit(pid: int) -> int:
    """V8's ``heap_size_limit`` in the running Node process ``pid``: SIGUSR1 opens its inspector on
    127.0.0.1:9229, one ``Runtime.evaluate`` reads ``v8.getHeapStatistics()``, and the inspector is closed."""
    with contextlib.suppress(OSError):
        socket.create_connection(INSPECTOR, timeout=1).close()
        raise AssertionError("127.0.0.1:9229 is taken before SIGUSR1: another inspector is open")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while True:
        try:
            path = _inspector_target()
            break
        except (OSError, ValueError, IndexError):
            assert time.monotonic() < deadline, f"pid {pid}: no inspector on 127.0.0.1:9229 after SIGUSR1"
            time.sleep(0.1)
    with socket.create_connection(INSPECTOR, timeout=5) as s:
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9229\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
        head = b""
        while b"\r\n\r\n" not in head:
            head += _recv_exact(s, 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        expr = "[process.pid, require('v8').getHeapStatistics().heap_size_limit]"
        _ws_send(s, json.dumps({"id": 1, "method": "Runtime.evaluate",
                                "params": {"expression": expr, "includeCommandLineAPI": True,
                                           "returnByValue": True}}))  # fmt: skip
        while (msg := json.loads(_ws_recv(s))).get("id") != 1:
            pass
        # Close the inspector again (the port is the machine's loopback, shared by every container here), once
        # this session has ended: ``inspector.close()`` racing the session's own disconnect crashed node 20 once
        # (SIGSEGV right after "Debugger attached."), so it runs CLOSE_AFTER_MS after this socket has closed.
        # ``require`` exists only while the evaluation runs (the console's command line API), so the module is
        # taken now; the later call must not throw in the program (it would exit).
        close = (
            f"(i => setTimeout(() => {{ try {{ i.close(); }} catch {{}} }}, {CLOSE_AFTER_MS}))(require('inspector'))"
        )
        _ws_send(s, json.dumps({"id": 2, "method": "Runtime.evaluate",
                                "params": {"expression": close, "includeCommandLineAPI": True}}))  # fmt: skip
        while json.loads(_ws_recv(s)).get("id") != 2:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(INSPECTOR, timeout=1).close()
            time.sleep(0.1)
        except OSError:
            break
    else:
        raise AssertionError(f"pid {pid}: the inspector stayed open")
    inspected, limit = msg["result"]["result"]["value"]
    assert inspected == pid, f"the inspector on 127.0.0.1:9229 is pid {inspected}'s, not {pid}'s"
    return int(limit)


def node_heap_limit_for(flags: str) -> int:
    """The heap limit the machine's node (the one the containers run) gives for these NODE_OPTIONS."""
    out = subprocess.run(["node", "-p", "require('v8').getHeapStatistics().heap_size_limit"],
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_OPTIONS": flags},
                         capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    return int(out.stdout)


def heap_limit_in_the_running_programs(r: Release) -> None:
    """The API's and ingestion's V8 heap limit is what their NODE_OPTIONS gives (``--max-old-space-size`` plus
    the young generation), not Node's default for this machine's memory."""
    for workload in ("api", "ingestion"):
        flags = live_env(r, workload)["NODE_OPTIONS"]
        assert "--max-old-space-size=" in flags, flags
        c = r.kubelet.container(r.namespace, f"Deployment/{r.name}-{workload}")
        assert c.proc is not None
        proc, restarts = c.proc, c.restarts
        # 127.0.0.1:9229 is the machine's, shared by releases side by side (make e2e): one inspector at a time.
        with open(INSPECTOR_LOCK, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            got = heap_size_limit(proc.pid)
        want = node_heap_limit_for(flags)
        assert got == want and want != node_heap_limit_for(""), (workload, flags, got, want)
        time.sleep(0.5)  # the inspector closes on the program's next turn: it must still run afterwards
        assert proc.poll() is None and c.restarts == restarts, r.kubelet.report()


# ---- the disk spools: the path the env names is the emptyDir, and the program writes there -----------------

#: The spool switch and path each program reads (api/src/services/telemetry/publisher.ts,
#: ingestion/src/services/worker.ts).
SPOOL_ENV = {"api": ("DISK_SPOOL_ENABLED", "DISK_SPOOL_PATH"),
             "ingestion": ("INGESTION_SPOOL_ENABLED", "INGESTION_SPOOL_PATH")}  # fmt: skip
SPOOL_FAILED = "Failed to initialize disk spool"


def spool_directories_in_use(r: Release) -> None:
    """With its spool on, each program checks at start that it can write to the path its env names (it
    writes and removes a file there, disk-spool.ts) and logs an error, spool disabled, when it cannot. Seen
    from the node: the emptyDir the manifests mount at that path changed after the container was set up
    (nothing else writes there), and the logs, as kubectl logs shows them, have no such error. The sizes
    (``*_SPOOL_MAX_SIZE_MB``) act only when a spool fills: not observed here."""
    for workload, (enabled, path_var) in SPOOL_ENV.items():
        env = live_env(r, workload)
        assert env[enabled] == "true", (workload, enabled)
        spec = live_deployment(r, workload)["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == env[path_var]), None)
        assert mount is not None, f"{workload}: nothing is mounted at {path_var}={env[path_var]}"
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume, volume
        pods = r.kubelet.pods_of(f"Deployment/{r.name}-{workload}", r.namespace)
        assert pods
        for pod in pods:
            container = pod.containers[0]
            assert container.proc is not None and container.proc.poll() is None, r.kubelet.report()
            set_up = pod.dir / f"{container.name}-{container.restarts}.json"  # written just before it started
            spool = pod.dir / "volumes" / mount["name"]
            assert spool.stat().st_mtime_ns > set_up.stat().st_mtime_ns, f"{pod.name}: nothing written to {spool}"
            assert SPOOL_FAILED not in pod.logs(), f"{pod.name}: {SPOOL_FAILED}"
