"""The platform's sustained telemetry rate on this machine, end to end (`make bench-e2e`, docs/performance.md).

A release of dist/ (the standard tier's by default) runs as in tests/e2e (real API, ingestion, broker with
go-auth, Redis, TimescaleDB; docs/e2e.md), with one broker and the API and ingestion held at one pod each
(``--api-replicas``/``--ingestion-replicas``; their HPAs' minimum is 2: the operator's ``kubectl scale`` is
applied in the first sync's objects, as no HPA controller runs here). One provisioned agent's credentials are
used by P publishers, each one TLS connection through the public MQTT host (``mosquitto_pub -l -q 1``),
each offered ``--rate`` messages/s. Each message carries R readings. Per case, it reports the readings that reached
TimescaleDB's ``readings`` per second over the sustained part of the run (after a warm-up), the messages per
second the API added to the Redis stream, the stream's length and the ingestion group's backlog (lag +
pending) at the start and end of that part, and the CPU each program used (cores) and the whole machine's.
go-auth's cache is off in dist/ (no ``auth_opt_cache``); the "cache on" cases add ``auth_opt_cache true``
with 300 s auth and ACL cache times to the broker's ConfigMap and roll its pod.

Needs ../shared/vendor (as the e2e tests); run as root. Takes about 2.5 minutes (plus the wait for the e2e lock).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import platform_build  # noqa: E402
from tests.e2e.release import (  # noqa: E402
    Release,
    api_deployment,
    as_the_hpa_leaves_it,
    release_of_tier,
    running_release,
)

CACHE_LINES = (
    "auth_opt_cache true\nauth_opt_cache_type go-cache\n"
    "auth_opt_auth_cache_seconds 300\nauth_opt_acl_cache_seconds 300\n"
)
CLK = os.sysconf("SC_CLK_TCK")


def cpu_by_program(r: Release) -> dict[str, float]:
    """CPU seconds so far: the release's containers by workload, PostgreSQL, the publishers and this bench (its
    feeders) by name, and ``machine``: every CPU's busy time (/proc/stat), whoever used it."""
    pids: dict[int, str] = {}
    for pod in list(r.kubelet.pods.values()):
        for c in pod.containers:
            if c.proc is not None:
                pids[c.proc.pid] = pod.name.rsplit("-", 1)[0].removeprefix(f"{r.name}-")
    pids[os.getpid()] = "bench"
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
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in cpu]
    out["machine"] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK  # all but idle and iowait (guest is in user)
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


def feed(
    p: subprocess.Popen, per_msg: int, rate: float, stop: threading.Event, sent: list[int], i: int, n: int, base: int
) -> None:
    """Lines for publisher ``i`` of ``n`` at up to ``rate`` messages/s (beyond what the platform takes: the excess
    waits in mosquitto_pub and is dropped at the end). Every message has a millisecond of its own after ``base``
    (publisher i takes base + i, base + n + i, ...): readings are unique by (agent, metric, time), device aside
    (ingestion's ``ON CONFLICT (agent_uuid, metric_name, time) DO NOTHING``), and all publishers use one
    agent's credentials, so messages of two publishers in the same millisecond would count once."""
    readings = ",".join(f'{{"metric":"m{k}","value":{k},"unit":"n"}}' for k in range(per_msg))
    head = f'{{"deviceName":"bench-{i}","protocol":"modbus","timestamp":"'
    tail = f'","data":{{"readings":[{readings}]}}}}'
    seq = 0
    assert p.stdin is not None
    start = time.monotonic()
    while not stop.is_set():
        ms = base + seq * n + i
        seq += 1
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
        try:
            p.stdin.write(f"{head}{ts}{tail}\n".encode())
            if seq % 10 == 0:
                p.stdin.flush()
        except (BrokenPipeError, ValueError):
            return
        sent[i] = seq
        ahead = seq / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def stream_state(r: Release) -> dict[str, int]:
    """The ingestion stream now: ``length`` (XLEN), ``added`` (every entry XADD ever added, XINFO STREAM's
    entries-added) and ``backlog``: what ingestion's consumer group has not acknowledged yet (its lag, the
    entries not yet read, plus its pending, read but not acknowledged). A backlog that grows over a case means
    ingestion and TimescaleDB do not keep up with what the API writes."""
    key = r.stream_key()
    info = _pairs(r.redis_cli("XINFO", "STREAM", key).stdout)
    groups = r.redis_cli("XINFO", "GROUPS", key).stdout
    backlog = 0
    for chunk in groups.split("name\n")[1:]:
        g = _pairs("name\n" + chunk)
        backlog += int(g.get("lag") or 0) + int(g.get("pending") or 0)
    return {"length": int(info.get("length") or 0), "added": int(info.get("entries-added") or 0), "backlog": backlog}


def _pairs(text: str) -> dict[str, str]:
    """redis-cli's plain output of a flat reply (field, value, field, value ...) as a dict."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    for i in range(0, len(lines) - 1, 2):
        out.setdefault(lines[i], lines[i + 1])  # the first: XINFO STREAM's nested entries come after its counts
    return out


def api_high_watermark(r: Release) -> int:
    """The API's high-watermark: it sends new readings to its disk spool instead of Redis while XLEN >=
    REDIS_INGESTION_STREAM_MAXLEN x REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT (0.85 by default;
    api/src/services/telemetry/publisher.ts). XLEN counts entries ingestion has already written too, until
    XADD's MAXLEN or ingestion's idle trim (REDIS_IDLE_INGESTION_STREAM_MAXLEN) removes them."""
    api = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
    maxlen = int(api.env.get("REDIS_INGESTION_STREAM_MAXLEN", "10000"))
    pct = float(api.env.get("REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT", "0.85"))
    return int(maxlen * pct)


def run_case(
    r: Release, mqtt: dict, agent: str, topic: str, n: int, per_msg: int, seconds: float, warmup: float, rate: float
) -> dict[str, Any]:
    stop = threading.Event()
    procs = publishers(r, mqtt, agent, topic, n)
    sent, base = [0] * n, int(time.time() * 1000)
    threads = [
        threading.Thread(target=feed, args=(p, per_msg, rate, stop, sent, i, n, base), daemon=True)
        for i, p in enumerate(procs)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(warmup)
        c0, cpu0, st0, t0, s0 = count(r, agent), cpu_by_program(r), stream_state(r), time.monotonic(), sum(sent)
        time.sleep(seconds)
        c1, cpu1, st1, t1, s1 = count(r, agent), cpu_by_program(r), stream_state(r), time.monotonic(), sum(sent)
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
        "seconds": round(wall, 1),
        "readings_per_s": round((c1 - c0) / wall),
        "messages_per_s": round((c1 - c0) / wall / per_msg),
        "into_redis_messages_per_s": round((st1["added"] - st0["added"]) / wall),
        "offered_messages_per_s": round(rate * n),
        "fed_messages_per_s": round((s1 - s0) / wall),
        "stream_length": [st0["length"], st1["length"]],
        "backlog": [st0["backlog"], st1["backlog"]],
        "api_high_watermark": api_high_watermark(r),
        "cores": cores,
        "load_average": os.getloadavg()[0],
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


def wait_drained(r: Release) -> None:
    """Until ingestion has caught up (its group's backlog under 100 entries) and the stream is short enough
    (an eighth of the API's high-watermark; ingestion's idle trim cuts it to REDIS_IDLE_INGESTION_STREAM_MAXLEN
    once it has been idle, every 30 s): each case starts with nothing of the one before still to write, and
    with room for its own messages below the watermark, where the API writes to Redis, not to its spool. XLEN
    counts entries ingestion has already written too: on the demo tier (watermark 8,500), without this wait a
    case that starts just below the watermark crosses it within a second and measures the spool."""
    deadline, mark = time.monotonic() + 120, api_high_watermark(r)
    while (st := stream_state(r))["backlog"] >= 100 or st["length"] > mark // 8:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-e2e: the stream stayed at {st} (the API's high-watermark is {mark})")
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


def first_sync_objects(r: Release, api: int | None, ingestion: int | None) -> list[dict[str, Any]]:
    """The release's objects as the HPAs' first reconcile leaves them (their minReplicas), then the API's and
    ingestion's Deployments at ``api``/``ingestion`` replicas (None: as the tier ships them), as an operator's
    ``kubectl scale`` sets them."""
    objs = as_the_hpa_leaves_it(r.objects(), r.name)
    for short, n in (("api", api), ("ingestion", ingestion)):
        if n is None:
            continue
        dep = api_deployment(objs, r.name) if short == "api" else _deployment(objs, f"{r.name}-{short}")
        dep["spec"]["replicas"] = n
    return objs


def _deployment(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def replicas_of(objs: list[dict[str, Any]]) -> dict[str, int]:
    return {
        o["metadata"]["name"]: int(o["spec"].get("replicas", 1))
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tier", default="standard", help="the release of dist/ of this tier (tests/e2e release_of_tier)")
    ap.add_argument("--release", help="a release of dist/ by name (instead of --tier)")
    ap.add_argument("--api-replicas", type=int, default=1, help="the API's pods (0: as the tier ships it)")
    ap.add_argument("--ingestion-replicas", type=int, default=1, help="ingestion's pods (0: as the tier ships it)")
    ap.add_argument("--seconds", type=float, default=25.0, help="measured part of each case")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--publishers", type=int, nargs="+", default=[4])
    ap.add_argument("--per-message", type=int, nargs="+", default=[20])
    ap.add_argument("--cache", choices=["off", "on"], nargs="+", default=["off", "on"], help="go-auth's cache")
    ap.add_argument("--rate", type=float, nargs="+", default=[350.0, 1000.0],
                    help="messages/s offered per publisher (with the cache off: the lowest only)")  # fmt: skip
    args = ap.parse_args()
    missing = platform_build.missing()
    if missing:
        print(f"bench-e2e: skipped: {missing}")
        return 0
    from tests.e2e.release import probe_budget
    from tests.e2e.scenarios import _provision_agent

    release = args.release or release_of_tier(args.tier)
    began, load_before = time.monotonic(), os.getloadavg()
    built = platform_build.build()
    rows = []
    # Several pods of a workload need the tests' pod addresses, and their Service proxies (in this process) then
    # sit on the measured path: the default (one pod each) runs without them.
    several = args.api_replicas != 1 or args.ingestion_replicas != 1
    with running_release(release, built, pod_addresses=several) as r:
        objs = first_sync_objects(r, args.api_replicas or None, args.ingestion_replicas or None)
        r.synced = objs
        r.sync(wave_timeout=max(240.0, probe_budget(r)), objects=objs)
        print(f"bench-e2e: {time.monotonic() - began:.0f} s: {release} synced, pods: {replicas_of(objs)}", flush=True)
        agent, mqtt = _provision_agent(r, "bench-agent")
        topic = mqtt["topics"]["publish"][0].removesuffix("#") + "endpoints/bench"
        cache_now = False
        for cache in args.cache:
            if (cache == "on") != cache_now:
                cache_now = cache == "on"
                set_cache(r, cache_now)
                r.kubelet.wait("broker rolled", lambda: any(
                    p.ready for p in r.kubelet.pods_of(f"Deployment/{r.name}-mosquitto", r.namespace)), 60)  # fmt: skip
            # With the cache off the broker takes about 100 messages/s whatever is offered: one rate is enough.
            rates = args.rate if cache == "on" else [min(args.rate)]
            for n, per, rate in itertools.product(args.publishers, args.per_message, rates):
                wait_flowing(r, mqtt, agent, topic)
                wait_drained(r)
                print(
                    f"bench-e2e: {time.monotonic() - began:.0f} s: cache {cache}, {n} x {rate:g}/s, {per}", flush=True
                )
                row = run_case(r, mqtt, agent, topic, n, per, args.seconds, args.warmup, rate)
                row["go_auth_cache"] = cache
                rows.append(row)
                print(json.dumps(row), flush=True)
                if row["readings_per_s"] == 0:  # what the programs said meanwhile
                    print(r.kubelet.report(lines=15), flush=True)
    print(
        f"\n{release}, one broker, pods: {replicas_of(objs)}; load average before the run"
        f" {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, {time.monotonic() - began:.0f} s in all"
    )
    print("\n| go-auth cache | publishers | readings/message | messages/s offered | readings/s into TimescaleDB"
          " | messages/s into TimescaleDB | messages/s into Redis | stream length, start → end (API's"
          " high-watermark) | ingestion backlog, start → end | cores | load average |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for row in rows:
        cores = ", ".join(f"{k} {v}" for k, v in row["cores"].items() if v >= 0.05 and k != "machine")
        cores += f"; machine {row['cores'].get('machine', 0.0)} of {os.cpu_count()}"
        cells = [row["go_auth_cache"], row["publishers"], row["readings_per_message"], row["offered_messages_per_s"]]
        cells.append(row["readings_per_s"])
        a, b = row["stream_length"]
        over = " OVER: the API spooled" if b >= row["api_high_watermark"] else ""
        stream = f"{a:,} → {b:,} ({row['api_high_watermark']:,}){over}"
        backlog = f"{row['backlog'][0]:,} → {row['backlog'][1]:,}"
        cells += [row["messages_per_s"], row["into_redis_messages_per_s"], stream, backlog, cores]
        print("| " + " | ".join(str(x) for x in [*cells, f"{row['load_average']:.2f}"]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
