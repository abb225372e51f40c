"""A minimal Redis Cluster client that keeps writing keys across every slot, and records each write.

Plain sockets and RESP (no client library, whose retries and topology caching would hide what the
cluster itself does): the slot of a key is CRC16 mod 16384, the slot map comes from CLUSTER SLOTS of
any node that answers, a MOVED reply or a failed write refreshes it. Each write is recorded as
(monotonic time, ok); ``outage()`` turns a time window of records into the unavailability a client saw.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


class RespError(Exception):
    pass


class Conn:
    def __init__(self, port: int, password: str, timeout: float = 1.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.call("AUTH", password)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args: str) -> object:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self._read()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RespError(f"unexpected reply {line!r}")


@dataclass
class Record:
    at: float
    ok: bool
    error: str = ""


class ClusterWriter(threading.Thread):
    """Writes ``w:<n>`` keys (n cycling, so every slot is hit) until stopped; records every write."""

    def __init__(self, ports: list[int], password: str, pause: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.ports, self.password, self.pause = ports, password, pause
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.slots: dict[int, int] = {}
        self.conns: dict[int, Conn] = {}

    def _conn(self, port: int) -> Conn:
        if port not in self.conns:
            self.conns[port] = Conn(port, self.password)
        return self.conns[port]

    def _drop(self, port: int) -> None:
        conn = self.conns.pop(port, None)
        if conn is not None:
            conn.close()

    def _refresh(self) -> None:
        for port in self.ports:
            try:
                reply = self._conn(port).call("CLUSTER", "SLOTS")
            except (OSError, RespError, ConnectionError):
                self._drop(port)
                continue
            if not isinstance(reply, list) or not reply:
                continue
            slots: dict[int, int] = {}
            for entry in reply:
                lo, hi, master = entry[0], entry[1], entry[2]
                for s in range(int(lo), int(hi) + 1):
                    slots[s] = int(master[1])
            if slots:
                self.slots = slots
                return

    def _record(self, ok: bool, error: str = "") -> None:
        with self.lock:
            self.records.append(Record(time.monotonic(), ok, error))

    def run(self) -> None:
        n = 0
        self._refresh()
        while not self.stop_event.is_set():
            key = f"w:{n}"
            n = (n + 1) % 50_000
            port = self.slots.get(key_slot(key))
            if port is None:
                self._record(False, "slot not served")
                self._refresh()
                time.sleep(self.pause)
                continue
            try:
                self._conn(port).call("SET", key, str(n))
                self._record(True)
            except RespError as e:
                self._record(False, str(e).split(" ")[0])
                self._refresh()
            except (OSError, ConnectionError) as e:
                self._drop(port)
                self._record(False, type(e).__name__)
                self._refresh()
            time.sleep(self.pause)
        for port in list(self.conns):
            self._drop(port)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)

    def window(self, start: float, end: float) -> list[Record]:
        with self.lock:
            return [r for r in self.records if start <= r.at <= end]


@dataclass
class Outage:
    writes: int
    failed: int
    #: first failed write to the last failed write (0 when none failed), seconds.
    seconds: float
    errors: tuple[str, ...]


def outage(records: list[Record]) -> Outage:
    failed = [r for r in records if not r.ok]
    span = failed[-1].at - failed[0].at if failed else 0.0
    return Outage(len(records), len(failed), round(span, 2), tuple(sorted({r.error for r in failed})))
