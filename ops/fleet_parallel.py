"""``validate`` and ``diff`` of a large fleet in worker processes, as synth renders it (synth/workers.py).

A synth renders in spawned workers, one per core; ``validate`` and ``diff`` render the same environments and
more (the schema check; the YAML of every file and the committed bytes to compare), so in one process they cost
more than a cold synth on two cores. Here the environments are cut into contiguous chunks handed to spawned
workers (the synth's own pool: each its own process group, ended with it on every way out); a worker renders
its chunk and sends back only what the parent needs: each release's problems and object identities
(``validate``), or the differences of its folders (``diff``). Below ``PARALLEL_MIN`` environments, or on one
core, everything runs in this process.

The pool is started before the environments are loaded (:class:`Workers`), so that the workers' imports
overlap the loading, as synth's first worker does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiers.models import Environment

#: Fewer environments than this are validated or compared in this process (a worker's start is ~0.6 s).
PARALLEL_MIN = 8


def revalidated(envs: list[dict[str, Any]]) -> list[Environment]:
    from tiers.models import Environment

    return [Environment.model_validate(d) for d in envs]


# --- what a worker runs -----------------------------------------------------------------------------------


def validate_chunk(
    envs: Sequence[Environment], check: frozenset[str]
) -> list[tuple[str, list[str], list[Any], list[str]]]:
    """Per release of ``envs``: (release, policy and schema problems when it is in ``check``, its objects'
    identities, the images its containers run)."""
    from ops.fleet_render import _containers, policy_problems, render
    from synth.render import _few_collections

    with _few_collections():
        rendered = render(envs)
        out = []
        for env in envs:
            objs = rendered[env.release]
            problems = policy_problems(env, objs) if env.release in check else []
            idents = [
                {"kind": o["kind"], "metadata": {k: v for k, v in o["metadata"].items() if k in ("name", "namespace")}}
                for o in objs
            ]
            images = sorted({c["image"] for o in objs for c in _containers(o)})
            out.append((env.release, problems, idents, images))
        return out


def _validate_worker(
    envs: list[dict[str, Any]], check: frozenset[str]
) -> list[tuple[str, list[str], list[Any], list[str]]]:
    return validate_chunk(revalidated(envs), check)


def _prepare() -> None:
    """A worker's first task: the synth worker's imports, and what validate and diff add."""
    from synth.render import worker_prepare

    worker_prepare()
    import kubernetes_validate  # noqa: F401

    import ops.fleet_render  # noqa: F401
    from ops.schema_check import _definitions

    _definitions()


# --- the parent ---------------------------------------------------------------------------------------------


class Workers:
    """The worker processes of one command, started at once (their imports overlap the loading); none when the
    environments folder holds fewer than ``PARALLEL_MIN`` files or the machine has one core. A context manager:
    every worker (and its process group) is ended on the way out."""

    def __init__(self, environments: Path) -> None:
        self.jobs = min(os.cpu_count() or 1, 8)
        count = len(list(environments.glob("*.yaml"))) if environments.is_dir() else 0
        self.pool: Any = None
        self.tmpdir: str | None = None
        if self.jobs < 2 or count < PARALLEL_MIN:
            return
        from synth.workers import _worker_pool, spawning

        self.tmpdir = tempfile.mkdtemp(prefix="iotistica-k8s-worker-")
        self.pool = _worker_pool(self.jobs, self.tmpdir)
        with spawning():
            self.ready = [self.pool.submit(_prepare) for _ in range(self.jobs)]

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            from synth.workers import end_workers

            try:
                end_workers(self.pool)
                self.pool.shutdown(wait=True, cancel_futures=True)
            finally:
                shutil.rmtree(self.tmpdir or "", ignore_errors=True)

    def submit(
        self,
        envs: Sequence[Environment],
        local: Callable[[Sequence[Environment]], Any],
        remote: Callable[..., Any],
        *args: Any,
    ) -> Callable[[], list[Any]]:
        """``remote(chunk as dicts, *args)`` handed to the workers, or ``local(envs)`` run here when there are
        none; returns what collects the results, one per chunk in order (the parent works meanwhile)."""
        if self.pool is None or len(envs) < PARALLEL_MIN:
            result = [local(envs)]
            return lambda: result
        from synth.workers import spawning

        count = min(len(envs), self.jobs * 4)
        size = -(-len(envs) // count)
        chunks = [list(envs[i : i + size]) for i in range(0, len(envs), size)]
        with spawning():
            futures: list[Future[Any]] = [
                self.pool.submit(remote, [e.model_dump(mode="json") for e in chunk], *args) for chunk in chunks
            ]
        return lambda: [f.result() for f in futures]
