"""A real PostgreSQL 15 server (Debian's postgresql package) on loopback for tests, started and stopped here.

initdb writes into a temporary directory; the server listens on a free 127.0.0.1 port (and a Unix socket
in the same directory) with scram-sha-256 password authentication for every TCP connection, as a managed
server would. PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` OS user (created by the Debian package) through ``runuser``, in a directory it owns.

TimescaleDB is the real extension, TimescaleDB 2.28.3 built for Debian's PostgreSQL 15, from the vendored
tarball beside the checkout (``../shared/vendor``, its README; ``IOTISTICA_VENDOR_DIR`` points elsewhere).
The mode is explicit, one line in the test report (``mode()``):
- **real**: the tarball is there and matches ``SHA256SUMS``. It is unpacked once per test session into a
  temporary folder; ``running_postgres(timescaledb=True)`` starts the server from a private copy of the
  PostgreSQL installation tree with the extension added (never the system's own tree) and
  ``shared_preload_libraries = 'timescaledb'``, and db-init and the policy Job run against it;
- **skipped**: the tarball or ``SHA256SUMS`` is missing (a fresh clone elsewhere has no ``../shared``) or
  the tarball is damaged or truncated: the tests that need the extension skip with that line, naming
  the file.

``running_postgres(extensions=...)`` adds or hides files in the private tree's ``extension/`` folder, so a
test can put a server in a chosen state without touching the machine's PostgreSQL; ``preload=False``
gives "installed but not preloaded".
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
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

ROOT = Path(__file__).resolve().parent.parent
#: The vendored real components (../shared/vendor beside the checkout; README there).
VENDOR_DIR = Path(os.environ.get("IOTISTICA_VENDOR_DIR") or ROOT.parent / "shared" / "vendor")
TIMESCALEDB_VERSION = "2.28.3"
TIMESCALEDB_TARBALL = f"timescaledb-{TIMESCALEDB_VERSION}-pg15-debian12-amd64.tar.gz"
#: The only folders the tarball may write (inside the private tree): the libraries and the extension files.
_TARBALL_DIRS = ("usr/lib/postgresql/15/lib/", "usr/share/postgresql/15/extension/")


def vendor_problem(vendor: Path, name: str) -> str | None:
    """None when ``vendor/name`` is there and matches ``vendor/SHA256SUMS``; else what is wrong, naming
    the file (missing, not listed, or damaged/truncated)."""
    path, sums = vendor / name, vendor / "SHA256SUMS"
    if not path.is_file():
        return f"{path} missing"
    if not sums.is_file():
        return f"{sums} missing"
    expected = None
    for line in sums.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == name:
            expected = fields[0].lower()
    if expected is None:
        return f"{path} not listed in {sums}"
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        return f"{path} damaged or truncated (its sha256 does not match {sums})"
    return None


_PROBLEM = vendor_problem(VENDOR_DIR, TIMESCALEDB_TARBALL)
TIMESCALEDB = _PROBLEM is None
#: The report line, and the reason a test that needs the real extension skips.
NO_TIMESCALEDB = f"timescaledb {TIMESCALEDB_VERSION}: skipped: {_PROBLEM}"


def mode() -> str:
    """One line for the test report: does the real TimescaleDB run, or why the tests that need it skip."""
    return f"timescaledb {TIMESCALEDB_VERSION}: real" if TIMESCALEDB else NO_TIMESCALEDB


def unpack_timescaledb(tarball: Path, into: Path) -> str | None:
    """Unpack the vendored tarball into ``into`` (only its lib/ and extension/ files, as plain files).
    Returns None, or what is wrong with the tarball, naming it."""
    try:
        with tarfile.open(tarball) as tar:
            members = tar.getmembers()
            stray = [m.name for m in members if m.isfile() and not m.name.startswith(_TARBALL_DIRS)]
            if stray or not any(m.name == f"{_TARBALL_DIRS[0]}timescaledb.so" for m in members):
                return f"{tarball} has unexpected contents ({', '.join(stray[:3]) or 'no timescaledb.so'})"
            tar.extractall(into, members=[m for m in members if m.isfile()], filter="data")
    except (OSError, tarfile.TarError, EOFError) as e:
        return f"{tarball} cannot be unpacked ({e})"
    return None


_unpacked: dict[str, Path | str] = {}


def _timescaledb_files() -> Path:
    """The tarball unpacked, once per test session, into a temporary folder removed at exit. Skips the
    calling test (naming the file) if it cannot be unpacked."""
    if "result" not in _unpacked:
        folder = Path(tempfile.mkdtemp(prefix="iotistica-timescaledb-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        folder.chmod(0o755)  # the server runs as the postgres user
        problem = unpack_timescaledb(VENDOR_DIR / TIMESCALEDB_TARBALL, folder)
        _unpacked["result"] = f"timescaledb {TIMESCALEDB_VERSION}: skipped: {problem}" if problem else folder
    result = _unpacked["result"]
    if isinstance(result, str):
        pytest.skip(result)
    return result


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


def _link_each(source: Path, into: Path, skip: set[str] = frozenset()) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name not in skip and not os.path.lexists(into / entry.name):
            (into / entry.name).symlink_to(entry)


def _private_tree(root: Path, extensions: dict[str, str | None], timescaledb: Path | None) -> Path:
    """A copy of the installation that finds its share/ and lib/ beside itself (PostgreSQL locates them
    relative to its own executable), with the unpacked TimescaleDB files (``timescaledb``) added to lib/
    and share's extension/, then ``extensions`` (file name -> text, or None to hide a file) applied to
    extension/. Only the server binary is copied (PostgreSQL resolves its own path through symlinks);
    everything else is linked, file by file where something is added."""
    tree = root / "pgtree"
    bin_dir = tree / "lib" / "postgresql" / "15" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(PG_BIN / "postgres", bin_dir / "postgres")
    lib = tree / "lib" / "postgresql" / "15" / "lib"
    share = tree / "share" / "postgresql" / "15"
    ext = share / "extension"
    hidden = set(extensions)  # replaced or hidden
    if timescaledb is not None:  # the vendored files first: they win over anything of the same name
        _link_each(timescaledb / "usr" / "lib" / "postgresql" / "15" / "lib", lib)
        _link_each(timescaledb / "usr" / "share" / "postgresql" / "15" / "extension", ext, hidden)
    _link_each(PG_LIB, lib)
    _link_each(PG_SHARE, share, {"extension"})
    _link_each(PG_SHARE / "extension", ext, hidden)
    for name, text in extensions.items():
        if text is not None:
            (ext / name).write_text(text)
    return bin_dir


@contextlib.contextmanager
def running_postgres(
    *, timescaledb: bool = False, preload: bool = True, extensions: dict[str, str | None] | None = None
) -> Iterator[PgServer]:
    """A server on loopback. ``timescaledb``: the real extension installed (the vendored tarball, in a
    private copy of the installation tree) and, with ``preload``, in shared_preload_libraries (skips,
    with the mode line, where the tarball is missing or damaged). ``extensions``: extension files to add
    (name -> text) or hide (name -> None), in a private copy of the installation tree."""
    if timescaledb and not TIMESCALEDB:
        pytest.skip(NO_TIMESCALEDB)
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb not found; run `make test` (scripts/ensure-system-deps.sh installs postgresql)")
    vendored = _timescaledb_files() if timescaledb else None
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
    preload_options = ["-c", "shared_preload_libraries=timescaledb", "-c", "timescaledb.telemetry_level=off"]
    try:
        private = timescaledb or extensions is not None
        server_bin = _private_tree(root, extensions or {}, vendored) if private else PG_BIN
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
                    *(preload_options if timescaledb and preload else []),
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
