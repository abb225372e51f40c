"""The platform's sustained telemetry rate on this machine, end to end (`make bench-e2e`, docs/performance.md).

A release of dist/ (client-demo by default) runs as in tests/e2e (real API, ingestion, broker with go-auth, Redis,
TimescaleDB; docs/e2e.md). One provisioned agent's credentials are used by P publishers, each one TLS
connection through the public MQTT host (``mosquitto_pub -l -q 1``), fed as fast as they take lines. Each
message carries R readings. Per case, it reports the readings that reached TimescaleDB's ``readings`` per
second over the sustained part of the run (after a warm-up), the messages per second, and the CPU each
program used (cores). go-auth's cache is off in dist/ (no ``auth_opt_cache``); the "cache on" cases add
``auth_opt_cache true`` with 300 s auth and ACL cache times to the broker's ConfigMap and roll its pod.

Needs ../shared/vendor (as the e2e tests); run as root. Takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import platform_build  # noqa: E402
from tests.e2e.release import Release, running_release  # noqa: E402

CACHE_LINES = (
    "auth_opt_cache true\nauth_opt_cache_type go-cache\n"
    "auth_opt_auth_cache_seconds 300\nauth_opt_acl_cache_seconds 300\n"
)
CLK = os.sysconf("SC_CLK_TCK")


def cpu_by_program(r: Release) -> dict[str, float]:
    """CPU seconds so far: the release's containers by workload, PostgreSQL and the publishers by name."""
    pids: dict[int, str] = {}
    for pod in list(r.kubelet.pods.values()):
        for c in pod.containers:
            if c.proc is not None:
                pids[c.proc.pid] = pod.name.rsplit("-", 1)[0].removeprefix(f"{r.name}-")
    out: dict[str, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        secs = (int(fields[11]) + int(fields[12])) / CLK
        pid = int(d.name)
        name = pids.get(pid) or ("postgres" if comm == "postgres" else "publishers" if comm == "mosquitto_pub" else "")
        if name:
            out[name] = out.get(name, 0.0) + secs
    return out


def count(r: Release, agent: str) -> int:
    return int(r.db(f"SELECT count(*) FROM readings WHERE agent_uuid = '{agent}'")[0][0])


def publishers(r: Release, mqtt: dict, agent: str, topic: str, n: int) -> list[subprocess.Popen]:
    broker = mqtt["brokerConfig"]
    procs = []
    for i in range(n):
        argv = ["mosquitto_pub", "-h", broker["host"], "-p", str(broker["port"]), "--cafile", str(r.mqtt_ca),
                "-u", mqtt["username"], "-P", mqtt["password"], "-i", f"bench-{agent[:8]}-{i}-{time.monotonic_ns()}",
                "-q", "1", "-t", topic, "-l"]  # fmt: skip
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(r.kubelet.hosts_for(None)), *argv]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return procs


def feed(p: subprocess.Popen, per_msg: int, rate: float, stop: threading.Event, sent: list[int], i: int) -> None:
    """Lines for one publisher at up to ``rate`` messages/s (beyond what the platform takes: the excess waits in
    mosquitto_pub and is dropped at the end). Each message has its own timestamp (1 ms apart), so no reading
    is a duplicate of another."""
    seq, t0 = 0, time.time()
    assert p.stdin is not None
    start = time.monotonic()
    while not stop.is_set():
        seq += 1
        ms = int(t0 * 1000) + seq
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
        readings = [{"metric": f"m{k}", "value": seq, "unit": "n"} for k in range(per_msg)]
        body = {"deviceName": f"bench-{i}", "protocol": "modbus", "timestamp": ts, "data": {"readings": readings}}
        try:
            p.stdin.write((json.dumps(body) + "\n").encode())
            if seq % 10 == 0:
                p.stdin.flush()
        except (BrokenPipeError, ValueError):
            return
        sent[i] = seq
        ahead = seq / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def run_case(
    r: Release, mqtt: dict, agent: str, topic: str, n: int, per_msg: int, seconds: float, warmup: float, rate: float
) -> dict:
    stop = threading.Event()
    procs = publishers(r, mqtt, agent, topic, n)
    sent = [0] * n
    threads = [
        threading.Thread(target=feed, args=(p, per_msg, rate, stop, sent, i), daemon=True) for i, p in enumerate(procs)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(warmup)
        c0, cpu0, t0, s0 = count(r, agent), cpu_by_program(r), time.monotonic(), sum(sent)
        time.sleep(seconds)
        c1, cpu1, t1, s1 = count(r, agent), cpu_by_program(r), time.monotonic(), sum(sent)
        depth, watermark = stream_depth(r)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for p in procs:  # what they still hold was never sent: it is not part of the measure
            p.kill()
            p.wait()
    wall = t1 - t0
    cores = {k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / wall, 2) for k in sorted(cpu1)}
    return {
        "publishers": n,
        "readings_per_message": per_msg,
        "readings_per_s": round((c1 - c0) / wall),
        "messages_per_s": round((c1 - c0) / wall / per_msg),
        "fed_messages_per_s": round((s1 - s0) / wall),
        "cores": cores,
        "stream_depth_at_end": depth,
        "api_high_watermark": watermark,
    }


def set_cache(r: Release, on: bool) -> None:
    cm = r.kube.get(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{r.name}-mosquitto", "namespace": r.namespace}}
    )
    conf = cm["data"]["mosquitto.conf"]
    conf = conf.replace(CACHE_LINES, "")
    if on:
        conf += CACHE_LINES
    cm["data"]["mosquitto.conf"] = conf
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        cm["metadata"].pop(k, None)
    r.kube.apply(cm)
    dep = next(o for o in r.objects() if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{r.name}-mosquitto")
    dep["spec"]["template"]["metadata"].setdefault("annotations", {})["bench/auth-cache"] = str(on).lower()
    r.kube.apply(dep)


def stream_depth(r: Release) -> tuple[int, int]:
    """(XLEN of the ingestion stream, the API's high-watermark): the API sends new readings to its disk spool
    instead of Redis while XLEN >= REDIS_INGESTION_STREAM_MAXLEN x REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT (0.85
    by default; api/src/services/telemetry/publisher.ts). XLEN counts entries ingestion has already written
    too, until XADD's MAXLEN or ingestion's idle trim (REDIS_IDLE_INGESTION_STREAM_MAXLEN) removes them."""
    out = r.redis_cli("XLEN", r.stream_key())
    api = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
    maxlen = int(api.env.get("REDIS_INGESTION_STREAM_MAXLEN", "10000"))
    pct = float(api.env.get("REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT", "0.85"))
    return int(out.stdout.strip() or 0), int(maxlen * pct)


def wait_stream_trimmed(r: Release) -> None:
    """Until the stream is short again, an eighth of the API's high-watermark (ingestion's idle trim cuts it to
    REDIS_IDLE_INGESTION_STREAM_MAXLEN, 1000 in the batch profile, once it has been idle; every 30 s): each case
    then starts with room for its own messages below the watermark, where the API writes to Redis, not to its
    spool. XLEN counts entries ingestion has already written too, so without this wait a case that starts just
    below the watermark crosses it within a second and measures the spool."""
    deadline = time.monotonic() + 120
    while (d := stream_depth(r))[0] > d[1] // 8:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-e2e: the stream stayed at {d[0]} entries (the API's high-watermark is {d[1]})")
        time.sleep(2)


def wait_flowing(r: Release, mqtt: dict, agent: str, topic: str) -> None:
    """Until a reading published now lands (broker back, API subscribed)."""
    deadline = time.monotonic() + 90
    before = count(r, agent)
    while count(r, agent) == before:
        if time.monotonic() > deadline:
            raise SystemExit("bench-e2e: readings stopped landing:\n" + r.kubelet.report())
        procs = publishers(r, mqtt, agent, topic, 1)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        probe = [{"metric": "probe", "value": 1, "unit": "n"}]
        body = {"deviceName": "probe", "protocol": "modbus", "timestamp": ts, "data": {"readings": probe}}
        procs[0].communicate((json.dumps(body) + "\n").encode(), timeout=30)
        time.sleep(2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--release", default="client-demo")
    # 13 s a case: at up to ~500 messages/s, what one case adds stays below the demo tier's high-watermark
    # (8,500 entries; over it the API spools instead of writing to Redis). A row whose stream ended over it says so.
    ap.add_argument("--seconds", type=float, default=10.0, help="measured part of each case")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--publishers", type=int, nargs="+", default=[4])
    ap.add_argument("--per-message", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--rate", type=float, default=400.0, help="messages/s offered per publisher")
    args = ap.parse_args()
    missing = platform_build.missing()
    if missing:
        print(f"bench-e2e: skipped: {missing}")
        return 0
    from tests.e2e.release import probe_budget
    from tests.e2e.scenarios import _provision_agent

    built = platform_build.build()
    rows = []
    with running_release(args.release, built) as r:
        r.sync(wave_timeout=probe_budget(r))
        agent, mqtt = _provision_agent(r, "bench-agent")
        topic = mqtt["topics"]["publish"][0].removesuffix("#") + "endpoints/bench"
        for cache in (False, True):
            if cache:
                set_cache(r, True)
                r.kubelet.wait("broker rolled", lambda: any(
                    p.ready for p in r.kubelet.pods_of(f"Deployment/{r.name}-mosquitto", r.namespace)), 60)  # fmt: skip
            wait_flowing(r, mqtt, agent, topic)
            for n in args.publishers:
                for per in args.per_message:
                    wait_stream_trimmed(r)
                    row = run_case(r, mqtt, agent, topic, n, per, args.seconds, args.warmup, args.rate)
                    row["go_auth_cache"] = "on" if cache else "off"
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if row["readings_per_s"] == 0:  # what the programs said meanwhile
                        print(r.kubelet.report(lines=15), flush=True)
                    wait_flowing(r, mqtt, agent, topic)
    print("\n| go-auth cache | publishers | readings/message | readings/s into TimescaleDB | messages/s | stream at end"
          " (API's high-watermark) | cores |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        cores = ", ".join(f"{k} {v}" for k, v in row["cores"].items() if v >= 0.05)
        cells = [row["go_auth_cache"], row["publishers"], row["readings_per_message"], row["readings_per_s"]]
        over = " OVER: the API spooled" if row["stream_depth_at_end"] >= row["api_high_watermark"] else ""
        stream = f"{row['stream_depth_at_end']} ({row['api_high_watermark']}){over}"
        print("| " + " | ".join(str(x) for x in [*cells, row["messages_per_s"], stream, cores]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
