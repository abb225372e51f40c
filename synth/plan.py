"""Stage 2, plan: the cache key of each part of the output, and what must be rendered.

Takes the environments to synthesize, the shared charts' slice of the fleet (tiers/shared.py), the
cache (synth/cache.py) and the output folder being replaced; gives a :class:`Plan`: each release's
cache key and the shared charts', which of them miss (to render, synth/render.py), and the output's
record of the parts the last synth promoted there (a hit still there as recorded stays in place).

A release folder of ``dist/`` is a pure function of (the environment's validated model, the code
that renders it, the library versions). The cache key is the sha256 of exactly that:

- the code fingerprint: every file under ``constructs/``, ``tiers/`` (presets included), ``imports/``
  and ``synth/``, plus ``app.py`` and ``requirements.lock``, by path and content; the installed
  versions of the packages that render (cdk8s, cdk8s-plus-27, constructs, jsii, pydantic, PyYAML) and
  the Python version;
- the environment: ``Environment.model_dump_json()`` after the tier preset was merged in (the
  shared charts: their slice's ``model_dump_json()``).

Anything that can change a byte of output changes the key, so a hit is never stale.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from synth.cache import Part, Stamp, SynthCache

if TYPE_CHECKING:
    from tiers.models import Environment
    from tiers.shared import SharedProps

#: The project root: the code of the cache key is read there.
ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("constructs", "tiers", "imports", "synth")
CODE_FILES = ("app.py", "requirements.lock")
PACKAGES = ("cdk8s", "cdk8s-plus-27", "constructs", "jsii", "pydantic", "pydantic-core", "PyYAML")
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}


def _files(root: Path) -> Iterable[Path]:
    for name in CODE_FILES:
        path = root / name
        if path.is_file():
            yield path
    for folder in CODE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and not SKIP_PARTS.intersection(path.relative_to(root).parts):
                yield path


def code_fingerprint(root: Path = ROOT) -> str:
    """The code that renders, by path and content, and the versions of the libraries and of Python."""
    from importlib import metadata  # ~30 ms to import: only a synth with a cache pays it

    digest = hashlib.sha256()
    for path in sorted(_files(root), key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for package in PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{package}=={version}\0".encode())
    digest.update(f"python{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()


def key(code: str, *parts: str) -> str:
    """A cache key: the sha256 of the code fingerprint and ``parts`` (what is rendered, its model's JSON)."""
    digest = hashlib.sha256(code.encode())
    for part in parts:
        digest.update(b"\0")
        digest.update(part.encode())
    return digest.hexdigest()


@dataclass
class Plan:
    """The cache keys of one synth and what they say must be rendered."""

    #: Each release and its cache key.
    entries: list[tuple[Environment, str]]
    #: The shared charts' cache key (dist/cluster/, dist/argocd/).
    shared_entry: str
    #: The releases whose entry the cache does not hold: rendered.
    todo: list[tuple[Environment, str]]
    #: Whether the shared charts are rendered.
    shared_todo: bool
    #: The output's record as read (SynthCache.parts), by entry; empty without an output to replace.
    recorded: dict[str, Part]

    def unchanged(
        self, entry: str, base: str, folders: tuple[str, ...], previous: Path | None
    ) -> tuple[Part, Stamp] | None:
        """The part of the hit ``entry`` and its stamp when the output being replaced holds it as
        recorded (then it stays in place, see :class:`Built`); else None."""
        part = self.recorded.get(entry)
        if previous is None or part is None or (part.base, part.folders) != (base, folders):
            return None
        stamp = part.unchanged(previous)
        return None if stamp is None else (part, stamp)


def plan(envs: Sequence[Environment], shared: SharedProps, cache: SynthCache, previous: Path | None) -> Plan:
    """Key every release of ``envs`` and the shared charts of ``shared``; probe the cache for each."""
    code = code_fingerprint()
    entries = [(env, key(code, "release", env.model_dump_json())) for env in envs]
    shared_entry = key(code, "shared", shared.model_dump_json())
    todo = [(env, entry) for env, entry in entries if not cache.probe(entry)]
    shared_todo = not cache.probe(shared_entry)
    recorded = cache.parts(previous) if previous is not None else {}
    return Plan(entries, shared_entry, todo, shared_todo, recorded)


@dataclass
class Built:
    """What a build (synth/pipeline.py) leaves for the promotion (synth/output.py) besides its folder."""

    #: The cache entry of each part written or kept, by the folder its paths are relative to (a
    #: release's; "" for the shared folders'); empty without a cache.
    entries: dict[str, str] = field(default_factory=dict)
    #: The parts of the output being replaced that hold a hit's files as recorded (synth/cache.py Part),
    #: with their folders' stamp when that was checked: not written, left in place unless the stamp
    #: changed before the promotion.
    kept: list[tuple[Part, Stamp]] = field(default_factory=list)
    #: The output's record as read (SynthCache.parts), by entry.
    recorded: dict[str, Part] = field(default_factory=dict)
