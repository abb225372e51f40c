"""The generated mosquitto.conf runs in a real mosquitto: three listeners, TLS, anonymous refused.

Debian's mosquitto has no go-auth plugin, so the plugin lines are left out; everything else (the
listeners, the TLS files' layout, allow_anonymous false, persistence) is the generated config with
only ports and paths moved to the test's loopback and temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import by
from tests.realservers import free_port, need, running


def connect_packet() -> bytes:
    proto = b"\x00\x04MQTT\x04"  # MQTT 3.1.1
    flags = b"\x02"  # clean session, no username/password: anonymous
    keepalive = b"\x00\x3c"
    client = b"\x00\x04test"
    body = proto + flags + keepalive + client
    return b"\x10" + bytes([len(body)]) + body


def connack(sock: socket.socket) -> int:
    sock.sendall(connect_packet())
    data = sock.recv(4)
    assert data[:2] == b"\x20\x02", data
    return data[3]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder the broker can read after it drops root privileges to user `mosquitto` (as root in CI)."""
    path = Path(tempfile.mkdtemp(prefix="iotistica-mosquitto-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_real_mosquitto_runs_generated_config(manifests, workdir: Path) -> None:
    tmp_path = workdir
    conf = by(manifests["client-demo"], "ConfigMap", "client-demo-mosquitto")["data"]["mosquitto.conf"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(tmp_path / "tls.key"),
            "-out",
            str(tmp_path / "tls.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ports = {1883: free_port(), 8883: free_port(), 9001: free_port()}
    lines = []
    for line in conf.splitlines():
        if line.startswith(("auth_plugin ", "auth_opt_")):
            continue
        for original, port in ports.items():
            if line == f"listener {original}":
                line = f"listener {port} 127.0.0.1"
        line = line.replace("/mosquitto/certs", str(tmp_path)).replace("/mosquitto/data", str(tmp_path / "data"))
        lines.append(line)
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o777)
    for f in ("tls.key", "tls.crt"):
        (tmp_path / f).chmod(0o644)  # test-only key; in the pod the Secret volume is group-readable (fsGroup)
    path = tmp_path / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    with running([need("mosquitto"), "-c", str(path)], list(ports.values())):
        with socket.create_connection(("127.0.0.1", ports[1883]), timeout=5) as s:
            assert connack(s) == 5, "anonymous must be refused (not authorized)"
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
        with socket.create_connection(("127.0.0.1", ports[8883]), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
                assert connack(s) == 5
        with socket.create_connection(("127.0.0.1", ports[9001]), timeout=5) as s:
            s.sendall(
                b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            assert s.recv(64).startswith(b"HTTP/1.1 101"), "the websockets listener upgrades"
