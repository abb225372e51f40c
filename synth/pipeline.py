"""The stages of one synth in order, from the validated environments to the promoted output folder.

Takes the environments to synthesize (synth/fleet.py) and the output folder; gives the output folder
replaced by their manifests (:func:`synthesize`), in this order:

1. the output folder is checked (synth/output.py: refused unless this project owns it);
2. :func:`build` fills a private staging folder beside it: the cache keys (synth/plan.py); the misses
   handed to the render worker first (synth/workers.py, synth/render.py); while it renders, the
   hits written from the cache (synth/cache.py), or left in place when the output being replaced
   holds them as recorded; the new entries stored;
3. under the lock, with SIGINT/SIGTERM held, the staging folder is promoted (synth/output.py) and the
   promoted parts recorded for the next synth.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from synth.output import (
    MARKER,
    MARKER_TEXT,
    SHARED_FOLDERS,
    Summary,
    check_owned,
    locked,
    promote,
    remove_staging,
)
from synth.plan import Built, plan
from synth.signals import finish_uninterrupted, held
from synth.workers import Rendering, RenderWorker

if TYPE_CHECKING:
    from synth.cache import SynthCache
    from tiers.models import Environment

#: Report progress on stderr when more environments than this are synthesized.
PROGRESS_MIN = 10


def build(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None = None,
    all_envs: Sequence[Environment] | None = None,
    *,
    cache: SynthCache | None = None,
    jobs: int = 1,
    progress: bool = False,
    renderer: str = "python",
    worker: RenderWorker | None = None,
    previous: Path | None = None,
    folders: Collection[str] | None = None,
) -> Built:
    """Synthesize ``envs`` (and the shared charts, from ``all_envs``) into ``outdir`` (must not exist).

    Environments whose cache key hits are written from the cache; the rest are rendered, across
    ``jobs`` worker processes when there are at least ``PARALLEL_MIN`` of them. With ``worker`` (see
    :class:`RenderWorker`) the misses are handed to it first and the hits written while it renders;
    without one, a small synth renders in this process. The marker file is written too, so ``outdir``
    is a complete output folder, but for the parts kept (:class:`Built`). ``previous``: the output
    folder ``outdir`` will replace, if any. A hit whose part there holds its files as the last synth
    recorded them (synth/cache.py ``Part``) is not written: the promotion (synth/output.py) leaves it
    in place. Elsewhere a file with the same bytes there is linked instead of written again
    (synth/files.py). ``folders``: the releases whose folders the output will hold, when not all of
    them (a partial synth): only those get an Argo CD Application (tiers/shared.py ``shared_props``).
    """
    from tiers.shared import shared_props

    # What the shared charts read of the whole fleet (tiers/shared.py): their only input.
    shared = shared_props(all_envs if all_envs is not None else envs, folders)
    outdir.mkdir(parents=True)
    (outdir / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    total, done = len(envs), 0

    def report(count: int) -> None:
        nonlocal done
        done += count
        if progress and total > PROGRESS_MIN and count:
            print(f"synth: {done}/{total} environments", file=sys.stderr)

    rendering = Rendering(outdir, labels, jobs, worker, report, renderer, previous)
    built = Built()
    try:
        if cache is None:
            rendering.start(list(envs), shared)
            rendering.finish()
            return built
        planned = plan(envs, shared, cache, previous)
        entries, shared_entry, todo = planned.entries, planned.shared_entry, planned.todo
        shared_todo = planned.shared_todo
        rendering.start([env for env, _ in todo], shared if shared_todo else None)
        # While the worker renders: the hits. An entry another run pruned since the probe (or one
        # found damaged) is a miss after all, rendered in a second round.
        missed = {entry for _, entry in todo}
        built.entries = {env.release: entry for env, entry in entries} | {"": shared_entry}
        built.recorded = planned.recorded

        def kept(entry: str, base: str, folders: tuple[str, ...]) -> bool:
            """Whether the hit ``entry`` is in the output being replaced as recorded (then it stays)."""
            found = planned.unchanged(entry, base, folders, previous)
            if found is not None:
                cache.keep(entry)
                built.kept.append(found)
            return found is not None

        late: list[tuple[Environment, str]] = []
        for env, entry in entries:
            if entry in missed or kept(entry, env.release, (env.release,)):
                continue
            if not cache.fetch(entry, outdir / env.release, previous / env.release if previous else None):
                late.append((env, entry))
        shared_late = False
        if not shared_todo and not kept(shared_entry, "", SHARED_FOLDERS):
            shared_late = not cache.fetch(shared_entry, outdir, previous)
        done = total - len(todo) - len(late)
        if progress and total > PROGRESS_MIN:
            print(f"synth: {done}/{total} environments from the cache", file=sys.stderr)
        rendering.finish()
        if late or shared_late:
            rendering.start([env for env, _ in late], shared if shared_late else None)
            rendering.finish()
        for env, entry in [*todo, *late]:
            cache.store(entry, outdir / env.release)
        if shared_todo or shared_late:
            cache.store(shared_entry, outdir, SHARED_FOLDERS)
        cache.prune()
        return built
    except BaseException:
        rendering.abort()
        raise
    finally:
        rendering.close()


def synthesize(
    envs: Sequence[Environment],
    outdir: Path,
    *,
    partial: bool,
    labels: dict[str, str] | None = None,
    all_envs: Sequence[Environment] | None = None,
    cache: SynthCache | None = None,
    jobs: int = 1,
    progress: bool = False,
    mirror: Path | None = None,
    renderer: str = "python",
    worker: RenderWorker | None = None,
) -> Summary:
    """Build into a staging folder beside ``outdir``, then promote the result (whole, or per folder).

    ``outdir`` must be absent, empty, or an output folder of this project (synth/output.py ``foreign_entry``);
    otherwise :class:`OutputError` is raised before anything is written. ``mirror``, when given,
    shows the promoted output (the cdk8s CLI's scratch folder, :func:`show`). ``worker``: see
    :func:`build`. Returns what the promotion did, by folder (synth/output.py :class:`Summary`).
    """
    outdir = outdir.resolve()
    check_owned(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.synth-{os.getpid()}-", dir=outdir.parent))
    # A partial synth writes the Applications of the folders the output will hold: those it writes and
    # those already there; an environment file whose folder neither writes nor holds gets none.
    folders = None
    if partial:
        folders = {e.release for e in envs} | {e.release for e in (all_envs or envs) if (outdir / e.release).is_dir()}
    try:
        built = build(
            envs,
            staging / "out",
            labels,
            all_envs,
            cache=cache,
            jobs=jobs,
            progress=progress,
            renderer=renderer,
            worker=worker,
            previous=outdir if outdir.is_dir() else None,
            folders=folders,
        )
        with locked(outdir.parent), held():
            summary = promote(staging, outdir, envs, all_envs if all_envs is not None else envs, partial, built, cache)
            finish_uninterrupted()
        if mirror is not None:
            show(outdir, mirror)
    finally:
        remove_staging(staging)
    return summary


def show(outdir: Path, mirror: Path) -> None:
    """Make ``mirror`` (the cdk8s CLI's scratch folder) show the promoted ``outdir``: a symbolic link to
    it, for the CLI to list (it reads the manifests through the link, then deletes the link itself
    before its next run: ``rm`` removes a link, never what it points to). A copy would cost the CLI
    ~10,000 files written now and removed next time for a large fleet."""
    if mirror.is_dir() and not mirror.is_symlink():  # a copy an older version left
        shutil.rmtree(mirror)
    link = mirror.parent / f".{mirror.name}.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(outdir, mirror.parent), target_is_directory=True)
    os.replace(link, mirror)  # atomic, also over the link of a synth that finished meanwhile
