"""End to end, scenario 5: faults while an agent publishes (docs/e2e.md).

One agent, provisioned as agents are, publishes a reading every 0.25 s, each its own MQTT QoS 1 publish over
TLS through the public MQTT host (``mosquitto_pub`` exits 0 only when the broker acknowledged it, PUBACK).
Each reading carries its sequence number as its value. Meanwhile, one after another: Redis restarts, the
broker restarts, ingestion's database sessions are ended (``pg_terminate_backend``), and the API's
container is killed (the kubelet restarts it, as for a crash). No sync runs in between. Then the test counts
what the broker acknowledged and what reached ``readings``."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e import platform_build
from tests.e2e.release import Release, running_release

MISSING = platform_build.missing()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MISSING is not None, reason=f"e2e: {MISSING}"),
    pytest.mark.timeout(600),
]

RELEASE = "client-demo"
PERIOD = 0.25


@dataclass
class Agent:
    r: Release
    uuid: str
    mqtt: dict[str, Any]
    topic: str
    acked: dict[int, float] = field(default_factory=dict)  # seq -> when the broker acknowledged it
    refused: dict[int, str] = field(default_factory=dict)  # seq -> why not
    marks: list[tuple[str, float, int]] = field(default_factory=list)  # (event, when, next seq)
    stop: threading.Event = field(default_factory=threading.Event)
    seq: int = 0

    def publish(self, seq: int) -> None:
        from tests.e2e.test_e2e_release import _outside

        broker = self.mqtt["brokerConfig"]
        reading = {
            "deviceName": "e2e-fault-sensor",
            "protocol": "modbus",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{seq % 1000:03d}Z",
            "data": {"readings": [{"metric": "e2e_seq", "value": seq, "unit": "n"}]},
        }
        pub = _outside(
            self.r,
            ["mosquitto_pub", "-h", broker["host"], "-p", str(broker["port"]), "--cafile", str(self.r.mqtt_ca),
             "-u", self.mqtt["username"], "-P", self.mqtt["password"], "-i", f"agent-{self.uuid[:8]}-{seq}",
             "-q", "1", "-t", self.topic, "-m", json.dumps(reading)],
            timeout=20,
        )  # fmt: skip
        if pub.returncode == 0:
            self.acked[seq] = time.monotonic()
        else:
            self.refused[seq] = pub.stderr.strip()[-200:]

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.seq += 1
            self.publish(self.seq)
            self.stop.wait(max(0.0, PERIOD - (time.monotonic() - t0)))

    def mark(self, event: str) -> None:
        self.marks.append((event, time.monotonic(), self.seq + 1))


def landed(r: Release, agent: str) -> set[int]:
    rows = r.db(f"SELECT value FROM readings WHERE agent_uuid = '{agent}' AND metric_name = 'e2e_seq'")
    return {int(float(v)) for (v,) in rows}


@pytest.fixture(scope="module")
def faults() -> Iterator[tuple[Release, Agent]]:
    from tests.e2e.test_e2e_release import _probe_budget, _provision_agent

    built = platform_build.build()
    with running_release(RELEASE, built) as r:
        r.sync(wave_timeout=_probe_budget(r))
        uuid, mqtt = _provision_agent(r, "e2e-fault-agent")
        topic = mqtt["topics"]["publish"][0].removesuffix("#") + "endpoints/e2e"
        agent = Agent(r, uuid, mqtt, topic)
        # Until the API subscribed (MQTT_STARTUP_DELAY_MS after its start): the first reading that lands.
        deadline = time.monotonic() + 60
        while not landed(r, uuid):
            assert time.monotonic() < deadline, r.kubelet.report()
            agent.seq += 1
            agent.publish(agent.seq)
            time.sleep(1.0)
        agent.acked.clear()
        agent.refused.clear()
        start = agent.seq + 1
        t = threading.Thread(target=agent.run, daemon=True)
        t.start()
        try:
            time.sleep(5)
            for event, kill in FAULTS:
                agent.mark(event)
                kill(r)
                # The API's back-off (10 s) and MQTT_STARTUP_DELAY_MS (15 s) after its kill; 20 s elsewhere.
                time.sleep(35 if event == "api killed" else 20)
            agent.mark("end of faults")
            time.sleep(10)
        finally:
            agent.stop.set()
            t.join(timeout=30)
        agent.mark("stopped")
        # Until what is acknowledged has landed: the API's spool replays, ingestion catches up, and a reading
        # its killed worker had read but not written is claimed again once idle 60 s (XAUTOCLAIM,
        # ingestion/src/services/worker.ts). What had no subscriber never comes (the last two faults). And until
        # ingestion has taken and acknowledged every entry of the stream: a worker that the autoscaler retires
        # while it waits in XREADGROUP leaves the entry it then receives pending, unwritten, until XAUTOCLAIM
        # takes it 60 s later (worker.ts, `workerLoop`; docs/e2e.md). "Nothing new for 6 s" counted it lost.
        agent.marks.insert(0, ("start", 0.0, start))
        must = {s for s in agent.acked if _window(agent, s) not in ("broker restart", "api killed", "end of faults")}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            time.sleep(3)  # first: the API writes what it took last to the stream (its 50 ms pipeline)
            if must <= landed(r, uuid) and _stream_drained(r):
                break
        yield r, agent


def _stream_drained(r: Release) -> bool:
    """Ingestion's consumer groups have taken every entry of the stream (lag 0) and acknowledged it (nothing
    pending): whatever reached Redis has been written, or spooled by ingestion."""
    env = r.kube.get(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{r.name}-ingestion-runtime-env", "namespace": r.namespace},
        }
    )
    assert env is not None, "the stream key's Secret is missing"
    key = base64.b64decode(env["data"]["REDIS_INGESTION_STREAM_KEY"]).decode()
    redis = r.kubelet.container(r.namespace, f"Deployment/{r.name}-redis")
    out = r.kubelet.exec(redis, ["redis-cli", "XINFO", "GROUPS", key])
    lines = out.stdout.splitlines()
    groups: list[dict[str, str]] = []
    for k, v in zip(lines[::2], lines[1::2], strict=False):
        if k == "name":
            groups.append({})
        if groups:
            groups[-1][k] = v
    return out.returncode == 0 and bool(groups) and all(g.get("pending") == "0" and g.get("lag") == "0" for g in groups)


def _kill(r: Release, workload: str) -> None:
    c = r.kubelet.container(r.namespace, f"Deployment/{r.name}-{workload}")
    assert c.proc is not None
    os.kill(c.proc.pid, signal.SIGKILL)


def _end_ingestion_sessions(r: Release) -> None:
    rows = r.pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'iotistic-ingestion'"
    )
    assert rows, "ingestion has no database session to end"


FAULTS = [
    ("redis restart", lambda r: _kill(r, "redis")),
    ("broker restart", lambda r: _kill(r, "mosquitto")),
    ("ingestion's database sessions ended", _end_ingestion_sessions),
    ("api killed", lambda r: _kill(r, "api")),
]


def _window(agent: Agent, seq: int) -> str:
    name = "before"
    for event, _, first in agent.marks:
        if seq >= first:
            name = event
    return name


def _lost(faults: tuple[Release, Agent]) -> dict[str, list[int]]:
    r, agent = faults
    got = landed(r, agent.uuid)
    by_window: dict[str, list[int]] = {}
    for s in sorted(set(agent.acked) - got):
        by_window.setdefault(_window(agent, s), []).append(s)
    return by_window


def _first(agent: Agent, event: str) -> int:
    return next(first for e, _, first in agent.marks if e == event)


def test_the_agent_kept_publishing_through_every_fault(faults: tuple[Release, Agent]) -> None:
    _, agent = faults
    for event, _ in FAULTS:
        start = _first(agent, event)
        nxt = agent.marks[[e for e, _, _ in agent.marks].index(event) + 1][2]
        assert any(start <= s < nxt for s in agent.acked), f"nothing acknowledged after {event}"


def test_a_redis_restart_loses_nothing_acknowledged(faults: tuple[Release, Agent]) -> None:
    """While Redis is down the API spools to its disk and replays once its circuit breaker closed (a write
    30 s after it opened; the agent keeps publishing); ingestion re-creates its consumer group from 0."""
    lost = _lost(faults)
    assert lost.get("before", []) == [] and lost.get("redis restart", []) == [], lost


def test_an_ended_database_session_loses_at_most_what_the_old_process_had_taken(faults: tuple[Release, Agent]) -> None:
    """Ingestion exits on the ended session's error (platform-facts §17) and the kubelet restarts it; the
    stream held what it had not taken, and a reading its dead worker had read but not written is claimed
    again once idle 60 s. This window also ends with the API's kill: a reading the API had taken from the
    broker (mqtt.js acknowledges a QoS 1 message on receipt) but not yet written to the stream (its pipeline
    flushes after 50 ms) dies with it (docs/e2e.md; only the platform's code can change it)."""
    r, agent = faults
    assert any(f"{r.name}-ingestion-0/ingestion exited" in e for e in r.kubelet.events), r.kubelet.events[-20:]
    # Everything the restarted ingestion took lands. What the old process had taken when the error hit may be
    # lost: in 2 of 5 earlier runs one reading was. Not reproduced since: the process dies before its spool
    # write and the acknowledgement, and XAUTOCLAIM brings the reading back (docs/e2e.md, cause not found).
    ingestion = r.kubelet.container(r.namespace, f"Deployment/{r.name}-ingestion")
    killed = next(when for e, when, _ in agent.marks if e == "api killed")
    lost = _lost(faults).get("ingestion's database sessions ended", [])
    old = [s for s in lost if agent.acked[s] < ingestion.started_at]
    in_the_api = [s for s in lost if agent.acked[s] >= killed - 1.0]
    assert sorted(old + in_the_api) == lost, (lost, ingestion.started_at, killed)
    assert len(old) <= 1 and len(in_the_api) <= 1, (old, in_the_api)


def _lost_after(lost: list[int], agent: Agent, event: str) -> None:
    """What is lost was acknowledged after ``event``: nothing acknowledged before the fault is lost."""
    assert all(s >= _first(agent, event) for s in lost), (event, lost)


def test_a_broker_restart_loses_only_what_came_after_it(faults: tuple[Release, Agent]) -> None:
    """Readings the restarted broker acknowledged before the API subscribed again (its reconnect back-off) had
    no subscriber: the API's session is clean (docs/e2e.md: only the platform's code can change it)."""
    _, agent = faults
    _lost_after(_lost(faults).get("broker restart", []), agent, "broker restart")


def test_an_api_restart_loses_only_what_came_before_it_subscribed_again(faults: tuple[Release, Agent]) -> None:
    """While the API is down, go-auth refuses every agent (nothing acknowledged). When it is back it answers
    go-auth at once but subscribes MQTT_STARTUP_DELAY_MS (15 s) later: what the broker acknowledged in between
    had no subscriber. From its subscription on, every reading acknowledged lands: the fixture waits until
    ingestion has acknowledged every entry of the stream, so a reading a retired worker left pending for
    XAUTOCLAIM (60 s) is counted when it lands (docs/e2e.md)."""
    r, agent = faults
    lost = _lost(faults)
    after_kill = lost.get("api killed", []) + lost.get("end of faults", [])
    _lost_after(after_kill, agent, "api killed")
    assert any(_window(agent, s) == "api killed" for s in agent.refused), "the API's absence refused nobody"
    # The platform recovered without a sync, and nothing acknowledged after the API had subscribed again is
    # lost: the readings the restarted API's process lost form a prefix, before the first one that landed.
    api = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
    since = sorted(s for s in agent.acked if agent.acked[s] > api.started_at)
    landed_since = sorted(set(since) & landed(r, agent.uuid))
    assert landed_since, (since, lost)
    assert [s for s in since if s not in landed_since] == [s for s in since if s < landed_since[0]], (lost, since)
