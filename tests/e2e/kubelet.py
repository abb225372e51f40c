"""The kubelet's part (and the Deployment and Job controllers'), played from the objects on the API server.

Each container of a pod runs as its real program (``IMAGES``: image -> program on this machine), with
exactly its command and args, its environment (``value``, ``secretKeyRef``, ``configMapKeyRef``,
``fieldRef``, ``resourceFieldRef``, ``envFrom``; ``$(VAR)`` expansion as the kubelet does it), its
volumes (ConfigMaps, Secrets, emptyDirs, claims, the ServiceAccount token) at their paths in a private
root (``nsexec.py``), its securityContext's uid, gid and fsGroup, and its probes (startup, readiness,
liveness) on their schedule. A failed liveness probe or an exit restarts the container with the kubelet's
back-off (``Container.back_off``): at once the first time, then 10 s, doubling, at most 300 s, counted from when
it finished; a Job's pod is not restarted (``restartPolicy: Never``), the Job makes a new one until
``backoffLimit``.

Networking: every Service gets an address of its own in 127.0.0.0/8 and every pod another. The hosts file of
a pod's namespace maps ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and ``<svc>.<ns>.svc.cluster.local`` to the
Service's address, and the short ``<svc>`` only in the Service's own namespace (``hosts_for``), as cluster
DNS with the pod's search path resolves them. The programs listen on all addresses (0.0.0.0), so a pod's
ports answer on its Service's address. Service port and target port must be equal here (no kube-proxy).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

NSEXEC = Path(__file__).with_name("nsexec.py")
DEBIAN_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(Exception):
    """An image with no entry in the table."""


class NotRunnable(Exception):
    """A container the table knows but cannot run on this machine (with the reason)."""


@dataclass(frozen=True)
class Program:
    """What an image is on this machine: its ENTRYPOINT/CMD/WORKDIR/USER/ENV and the files it brings."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = "/"
    user: int = 0
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (key in the build, path in the container)
    skip: str = ""  # non-empty: not run, and why


#: Where a container finds the public PKI's stand-in (``Kubelet.public_ca``).
PUBLIC_CA = "/etc/ssl/e2e-public-root-ca.crt"

#: image repository (tag stripped) -> program. An image missing here is an error naming it.
IMAGES: dict[str, Program] = {
    # api/Dockerfile: WORKDIR /app, USER appuser, ENTRYPOINT tini --, CMD node dist/index.js. tini is left out
    # (the program handles SIGTERM itself; the kubelet here reaps it).
    "iotistic/api": Program(
        cmd=("node", "dist/index.js"),
        workdir="/app",
        user=100,
        env=(("PATH", DEBIAN_PATH), ("NODE_OPTIONS", "--max-old-space-size=1536")),
        files=(("app:api", "/app"),),
    ),
    "iotistic/ingestion": Program(
        cmd=("node", "dist/index.js"),
        workdir="/app",
        user=100,
        env=(("PATH", DEBIAN_PATH), ("NODE_OPTIONS", "--max-old-space-size=3072")),
        files=(("app:ingestion", "/app"),),
    ),
    # Debian's redis-server and redis-cli (the probes) for redis:7-alpine.
    "redis": Program(entrypoint=(), cmd=("redis-server",), workdir="/data", env=(("PATH", DEBIAN_PATH),)),
    # Debian's mosquitto 2.0 with the vendored go-auth 3.0.0 at the image's path (platform-facts §5).
    "iegomez/mosquitto-go-auth": Program(
        cmd=("/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"),
        env=(("PATH", DEBIAN_PATH),),
        files=(("go-auth", "/mosquitto/go-auth.so"),),
    ),
    # The hook Jobs' images: their scripts under Debian's sh, psql and python3.
    "postgres": Program(env=(("PATH", "/usr/lib/postgresql/15/bin:" + DEBIAN_PATH),), user=0),
    "python": Program(cmd=("python3",), env=(("PATH", DEBIAN_PATH),)),
    # No source of the dashboard (a static SPA behind nginx) is vendored: its container is not run.
    "iotistic/dashboard": Program(skip="iotistic/dashboard: no vendored build (static SPA served by nginx)"),
}


def program_for(image: str) -> Program:
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    repo = re.sub(r"^(docker\.io/)?(library/)?", "", repo)
    if repo not in IMAGES:
        raise ImageError(f"image {image!r} has no entry in the image -> program table (tests/e2e/kubelet.py IMAGES)")
    return IMAGES[repo]


# ---------------------------------------------------------------------------------------------------
# The API server, as the kubelet reads it


class Server:
    """What the kubelet reads and writes on the API server (a ``tests.realkube.KubeApiServer``)."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube

    def get(self, path: str) -> Obj | None:
        status, body = self.kube.request("GET", path, check=False)
        if status == 404:
            return None
        if status >= 400:
            raise RuntimeError(f"GET {path}: {status} {body.get('message')}")
        return body

    def items(self, path: str) -> list[Obj]:
        body = self.get(path)
        return list(body.get("items", [])) if body else []

    def secret(self, ns: str, name: str) -> dict[str, bytes] | None:
        obj = self.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def configmap(self, ns: str, name: str) -> dict[str, bytes] | None:
        obj = self.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
        if obj is None:
            return None
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out


class Waiting(Exception):
    """The container cannot be created yet (CreateContainerConfigError): a Secret or ConfigMap is missing."""


# ---------------------------------------------------------------------------------------------------
# Probes


@dataclass
class ProbeState:
    spec: Obj
    next_at: float
    failures: int = 0
    successes: int = 0
    ok: bool = False


def _quantity(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    for u, f in units.items():
        if q.endswith(u):
            return float(q[: -len(u)]) * f
    return float(q)


@dataclass
class Container:
    pod: Pod
    spec: Obj
    program: Program
    restarts: int = 0
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    not_before: float = 0.0
    backoff: float = 10.0
    backoff_at: float | None = None  # when the back-off last moved (None: the container never exited)
    started: bool = False
    ready: bool = False
    exit_code: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    waiting: str = ""
    probes: dict[str, ProbeState] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def log(self, run: int | None = None) -> Path:
        """The log of the container's run ``run`` (default: the current one), as ``kubectl logs [-p]`` reads it."""
        return self.pod.dir / f"{self.name}-{self.restarts if run is None else run}.log"

    def back_off(self, finished: float) -> None:
        """When the container that finished at ``finished`` may start again, as the kubelet decides it
        (kuberuntime_manager.go ``doBackOff`` with client-go's flowcontrol.Backoff, 10 s initial, 300 s maximum):
        the first exit restarts at once; each later one waits the current back-off from when the container
        finished, and the back-off doubles; an exit more than twice the maximum (600 s) after the back-off last
        moved starts over."""
        if self.backoff_at is None or finished - self.backoff_at > 600.0:
            self.not_before, self.backoff = finished, 10.0
        else:
            self.not_before = finished + self.backoff
            self.backoff = min(self.backoff * 2, 300.0)
        self.backoff_at = self.not_before

    def port(self, ref: Any) -> int:
        if isinstance(ref, int) or str(ref).isdigit():
            return int(ref)
        for p in self.spec.get("ports", []):
            if p.get("name") == ref:
                return int(p["containerPort"])
        raise ValueError(f"{self.pod.name}/{self.name}: no port named {ref!r}")


@dataclass
class Pod:
    name: str
    namespace: str
    spec: Obj
    labels: dict[str, str]
    ip: str
    owner: str  # "Deployment/x" or "Job/x"
    template_hash: str
    dir: Path
    containers: list[Container] = field(default_factory=list)
    phase: str = "Pending"  # Pending, Running, Succeeded, Failed
    deleted: bool = False

    @property
    def ready(self) -> bool:
        return self.phase == "Running" and all(c.ready for c in self.containers if not c.program.skip)

    def logs(self) -> str:
        """Every log of the pod's containers, each run in order, as ``kubectl logs`` and ``-p`` show them."""
        runs = [c.log(n) for c in self.containers for n in range(c.restarts + 1)]
        return "\n".join(f.read_text(errors="replace") for f in runs if f.exists())


class Kubelet:
    """Runs the pods of the Deployments, StatefulSets and Jobs in ``namespaces`` from the server's objects."""

    def __init__(
        self,
        kube: Any,
        root: Path,
        apps: dict[str, Path],
        namespaces: list[str],
        *,
        pod_addresses: bool = False,
        net: int = 0,
    ) -> None:
        """``pod_addresses``: each pod listens on its own address and each Service port is a proxy to the ready
        pods it selects (tests/e2e/podnet.py), so that a workload may run several replicas. ``net``: the node's
        address blocks, Services in 127.(10+net).0.0/16 and pods in 127.(20+net).0.0/16, so that two kubelets
        with pod addresses (two releases) run side by side."""
        assert 0 <= net < 10
        self.server = Server(kube)
        self.pod_addresses = pod_addresses
        self.net = net
        self.proxies: dict[tuple[str, str, int], Any] = {}
        self._selectors: dict[tuple[str, str], dict[str, str]] = {}
        self._shim: Path | None = None
        self.kube = kube
        self.root = root
        self.apps = apps
        self.namespaces = namespaces
        self.extra_hosts: dict[str, str] = {}
        # ---- the public PKI's stand-in (tests/e2e/auth0_scenarios.py) -------------------------------------
        #: A root CA every image trusts as if it were among the public roots (None: none added). A SaaS a test
        #: plays on loopback (the Auth0 tenant) has a certificate from it. Mounted read-only at PUBLIC_CA and
        #: named by NODE_EXTRA_CA_CERTS, which Node reads at start, like an ENV of the image (the container's
        #: own env would win). Set before the containers start.
        self.public_ca: Path | None = None
        self.service_ips: dict[tuple[str, str], str] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.jobs: dict[tuple[str, str], Obj] = {}  # job status: {"succeeded": n, "failed": n, "uid": ...}
        self.events: list[str] = []
        self.gone: list[Pod] = []
        self._next_pod_ip = 1
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        (root / "pods").mkdir(parents=True, exist_ok=True)
        (root / "claims").mkdir(exist_ok=True)
        self.write_hosts()

    # ---- names -------------------------------------------------------------------------------

    def service_ip(self, ns: str, name: str) -> str:
        key = (ns, name)
        if key not in self.service_ips:
            n = len(self.service_ips) + 1
            self.service_ips[key] = f"127.{10 + self.net}.{n // 250}.{n % 250 + 1}"
        return self.service_ips[key]

    def hosts_for(self, namespace: str | None) -> Path:
        """The hosts file of a pod in ``namespace`` (None: outside the cluster). Like cluster DNS with the pod's
        search path (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``): ``<svc>.<ns>``,
        ``<svc>.<ns>.svc`` and the full name resolve from every namespace, the short ``<svc>`` only from the
        Service's own; from outside only the names in ``extra_hosts`` (public hosts, the database) resolve."""
        return self.root / f"hosts.{namespace or '_outside'}"

    def write_hosts(self, namespaces: list[str] | None = None) -> None:
        for ns in {*(namespaces or []), *self.namespaces, *[n for n, _ in self.service_ips], None}:
            lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
            for name, ip in sorted(self.extra_hosts.items()):
                lines.append(f"{ip} {name}")
            if ns is not None:
                for (sns, name), ip in sorted(self.service_ips.items()):
                    short = f" {name}" if sns == ns else ""
                    lines.append(f"{ip} {name}.{sns}.svc.cluster.local {name}.{sns}.svc {name}.{sns}{short}")
            text = "\n".join(lines) + "\n"
            # In place (the containers' bind mounts hold the inode).
            with open(self.hosts_for(ns), "a+", encoding="utf-8") as f:
                f.seek(0)
                if f.read() != text:
                    f.seek(0)
                    f.truncate()
                    f.write(text)

    @staticmethod
    def ports_in_use(objects: list[Obj]) -> list[str]:
        """Container ports of the workloads that something on this machine already holds (the programs bind
        0.0.0.0, so a port in use would crash-loop a container): "<port> (<workload>)" each."""
        busy = []
        for obj in objects:
            if obj.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            for c in obj["spec"]["template"]["spec"]["containers"]:
                if program_for(c["image"]).skip:
                    continue
                for p in c.get("ports", []):
                    with socket.socket() as s:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        try:
                            s.bind(("0.0.0.0", int(p["containerPort"])))
                        except OSError:
                            busy.append(f"{p['containerPort']} ({obj['metadata']['name']})")
        return busy

    def sync_services(self) -> None:
        changed = False
        for ns in self.namespaces:
            for svc in self.server.items(f"/api/v1/namespaces/{ns}/services"):
                key = (ns, svc["metadata"]["name"])
                if key not in self.service_ips:
                    self.service_ip(*key)
                    changed = True
                self._selectors[key] = dict(svc["spec"].get("selector") or {})
                for p in svc["spec"].get("ports", []):
                    tp = p.get("targetPort", p["port"])
                    if isinstance(tp, int) and tp != p["port"]:
                        raise RuntimeError(f"Service {key}: port {p['port']} != targetPort {tp} (no kube-proxy here)")
                    if self.pod_addresses and (ns, key[1], int(p["port"])) not in self.proxies:
                        self._proxy(ns, key[1], int(p["port"]), p.get("targetPort", p["port"]))
        if changed:
            self.write_hosts()

    def _proxy(self, ns: str, svc: str, port: int, target: int | str) -> None:
        from tests.e2e.podnet import ServiceProxy

        def endpoints() -> list[tuple[str, int]]:
            sel = self._selectors.get((ns, svc)) or {}
            out = []
            for pod in list(self.pods.values()):  # no lock: a probe may hold it for seconds
                if pod.namespace != ns or pod.deleted or not pod.ready or not sel:
                    continue
                if all(pod.labels.get(k) == v for k, v in sel.items()):
                    for c in pod.containers:
                        try:
                            out.append((pod.ip, c.port(target)))
                            break
                        except ValueError:
                            continue
            return out

        self.proxies[(ns, svc, port)] = ServiceProxy(self.service_ip(ns, svc), port, endpoints)

    def endpoints(self, ns: str, svc: str, port: int) -> list[tuple[str, int]]:
        """The ready endpoints the Service's proxy forwards to (pod addresses on)."""
        return list(self.proxies[(ns, svc, port)].endpoints())

    # ---- the control loop -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last_sync = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_sync >= 1.0:
                    self.reconcile()
                    last_sync = now
                self.step()
            except BaseException as exc:  # noqa: BLE001 - reported by check()
                self.error = exc
                break
            self._stop.wait(0.1)
        # The containers are this thread's children (their parent-death signal is tied to it): end them here.
        self._kill_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._kill_all()
        for proxy in list(self.proxies.values()):
            proxy.close()
        self.proxies.clear()

    #: The grace the node's end gives every container at once, before SIGKILL. Short: the node and all it holds
    #: are thrown away. The API, Redis and mosquitto exit within 0.1 s of SIGTERM; ingestion's shutdown waits
    #: 10 s whatever it holds (``stopWorker``, ingestion/src/services/orchestrator.ts) and is killed either way.
    #: A pod a Deployment replaces or removes gets its own ``terminationGracePeriodSeconds`` (``reconcile``).
    END_GRACE = 1.0

    def _kill_all(self) -> None:
        """Every pod at once, as a node that stops: SIGTERM to every container, then SIGKILL to those still
        running after one grace for all (``END_GRACE``), not one grace after another."""
        with self._lock:
            pods = list(self.pods.values())
            _terminate_all([c.proc for pod in pods for c in pod.containers], grace=self.END_GRACE)
            for pod in pods:
                self._kill_pod(pod, grace=0.0)  # each already ended: marks it gone
            self.pods.clear()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"kubelet loop failed: {self.error!r}") from self.error

    def reconcile(self) -> None:
        """Desired pods from the server's Deployments, StatefulSets and Jobs; start, replace, delete."""
        self.sync_services()
        want: dict[tuple[str, str], tuple[str, Obj, str]] = {}
        for ns in self.namespaces:
            for kind, path in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
                for d in self.server.items(f"/apis/apps/v1/namespaces/{ns}/{path}"):
                    name = d["metadata"]["name"]
                    th = _hash(d["spec"]["template"])
                    for i in range(int(d["spec"].get("replicas", 1))):
                        want[(ns, f"{name}-{i}")] = (f"{kind}/{name}", d["spec"]["template"], th)
            for job in self.server.items(f"/apis/batch/v1/namespaces/{ns}/jobs"):
                self._reconcile_job(ns, job, want)
        with self._lock:
            for key, pod in list(self.pods.items()):
                w = want.get(key)
                if w is None or w[2] != pod.template_hash:
                    self._kill_pod(pod, grace=float(pod.spec.get("terminationGracePeriodSeconds", 30)))
                    del self.pods[key]
            for key, (owner, template, th) in want.items():
                if key not in self.pods:
                    self.pods[key] = self._new_pod(key[0], key[1], owner, template, th)

    def _reconcile_job(self, ns: str, job: Obj, want: dict) -> None:
        name, uid = job["metadata"]["name"], job["metadata"]["uid"]
        st = self.jobs.get((ns, name))
        if st is None or st["uid"] != uid:
            st = {"uid": uid, "succeeded": 0, "failed": 0, "attempt": 0, "start": time.monotonic(), "done": ""}
            self.jobs[(ns, name)] = st
        if st["done"]:
            for key, kept in self.pods.items():  # a finished Job keeps its pods (and their logs) until deleted
                if key[0] == ns and kept.owner == f"Job/{name}":
                    want[key] = (kept.owner, kept.spec_template, kept.template_hash)  # type: ignore[attr-defined]
            return
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline and time.monotonic() - st["start"] > deadline:
            st["done"] = "Failed: DeadlineExceeded"
            return
        pod_name = f"{name}-{uid[:5]}-{st['attempt']}"
        current = self.pods.get((ns, pod_name))
        if current is not None and current.phase == "Succeeded":
            st["succeeded"] += 1
            st["done"] = "Complete"
            return
        if current is not None and current.phase == "Failed":
            st["failed"] += 1
            if st["failed"] > int(job["spec"].get("backoffLimit", 6)):
                st["done"] = "Failed: BackoffLimitExceeded"
                return
            st["attempt"] += 1
            pod_name = f"{name}-{uid[:5]}-{st['attempt']}"
        want[(ns, pod_name)] = (f"Job/{name}", job["spec"]["template"], _hash(job["spec"]["template"]))
        # Finished pods of earlier attempts stay (as a Job's pods do) until the Job is deleted.
        for key, done in self.pods.items():
            if done.owner == f"Job/{name}" and key not in want and done.phase in ("Succeeded", "Failed"):
                want[key] = (done.owner, done.spec_template, done.template_hash)  # type: ignore[attr-defined]

    # ---- pods ---------------------------------------------------------------------------------

    def _new_pod(self, ns: str, name: str, owner: str, template: Obj, th: str) -> Pod:
        ip = f"127.{20 + self.net}.{self._next_pod_ip // 250}.{self._next_pod_ip % 250 + 1}"
        self._next_pod_ip += 1
        d = self.root / "pods" / f"{ns}_{name}_{th[:8]}"
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        spec = template["spec"]
        pod = Pod(name, ns, spec, dict(template.get("metadata", {}).get("labels", {})), ip, owner, th, d)
        pod.spec_template = template  # type: ignore[attr-defined]
        for c in spec.get("containers", []):
            pod.containers.append(Container(pod, c, program_for(c["image"])))
        self.events.append(f"pod {ns}/{name} created ({owner})")
        return pod

    def _kill_pod(self, pod: Pod, grace: float) -> None:
        for c in pod.containers:
            _terminate(c.proc, grace)
            c.proc = None
        pod.deleted = True
        self.gone.append(pod)  # its folder (logs) stays until the node's root is removed

    def step(self) -> None:
        with self._lock:
            for pod in list(self.pods.values()):
                self._step_pod(pod)

    def _step_pod(self, pod: Pod) -> None:
        if pod.phase in ("Succeeded", "Failed") or pod.deleted:
            return
        restart = pod.spec.get("restartPolicy", "Always")
        now = time.monotonic()
        runnable = [c for c in pod.containers if not c.program.skip]
        for c in runnable:
            if c.proc is None:
                if c.exit_code is not None and restart == "Never":
                    continue
                if now < c.not_before:
                    continue
                try:
                    self._start(c)
                    c.waiting = ""
                except Waiting as exc:
                    c.waiting = str(exc)
                    c.not_before = now + 1.0
                continue
            rc = c.proc.poll()
            if rc is not None:
                c.exit_code = rc
                c.proc = None
                c.ready = c.started = False
                self.events.append(f"{pod.namespace}/{pod.name}/{c.name} exited {rc} (restart {c.restarts})")
                if restart == "Never" or (restart == "OnFailure" and rc == 0):
                    continue
                c.restarts += 1
                c.back_off(now)
                continue
            self._probe(c, now)
        if runnable:
            if restart == "Never" and all(c.proc is None and c.exit_code is not None for c in runnable):
                pod.phase = "Succeeded" if all(c.exit_code == 0 for c in runnable) else "Failed"
                self.events.append(f"pod {pod.namespace}/{pod.name} {pod.phase}")
            elif any(c.proc is not None for c in runnable):
                pod.phase = "Running"

    # ---- a container ------------------------------------------------------------------------

    def _start(self, c: Container) -> None:
        pod, spec, prog = c.pod, c.spec, c.program
        env = self._env(c)
        mounts = self._mounts(c)
        argv = _argv(spec, prog, env)
        sc = {**(pod.spec.get("securityContext") or {}), **(spec.get("securityContext") or {})}
        uid = sc.get("runAsUser", prog.user)
        gid = sc.get("runAsGroup", 0 if "runAsUser" not in sc else uid)
        if sc.get("runAsNonRoot") and uid == 0:
            raise RuntimeError(f"{pod.name}/{c.name}: runAsNonRoot, image runs as root (CreateContainerConfigError)")
        groups = [int(g) for g in pod.spec.get("securityContext", {}).get("supplementalGroups", [])]
        fs_group = pod.spec.get("securityContext", {}).get("fsGroup")
        if fs_group is not None:
            groups.append(int(fs_group))
        if self.pod_addresses:
            mounts += self._pod_address_mounts(pod)
        work = pod.dir / f"{c.name}-{c.restarts}.root"
        work.mkdir()
        log = c.log()
        spec_file = pod.dir / f"{c.name}-{c.restarts}.json"
        spec_file.write_text(
            json.dumps(
                {
                    "work": str(work),
                    "hosts": str(self.hosts_for(pod.namespace)),
                    "mounts": mounts,
                    "readonly_root": bool(sc.get("readOnlyRootFilesystem")),
                    "cwd": spec.get("workingDir") or prog.workdir,
                    "uid": uid,
                    "gid": gid,
                    "groups": groups,
                    "argv": argv,
                    "env": env,
                }
            )
        )
        with log.open("ab") as out:
            c.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", sys.executable, "-I", str(NSEXEC), str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        c.env, c.started_at, c.exit_code = env, time.monotonic(), None
        c.started = c.ready = False
        c.probes = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if spec.get(kind):
                p = spec[kind]
                c.probes[kind] = ProbeState(p, c.started_at + float(p.get("initialDelaySeconds", 0)))
        if "startupProbe" not in c.probes:
            c.started = True
        if "readinessProbe" not in c.probes:
            c.ready = c.started
        self.events.append(f"{pod.namespace}/{pod.name}/{c.name} started: {' '.join(argv[:3])}")

    def _pod_address_mounts(self, pod: Pod) -> list[dict[str, Any]]:
        """The pod's own address for its wildcard binds, in the container's root only (tests/e2e/podnet.py)."""
        from tests.e2e.podnet import build_shim

        if self._shim is None:
            self._shim = build_shim(self.root)
        ip_file, preload = pod.dir / "pod-ip", pod.dir / "ld.so.preload"
        ports = sorted({int(p["containerPort"]) for c in pod.spec.get("containers", []) for p in c.get("ports", [])})
        ip_file.write_text("\n".join([pod.ip, *map(str, ports)]) + "\n")
        preload.write_text("/e2e/bindshim.so\n")
        for f in (ip_file, preload):
            f.chmod(0o644)
        return [
            {"src": str(self._shim), "dst": "/e2e/bindshim.so", "ro": True},
            {"src": str(ip_file), "dst": "/etc/e2e-pod-ip", "ro": True},
            {"src": str(preload), "dst": "/etc/ld.so.preload", "ro": True},
        ]

    def _field(self, pod: Pod, c: Container, path: str) -> str:
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str(pod.labels.get(m.group(2), "")) if m.group(1) == "labels" else ""
        return {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "metadata.uid": pod.template_hash,
            "spec.nodeName": "e2e-node",
            "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
            "status.podIP": pod.ip,
            "status.podIPs": pod.ip,
            "status.hostIP": "127.0.0.1",
        }[path]

    def _env(self, c: Container) -> dict[str, str]:
        pod, spec = c.pod, c.spec
        env: dict[str, str] = dict(c.program.env)
        if self.public_ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = PUBLIC_CA  # the public PKI's stand-in (see __init__)
        env["HOSTNAME"] = pod.name
        host, port = _kube_host_port(self.kube.url)
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_SERVICE_PORT_HTTPS": port,
                "KUBERNETES_PORT": f"tcp://{host}:{port}",
            }
        )
        for src in spec.get("envFrom", []):
            prefix = src.get("prefix", "")
            ref = src.get("secretRef") or src.get("configMapRef")
            data = (
                self.server.secret(pod.namespace, ref["name"])
                if "secretRef" in src
                else self.server.configmap(pod.namespace, ref["name"])
            )
            if data is None:
                if ref.get("optional"):
                    continue
                raise Waiting(f"envFrom {ref['name']} not found")
            for k, v in data.items():
                env[prefix + k] = v.decode()
        for e in spec.get("env", []):
            name = e["name"]
            if "value" in e:
                env[name] = _expand(str(e["value"]), env)
                continue
            vf = e.get("valueFrom", {})
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                secret = "secretKeyRef" in vf
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                data = (
                    self.server.secret(pod.namespace, ref["name"])
                    if secret
                    else self.server.configmap(pod.namespace, ref["name"])
                )
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise Waiting(f"{name}: {ref['name']}[{ref['key']}] not found")
                env[name] = data[ref["key"]].decode()
            elif "fieldRef" in vf:
                env[name] = self._field(pod, c, vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                r = vf["resourceFieldRef"]
                kind, res = r["resource"].split(".", 1)
                q = (spec.get("resources", {}).get(kind) or {}).get(res, "0")
                div = _quantity(str(r.get("divisor", "1")))
                val = _quantity(str(q)) / div
                env[name] = str(int(-(-val // 1)))
            else:
                env[name] = ""
        return env

    def _volume_dir(self, pod: Pod, vol: Obj, fs_group: int | None) -> str:
        name = vol["name"]
        d = pod.dir / "volumes" / name
        if "persistentVolumeClaim" in vol:
            d = self.root / "claims" / pod.namespace / vol["persistentVolumeClaim"]["claimName"]
            if not d.exists():
                d.mkdir(parents=True)
                os.chmod(d, 0o2775)
                if fs_group is not None:
                    os.chown(d, 0, fs_group)
            return str(d)
        if d.exists():
            return str(d)
        d.mkdir(parents=True)
        if "emptyDir" in vol:
            os.chmod(d, 0o777)
            return str(d)
        if "secret" in vol or "configMap" in vol:
            is_secret = "secret" in vol
            src = vol["secret"] if is_secret else vol["configMap"]
            ref = src.get("secretName") if is_secret else src.get("name")
            data = self.server.secret(pod.namespace, ref) if is_secret else self.server.configmap(pod.namespace, ref)
            if data is None:
                shutil.rmtree(d)
                if src.get("optional"):
                    d.mkdir(parents=True)
                    return str(d)
                raise Waiting(f"volume {name}: {'Secret' if is_secret else 'ConfigMap'} {ref} not found")
            mode = int(src.get("defaultMode", 0o644))
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] not in data:
                    raise Waiting(f"volume {name}: key {it['key']} missing in {ref}")
                _write_file(d / it["path"], data[it["key"]], int(it.get("mode", mode)), fs_group)
            os.chmod(d, 0o755)
            if fs_group is not None:
                os.chown(d, 0, fs_group)
            return str(d)
        if "projected" in vol:
            mode = int(vol["projected"].get("defaultMode", 0o644))
            for source in vol["projected"]["sources"]:
                if "serviceAccountToken" in source:
                    sat = source["serviceAccountToken"]
                    token = self.kube.token(pod.namespace, pod.spec.get("serviceAccountName", "default"))
                    _write_file(d / sat["path"], token.encode(), mode, fs_group)
                elif "configMap" in source or "secret" in source:
                    sub = self._volume_dir(pod, {"name": f"{name}-{len(os.listdir(d))}", **source}, fs_group)
                    for f in Path(sub).iterdir():
                        shutil.copy2(f, d / f.name)
                elif "downwardAPI" in source:
                    for it in source["downwardAPI"]["items"]:
                        val = self._field(pod, pod.containers[0], it["fieldRef"]["fieldPath"])
                        _write_file(d / it["path"], val.encode(), mode, fs_group)
            return str(d)
        raise RuntimeError(f"{pod.name}: volume {name}: type not supported here: {sorted(vol)}")

    def _service_account_dir(self, pod: Pod, fs_group: int | None) -> str:
        d = pod.dir / "volumes" / "kube-api-access"
        if not d.exists():
            d.mkdir(parents=True)
            token = self.kube.token(pod.namespace, pod.spec.get("serviceAccountName", "default"), seconds=3600)
            _write_file(d / "token", token.encode(), 0o644, fs_group)
            _write_file(d / "ca.crt", Path(self.kube.ca_file).read_bytes(), 0o644, fs_group)
            _write_file(d / "namespace", pod.namespace.encode(), 0o644, fs_group)
        return str(d)

    def _mounts(self, c: Container) -> list[dict[str, Any]]:
        pod, spec = c.pod, c.spec
        fs_group = pod.spec.get("securityContext", {}).get("fsGroup")
        mounts: list[dict[str, Any]] = []
        for key, path in c.program.files:
            kind, _, which = key.partition(":")
            app_dir = self.apps[which] if kind == "app" else self.apps[kind]
            mounts.append({"src": str(app_dir), "dst": path, "ro": True})
        if self.public_ca is not None:
            mounts.append({"src": str(self.public_ca), "dst": PUBLIC_CA, "ro": True})  # the public PKI's stand-in
        vols = {v["name"]: v for v in pod.spec.get("volumes", [])}
        for vm in spec.get("volumeMounts", []):
            vol = vols[vm["name"]]
            base = self._volume_dir(pod, vol, fs_group)
            src = os.path.join(base, vm["subPath"]) if vm.get("subPath") else base
            if vm.get("subPath") and not os.path.exists(src):
                os.makedirs(src)
            ro = bool(vm.get("readOnly")) or any(k in vol for k in ("secret", "configMap", "projected"))
            mounts.append({"src": src, "dst": vm["mountPath"], "ro": ro})
        if pod.spec.get("automountServiceAccountToken", True) and not any(
            vm["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" for vm in spec.get("volumeMounts", [])
        ):
            mounts.append(
                {
                    "src": self._service_account_dir(pod, fs_group),
                    "dst": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "ro": True,
                }
            )
        return mounts

    # ---- probes -------------------------------------------------------------------------------

    def _probe(self, c: Container, now: float) -> None:
        order = ["startupProbe"] if not c.started else ["readinessProbe", "livenessProbe"]
        for kind in order:
            st = c.probes.get(kind)
            if st is None or now < st.next_at:
                continue
            st.next_at = now + float(st.spec.get("periodSeconds", 10))
            ok = self._run_probe(c, st.spec)
            if ok:
                st.successes += 1
                st.failures = 0
                if st.successes >= int(st.spec.get("successThreshold", 1)):
                    st.ok = True
            else:
                st.failures += 1
                st.successes = 0
                if st.failures >= int(st.spec.get("failureThreshold", 3)):
                    st.ok = False
            if kind == "startupProbe":
                if st.ok:
                    c.started = True
                    c.ready = "readinessProbe" not in c.probes
                    for k in ("readinessProbe", "livenessProbe"):
                        if k in c.probes:
                            c.probes[k].next_at = now + float(c.probes[k].spec.get("initialDelaySeconds", 0))
                elif st.failures >= int(st.spec.get("failureThreshold", 3)):
                    self._restart(c, "startup probe failed")
                    return
            elif kind == "readinessProbe":
                c.ready = st.ok
            elif kind == "livenessProbe" and not ok and st.failures >= int(st.spec.get("failureThreshold", 3)):
                self._restart(c, "liveness probe failed")
                return

    def _restart(self, c: Container, why: str) -> None:
        self.events.append(f"{c.pod.namespace}/{c.pod.name}/{c.name}: {why}, killed")
        _terminate(c.proc, float(c.pod.spec.get("terminationGracePeriodSeconds", 30)))
        c.proc = None
        c.ready = c.started = False
        c.restarts += 1
        c.back_off(time.monotonic())

    def _run_probe(self, c: Container, p: Obj) -> bool:
        timeout = float(p.get("timeoutSeconds", 1))
        try:
            if "httpGet" in p:
                h = p["httpGet"]
                conn = http.client.HTTPConnection(c.pod.ip, c.port(h["port"]), timeout=timeout)
                try:
                    conn.request("GET", h.get("path", "/"))
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "tcpSocket" in p:
                with socket.create_connection((c.pod.ip, c.port(p["tcpSocket"]["port"])), timeout=timeout):
                    return True
            if "exec" in p:
                return self.exec(c, p["exec"]["command"], timeout=timeout).returncode == 0
        except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
            return False
        raise RuntimeError(f"{c.pod.name}/{c.name}: probe type not supported: {sorted(p)}")

    def exec(self, c: Container, argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """``kubectl exec``: the command in the container's root, as its user, with its environment."""
        if c.proc is None:
            raise OSError("container not running")
        sc = {**(c.pod.spec.get("securityContext") or {}), **(c.spec.get("securityContext") or {})}
        uid = sc.get("runAsUser", c.program.user)
        gid = sc.get("runAsGroup", uid)
        cmd = ["nsenter", "-t", str(c.proc.pid), "-m", "-r", "-w", "--", "setpriv", f"--reuid={uid}", f"--regid={gid}"]
        cmd += ["--clear-groups", "--", *argv]
        return subprocess.run(cmd, env=c.env, capture_output=True, text=True, timeout=timeout, check=False)

    # ---- queries ------------------------------------------------------------------------------

    def pods_of(self, owner: str, ns: str) -> list[Pod]:
        with self._lock:
            return [p for (pns, _), p in self.pods.items() if pns == ns and p.owner == owner and not p.deleted]

    def container(self, ns: str, owner: str, name: str | None = None) -> Container:
        for pod in self.pods_of(owner, ns):
            for c in pod.containers:
                if name is None or c.name == name:
                    return c
        raise KeyError(f"no container of {owner} in {ns}")

    def wait(self, what: str, cond: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if cond():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout:g} s\n{self.report()}")

    def report(self, lines: int = 25) -> str:
        out = ["events:", *[f"  {e}" for e in self.events[-25:]]]
        with self._lock:
            for pod in [*self.gone[-6:], *self.pods.values()]:
                for c in pod.containers:
                    state = "skip" if c.program.skip else ("running" if c.proc else f"exit={c.exit_code}")
                    out.append(
                        f"{pod.namespace}/{pod.name}/{c.name}: {state} started={c.started} ready={c.ready} "
                        f"restarts={c.restarts} {c.waiting}"
                    )
                    if c.program.skip:
                        continue
                    logs = [c.log(n) for n in range(c.restarts, -1, -1) if c.log(n).exists()]
                    if logs:
                        tail = logs[0].read_text(errors="replace").splitlines()[-lines:]
                        out += [f"    | {t[:300]}" for t in tail]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------------


def _hash(obj: Obj) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _expand(s: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: known names are replaced, ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)


def _argv(spec: Obj, prog: Program, env: dict[str, str]) -> list[str]:
    if spec.get("command"):
        argv = list(spec["command"]) + list(spec.get("args") or [])
    elif spec.get("args"):
        argv = list(prog.entrypoint) + list(spec["args"])
    else:
        argv = list(prog.entrypoint) + list(prog.cmd)
    if not argv:
        raise RuntimeError(f"container {spec['name']}: no command (image has none)")
    return [_expand(a, env) for a in argv]


def _kube_host_port(url: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return u.hostname or "127.0.0.1", str(u.port or 443)


def _write_file(path: Path, data: bytes, mode: int, fs_group: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if fs_group is not None:
        os.chown(path, 0, fs_group)


def _terminate(proc: subprocess.Popen | None, grace: float) -> None:
    _terminate_all([proc], grace)


def _terminate_all(procs: list[subprocess.Popen | None], grace: float) -> None:
    """SIGTERM to each process group, then SIGKILL to those still running ``grace`` (at most 15 s) later."""
    live = [p for p in procs if p is not None and p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + min(grace, 15.0)
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
