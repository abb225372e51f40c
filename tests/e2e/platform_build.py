"""The platform's own programs, built from the vendored source as their Dockerfiles build them.

``iotistic/api`` and ``iotistic/ingestion`` come from ``../shared/vendor/iotistica-*-api-ingestion.tar.gz``:
``npm ci && npm run build`` in each (the Dockerfiles' builder stage), then the image's ``/app`` is that
folder (``node dist/index.js`` from ``WORKDIR /app``; the API's migrations at ``/app/database/migrations``).

The build is cached in ``.e2e-cache/`` (git-ignored, ``make clean`` removes it; ``IOTISTICA_E2E_CACHE``
names another folder, e.g. for a cold run that leaves the shared cache alone), in a folder named by the
hashes of the tarball and of both ``package-lock.json``: a new lock file or a new tarball builds again, an
unchanged one reuses the build. A build is written to a staging folder and renamed into place only when
complete, so an interrupted build is never reused.

:func:`build_in_background` starts the build (or the reuse) in a thread and returns at once: a release starts
its API server and database meanwhile, and waits for the build only when its kubelet needs the programs
(``Built.apps``). Its :meth:`Built.close` ends a build still running (npm's process group) and waits for it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT.parent / "shared" / "vendor"
CACHE = Path(os.environ.get("IOTISTICA_E2E_CACHE") or ROOT / ".e2e-cache")
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


class BuildCancelled(BuildError):
    """The build was ended before it completed (:meth:`Built.close`)."""


class Built:
    """Where each program's image root (``/app``) is, and the go-auth plugin: known once the build is done
    (reading ``apps`` or ``go_auth`` waits for it, and raises its error)."""

    def __init__(self, done: concurrent.futures.Future[tuple[dict[str, Path], Path]]) -> None:
        self._done = done
        self._cancel = threading.Event()

    @property
    def apps(self) -> dict[str, Path]:
        return self._done.result()[0]

    @property
    def go_auth(self) -> Path:
        return self._done.result()[1]

    def close(self) -> None:
        """End the build if it still runs (its npm process group) and wait for its thread."""
        self._cancel.set()
        concurrent.futures.wait([self._done])


def _lock_hashes(tarball: Path) -> str:
    h = hashlib.sha256(_sha256(tarball.read_bytes()).encode())
    with tarfile.open(tarball) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.name.endswith(("api/package-lock.json", "ingestion/package-lock.json")):
                f = tar.extractfile(member)
                assert f is not None
                h.update(member.name.encode() + _sha256(f.read()).encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, log: Path, cancel: threading.Event) -> None:
    with log.open("ab") as out:
        # A session of its own, ended here as a group: npm's children go with it when the build is cancelled.
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            waited = 0.0
            while proc.poll() is None:
                if cancel.is_set():
                    raise BuildCancelled(f"{' '.join(cmd)} in {cwd.name}: ended before it completed")
                if waited > 900:
                    raise BuildError(f"{' '.join(cmd)} in {cwd.name}: not done within 900 s")
                try:
                    proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    waited += 0.5
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BuildError(f"{' '.join(cmd)} in {cwd.name} exited {proc.returncode}:\n{tail}")


def build() -> Built:
    """Build (or reuse) api/ and ingestion/ and unpack go-auth.so, and return when done. Safe against concurrent
    callers (a lock)."""
    done: concurrent.futures.Future[tuple[dict[str, Path], Path]] = concurrent.futures.Future()
    built = Built(done)
    done.set_result(_build(built._cancel))
    return built


def build_in_background() -> Built:
    """:func:`build` in a thread of its own: returns at once; ``Built.apps`` waits for it."""
    done: concurrent.futures.Future[tuple[dict[str, Path], Path]] = concurrent.futures.Future()
    built = Built(done)

    def run() -> None:
        try:
            done.set_result(_build(built._cancel))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads Built.apps
            done.set_exception(exc)

    threading.Thread(target=run, name="platform-build", daemon=True).start()
    return built


def _build(cancel: threading.Event) -> tuple[dict[str, Path], Path]:
    tarball = platform_tarball()
    assert tarball is not None
    key = _lock_hashes(tarball)
    CACHE.mkdir(parents=True, exist_ok=True)
    final = CACHE / f"platform-{key}"
    with (CACHE / ".lock").open("w") as lock:
        while True:  # the other worker may be building: wait for it, unless cancelled
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancel.wait(0.2):
                    raise BuildCancelled("cancelled while waiting for another build") from None
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
                    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], d, log, cancel)
                    _run(["npm", "run", "build"], d, log, cancel)
                    # The image ships production dependencies only (the Dockerfiles' deps stage).
                    _run(["npm", "prune", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], d, log, cancel)
                    (src / name).rename(stage / name)
                shutil.rmtree(src)
                with tarfile.open(VENDOR / GO_AUTH) as tar:
                    tar.extractall(stage / "go-auth", filter="data")
                (stage / ".complete").write_text(key + "\n")
                stage.rename(final)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
    return {name: final / name for name in PROGRAMS}, final / "go-auth" / "go-auth.so"
