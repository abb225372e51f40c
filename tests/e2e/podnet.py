"""Pod addresses and Service proxies: several replicas of one workload on one machine (docs/e2e.md).

The programs bind 0.0.0.0 (or ::), so two replicas of one workload would collide on their port. With pod
addresses on (``Kubelet(pod_addresses=True)``), every container gets, in its own root only:

- ``/etc/ld.so.preload`` naming ``bindshim.so`` (``bindshim.c``, compiled here with Debian's gcc), which turns
  a bind() to the wildcard address into a bind() to the pod's address (``/etc/e2e-pod-ip``), and a connect()
  to 127.0.0.1 on one of the pod's container ports into a connect() to the pod (localhost in a pod is the
  pod: exec probes such as ``redis-cli ping``);

and every Service port gets a proxy on the Service's address (``ServiceProxy``) that forwards each new
connection to a *ready* pod the Service selects, in turn, as kube-proxy does; with no ready endpoint the
connection is closed at once (kube-proxy rejects it).
"""

from __future__ import annotations

import itertools
import select
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("bindshim.c")


def build_shim(out_dir: Path) -> Path:
    """bindshim.so in ``out_dir`` (a temporary folder of the run)."""
    so = out_dir / "bindshim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(SHIM_SOURCE), "-ldl"], check=True)
    so.chmod(0o755)
    return so


class ServiceProxy:
    """One Service port: listens on (``ip``, ``port``), forwards to ``endpoints()`` -> [(pod ip, port)]."""

    def __init__(self, ip: str, port: int, endpoints: Callable[[], list[tuple[str, int]]]) -> None:
        self.ip, self.port, self.endpoints = ip, port, endpoints
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((ip, port))
        self._sock.listen(256)
        self._stop = threading.Event()
        self._turn = itertools.count()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"svc-{ip}:{port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self._sock], [], [], 0.2)
            if not r:
                continue
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            eps = self.endpoints()
            if not eps:
                client.close()
                continue
            target = eps[next(self._turn) % len(eps)]
            threading.Thread(target=self._pipe, args=(client, target), daemon=True).start()

    def _pipe(self, client: socket.socket, target: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns |= {client, upstream}
        socks = [client, upstream]
        try:
            while not self._stop.is_set():
                r, _, _ = select.select(socks, [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is client else client).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns -= {client, upstream}
            for s in socks:
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
        with self._lock:
            for s in list(self._conns):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
