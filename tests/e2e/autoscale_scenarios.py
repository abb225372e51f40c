"""Scenario 7, the settings that act only over time: each is seen taking effect in the running program, from
outside it (docs/e2e.md, scenario 7), while other scenarios run, so that their clocks cost little wall time.

- Ingestion's worker autoscaler (``maybeAutoscale``, ingestion/src/services/worker.ts): its lag thresholds
  (``AUTOSCALE_LAG_SCALE_UP_MS``, ``AUTOSCALE_LAG_CRITICAL_MS``, and the profile's ``AUTOSCALE_LAG_TARGET_MS``),
  its cooldown (``AUTOSCALE_COOLDOWN_MS``) and its scale-down (``AUTOSCALE_SCALE_DOWN_STABLE_CHECKS``). Ingestion's
  processes are paused (SIGSTOP, as a frozen container is) while entries wait in the stream, then resumed; each
  pod's ``/metrics`` and Redis' own log of the commands it runs (``MONITOR``) show what the autoscaler did.
  This runs in the background while the public edge and Auth0 scenarios run, which use only the API.
- ``DB_STATEMENT_TIMEOUT_MS``: a statement of the API, blocked on a lock the test holds, is cancelled by the
  database server after that long (the server's log, the API's answer).
- ``REDIS_IDLE_INGESTION_STREAM_MAXLEN``: ingestion's health collector trims the drained stream to that length
  (Redis' ``MONITOR``, ingestion's log). Not bound in ``scenarios.py``: the trim comes about 57 s after the fill
  (each of the collector's Redis calls waits behind the log worker's 10 s blocking read on the same connection),
  later than the scenarios before the faults end, so it would add 12 to 17 s per release (docs/e2e.md).

Every expected value comes from the live Deployment or ingestion's own profile catalog for the profile the
manifests choose (``settings_scenarios.live_env``, ``ingestion_setting``); none is written here. Each function
takes the running ``Release``; ``scenarios.py`` binds each with one small wrapper test.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import math
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.release import Release
from tests.e2e.scenarios import _pod_logs, metric_at
from tests.e2e.settings_scenarios import Monitor, ingestion_setting, live_deployment, live_env

#: The loopback address this module's HTTP client connects from (a rate-limit key of its own; the other modules
#: use 127.0.0.1, 127.30.0.1x, 127.30.0.2x and 127.30.0.31).
CLIENT = "127.30.0.41"
#: The code's own defaults (ingestion/src/services/orchestrator.ts), which the manifests' values replace.
CODE_DEFAULT_LAG_SCALE_UP_MS = 30000
#: An entry of the stream's uncompressed form with an empty batch: ingestion reads it, writes nothing and
#: acknowledges it (``processBatch``: "ACK'd entries that decoded to empty data payloads").
EMPTY_BATCH = ("data", "[]", "source", "e2e-autoscale")


def _ms() -> int:
    return int(time.time() * 1000)


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _redis_cli(r: Release, commands: list[list[str]], timeout: float = 30) -> list[str]:
    """``commands`` over one connection to the Redis Service, one after another (not a transaction unless the
    commands say MULTI); returns redis-cli's output lines."""
    script = "".join(" ".join(c) + "\n" for c in commands)
    out = subprocess.run(
        ["redis-cli", "-h", r.svc_ip("redis"), "-p", "6379", "--no-auth-warning", "-a", r.redis_password()],
        input=script, capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip
    return out.stdout.splitlines()


def _pod_metric(ip: str, name: str, port: int = 3003) -> float:
    return metric_at(ip, port, name)


# ---- the worker autoscaler ---------------------------------------------------------------------------------

#: ``1733612345.123456 [0 127.0.0.1:40000] "xack" "<stream>" "<group>" "<id>" ...`` in Redis' MONITOR.
XACK = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] "(?i:xack)" "([^"]+)" "[^"]*" (.*)$')


def _acks(monitor: Monitor, stream: str) -> list[tuple[float, str, list[str]]]:
    """(when, client address, entry ids) of every XACK on ``stream`` Redis ran: one per batch a worker read
    and processed (``processBatch`` acknowledges each batch with one XACK)."""
    out = []
    for line in list(monitor.lines):
        m = XACK.match(line)
        if m and m[3] == stream:
            out.append((float(m[1]), m[2], re.findall(r'"(\d+-\d+)"', m[4])))
    return out


#: A worker's read or claim in Redis' MONITOR, with the consumer it reads as: ``<tenant>:<HOSTNAME>``, the pod's
#: name (``makeConsumerName``, ingestion/src/services/orchestrator.ts).
CONSUMER = re.compile(r'\[\d+ ([^\]]+)\] "(?i:xreadgroup" "group|xautoclaim" "[^"]+)" "[^"]*" "([^"]+)"')


def _pod_of(monitor: Monitor, addr: str, pods: list[str], timeout: float = 5) -> str:
    """The pod whose worker holds the connection Redis names ``addr``: the consumer that connection reads as
    (each worker reads and acknowledges on a connection of its own; after an XACK it reads again at once)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in list(monitor.lines):
            m = CONSUMER.search(line)
            if m and m[1] == addr:
                (pod,) = [p for p in pods if m[2].endswith(f":{p}")] or [m[2]]
                assert pod in pods, f"{addr} reads as consumer {m[2]}, not an ingestion pod's"
                return pod
        assert time.monotonic() < deadline, f"no worker read from {addr}"
        time.sleep(0.05)


@dataclass
class Autoscale:
    """What the background run saw, for the test that joins it."""

    before: dict[str, int] = field(default_factory=dict)  # pod -> workers before the pause
    scaled: dict[str, int] = field(default_factory=dict)  # pod -> workers after the lagged reads
    after: dict[str, int] = field(default_factory=dict)  # pod -> workers after the low-lag reads
    lagged_reads: dict[str, list[float]] = field(default_factory=dict)  # pod -> when each lagged batch was acked
    low_lag_reads: dict[str, int] = field(default_factory=dict)  # pod -> reads until it scaled down
    lag_min_ms: int = 0  # the least lag any lagged entry can have had when read
    lag_max_ms: int = 0  # the most
    paused_s: float = 0.0
    restarts: dict[str, int] = field(default_factory=dict)
    settings: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None
    thread: threading.Thread | None = None


AUTOSCALE: dict[str, Autoscale] = {}


def _probe_safe_pause_s(r: Release) -> float:
    """The longest pause the kubelet's readiness and liveness probes of ingestion tolerate: a probe that starts
    during the pause fails only if the pause outlasts its timeout, and fewer than ``failureThreshold`` probes in a
    row may fail (the readiness probe would take the pod out of its Service, the liveness probe restart it)."""
    (c,) = live_deployment(r, "ingestion")["spec"]["template"]["spec"]["containers"]
    limit = math.inf
    for kind in ("readinessProbe", "livenessProbe"):
        p = c.get(kind)
        if p:
            period, timeout = float(p.get("periodSeconds", 10)), float(p.get("timeoutSeconds", 1))
            # k failures in a row need a pause longer than (k - 1) periods plus the timeout.
            limit = min(limit, (int(p.get("failureThreshold", 3)) - 1) * period + timeout)
    return limit


def autoscale_start(r: Release) -> None:
    """Start the autoscaler's scenario in the background (``autoscale_join`` waits for it and asserts)."""
    state = Autoscale()
    env = live_env(r, "ingestion")
    state.settings = {k: int(ingestion_setting(r, env, k)) for k in (
        "AUTOSCALE_LAG_TARGET_MS", "AUTOSCALE_LAG_SCALE_UP_MS", "AUTOSCALE_LAG_CRITICAL_MS", "AUTOSCALE_COOLDOWN_MS",
        "AUTOSCALE_SCALE_DOWN_STABLE_CHECKS", "AUTOSCALE_MIN_WORKERS", "AUTOSCALE_MAX_WORKERS", "WORKER_COUNT",
        "FLUSH_INTERVAL_MS")}  # fmt: skip
    state.thread = threading.Thread(target=_autoscale_run, args=(r, state), daemon=True)
    AUTOSCALE[r.name] = state
    state.thread.start()


def _autoscale_run(r: Release, state: Autoscale) -> None:
    try:
        _autoscale(r, state)
    except BaseException as e:  # noqa: BLE001 - reported by autoscale_join
        state.error = e


def _autoscale(r: Release, state: Autoscale) -> None:
    s = state.settings
    stream = r.stream_key()
    # maybeAutoscale: a lag below AUTOSCALE_LAG_TARGET_MS counts towards a scale-down; above it, a lag above
    # AUTOSCALE_LAG_CRITICAL_MS adds up to 3 workers, one above AUTOSCALE_LAG_SCALE_UP_MS adds one.
    lo, hi = max(s["AUTOSCALE_LAG_TARGET_MS"], s["AUTOSCALE_LAG_SCALE_UP_MS"]), s["AUTOSCALE_LAG_CRITICAL_MS"]
    pause_ms = lo + 1000
    assert pause_ms + 2000 < hi, f"no room for a lag between {lo} and {hi} ms: {s}"
    assert pause_ms / 1000 < _probe_safe_pause_s(r), (pause_ms, _probe_safe_pause_s(r))
    pods = r.kubelet.pods_of(f"Deployment/{r.name}-ingestion", r.namespace)
    assert pods, "no ingestion pod"
    procs = {}
    for pod in pods:
        (c,) = pod.containers
        assert c.proc is not None and c.proc.poll() is None, r.kubelet.report()
        procs[pod.name] = c.proc.pid
        state.restarts[pod.name] = c.restarts
        state.before[pod.name] = int(_pod_metric(pod.ip, "iotistic_ingestion_worker_count"))
        assert state.before[pod.name] + 1 <= s["AUTOSCALE_MAX_WORKERS"], state.before
    monitor = Monitor(r)
    try:
        time.sleep(0.3)  # MONITOR is on
        # Every worker reads once just before the freeze, so that each then waits in an XREADGROUP with nearly all
        # of its BLOCK (blockTimeMs, 2 s) left. A pod's workers start together and so time out together, and a
        # pod whose reads timed out between the freeze and the entries below would take none of them.
        warm = _redis_cli(r, [["XADD", stream, "*", *EMPTY_BATCH] for _ in range(sum(state.before.values()))])
        warm_ids = {x for x in warm if re.fullmatch(r"\d+-\d+", x)}
        deadline = time.monotonic() + 10
        while not warm_ids <= {i for _, _, got in _acks(monitor, stream) for i in got}:
            assert time.monotonic() < deadline, f"not every warm-up entry was acknowledged: {sorted(warm_ids)}"
            time.sleep(0.02)
        time.sleep(0.1)  # each worker reads again right after its XACK
        # Freeze every ingestion process, then one entry per worker: each goes to a worker waiting in its
        # XREADGROUP (Redis answers it at once; the frozen process reads the answer when it runs again).
        stopped = []
        try:
            for pid in procs.values():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            t_stop = time.monotonic()
            lines = _redis_cli(r, [["XADD", stream, "*", *EMPTY_BATCH] for _ in range(sum(state.before.values()))])
            ids = [x for x in lines if re.fullmatch(r"\d+-\d+", x)]
            assert len(ids) == sum(state.before.values()), lines
            newest = max(_id_ms(i) for i in ids)
            time.sleep(max(0.0, (newest + pause_ms - _ms()) / 1000))
        finally:
            t_cont = _ms()
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            state.paused_s = time.monotonic() - t_stop
        deadline = time.monotonic() + 10
        while not set(ids) <= {i for _, _, got in _acks(monitor, stream) for i in got}:
            assert time.monotonic() < deadline, f"not every lagged entry was acknowledged: {ids}"
            time.sleep(0.05)
        names = list(procs)
        lagged = [(t, addr, got) for t, addr, got in _acks(monitor, stream) if set(got) & set(ids)]
        for t, addr, _ in lagged:
            state.lagged_reads.setdefault(_pod_of(monitor, addr, names), []).append(t)
        # Every lagged entry was read after the processes ran again, so it was at least this old; and its batch
        # was acknowledged by the last XACK at the latest, so it was at most this old.
        state.lag_min_ms = t_cont - newest
        state.lag_max_ms = int(max(t for t, _, _ in lagged) * 1000) - min(_id_ms(i) for i in ids)
        for pod in pods:
            state.scaled[pod.name] = int(_pod_metric(pod.ip, "iotistic_ingestion_worker_count"))

        # Back to WORKER_COUNT, as the later scenarios expect: once the cooldown has passed, low-lag reads (entries
        # 50 ms old) until each pod has counted AUTOSCALE_SCALE_DOWN_STABLE_CHECKS of them and retired a worker.
        first = min(t for ts in state.lagged_reads.values() for t in ts)
        time.sleep(max(0.0, first + s["AUTOSCALE_COOLDOWN_MS"] / 1000 + 0.2 - time.time()))
        last_ms = newest
        counted = {pod.name: 0 for pod in pods}
        ips = {pod.name: pod.ip for pod in pods}
        todo = {name for name in counted if state.scaled[name] > state.before[name]}
        for _ in range(s["AUTOSCALE_SCALE_DOWN_STABLE_CHECKS"] * len(pods) * 3):
            if not todo:
                break
            last_ms = max(_ms() - 50, last_ms + 1)
            (entry,) = _redis_cli(r, [["XADD", stream, f"{last_ms}-*", *EMPTY_BATCH]])
            assert re.fullmatch(r"\d+-\d+", entry), entry
            deadline = time.monotonic() + 5
            while not (mine := [a for a in _acks(monitor, stream) if entry in a[2]]):
                assert time.monotonic() < deadline, f"entry {entry} was not acknowledged"
                time.sleep(0.01)
            name = _pod_of(monitor, mine[0][1], names)
            counted[name] += 1
            if name in todo and counted[name] >= s["AUTOSCALE_SCALE_DOWN_STABLE_CHECKS"]:
                # The retired worker leaves once its XREADGROUP returns (BLOCK FLUSH_INTERVAL_MS): wait for it
                # before the next entry, which it would otherwise take and drop (worker.ts, workerLoop).
                deadline = time.monotonic() + s["FLUSH_INTERVAL_MS"] / 1000 + 3
                while _pod_metric(ips[name], "iotistic_ingestion_worker_count") > state.before[name]:
                    assert time.monotonic() < deadline, f"{name}: no scale-down after {counted[name]} low-lag reads"
                    time.sleep(0.1)
                state.low_lag_reads[name] = counted[name]
                todo.discard(name)
        for pod in pods:
            state.after[pod.name] = int(_pod_metric(pod.ip, "iotistic_ingestion_worker_count"))
    finally:
        monitor.stop()


def autoscale_join(r: Release) -> None:
    """Each ingestion pod added exactly one worker for entries that waited longer than both
    AUTOSCALE_LAG_TARGET_MS and AUTOSCALE_LAG_SCALE_UP_MS but not AUTOSCALE_LAG_CRITICAL_MS (the code's default
    AUTOSCALE_LAG_SCALE_UP_MS, 30000, would have added none), its later lagged reads within AUTOSCALE_COOLDOWN_MS
    added none, and it went back to WORKER_COUNT after low-lag reads; the pause restarted nothing."""
    state = AUTOSCALE.get(r.name)
    assert state is not None and state.thread is not None, "autoscale_start did not run on this release"
    state.thread.join(timeout=120)
    assert not state.thread.is_alive(), "the autoscaler's scenario did not finish"
    if state.error is not None:
        raise state.error
    s = state.settings
    lo, hi = max(s["AUTOSCALE_LAG_TARGET_MS"], s["AUTOSCALE_LAG_SCALE_UP_MS"]), s["AUTOSCALE_LAG_CRITICAL_MS"]
    assert lo < state.lag_min_ms and state.lag_max_ms <= hi, (state.lag_min_ms, state.lag_max_ms, s)
    assert state.lag_max_ms <= CODE_DEFAULT_LAG_SCALE_UP_MS  # the code default would not have scaled up
    for name, before in state.before.items():
        assert before == s["WORKER_COUNT"], (name, before, s)
        assert state.lagged_reads.get(name), f"{name} read none of the lagged entries"
        assert state.scaled[name] == before + 1, (name, before, state.scaled[name], state.lagged_reads[name])
        assert state.after[name] == before, (name, state.after[name], state.low_lag_reads)
    # The cooldown: more than one lagged batch read by one process, all within AUTOSCALE_COOLDOWN_MS, and still
    # one worker added (each read past the cooldown would have added one).
    held = {p: ts for p, ts in state.lagged_reads.items() if len(ts) > 1}
    assert held, f"no process read two lagged batches: {state.lagged_reads}"
    for p, ts in held.items():
        assert max(ts) - min(ts) < s["AUTOSCALE_COOLDOWN_MS"] / 1000, (p, ts)
    for pod in r.kubelet.pods_of(f"Deployment/{r.name}-ingestion", r.namespace):
        (c,) = pod.containers
        assert c.restarts == state.restarts[pod.name] and c.ready, r.kubelet.report()


# ---- DB_STATEMENT_TIMEOUT_MS: a statement cancelled by the server ------------------------------------------

#: An endpoint whose one statement reads a table nothing else here uses (Node-RED's storage; Node-RED is not run):
#: ``SELECT sessions FROM nodered_sessions WHERE id = 1`` (api/src/services/nodered/nodered-storage.ts).
BLOCKED_PATH = "/api/v1/nr/storage/sessions"
LOCKED_TABLE = "nodered_sessions"


@dataclass
class Blocked:
    lock: subprocess.Popen[str]
    sent: float  # time.time() when the request was sent
    backend: int = 0  # the API's server process that runs the statement
    query_start: str = ""  # its statement's start, by the server's clock, in the log's time zone
    status: int = 0
    body: str = ""
    answered: float = 0.0
    error: BaseException | None = None
    thread: threading.Thread | None = None


BLOCKED: dict[str, Blocked] = {}


def statement_timeout_start(r: Release) -> None:
    """Hold an exclusive lock on ``nodered_sessions`` in a session of the test's own, and send the API a request
    whose statement needs it. ``statement_timeout_check`` looks again once DB_STATEMENT_TIMEOUT_MS has passed."""
    db = r.values[next(n for n in r.values if n.startswith("sql-credentials-"))]["dbname"]
    lock = subprocess.Popen(
        [str(r.pg.bin / "psql"), "-X", "-q", "-t", "-A", "-d", db],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=r.pg.env(PGAPPNAME="e2e-lock-holder"),
    )  # fmt: skip
    assert lock.stdin is not None and lock.stdout is not None
    # The server ends the session itself if no test comes back for it (a run with -k, a failure).
    lock.stdin.write("SET idle_in_transaction_session_timeout = '150s';\nBEGIN;\n"
                     f"LOCK TABLE {LOCKED_TABLE} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")  # fmt: skip
    lock.stdin.flush()
    assert lock.stdout.readline().strip() == "locked", "the lock session did not take its lock"
    b = Blocked(lock, time.time())
    BLOCKED[r.name] = b

    # To the first API pod itself, not through the Service: scenario 5 scales the demo tier's API back to one
    # replica before the 45 s are over, and the kubelet here, as a StatefulSet would, removes the highest index.
    (first,) = [p for p in r.kubelet.pods_of(f"Deployment/{r.name}-api", r.namespace) if p.name == f"{r.name}-api-0"]

    def request() -> None:
        try:
            conn = http.client.HTTPConnection(first.ip, 3002, timeout=180, source_address=(CLIENT, 0))
            try:
                conn.request("GET", BLOCKED_PATH)
                resp = conn.getresponse()
                b.status, b.body = resp.status, resp.read().decode(errors="replace")
            finally:
                conn.close()
        except BaseException as e:  # noqa: BLE001 - reported by statement_timeout_check
            b.error = e
        b.answered = time.time()
        _release(b)  # the statement is over: the faults that follow run with no lock held

    b.sent = time.time()
    b.thread = threading.Thread(target=request, daemon=True)
    b.thread.start()
    # The API's statement waits for the lock: its backend and its start, by the server's own view.
    deadline = time.monotonic() + 10
    while True:
        rows = r.db(
            "SELECT pid, to_char(query_start AT TIME ZONE current_setting('log_timezone'), 'YYYY-MM-DD HH24:MI:SS.MS')"
            " FROM pg_stat_activity WHERE application_name = 'iotistic-api' AND wait_event_type = 'Lock'"
            f" AND query LIKE '%{LOCKED_TABLE}%'"
        )
        if rows:
            b.backend, b.query_start = int(rows[0][0]), rows[0][1]
            return
        assert time.monotonic() < deadline and b.thread.is_alive(), (b.status, b.body, b.error)
        time.sleep(0.1)


def _server_log(r: Release) -> Path:
    """The database server's log (tests/realpostgres.py: ``server.log`` beside its data directory)."""
    (row,) = r.pg.psql("SHOW data_directory")
    return Path(row[0]).parent / "server.log"


def _release(b: Blocked) -> None:
    """End the lock-holding session (once; a second call finds it ended)."""
    if b.lock.poll() is None:
        assert b.lock.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            b.lock.stdin.write("ROLLBACK;\n\\q\n")
            b.lock.stdin.close()
        try:
            b.lock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            b.lock.kill()
            b.lock.wait()


def statement_timeout_check(r: Release) -> None:
    """The statement was cancelled by the server after DB_STATEMENT_TIMEOUT_MS: the server's log says so for the
    API's backend that DB_STATEMENT_TIMEOUT_MS after the statement started, and the API answered with the error."""
    b = BLOCKED.get(r.name)
    assert b is not None and b.thread is not None, "statement_timeout_start did not run on this release"
    want = int(live_env(r, "api")["DB_STATEMENT_TIMEOUT_MS"])
    try:
        b.thread.join(timeout=max(0.0, b.sent + want / 1000 + 15 - time.time()))
        assert not b.thread.is_alive(), f"no answer {time.time() - b.sent:.1f} s after the request"
    finally:
        _release(b)
    assert b.error is None, b.error
    assert b.status == 500 and "canceling statement due to statement timeout" in b.body, (b.status, b.body)
    assert want / 1000 - 0.5 <= b.answered - b.sent <= want / 1000 + 5, (b.answered - b.sent, want)
    log = _server_log(r).read_text(errors="replace")
    line = re.search(
        rf"^(\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}}) \S+ \[{b.backend}\] ERROR:  canceling statement due to "
        r"statement timeout\n.*STATEMENT:  (.*)$", log, re.M)  # fmt: skip
    assert line is not None, f"the server's log has no statement timeout for backend {b.backend}"
    assert LOCKED_TABLE in line[2], line[0]
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    took = datetime.datetime.strptime(line[1], fmt) - datetime.datetime.strptime(b.query_start, fmt)
    assert want <= took.total_seconds() * 1000 <= want + 1000, (took, want)


# ---- REDIS_IDLE_INGESTION_STREAM_MAXLEN: the idle trim -----------------------------------------------------

XTRIM = re.compile(r'(?i)"XTRIM" "([^"]+)" "MAXLEN" "(\d+)"')
TRIMMED = "Trimmed drained ingestion stream to retention target"


@dataclass
class IdleTrim:
    monitor: Monitor
    filled: float
    length: int


IDLE_TRIM: dict[str, IdleTrim] = {}


def idle_trim_start(r: Release) -> None:
    """Fill the stream past the idle length with empty batches, which ingestion acknowledges at once, and watch
    Redis (MONITOR) for the trim of the drained stream ingestion's health collector makes (every 30 s)."""
    env = live_env(r, "ingestion")
    idle = min(int(ingestion_setting(r, env, "REDIS_IDLE_INGESTION_STREAM_MAXLEN")),
               int(ingestion_setting(r, env, "REDIS_INGESTION_STREAM_MAXLEN")))  # fmt: skip
    stream = r.stream_key()
    monitor = Monitor(r)
    time.sleep(0.3)  # MONITOR is on
    # One transaction, so that the waiting workers take the entries in a few batches (each read counts
    # towards the autoscaler's scale-down, and a later scenario expects WORKER_COUNT).
    _redis_cli(r, [["MULTI"], *([["XADD", stream, "*", *EMPTY_BATCH]] * (idle + 1)), ["EXEC"]])
    IDLE_TRIM[r.name] = IdleTrim(monitor, time.time(), idle)


def idle_trim_check(r: Release) -> None:
    """Redis ran ``XTRIM <stream> MAXLEN <REDIS_IDLE_INGESTION_STREAM_MAXLEN>`` (the code's default would be
    REDIS_INGESTION_STREAM_MAXLEN, which the stream never reached), and ingestion's log says so."""
    t = IDLE_TRIM.get(r.name)
    assert t is not None, "idle_trim_start did not run on this release"
    stream = r.stream_key()
    try:
        # A round of the collector takes 30 to 40 s (module docstring), and one that sees entries waiting (the
        # autoscaler's scenario) trims nothing: allow two rounds after the fill.
        found = t.monitor.wait_for(XTRIM, max(0.5, t.filled + 110 - time.time()))
    finally:
        t.monitor.stop()
    assert {(m[1], m[2]) for m in found} == {(stream, str(t.length))}, [m[0] for m in found]
    logs = [x for x in _pod_logs(r, "ingestion").splitlines() if TRIMMED in x]
    assert any(f'"to":{t.length}' in x and f'"idleTrimStreamLength":{t.length}' in x for x in logs), logs
