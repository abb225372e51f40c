"""How tests/realpostgres.py decides the TimescaleDB mode from ../shared/vendor (no server started here).

The vendored tarball is real only when it is there and matches SHA256SUMS; otherwise the tests that need
it skip with one line naming the file (missing, not listed, damaged or truncated), never a traceback.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests import realpostgres
from tests.realpostgres import TIMESCALEDB_TARBALL, unpack_timescaledb, vendor_problem

ROOT = Path(__file__).resolve().parent.parent


def vendor_with(tmp_path: Path, data: bytes, *, listed_as: bytes | None = None) -> Path:
    """A vendor folder with the tarball's name holding ``data``, listed in SHA256SUMS with the digest of
    ``listed_as`` (default: of ``data`` itself)."""
    (tmp_path / TIMESCALEDB_TARBALL).write_bytes(data)
    digest = hashlib.sha256(data if listed_as is None else listed_as).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  other.tar.gz\n{digest}  {TIMESCALEDB_TARBALL}\n")
    return tmp_path


def test_missing_file_and_missing_sums_are_named(tmp_path) -> None:
    assert vendor_problem(tmp_path / "nowhere", TIMESCALEDB_TARBALL) == (
        f"{tmp_path / 'nowhere' / TIMESCALEDB_TARBALL} missing"
    )
    (tmp_path / TIMESCALEDB_TARBALL).write_bytes(b"x")
    assert vendor_problem(tmp_path, TIMESCALEDB_TARBALL) == f"{tmp_path / 'SHA256SUMS'} missing"
    (tmp_path / "SHA256SUMS").write_text("abc  something-else.tar.gz\n")
    assert vendor_problem(tmp_path, TIMESCALEDB_TARBALL) == (
        f"{tmp_path / TIMESCALEDB_TARBALL} not listed in {tmp_path / 'SHA256SUMS'}"
    )


def test_a_truncated_tarball_is_named_as_damaged(tmp_path) -> None:
    whole = b"\x1f\x8b" + b"payload" * 1000
    vendor = vendor_with(tmp_path, whole[:100], listed_as=whole)
    problem = vendor_problem(vendor, TIMESCALEDB_TARBALL)
    assert problem == (
        f"{vendor / TIMESCALEDB_TARBALL} damaged or truncated (its sha256 does not match {vendor / 'SHA256SUMS'})"
    )
    assert vendor_problem(vendor_with(tmp_path, whole), TIMESCALEDB_TARBALL) is None


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_unpacking_refuses_what_is_not_a_timescaledb_tarball(tmp_path) -> None:
    tarball = tmp_path / "t.tar.gz"
    tarball.write_bytes(b"\x1f\x8b not really gzip")
    assert f"{tarball} cannot be unpacked" in unpack_timescaledb(tarball, tmp_path / "a")
    tarball.write_bytes(_tar({"usr/lib/postgresql/15/lib/timescaledb.so": b"", "etc/passwd": b""}))
    assert unpack_timescaledb(tarball, tmp_path / "b") == f"{tarball} has unexpected contents (etc/passwd)"
    assert not (tmp_path / "b" / "etc").exists()
    tarball.write_bytes(_tar({"usr/lib/postgresql/15/lib/timescaledb.so": b"so"}))
    assert unpack_timescaledb(tarball, tmp_path / "c") is None
    assert (tmp_path / "c/usr/lib/postgresql/15/lib/timescaledb.so").read_bytes() == b"so"


def test_a_skip_names_the_file(monkeypatch) -> None:
    line = f"timescaledb 2.28.3: skipped: /elsewhere/{TIMESCALEDB_TARBALL} missing"
    monkeypatch.setattr(realpostgres, "TIMESCALEDB", False)
    monkeypatch.setattr(realpostgres, "NO_TIMESCALEDB", line)
    assert realpostgres.mode() == line
    with pytest.raises(pytest.skip.Exception, match="skipped: /elsewhere/"):
        with realpostgres.running_postgres(timescaledb=True):
            pass


def test_the_mode_line_for_a_damaged_vendor_folder(tmp_path) -> None:
    """The report line as a fresh process computes it (import time), from a vendor folder elsewhere."""
    vendor = vendor_with(tmp_path, b"truncated", listed_as=b"the whole file")
    proc = subprocess.run(
        [sys.executable, "-c", "from tests.realpostgres import mode; print(mode())"],
        cwd=ROOT,
        env={**os.environ, "IOTISTICA_VENDOR_DIR": str(vendor)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines() == [
        f"timescaledb 2.28.3: skipped: {vendor / TIMESCALEDB_TARBALL} damaged or truncated "
        f"(its sha256 does not match {vendor / 'SHA256SUMS'})"
    ]
