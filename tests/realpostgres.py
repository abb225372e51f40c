"""A real PostgreSQL 15 server (Debian's postgresql package) on loopback for tests, started and stopped here.

initdb writes into a temporary directory; the server listens on a free 127.0.0.1 port (and a Unix socket
in the same directory) with scram-sha-256 password authentication for every TCP connection, as a managed
server would. PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` OS user (created by the Debian package) through ``runuser``, in a directory it owns.

TimescaleDB decides the mode, explicitly (``TIMESCALEDB``; the test report's header says which ran):
- **installed** (its control file and library are in Debian's PostgreSQL 15 tree): ``running_postgres(
  timescaledb=True)`` starts the server with ``shared_preload_libraries = 'timescaledb'``, as TimescaleDB
  requires, and the tests run db-init and the policy Job against the real extension;
- **absent** (a fresh Debian machine: TimescaleDB is not packaged in Debian): the server runs without it,
  and the tests that need the real extension skip with a reason that names what is missing.

``running_postgres(extensions=...)`` starts the server from a private copy of the installation tree whose
``extension/`` folder has extra control files, so a test can put a server in a chosen state (e.g. an
extension that is installed but not preloaded) without touching the machine's PostgreSQL.
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
PG_LIB = Path("/usr/lib/postgresql/15/lib")
PG_SHARE = Path("/usr/share/postgresql/15")


def timescaledb_installed() -> bool:
    """TimescaleDB's extension files for this PostgreSQL: its control file and its loader library."""
    return (PG_SHARE / "extension" / "timescaledb.control").is_file() and (PG_LIB / "timescaledb.so").is_file()


TIMESCALEDB = timescaledb_installed()
#: The reason a test that needs the real extension skips, naming what is missing.
NO_TIMESCALEDB = (
    f"TimescaleDB is not installed for PostgreSQL 15 ({PG_SHARE}/extension/timescaledb.control and "
    f"{PG_LIB}/timescaledb.so missing; Debian does not package it)"
)


def mode() -> str:
    """One line for the test report: which PostgreSQL mode the real-server tests run in."""
    if TIMESCALEDB:
        return "postgresql 15: timescaledb installed -> preloaded; db-init and the policy Job run on the real extension"
    return "postgresql 15: timescaledb absent -> db-init runs with REQUIRE_TIMESCALEDB=false; real-extension tests skip"


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


def _private_tree(root: Path, extensions: dict[str, str | None]) -> Path:
    """A copy of the installation that finds its share/ and lib/ beside itself (PostgreSQL locates them
    relative to its own executable), with ``extensions`` (file name -> text, or None to hide a file)
    applied to share's extension/. Only the server binary is copied (PostgreSQL resolves its own path
    through symlinks); everything else is linked."""
    tree = root / "pgtree"
    bin_dir = tree / "lib" / "postgresql" / "15" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(PG_BIN / "postgres", bin_dir / "postgres")
    (tree / "lib" / "postgresql" / "15" / "lib").symlink_to(PG_LIB)
    share = tree / "share" / "postgresql" / "15"
    share.mkdir(parents=True)
    for entry in PG_SHARE.iterdir():
        if entry.name != "extension":
            (share / entry.name).symlink_to(entry)
    ext = share / "extension"
    ext.mkdir()
    for entry in (PG_SHARE / "extension").iterdir():
        if entry.name not in extensions:
            (ext / entry.name).symlink_to(entry)
    for name, text in extensions.items():
        if text is not None:
            (ext / name).write_text(text)
    return bin_dir


@contextlib.contextmanager
def running_postgres(
    *, timescaledb: bool = False, extensions: dict[str, str | None] | None = None
) -> Iterator[PgServer]:
    """A server on loopback. ``timescaledb``: preload the real extension (only where it is installed).
    ``extensions``: extension files to add (name -> text) or hide (name -> None), in a private copy of
    the installation tree."""
    if timescaledb and not TIMESCALEDB:
        pytest.skip(NO_TIMESCALEDB)
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
    server_bin = _private_tree(root, extensions) if extensions else PG_BIN
    preload = ["-c", "shared_preload_libraries=timescaledb", "-c", "timescaledb.telemetry_level=off"]
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
                    str(server_bin / "postgres"),
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
                    *(preload if timescaledb else []),
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
