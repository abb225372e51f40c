"""A real PostgreSQL 15 server (Debian's postgresql package) on loopback for tests, started and stopped here.

initdb writes into a temporary directory; the server listens on a free 127.0.0.1 port (and a Unix socket
in the same directory) with scram-sha-256 password authentication for every TCP connection, as a managed
server would. PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` OS user (created by the Debian package) through ``runuser``, in a directory it owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realservers import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "test-admin-pw"


class PsqlError(subprocess.CalledProcessError):
    """A failed psql run; its message is psql's stderr."""

    def __str__(self) -> str:
        return str(self.stderr).strip()


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    bin: Path

    def env(self, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD, **extra: str) -> dict[str, str]:
        """Environment for libpq clients (psql, pg_isready) talking to this server over TCP."""
        return {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": user,
            "PGPASSWORD": password,
            "PGSSLMODE": "disable",
            "PGCONNECT_TIMEOUT": "5",
            **extra,
        }

    def psql(
        self, sql: str, db: str = "postgres", user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD
    ) -> list[list[str]]:
        """Run SQL, return rows (fields split on |). Raises PsqlError (psql's stderr as the message)."""
        cmd = [str(self.bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]
        out = subprocess.run(cmd, env=self.env(user, password), capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise PsqlError(out.returncode, cmd, out.stdout, out.stderr)
        return [line.split("|") for line in out.stdout.splitlines() if line]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def running_postgres() -> Iterator[PgServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb not found; run `make test` (scripts/ensure-system-deps.sh installs postgresql)")
    root = Path(tempfile.mkdtemp(prefix="iotistica-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    pwfile = root / "pwfile"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        for p in (sock, pwfile):
            shutil.chown(p, "postgres", "postgres")
    port = free_port()
    proc = None
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        proc = subprocess.Popen(
            _as_postgres(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    f"unix_socket_directories={sock}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        server = PgServer("127.0.0.1", port, PG_BIN)
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False, timeout=10
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise AssertionError(f"postgres did not start:\n{out}")
            time.sleep(0.1)
        yield server
    finally:
        if proc is not None:
            proc.terminate()  # SIGTERM: smart shutdown
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
