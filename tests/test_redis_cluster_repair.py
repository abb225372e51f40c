"""The enterprise Redis Cluster heals itself between syncs: proven by killing real redis-server nodes.

Everything the nodes and the repair run is read from the committed ``dist/iotistica-enterprise/``:
- the nodes: the ConfigMap's redis.conf and the StatefulSet's redis-server arguments (password,
  ``--masterauth``, ``--cluster-announce-ip``); only the places differ: loopback, a free port each, a
  temporary directory as the emptyDir;
- the first formation: the PostSync hook Job's command and environment;
- the repair: the CronJob's command and environment (``REDIS_CLUSTER_MODE=repair`` ...), the script
  from the ConfigMap it mounts. Pod DNS names in ``REDIS_NODES`` map to the loopback ports (what the
  headless Service's DNS does), the Secret reference to the test password.

A writer keeps writing keys across all slots. Each fault kills nodes with SIGKILL and restarts them
empty (directory and nodes.conf wiped: a rescheduled pod), or (the uneven fault) re-points a master's
replica to another master by hand, leaving a slot-owning master without a replica. Then:
1. today's dist/ (only the sync-time hook): nothing runs between syncs. After giving Redis its own
   failure detection and failover window (2 x cluster-node-timeout) the cluster is still degraded: an
   empty node never rejoins by itself, and Redis' replica migration gives no replica to a master whose
   replica was re-pointed;
2. the repair CronJob's runs, back to back (the schedule compressed: in a cluster they come once a
   minute), until the cluster is healthy, within the bound ``repair_bound_seconds`` derives from
   cluster-node-timeout and the schedule. Healthy: 3 masters with one replica each, all 16384 slots
   served and agreed on, ``redis-cli --cluster check`` clean. The uneven fault costs no write at all.

The writer's failed writes per fault are printed (``pytest -s``) for the README; nothing is asserted
about timings. Another test runs the sync hook and the repair at once, at first formation and after a
fault: both exit 0 and the cluster ends healthy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from constructs.core.redis_store import failover_grace_seconds, repair_bound_seconds
from tests.realservers import need
from tests.rediscluster_writer import ClusterWriter, outage
from tests.test_redis_cluster_bootstrap import PASSWORD, cluster_info, cluster_nodes, free_ports

REPO = Path(__file__).resolve().parents[1]
RELEASE = "iotistica-enterprise"
DIST = REPO / "dist" / RELEASE

SLOTS = 16384


def dist_object(kind: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((DIST / f"{kind}.{name}.k8s.yaml").read_text())


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["spec"]


@dataclass
class Dist:
    """What dist/ says about the cluster: redis.conf, the server args, the hook's and the repair's runs."""

    conf: str
    script: str
    server_args: list[str]
    hook: dict[str, Any]
    repair: dict[str, Any]
    node_timeout_ms: int

    @classmethod
    def load(cls) -> Dist:
        cm = dist_object("ConfigMap", f"{RELEASE}-redis")["data"]
        sts = dist_object("StatefulSet", f"{RELEASE}-redis")
        [redis] = [c for c in pod_spec_of(sts)["containers"] if c["name"] == "redis"]
        timeout = next(
            int(line.split()[1]) for line in cm["redis.conf"].splitlines() if line.startswith("cluster-node-timeout")
        )
        return cls(
            conf=cm["redis.conf"],
            script=cm["redis-cluster-bootstrap.sh"],
            server_args=[redis["command"][0], *redis["args"]],
            hook=dist_object("Job", f"{RELEASE}-redis-cluster-init"),
            repair=dist_object("CronJob", f"{RELEASE}-redis-cluster-repair"),
            node_timeout_ms=timeout,
        )


@dataclass
class Cluster:
    """Six nodes run from dist/'s config on loopback, and the dist/ Jobs run against them."""

    tmp: Path
    dist: Dist
    ports: list[int] = field(default_factory=lambda: free_ports(6))
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.tmp / "redis.conf").write_text(self.dist.conf)
        scripts = self.tmp / "scripts"  # the ConfigMap volume the Jobs mount at /scripts
        scripts.mkdir()
        (scripts / "redis-cluster-bootstrap.sh").write_text(self.dist.script)

    # -- nodes ------------------------------------------------------------------------------------

    def node_dir(self, port: int) -> Path:
        return self.tmp / f"data-{port}"

    def start(self, port: int) -> None:
        self.node_dir(port).mkdir(parents=True, exist_ok=True)
        values = {"REDIS_PASSWORD": PASSWORD, "POD_IP": "127.0.0.1"}
        argv = []
        for arg in self.dist.server_args:
            for name, value in values.items():
                arg = arg.replace(f"$({name})", value)
            argv.append(arg)
        argv = [need("redis-server") if a == "redis-server" else a for a in argv]
        argv = [str(self.tmp / "redis.conf") if a == "/etc/redis/redis.conf" else a for a in argv]
        argv = [str(self.node_dir(port)) if a == "/data" else a for a in argv]
        argv += ["--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
        with open(self.tmp / f"redis-{port}.log", "ab") as log:
            self.procs[port] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.procs[port].poll() is None, (self.tmp / f"redis-{port}.log").read_text()[-2000:]
            if cli(port, "PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError(f"redis-server on {port} does not answer PING")

    def reschedule(self, *ports: int, gap: float = 0.0) -> None:
        """SIGKILL, emptyDir wiped, started empty on the same address (new node id), one after the other."""
        for port in ports:
            proc = self.procs.pop(port)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            shutil.rmtree(self.node_dir(port), ignore_errors=True)
            self.start(port)
            self.wait_ping(port)
            time.sleep(gap)

    def start_all(self) -> None:
        for port in self.ports:
            self.start(port)
        for port in self.ports:
            self.wait_ping(port)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def wipe_all(self) -> None:
        self.reschedule(*self.ports)

    # -- the dist/ Jobs ---------------------------------------------------------------------------

    def command(self, obj: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The container's command and environment, as the pod would run them here."""
        spec = pod_spec_of(obj)
        [container] = spec["containers"]
        [mount] = container["volumeMounts"]
        [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["configMap"]["name"] == f"{RELEASE}-redis", "the script comes from the Redis ConfigMap"
        argv = [a.replace(mount["mountPath"], str(self.tmp / "scripts")) for a in container["command"]]
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "BOOTSTRAP"))}
        for e in container["env"]:
            if "valueFrom" in e:
                assert e["valueFrom"]["secretKeyRef"]["name"] == f"{RELEASE}-redis-auth"
                environment[e["name"]] = PASSWORD
            else:
                environment[e["name"]] = e["value"]
        # The headless Service's DNS: pod i's name is node i's loopback port.
        nodes = environment["REDIS_NODES"].split()
        assert len(nodes) == len(self.ports)
        for i, entry in enumerate(nodes):
            assert entry.startswith(f"{RELEASE}-redis-{i}.{RELEASE}-redis-headless.")
        environment["REDIS_NODES"] = " ".join(f"127.0.0.1:{p}" for p in self.ports)
        return argv, environment

    def popen(self, obj: dict[str, Any]) -> subprocess.Popen:
        argv, environment = self.command(obj)
        return subprocess.Popen(
            argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )

    def run(self, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        proc = self.popen(obj)
        out, err = proc.communicate(timeout=180)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # -- views ------------------------------------------------------------------------------------

    def unhealthy(self) -> str | None:
        """Why the cluster is not healthy, or None: every node ok with all slots and all 6 nodes, none
        failed, all agree; 3 masters with one replica each; `redis-cli --cluster check` clean."""
        views = {}
        for port in self.ports:
            info = cluster_info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_assigned") != str(SLOTS):
                return f"{port}: {info.get('cluster_state')} slots={info.get('cluster_slots_assigned')}"
            if info.get("cluster_slots_ok") != str(SLOTS) or info.get("cluster_known_nodes") != "6":
                return f"{port}: slots_ok={info.get('cluster_slots_ok')} known={info.get('cluster_known_nodes')}"
            entries = cluster_nodes(port)
            bad = [e for e in entries if e.flags & {"fail", "fail?", "noaddr", "handshake"} or e.link != "connected"]
            if bad:
                return f"{port}: {bad}"
            views[port] = {(e.id, e.role, e.master, e.port, e.slots) for e in entries}
        first = views[self.ports[0]]
        if any(v != first for v in views.values()):
            return "the nodes do not agree"
        masters = {i for i, role, _, _, slots in first if role == "master" and slots}
        replicas_of = sorted(m for _, role, m, _, _ in first if role == "slave")
        if len(masters) != 3 or replicas_of != sorted(masters):
            return f"want 3 masters with one replica each: {sorted((r, p) for _, r, _, p, _ in first)}"
        check = subprocess.run(
            [need("redis-cli"), "--cluster", "check", f"127.0.0.1:{self.ports[0]}"],
            env={**os.environ, "REDISCLI_AUTH": PASSWORD},
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0 or "[ERR]" in check.stdout or "[WARNING]" in check.stdout:
            return f"redis-cli --cluster check: {check.stdout[-800:]}"
        return None

    def roles(self) -> dict[int, Any]:
        return {p: next(e for e in cluster_nodes(p) if "myself" in e.flags) for p in self.ports}


def cli(port: int, *args: str) -> str:
    out = subprocess.run(
        [need("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        env={**os.environ, "REDISCLI_AUTH": PASSWORD},
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.replace("\r", "")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def dist() -> Dist:
    return Dist.load()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, dist: Dist) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("redis-repair"), dist)
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()


# -- what dist/ ships -----------------------------------------------------------------------------


def test_the_repair_runs_between_syncs_from_dist(dist: Dist) -> None:
    """A CronJob every minute, one run at a time, bounded, no token, the same script in repair mode."""
    cron = dist.repair["spec"]
    assert cron["schedule"] == "* * * * *"
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] == 1 and cron["failedJobsHistoryLimit"] == 3
    job = cron["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 300
    pod = pod_spec_of(dist.repair)
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert pod["restartPolicy"] == "Never"
    [c] = pod["containers"]
    hook = pod_spec_of(dist.hook)["containers"][0]
    assert c["command"] == hook["command"] == ["sh", "/scripts/redis-cluster-bootstrap.sh"]
    assert c["image"] == hook["image"] == "redis:7.4.2-alpine"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["REDIS_CLUSTER_MODE"] == "repair"
    # The lock outlives the run: it expires no earlier than the Job's deadline.
    assert env["BOOTSTRAP_LOCK_SECONDS"] == str(job["activeDeadlineSeconds"])
    assert env["REDIS_NODES"] == {e["name"]: e.get("value") for e in hook["env"]}["REDIS_NODES"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    # The sync hook stays, for the first formation; it is what today's dist/ has, and only at sync time.
    assert dist.hook["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    assert "REDIS_CLUSTER_MODE" not in {e["name"] for e in hook["env"]}
    # The bound: next run (60 s) + pod start (30 s) + two failover phases + join and check (30 s).
    assert dist.node_timeout_ms == 5000
    assert failover_grace_seconds(5000) == 15 and repair_bound_seconds(5000) == 150


def test_the_exporter_sidecar_is_scraped(dist: Dist) -> None:
    sts = dist_object("StatefulSet", f"{RELEASE}-redis")
    [exporter] = [c for c in pod_spec_of(sts)["containers"] if c["name"] == "exporter"]
    assert exporter["image"] == "oliver006/redis_exporter:v1.67.0"
    assert exporter["ports"] == [{"containerPort": 9121, "name": "metrics", "protocol": "TCP"}]
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    assert exporter["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
    monitor = dist_object("ServiceMonitor", f"{RELEASE}-redis-headless")["spec"]
    [endpoint] = monitor["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["relabelings"][0]["regex"] == f"{RELEASE}-redis-headless"
    headless = dist_object("Service", f"{RELEASE}-redis-headless")["spec"]
    assert {"name": "metrics", "port": 9121, "protocol": "TCP", "targetPort": "metrics"} in headless["ports"]


# -- the proof ------------------------------------------------------------------------------------


def test_the_sync_hook_and_the_repair_never_fight(cluster: Cluster, dist: Dist) -> None:
    # First formation: the hook forms the cluster while repair runs keep starting. The repair leaves
    # a cluster being formed alone; the hook ends healthy.
    cluster.wipe_all()
    hook = cluster.popen(dist.hook)
    repairs = []
    while hook.poll() is None:
        repairs.append(cluster.run(dist.repair))
    out, err = hook.communicate(timeout=60)
    assert hook.returncode == 0, f"{out}\n{err}"
    assert "cluster formed" in out
    for r in repairs:
        assert r.returncode == 0, describe(r)
        assert "creating the cluster" not in r.stdout and "resetting" not in r.stdout, describe(r)
    assert cluster.unhealthy() is None, f"{out}\n" + "\n".join(r.stdout for r in repairs if "REPLICATE" in r.stdout)

    # After a fault (a master and its replica lost): the hook and a repair run start together.
    roles = cluster.roles()
    master = next(p for p, me in roles.items() if me.role == "master")
    partner = next(p for p, me in roles.items() if me.master == roles[master].id)
    cluster.reschedule(master, partner)
    hook, repair = cluster.popen(dist.hook), cluster.popen(dist.repair)
    (h_out, h_err), (r_out, r_err) = hook.communicate(timeout=120), repair.communicate(timeout=120)
    assert hook.returncode == 0, f"{h_out}\n{h_err}"
    assert repair.returncode == 0, f"{r_out}\n{r_err}"
    # Exactly one of them repaired; the other waited for (hook) or left it to (repair) the lock holder.
    took = ["repair lock taken" in h_out, "repair lock taken" in r_out]
    assert took.count(True) >= 1, f"{h_out}\n{r_out}"
    if took == [True, False]:
        assert "another run is repairing" in r_out or "nothing to do" in r_out, r_out
    assert cluster.unhealthy() is None, f"{h_out}\n{r_out}"


FAULTS = ("master", "replica", "master-then-its-replica", "uneven-replicas")


def re_point_a_replica(cluster: Cluster) -> list[int]:
    """The uneven state a user leaves by hand: one master's replica re-pointed to another master
    (CLUSTER REPLICATE on the replica), so the masters have 2 + 0 + 1 replicas and every slot is still
    served. Waits until every node has learnt it. Returns no victims (nothing is restarted)."""
    roles = cluster.roles()
    masters = sorted(p for p, me in roles.items() if me.role == "master")
    lacking, donor = masters[0], masters[1]
    [moved] = [p for p, me in roles.items() if me.master == roles[lacking].id]
    assert cli(moved, "CLUSTER", "REPLICATE", roles[donor].id).strip() == "OK"
    deadline = time.monotonic() + 20
    while any(e.master != roles[donor].id for p in cluster.ports for e in cluster_nodes(p) if e.id == roles[moved].id):
        assert time.monotonic() < deadline, "the nodes did not learn the re-pointed replica"
        time.sleep(0.2)
    return []


def test_the_repair_heals_each_fault_and_without_it_nothing_does(cluster: Cluster, dist: Dist) -> None:
    if cluster.unhealthy() is not None:  # run alone: form it the way the sync hook does
        formed = cluster.run(dist.hook)
        assert formed.returncode == 0, describe(formed)
    assert cluster.unhealthy() is None

    # Idle: a repair run on a healthy cluster changes nothing.
    idle = cluster.run(dist.repair)
    assert idle.returncode == 0 and "nothing to do" in idle.stdout, describe(idle)

    bound = repair_bound_seconds(dist.node_timeout_ms)
    # Redis' own failure detection and failover: a node is FAIL after cluster-node-timeout, its replica
    # is elected within about one more (the script itself waits a little longer before forcing it).
    alone = 2 * dist.node_timeout_ms / 1000
    writer = ClusterWriter(cluster.ports, PASSWORD)
    writer.start()
    report = []
    try:
        time.sleep(1)
        for fault in FAULTS:
            roles = cluster.roles()
            master = next(p for p, me in roles.items() if me.role == "master")
            replica = next(p for p, me in roles.items() if me.role == "slave")
            t_fault = time.monotonic()
            if fault == "uneven-replicas":
                victims = re_point_a_replica(cluster)
            else:
                if fault == "master":
                    victims = [master]
                elif fault == "replica":
                    victims = [replica]
                else:
                    victims = [master, next(p for p, me in roles.items() if me.master == roles[master].id)]
                cluster.reschedule(*victims, gap=1.0)

            # 1. Today's dist/: nothing runs between syncs. Redis gets its own failover window.
            deadline = time.monotonic() + alone
            while time.monotonic() < deadline:
                time.sleep(1)
            why = cluster.unhealthy()
            assert why is not None, f"{fault}: the cluster healed without the repair"
            for port in victims:
                assert cluster_info(port)["cluster_known_nodes"] == "1", f"{fault}: {port} rejoined by itself"

            # 2. The repair CronJob's runs, back to back, until healthy or the bound elapses.
            t_repair = time.monotonic()
            runs = []
            while True:
                result = cluster.run(dist.repair)
                runs.append(result)
                assert result.returncode == 0, describe(result)
                why = cluster.unhealthy()
                if why is None:
                    break
                assert time.monotonic() - t_repair < bound, f"{fault}: not healthy after {bound}s: {why}"
            t_healed = time.monotonic()
            time.sleep(1)
            before = outage(writer.window(t_fault, t_repair))
            after = outage(writer.window(t_repair, time.monotonic()))
            report.append(
                f"{fault}: runs={len(runs)} repair={t_healed - t_repair:.1f}s "
                f"| writes failing before the repair: {before.failed}/{before.writes}"
                f" over {before.seconds}s {before.errors} "
                f"| from the repair's start: {after.failed}/{after.writes} over {after.seconds}s {after.errors}"
            )
            assert "repaired" in runs[0].stdout, describe(runs[0])
            if fault == "uneven-replicas":
                # Every master keeps its slots: moving a replica costs no write, before or during the repair.
                assert "CLUSTER REPLICATE on replica" in runs[0].stdout, describe(runs[0])
                assert before.failed == 0 and after.failed == 0, report[-1]
    finally:
        writer.stop()
        print("\n--- Redis Cluster repair, per fault (writer on all slots) ---\n" + "\n".join(report))
