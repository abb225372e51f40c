"""Incremental synth: skip environments whose inputs and code are unchanged, keyed by content hash.

A release folder of ``dist/`` is a pure function of (the environment's validated model, the code
that renders it, the library versions). The cache key is the sha256 of exactly that:

- the code fingerprint: every file under ``constructs/``, ``tiers/`` (presets included) and
  ``imports/``, plus ``app.py``, ``synth_cache.py`` and ``requirements.lock``, by path and content;
  the installed versions of the packages that render (cdk8s, cdk8s-plus-27, constructs, jsii,
  pydantic, PyYAML) and the Python version;
- the environment: ``Environment.model_dump_json()`` after the tier preset was merged in.

Anything that can change a byte of output changes the key, so a hit is a copy of the output the same
inputs produced before: never stale. ``tests/test_synth_cache.py`` proves it (a cached synth equals a
fresh one byte for byte; changing code, a preset or an environment misses). Entries live in
``.synth-cache/<key>/`` (git-ignored), are written atomically (safe for concurrent runs sharing one
cache), and the least recently used beyond ``MAX_ENTRIES`` are pruned.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CODE_DIRS = ("constructs", "tiers", "imports")
CODE_FILES = ("app.py", "synth_cache.py", "requirements.lock")
PACKAGES = ("cdk8s", "cdk8s-plus-27", "constructs", "jsii", "pydantic", "pydantic-core", "PyYAML")
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}
MAX_ENTRIES = 2000


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
    digest = hashlib.sha256(code.encode())
    for part in parts:
        digest.update(b"\0")
        digest.update(part.encode())
    return digest.hexdigest()


class SynthCache:
    """Folders of rendered output, one per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def fetch(self, entry: str, dest: Path) -> bool:
        """Copy the cached folder to ``dest``; False when there is none.

        An entry that vanishes while it is copied (another process pruned it) is a miss, not an error.
        """
        src = self.directory / entry
        self.used.add(entry)
        if not (src / ".complete").is_file():
            self.misses += 1
            return False
        try:
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".complete"))
            os.utime(src)
        except (FileNotFoundError, shutil.Error):
            shutil.rmtree(dest, ignore_errors=True)
            self.misses += 1
            return False
        self.hits += 1
        return True

    def store(self, entry: str, src: Path) -> None:
        """Keep a copy of ``src`` under ``entry``.

        Safe for concurrent runs: the copy goes to a temporary folder whose name is unique to this
        process (``.tmp-<key>-<pid>-<random>``) and is renamed into place, which is atomic; when
        another run renamed its copy first, this one is dropped (the contents are equal by
        construction: same key).
        """
        self.used.add(entry)
        final = self.directory / entry
        if final.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry[:16]}-{os.getpid()}-", dir=self.directory))
        try:
            if src.exists():
                shutil.copytree(src, tmp, dirs_exist_ok=True)
            (tmp / ".complete").write_text("")
            try:
                tmp.rename(final)
            except OSError:  # ENOTEMPTY/EEXIST: another run stored the same entry first
                if not (final / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def prune(self, max_entries: int = MAX_ENTRIES) -> None:
        """Drop the least recently used entries beyond ``max_entries`` (never one used by this run)."""
        if not self.directory.is_dir():
            return
        entries = sorted(
            # Hidden names are other runs' temporary folders: never theirs to prune.
            (p for p in self.directory.iterdir() if p.name not in self.used and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for path in entries[max(0, max_entries - len(self.used)) :]:
            # Renamed away first, so a concurrent fetch sees the entry whole or not at all.
            trash = self.directory / f".trash-{path.name[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                path.rename(trash)
            except OSError:
                continue
            shutil.rmtree(trash, ignore_errors=True)
