"""constructs/scripts/redis-cluster-bootstrap.sh against six real redis-server processes (no mocks).

The nodes run like the enterprise StatefulSet's pods: cluster mode, no persistence, password auth, and a
"rescheduled pod" is simulated by killing a node, wiping its directory and nodes.conf (the emptyDir) and
starting it again on the same port: it comes back empty, with a new node id, while the cluster still
remembers the old one.

The script is run by /bin/sh (dash on Debian) and, where busybox is installed, by `busybox sh` with a PATH
holding only busybox applets, redis-cli and getent: what the redis:7.4.2-alpine image offers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "constructs" / "scripts" / "redis-cluster-bootstrap.sh"
_REDIS_SERVER = shutil.which("redis-server")
_REDIS_CLI = shutil.which("redis-cli")
REDIS_SERVER = _REDIS_SERVER or "redis-server"
REDIS_CLI = _REDIS_CLI or "redis-cli"
BUSYBOX = shutil.which("busybox")
GETENT = shutil.which("getent")

pytestmark = pytest.mark.skipif(
    _REDIS_SERVER is None or _REDIS_CLI is None,
    reason="redis-server/redis-cli not on PATH (Debian: apt-get install redis-server); CI installs them",
)

PASSWORD = "bootstrap-test-pw"
NODE_COUNT = 6
SLOTS = 16384
#: Upper bound for one script run; its own waits are bounded by BOOTSTRAP_TIMEOUT_SECONDS below it.
RUN_TIMEOUT = 90


def free_ports(count: int) -> list[int]:
    """Free TCP ports on 127.0.0.1 whose cluster-bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 55000 or port in ports:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


def cli(port: int, *args: str, password: str = PASSWORD, timeout: float = 10) -> str:
    env = {**os.environ, "REDISCLI_AUTH": password}
    out = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.stdout.replace("\r", "")


def cluster_info(port: int) -> dict[str, str]:
    return dict(line.split(":", 1) for line in cli(port, "CLUSTER", "INFO").splitlines() if ":" in line)


@dataclass(frozen=True)
class Entry:
    """One CLUSTER NODES line."""

    id: str
    port: int
    flags: frozenset[str]
    master: str
    link: str
    slots: tuple[str, ...]

    @property
    def role(self) -> str:
        return "master" if "master" in self.flags else "slave"


def cluster_nodes(port: int) -> list[Entry]:
    entries = []
    for line in cli(port, "CLUSTER", "NODES").splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        addr = f[1].split("@", 1)[0]
        entries.append(
            Entry(
                id=f[0],
                port=int(addr.rsplit(":", 1)[1] or 0),
                flags=frozenset(f[2].split(",")),
                master=f[3],
                link=f[7],
                slots=tuple(f[8:]),
            )
        )
    return entries


@dataclass
class RedisNodes:
    """Six cluster-mode redis-server processes on 127.0.0.1."""

    tmp: Path
    ports: list[int] = field(default_factory=lambda: free_ports(NODE_COUNT))
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def node_dir(self, port: int) -> Path:
        return self.tmp / f"node-{port}"

    def conf(self, port: int) -> Path:
        return self.tmp / f"nodes-{port}.conf"

    def start(self, port: int) -> None:
        self.node_dir(port).mkdir(parents=True, exist_ok=True)
        options = {
            "port": str(port),
            "bind": "127.0.0.1",
            "cluster-enabled": "yes",
            "cluster-config-file": str(self.conf(port)),
            "cluster-node-timeout": "2000",
            "save": "",
            "appendonly": "no",
            # One directory per node: a replica's full sync writes dump.rdb there, and a shared file
            # would leak keys into a node that is meant to come back empty.
            "dir": str(self.node_dir(port)),
            "requirepass": PASSWORD,
            "masterauth": PASSWORD,
            "daemonize": "no",
        }
        argv = [REDIS_SERVER]
        for name, value in options.items():
            argv += [f"--{name}", value]
        with open(self.tmp / f"redis-{port}.log", "ab") as log:
            self.procs[port] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def wait_ping(self, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[port].poll() is not None:
                raise RuntimeError(f"redis-server on {port} exited: {self.log_tail(port)}")
            if cli(port, "PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {port} does not answer PING: {self.log_tail(port)}")

    def log_tail(self, port: int) -> str:
        path = self.tmp / f"redis-{port}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-10:]) if path.exists() else ""

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def reschedule(self, *ports: int) -> None:
        """What a rescheduled pod looks like: killed, emptyDir (dir + nodes.conf) gone, started empty."""
        for port in ports:
            self.kill(port)
            shutil.rmtree(self.node_dir(port), ignore_errors=True)
            self.conf(port).unlink(missing_ok=True)
        for port in ports:
            self.start(port)
        for port in ports:
            self.wait_ping(port)

    def start_all(self) -> None:
        for port in self.ports:
            self.start(port)
        for port in self.ports:
            self.wait_ping(port)

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.kill(port)

    def reset_all(self) -> None:
        """Six empty, unclustered nodes again."""
        self.stop_all()
        self.reschedule(*self.ports)

    def run(
        self,
        *,
        nodes: str | None = None,
        password: str = PASSWORD,
        timeout_seconds: int = 40,
        busybox: bool = False,
        bb_path: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS")}
        env.update(
            REDIS_NODES=nodes or " ".join(f"127.0.0.1:{p}" for p in self.ports),
            REDIS_CLUSTER_REPLICAS="1",
            REDISCLI_AUTH=password,
            BOOTSTRAP_TIMEOUT_SECONDS=str(timeout_seconds),
        )
        if busybox:
            assert BUSYBOX is not None and bb_path is not None
            env["PATH"] = str(bb_path)
            cmd = [BUSYBOX, "sh", str(SCRIPT)]
        else:
            cmd = ["sh", str(SCRIPT)]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, cwd=REPO
        )

    # -- views ------------------------------------------------------------------------------------

    def topology(self) -> dict[int, frozenset[tuple[str, str, str]]]:
        """Per node: the (id, role, master id) of every node it knows."""
        return {p: frozenset((e.id, e.role, e.master) for e in cluster_nodes(p)) for p in self.ports}


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_cluster_ok(nodes: RedisNodes) -> dict[int, Entry]:
    """Every node: state ok, all slots, 6 known nodes, all connected, no failed or stale entries, and the
    same 3 masters with one replica each. Returns the cluster as node port -> its own entry."""
    views = {}
    for port in nodes.ports:
        info = cluster_info(port)
        assert info.get("cluster_state") == "ok", (port, info)
        assert info.get("cluster_slots_assigned") == str(SLOTS), (port, info)
        assert info.get("cluster_known_nodes") == str(NODE_COUNT), (port, info)
        entries = cluster_nodes(port)
        assert len(entries) == NODE_COUNT, (port, entries)
        for e in entries:
            assert not e.flags & {"fail", "fail?", "noaddr", "handshake"}, (port, e)
            assert e.link == "connected", (port, e)
        views[port] = {(e.id, e.role, e.master, e.port) for e in entries}
    first = views[nodes.ports[0]]
    assert all(v == first for v in views.values()), views
    masters = {i for i, role, _, _ in first if role == "master"}
    replicas_of = [m for _, role, m, _ in first if role == "slave"]
    assert len(masters) == 3 and len(replicas_of) == 3, first
    assert sorted(replicas_of) == sorted(masters), f"each master needs exactly one replica: {first}"
    assert {p for *_, p in first} == set(nodes.ports), first
    for m in masters:
        assert [e for e in cluster_nodes(nodes.ports[0]) if e.id == m][0].slots, f"master {m} has no slots"
    own = {}
    for port in nodes.ports:
        [me] = [e for e in cluster_nodes(port) if "myself" in e.flags]
        own[port] = me
    return own


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNodes]:
    rn = RedisNodes(tmp_path_factory.mktemp("redis-cluster"))
    try:
        rn.start_all()
        yield rn
    finally:
        rn.stop_all()


@pytest.fixture(scope="module")
def bb_path(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A PATH directory with only busybox applets, redis-cli and getent (the redis alpine image)."""
    if BUSYBOX is None:
        return None
    d = tmp_path_factory.mktemp("busybox-path")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True, timeout=10).stdout
    for applet in applets.split():
        (d / applet).symlink_to(BUSYBOX)
    (d / "redis-cli").symlink_to(REDIS_CLI)
    if GETENT:
        (d / "getent").unlink(missing_ok=True)
        (d / "getent").symlink_to(GETENT)
    return d


@pytest.fixture
def formed(nodes: RedisNodes) -> RedisNodes:
    """A formed, healthy cluster: whatever an earlier test left, the script itself (re)forms it."""
    result = nodes.run()
    if result.returncode != 0:
        nodes.reset_all()
        result = nodes.run()
    assert result.returncode == 0, describe(result)
    assert_cluster_ok(nodes)
    return nodes


# -- tests ----------------------------------------------------------------------------------------


def test_script_is_posix_sh() -> None:
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    shells = [["sh", "-n"], ["dash", "-n"]] + ([[BUSYBOX, "sh", "-n"]] if BUSYBOX else [])
    if shutil.which("checkbashisms"):
        shells.append(["checkbashisms", "--posix"])
    for shell in shells:
        if shutil.which(shell[0]) is None:
            continue
        result = subprocess.run([*shell, str(SCRIPT)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (shell, result.stderr)


def test_forms_the_cluster_then_changes_nothing(nodes: RedisNodes, bb_path: Path | None) -> None:
    nodes.reset_all()
    # One node by name, to go through getent.
    names = " ".join(f"{'localhost' if i == 3 else '127.0.0.1'}:{p}" for i, p in enumerate(nodes.ports))
    first = nodes.run(nodes=names, busybox=bb_path is not None, bb_path=bb_path)
    assert first.returncode == 0, describe(first)
    assert "cluster formed" in first.stdout, describe(first)
    assert_cluster_ok(nodes)
    before = nodes.topology()
    epochs = {p: cluster_info(p)["cluster_current_epoch"] for p in nodes.ports}

    second = nodes.run(nodes=names)
    assert second.returncode == 0, describe(second)
    assert "cluster already formed" in second.stdout, describe(second)
    assert nodes.topology() == before
    assert {p: cluster_info(p)["cluster_current_epoch"] for p in nodes.ports} == epochs


def test_re_adds_a_rescheduled_replica(formed: RedisNodes, bb_path: Path | None) -> None:
    nodes = formed
    own = assert_cluster_ok(nodes)
    [port] = [p for p, me in own.items() if me.role == "slave"][:1]
    old_id, its_master = own[port].id, own[port].master

    nodes.reschedule(port)
    assert cluster_info(port)["cluster_known_nodes"] == "1"

    result = nodes.run(busybox=bb_path is not None, bb_path=bb_path)
    assert result.returncode == 0, describe(result)
    assert f"forgetting lost node {old_id}" in result.stdout, describe(result)
    after = assert_cluster_ok(nodes)
    assert after[port].id != old_id and after[port].role == "slave"
    # The master that lost its replica is the one with the fewest replicas: it gets the new node.
    assert after[port].master == its_master
    for p in nodes.ports:
        assert old_id not in {e.id for e in cluster_nodes(p)}, p


def test_replaces_a_rescheduled_master(formed: RedisNodes) -> None:
    nodes = formed
    own = assert_cluster_ok(nodes)
    [port] = [p for p, me in own.items() if me.role == "master"][:1]
    old_id = own[port].id
    [replica_port] = [p for p, me in own.items() if me.master == old_id]

    # Same port, new node id: the old id turns noaddr, so Redis never fails over by itself.
    nodes.reschedule(port)
    result = nodes.run()
    assert result.returncode == 0, describe(result)
    after = assert_cluster_ok(nodes)
    assert after[replica_port].role == "master", "the lost master's replica took over"
    assert after[port].role == "slave" and after[port].id != old_id
    for p in nodes.ports:
        assert old_id not in {e.id for e in cluster_nodes(p)}, p


def test_reassigns_the_slots_of_a_lost_master_and_its_replica(formed: RedisNodes) -> None:
    nodes = formed
    own = assert_cluster_ok(nodes)
    [master_port] = [p for p, me in own.items() if me.role == "master"][:1]
    master = own[master_port]
    [replica_port] = [p for p, me in own.items() if me.master == master.id]

    nodes.reschedule(master_port, replica_port)
    result = nodes.run()
    assert result.returncode == 0, describe(result)
    assert "slot(s) are unassigned" in result.stdout, describe(result)
    after = assert_cluster_ok(nodes)
    # A fresh node became a master and took exactly the lost slot range; the other one its replica.
    new_master = next(p for p in (master_port, replica_port) if after[p].role == "master")
    assert after[new_master].slots == master.slots
    for p in nodes.ports:
        assert {master.id, own[replica_port].id}.isdisjoint({e.id for e in cluster_nodes(p)}), p


@pytest.mark.parametrize("lacking_masters", [1, 2])
def test_gives_a_replica_to_each_master_whose_replica_was_re_pointed(
    formed: RedisNodes, bb_path: Path | None, lacking_masters: int
) -> None:
    """A slot-owning master without a replica while another has more is not healthy: the script moves the
    surplus replicas back (CLUSTER REPLICATE on the replica, one at a time), keeping the masters and their
    slots. 1: replicas 2 + 0 + 1 (3 in all, the case a sum misses); 2: 3 + 0 + 0."""
    nodes = formed
    own = assert_cluster_ok(nodes)
    masters = sorted(p for p, me in own.items() if me.role == "master")
    donor, lacking = masters[-1], masters[:lacking_masters]
    slots = {p: own[p].slots for p in masters}
    # By hand, as a user re-points replicas; every slot is still served.
    moved = [p for p, me in own.items() if me.master in {own[m].id for m in lacking}]
    for port in moved:
        assert cli(port, "CLUSTER", "REPLICATE", own[donor].id).strip() == "OK"
    deadline = time.monotonic() + 20
    moved_ids = {own[p].id for p in moved}
    while any(e.master != own[donor].id for p in nodes.ports for e in cluster_nodes(p) if e.id in moved_ids):
        assert time.monotonic() < deadline, "the nodes did not learn the re-pointed replicas"
        time.sleep(0.2)
    assert all(cluster_info(p)["cluster_state"] == "ok" for p in nodes.ports)

    result = nodes.run(busybox=bb_path is not None, bb_path=bb_path)
    assert result.returncode == 0, describe(result)
    assert "cluster already formed" not in result.stdout, describe(result)
    assert result.stdout.count("CLUSTER REPLICATE on replica") == lacking_masters, describe(result)
    after = assert_cluster_ok(nodes)  # every master exactly one replica
    assert sorted(p for p, me in after.items() if me.role == "master") == masters
    assert {p: after[p].slots for p in masters} == slots

    again = nodes.run()
    assert again.returncode == 0 and "cluster already formed" in again.stdout, describe(again)


def test_fix_covers_unassigned_slots(formed: RedisNodes) -> None:
    nodes = formed
    # Slots nobody owns, with no fresh node to take them: `redis-cli --cluster fix` must cover them.
    out = subprocess.run(
        [REDIS_CLI, "--cluster", "call", f"127.0.0.1:{nodes.ports[0]}", "CLUSTER", "DELSLOTSRANGE", "0", "99"],
        env={**os.environ, "REDISCLI_AUTH": PASSWORD},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert cluster_info(nodes.ports[0])["cluster_slots_assigned"] == str(SLOTS - 100)

    result = nodes.run()
    assert result.returncode == 0, describe(result)
    assert "--cluster fix" in result.stdout, describe(result)
    assert_cluster_ok(nodes)


@pytest.mark.parametrize("case", ["wrong-password", "unreachable-node"])
def test_fails_with_one_clear_line(nodes: RedisNodes, case: str) -> None:
    if case == "wrong-password":
        culprit = f"127.0.0.1:{nodes.ports[0]}"
        result = nodes.run(password="not-the-password", timeout_seconds=4)
    else:
        [dead] = free_ports(1)
        culprit = f"127.0.0.1:{dead}"
        result = nodes.run(nodes=" ".join([*(f"127.0.0.1:{p}" for p in nodes.ports[:5]), culprit]), timeout_seconds=2)
    assert result.returncode != 0, describe(result)
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, describe(result)
    assert errors[0].startswith("redis-cluster-bootstrap: timed out after"), describe(result)
    assert culprit in errors[0], describe(result)
    if case == "wrong-password":
        assert "WRONGPASS" in errors[0] or "NOAUTH" in errors[0], describe(result)
    else:
        assert "Connection refused" in errors[0], describe(result)
