"""The platform's own programs, built from the vendored source as their Dockerfiles build them.

``iotistic/api`` and ``iotistic/ingestion`` come from ``../shared/vendor/iotistica-*-api-ingestion.tar.gz``:
``npm ci && npm run build`` in each (the Dockerfiles' builder stage), then the image's ``/app`` is that
folder (``node dist/index.js`` from ``WORKDIR /app``; the API's migrations at ``/app/database/migrations``).

The build is cached in ``.e2e-cache/`` (git-ignored, ``make clean`` removes it), in a folder named by the
hashes of the tarball and of both ``package-lock.json``: a new lock file or a new tarball builds again, an
unchanged one reuses the build. A build is written to a staging folder and renamed into place only when
complete, so an interrupted build is never reused.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT.parent / "shared" / "vendor"
CACHE = ROOT / ".e2e-cache"
PLATFORM_GLOB = "iotistica-*-api-ingestion.tar.gz"
GO_AUTH = "mosquitto-go-auth-3.0.0-debian12-amd64.tar.gz"
TIMESCALEDB = "timescaledb-2.28.3-pg15-debian12-amd64.tar.gz"
KUBE_APISERVER = "kube-apiserver-v1.28.4-linux-amd64.xz"
PROGRAMS = ("api", "ingestion")


class BuildError(RuntimeError):
    """npm ci or the build failed (the message ends with npm's output)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _vendor_sums() -> dict[str, str]:
    sums: dict[str, str] = {}
    f = VENDOR / "SHA256SUMS"
    if f.is_file():
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                sums[parts[1].lstrip("*")] = parts[0]
    return sums


def platform_tarball() -> Path | None:
    found = sorted(VENDOR.glob(PLATFORM_GLOB))
    return found[-1] if found else None


@functools.cache
def missing() -> str | None:
    """One line naming what the e2e tests need and do not find (None: all present and intact)."""
    if not VENDOR.is_dir():
        return f"../shared/vendor missing ({VENDOR})"
    tarball = platform_tarball()
    names = [tarball.name if tarball else PLATFORM_GLOB, GO_AUTH, TIMESCALEDB, KUBE_APISERVER]
    sums = _vendor_sums()
    for name in names:
        p = VENDOR / name
        if not p.is_file():
            return f"../shared/vendor/{name} missing"
        want = sums.get(name)
        if want is not None and _sha256(p.read_bytes()) != want:
            return f"../shared/vendor/{name} damaged (sha256 differs from SHA256SUMS)"
    for tool in ("node", "npm", "unshare", "setpriv", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} missing (not on PATH)"
    return None


def mode() -> str:
    """One line for the test report: whether the end-to-end tests run."""
    why = missing()
    if why is None:
        return "e2e: real (dist/ on kube-apiserver; api/, ingestion/ from ../shared/vendor, built in .e2e-cache)"
    return f"e2e: skipped: {why}"


@dataclass(frozen=True)
class Built:
    """Where each program's image root (``/app``) is, and the go-auth plugin."""

    apps: dict[str, Path]
    go_auth: Path


def _lock_hashes(tarball: Path) -> str:
    h = hashlib.sha256(_sha256(tarball.read_bytes()).encode())
    with tarfile.open(tarball) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.name.endswith(("api/package-lock.json", "ingestion/package-lock.json")):
                f = tar.extractfile(member)
                assert f is not None
                h.update(member.name.encode() + _sha256(f.read()).encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(f"{' '.join(cmd)} in {cwd.name} exited {proc.returncode}:\n{tail}")


def build() -> Built:
    """Build (or reuse) api/ and ingestion/ and unpack go-auth.so. Safe against concurrent callers (a lock)."""
    tarball = platform_tarball()
    assert tarball is not None
    key = _lock_hashes(tarball)
    CACHE.mkdir(exist_ok=True)
    final = CACHE / f"platform-{key}"
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / ".complete").is_file():
            for old in CACHE.glob("platform-*"):
                shutil.rmtree(old, ignore_errors=True)
            stage = Path(tempfile.mkdtemp(prefix="stage-", dir=CACHE))
            try:
                with tarfile.open(tarball) as tar:
                    tar.extractall(stage, filter="data")
                (src,) = [p for p in stage.iterdir() if p.is_dir()]
                log = stage / "build.log"
                for name in PROGRAMS:
                    d = src / name
                    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], d, log)
                    _run(["npm", "run", "build"], d, log)
                    # The image ships production dependencies only (the Dockerfiles' deps stage).
                    _run(["npm", "prune", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], d, log)
                    (src / name).rename(stage / name)
                shutil.rmtree(src)
                with tarfile.open(VENDOR / GO_AUTH) as tar:
                    tar.extractall(stage / "go-auth", filter="data")
                (stage / ".complete").write_text(key + "\n")
                stage.rename(final)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
    return Built(apps={name: final / name for name in PROGRAMS}, go_auth=final / "go-auth" / "go-auth.so")
