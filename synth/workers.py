"""Stage 3, render (across processes): the environments to render shared among worker processes.

Takes the environments that miss the cache (synth/plan.py) and a staging folder; gives their
rendered folders in it, rendered by synth/render.py in spawned worker processes (the jsii kernel is
not safe to fork, and a spawned worker imports only what rendering needs). :class:`RenderWorker` is
one worker started before the environments are loaded, so that its start overlaps them;
:class:`Rendering` hands chunks of environments to it and, for a large synth, to a pool of more.

Every worker leads its own process group (synth/render.py ``worker_init``) with its jsii node child,
if any: :func:`end_workers` ends a worker and its node child at once, on every way out (a failure, a
signal, the end). Workers are spawned with SIGINT/SIGTERM held (:func:`spawning`), and the synth
ends multiprocessing's resource tracker as its last step at exit, so no process outlives a synth.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.render import render, render_part, worker_init, worker_prepare
from synth.signals import held

if TYPE_CHECKING:
    from tiers.models import Environment
    from tiers.shared import SharedProps

#: Render in worker processes only when there is enough work to pay for their start (~0.6 s each).
PARALLEL_MIN = 8


def _chunks(items: list[Environment], jobs: int) -> list[list[Environment]]:
    """Contiguous chunks, a few per worker so progress moves and work balances."""
    if not items:
        return []
    count = 1 if jobs <= 1 else min(len(items), jobs * 4)
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def end_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker's process group (the worker and its node child), at once, without waiting."""
    processes = dict(getattr(pool, "_processes", None) or {})
    for pid in processes:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # not (yet) a group leader: it has no node child to take along
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for process in processes.values():
        process.join(timeout=10)


def _move_children(src: Path, dst: Path) -> None:
    if src.is_dir():
        for child in sorted(src.iterdir()):
            child.rename(dst / child.name)
        src.rmdir()


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Around anything that may start worker processes: a child inherits the blocked signals, so a
    terminal's Ctrl-C cannot interrupt it (with a traceback) before it leads its own process group;
    the parent still gets the signal, right after, and ends the child with the synth."""
    from multiprocessing import resource_tracker

    # Started by the first spawn otherwise, and starting it unblocks SIGINT/SIGTERM in this thread.
    resource_tracker.ensure_running()
    _end_resource_tracker_at_exit()
    with held():
        yield


@functools.cache
def _end_resource_tracker_at_exit() -> None:
    """The synth ends multiprocessing's resource tracker (a child process every spawn needs), and
    waits for it, as the last thing it does at exit: after the semaphores of its worker pools are
    released (their finalizers have exit priority 0, this one -1). Otherwise the tracker ends only
    once it notices the synth's end, a moment after it: a process outliving the synth."""
    from multiprocessing import resource_tracker, util

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # CPython 3.8+: close its pipe, reap it
    if stop is not None:
        util.Finalize(None, stop, exitpriority=-1)


def _worker_pool(workers: int, tmpdir: str) -> ProcessPoolExecutor:
    """Spawned workers (each its own process group, ``tmpdir`` its temporary folder): jsii's kernel
    is not safe to fork, and a spawned worker imports only what rendering needs."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=worker_init, initargs=(tmpdir,))


class RenderWorker:
    """One render worker process, started before the environments are loaded.

    Its start (~0.6 s: Python and the imports rendering needs) then overlaps loading and validating
    the environments and computing the cache keys, instead of following them. A small synth's misses
    are rendered there, a large synth's are shared between it and a pool of more (:class:`Rendering`).
    Like every synth worker it leads its own process group (synth/render.py ``worker_init``). :meth:`close` ends
    it, with any node child, on every way out: when everything hit the cache, it was never used.
    """

    def __init__(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="iotistica-k8s-worker-")
        self.pool = _worker_pool(1, self.tmpdir)  # no process yet: the first submit spawns it
        try:
            with spawning():
                self.ready: Future[None] = self.pool.submit(worker_prepare)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the worker at once (SIGKILL to its group: the output never depends on its exit, and a
        clean exit of the jsii kernel takes ~0.4 s), then remove its temporary folder."""
        try:
            end_workers(self.pool)
            self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class Rendering:
    """The renders of one build: chunks of environments (the first with the shared charts) handed to
    worker processes as they become free, or, without a worker and with one chunk, rendered here."""

    def __init__(
        self,
        outdir: Path,
        labels: dict[str, str] | None,
        jobs: int,
        worker: RenderWorker | None,
        report: Any,
        renderer: str,
        previous: Path | None,
    ) -> None:
        self.outdir, self.labels, self.jobs, self.worker, self.report = outdir, labels, jobs, worker, report
        self.renderer, self.previous = renderer, previous
        self.pools: list[ProcessPoolExecutor] = []  # started here (the worker's own is not)
        self.tmpdir: str | None = None  # theirs, when there is no worker to share its own
        self.slots: list[tuple[ProcessPoolExecutor, int]] = []  # (pool, how many chunks it runs at once)
        self.waiting: deque[tuple[Path, list[dict[str, Any]], SharedProps | None]] = deque()
        self.running: dict[Future[None], tuple[ProcessPoolExecutor, int]] = {}
        self.local: list[tuple[list[Environment], Path, SharedProps | None]] = []
        self.parts: list[Path] = []

    def start(self, todo: list[Environment], shared: SharedProps | None) -> None:
        """Hand ``todo`` (and the shared charts of ``shared``, unless None) to the workers; returns at once."""
        if not todo and shared is None:
            return
        chunks = _chunks(todo, self.jobs if len(todo) >= PARALLEL_MIN else 1) or [[]]
        parts = [self.outdir / f".part-{len(self.parts) + i}" for i in range(len(chunks))]
        self.parts += parts
        if len(chunks) == 1 and self.worker is None:
            self.local.append((chunks[0], parts[0], shared))  # rendered by finish(), in this process
            return
        for i, (chunk, part) in enumerate(zip(chunks, parts, strict=True)):
            self.waiting.append((part, [e.model_dump(mode="json") for e in chunk], shared if i == 0 else None))
        if not self.slots:
            extra = min(self.jobs, len(chunks)) - (1 if self.worker is not None else 0)
            if self.worker is not None:
                self.slots.append((self.worker.pool, 1))
            if extra > 0:
                if self.worker is not None:
                    tmpdir = self.worker.tmpdir
                else:
                    tmpdir = self.tmpdir = tempfile.mkdtemp(prefix="iotistica-k8s-worker-")
                pool = _worker_pool(extra, tmpdir)
                self.pools.append(pool)
                self.slots.append((pool, extra))
        self._feed()

    def _feed(self) -> None:
        with spawning():
            for pool, capacity in self.slots:
                while self.waiting and sum(1 for p, _ in self.running.values() if p is pool) < capacity:
                    part, chunk, shared = self.waiting.popleft()
                    future = pool.submit(
                        render_part, chunk, str(part), self.labels or {}, shared, self.renderer, self.previous
                    )
                    self.running[future] = (pool, len(chunk))

    def finish(self) -> None:
        """Wait for every chunk handed out, then move the rendered folders into ``outdir``."""
        for chunk, part, shared in self.local:
            render(chunk, part, self.labels, shared, self.renderer, self.previous)
            self.report(len(chunk))
        self.local.clear()
        while self.running:
            done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in done:
                _, count = self.running.pop(future)
                if self.worker is not None and self.worker.ready.done():
                    self.worker.ready.result()  # the worker could not start rendering: that is the cause
                future.result()
                self.report(count)
            self._feed()
        for part in self.parts:
            _move_children(part, self.outdir)
        self.parts.clear()

    def abort(self) -> None:
        """A failure or a signal: the other workers' results are worthless, end them now (with their
        node children) instead of waiting for their chunks."""
        for pool in [*self.pools, *([self.worker.pool] if self.worker is not None else [])]:
            end_workers(pool)

    def close(self) -> None:
        """End the pool's workers (see :meth:`RenderWorker.close`) and remove their temporary folder."""
        try:
            for pool in self.pools:
                end_workers(pool)
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
