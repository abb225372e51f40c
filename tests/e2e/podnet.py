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
import struct
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
    """One Service port: listens on (``ip``, ``port``), forwards to ``endpoints()`` -> [(pod ip, port)].

    As kube-proxy's rules do: the pod sees the client's own address; while the Service has no ready endpoint,
    nothing listens, so a client's connect() is refused (kube-proxy REJECTs it); a connection whose pod refuses
    or resets it is reset, not closed politely, so that the client sees the error a pod's own kernel would give
    it."""

    def __init__(self, ip: str, port: int, endpoints: Callable[[], list[tuple[str, int]]]) -> None:
        self.ip, self.port, self.endpoints = ip, port, endpoints
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._turn = itertools.count()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listen(bool(endpoints()))
        self._thread = threading.Thread(target=self._accept, name=f"svc-{ip}:{port}", daemon=True)
        self._thread.start()

    def _listen(self, on: bool) -> None:
        if on and self._sock is None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.ip, self.port))
            sock.listen(256)
            self._sock = sock
        elif not on and self._sock is not None:
            self._sock.close()  # connections still in the backlog are reset
            self._sock = None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen(bool(self.endpoints()))
            except OSError:
                pass  # the address is briefly still taken: next round
            if self._sock is None:
                self._stop.wait(0.1)
                continue
            r, _, _ = select.select([self._sock], [], [], 0.1)
            if not r:
                continue
            try:
                client, source = self._sock.accept()
            except OSError:
                continue
            eps = self.endpoints()
            if not eps:
                _reset(client)
                continue
            target = eps[next(self._turn) % len(eps)]
            threading.Thread(target=self._pipe, args=(client, source[0], target), daemon=True).start()

    def _pipe(self, client: socket.socket, source: str, target: tuple[str, int]) -> None:
        # From the client's own address, as kube-proxy's DNAT keeps it: the pod sees who connected (the API's
        # rate limits key on it). Every 127.0.0.0/8 address is this machine's, so binding to it needs no rights.
        upstream = socket.socket()
        try:
            upstream.bind((source, 0))
            upstream.settimeout(5)
            upstream.connect(target)
        except OSError:
            upstream.close()
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns |= {client, upstream}
        socks = [client, upstream]
        try:
            while not self._stop.is_set():
                r, _, _ = select.select(socks, [], [], 0.5)
                for s in r:
                    other = upstream if s is client else client
                    try:
                        data = s.recv(65536)
                    except OSError:  # reset by one side: reset the other
                        _reset(other)
                        return
                    if not data:
                        return
                    other.sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns -= {client, upstream}
            for s in socks:
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listen(False)
        with self._lock:
            for s in list(self._conns):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _reset(s: socket.socket) -> None:
    """Close ``s`` with a TCP reset (SO_LINGER 0), as a refused or broken connection ends."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()
