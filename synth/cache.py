"""The cache store: rendered output by cache key, and the records of the output folders synth promoted.

Takes a release's (or the shared charts') rendered folder and its key (synth/plan.py); gives it back
byte for byte on a later synth with the same key. A key covers everything that can change a byte of
output (the code, the libraries, the validated environment: synth/plan.py), so a hit is a copy of
the output the same inputs produced before: never stale. ``tests/test_synth_cache.py`` proves it (a
cached synth equals a fresh one byte for byte; changing code, a preset or an environment misses). An
entry is one file, ``.synth-cache/<key>`` (git-ignored): the folder's files and their bytes, checked
against their sha256 when read, so a hit writes ~50 files from one read (through synth/files.py)
instead of copying them one by one. Entries are written atomically (safe for concurrent runs sharing
one cache), and the least recently used beyond ``MAX_ENTRIES`` are pruned.

``.synth-cache/outputs/`` holds one record per output folder: the cache entry and the ``lstat``
signature of each part a synth promoted there (:class:`Part`). A hit whose part is still there as
recorded stays in place instead of being written again; a record is only a hint, checked against
the folder every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synth.files import write_tree

MAX_ENTRIES = 2000


#: What a folder tree looks like to ``lstat``: (relative path, mode, uid, links, inode, size, mtime_ns,
#: ctime_ns) of every entry, the folders themselves included, in path order.
Signature = tuple[tuple[str, int, int, int, int, int, int, int], ...]


def signature(root: Path, names: Iterable[str] | None = None) -> Signature | None:
    """The :data:`Signature` of ``root`` (or only of its children ``names``, each a folder), or None
    when a folder is missing or not a folder.

    Writing, replacing, adding or removing a file changes it (its ctime, its inode, or its folder's
    mtime), so two equal signatures taken a moment apart mean nothing in the tree changed meanwhile.
    """
    rows: list[tuple[str, int, int, int, int, int, int, int]] = []

    def add(path: str, st: os.stat_result) -> None:
        rows.append((path, st.st_mode, st.st_uid, st.st_nlink, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))

    def walk(folder: str) -> None:
        with os.scandir(root / folder if folder else root) as it:
            for entry in it:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                st = entry.stat(follow_symlinks=False)
                add(rel, st)
                if stat.S_ISDIR(st.st_mode):
                    walk(rel)

    try:
        for top in names if names is not None else [""]:
            st = os.lstat(root / top if top else root)
            if not stat.S_ISDIR(st.st_mode):
                return None
            add(top, st)
            walk(top)
    except (FileNotFoundError, NotADirectoryError):
        return None
    rows.sort()
    return tuple(rows)


#: The ``lstat`` of a part's folders (inode, device, mode, mtime_ns, ctime_ns each): :meth:`Part.stamp`.
Stamp = tuple[tuple[int, int, int, int, int], ...]


def digest(rows: Signature) -> str:
    """A :data:`Signature` in 64 hex digits (pickle with a fixed protocol: the same rows give the same
    bytes in every process, and a third of the time of ``json.dumps``)."""
    return hashlib.sha256(pickle.dumps(rows, protocol=5)).hexdigest()


@dataclass(frozen=True)
class Part:
    """A part of an output folder as a synth left it: a release's folder, or the shared folders.

    A synth records the parts of the output it promotes (:meth:`SynthCache.record`). The next synth
    into that folder leaves a part in place, instead of writing its files again, when the part's
    cache entry is the one it would write and its :func:`signature` is still the recorded one
    (:meth:`unchanged`, under the lock): nothing has written, replaced, added or removed a file in it
    since. A file changed in the same clock tick as the record was taken cannot be told from one
    written before it (file times are coarse), so a part with a file changed at or after the
    record's time is never left in place (git's "racily clean" rule).

    The synth compares the signature while its worker renders, then, under the lock, only the
    folders' :meth:`stamp`: a synth that promoted one of them meanwhile (a rename of a new folder
    into place, or of the whole output) changes its stamp. A hand edit made in place in between is
    kept, as if made right after the synth; the next synth finds it (its signature differs) and
    writes that file again.
    """

    #: The cache entry it holds.
    entry: str
    #: The folders it is, in the output folder.
    folders: tuple[str, ...]
    #: The folder the entry's paths are relative to: a release's, or "" for the output folder.
    base: str
    #: :func:`digest` of its signature when recorded.
    digest: str
    #: When it was recorded (the record file's mtime, in the file system's clock); 0 when not read back.
    taken_ns: int = 0

    def signature_in(self, outdir: Path) -> Signature | None:
        return signature(outdir / self.base) if self.base else signature(outdir, self.folders)

    def unchanged(self, outdir: Path) -> Stamp | None:
        """Its :func:`stamp` when it is in ``outdir`` as recorded (see the class doc), else None."""
        rows = self.signature_in(outdir)
        if rows is None or any(row[7] >= self.taken_ns for row in rows) or digest(rows) != self.digest:
            return None
        return self.stamp(outdir)

    def stamp(self, outdir: Path) -> Stamp | None:
        """The ``lstat`` of its folders (None when one is missing): a folder another synth promoted in
        its place, or one of which a file was added, removed or renamed, has another."""
        rows = []
        for folder in self.folders:
            try:
                st = os.lstat(outdir / folder)
            except OSError:
                return None
            rows.append((st.st_ino, st.st_dev, st.st_mode, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(rows)

    @classmethod
    def taken(cls, outdir: Path, entry: str, folders: tuple[str, ...], base: str) -> Part | None:
        """The part as it is in ``outdir`` now (None when a folder of it is missing)."""
        part = cls(entry, folders, base, "")
        rows = part.signature_in(outdir)
        return None if rows is None else cls(entry, folders, base, digest(rows))


#: The cache's folder of output records (:meth:`SynthCache.record`), never pruned as an entry; at most
#: ``MAX_RECORDS`` are kept, the most recently written.
OUTPUTS = "outputs"
MAX_RECORDS = 64


#: First line of an entry file; an entry of another layout (an older version's folder) is a miss.
MAGIC = b"iotistica-k8s synth-cache entry 1\n"


def _pack(root: Path, names: Iterable[str] | None) -> bytes:
    """Every regular file under ``root`` (or only under its children ``names``) in one entry file.

    Layout: ``MAGIC``, the sha256 (hex) of the rest, a newline; then one line of JSON, the files'
    relative paths and sizes in path order; then their bytes, in the same order.
    """
    tops = [root / name for name in names] if names is not None else [root]
    files: list[tuple[str, bytes]] = []
    for top in tops:
        if not top.exists():
            continue
        for path in top.rglob("*"):
            if path.is_file():
                files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    files.sort()
    body = json.dumps([[rel, len(data)] for rel, data in files]).encode() + b"\n" + b"".join(d for _, d in files)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _unpack(blob: bytes) -> tuple[list[tuple[str, int]], memoryview, int] | None:
    """(files as (relative path, size), the blob, offset of the first file's bytes), or None when the
    blob is not a whole entry of this layout (truncated, edited, another version's): never trusted."""
    if not blob.startswith(MAGIC):
        return None
    head = len(MAGIC) + 65  # the digest and its newline
    body = memoryview(blob)[head:]
    if blob[len(MAGIC) : head - 1] != hashlib.sha256(body).hexdigest().encode():
        return None
    newline = blob.find(b"\n", head)
    try:
        index = json.loads(blob[head:newline]) if newline > 0 else None
    except ValueError:
        return None
    if not isinstance(index, list):
        return None
    files: list[tuple[str, int]] = []
    for item in index:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and type(item[1]) is int):
            return None
        rel, size = item
        parts = rel.split("/")
        if not all(parts) or any(p in (".", "..") for p in parts) or size < 0:
            return None
        files.append((rel, size))
    if newline + 1 + sum(size for _, size in files) != len(blob):
        return None
    return files, memoryview(blob), newline + 1


class SynthCache:
    """Rendered output, one file per key (``_pack``): the folder's files and their bytes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def probe(self, entry: str) -> bool:
        """Whether ``entry`` is stored (a miss is counted when not). A later :meth:`fetch` may still
        miss: another run may prune the entry meanwhile."""
        self.used.add(entry)
        if (self.directory / entry).is_file():
            return True
        self.misses += 1
        return False

    def fetch(self, entry: str, dest: Path, previous: Path | None = None) -> bool:
        """Write the cached files into ``dest`` (created if needed); False when there is no entry.
        ``previous``: the folder ``dest`` will replace, whose files with the same bytes are linked
        instead of written (:class:`FolderWriter`).

        The entry is read whole with one ``open`` (:meth:`_read`): one pruned or replaced by another
        process meanwhile is read entirely or not at all (absent: a miss, not an error). An entry
        that is not whole and intact (checked against its sha256) is a miss and is removed. The
        files in ``dest`` are never links to the cache: editing one cannot touch the cache.
        """
        unpacked = self._read(entry)
        if unpacked is None:
            return False
        files, view, offset = unpacked

        def contents(start: int) -> Iterator[tuple[str, str, memoryview]]:
            for rel, size in files:
                folder, _, name = rel.rpartition("/")
                yield folder, name, view[start : start + size]
                start += size

        write_tree(dest, contents(offset), previous)
        self._hit(entry)
        return True

    def keep(self, entry: str) -> None:
        """``entry`` is a hit that stays in place in the output (:class:`Part`): used, not written."""
        self.used.add(entry)
        self._hit(entry)

    def _record_path(self, outdir: Path) -> Path:
        return self.directory / OUTPUTS / hashlib.sha256(os.fsencode(outdir)).hexdigest()

    def parts(self, outdir: Path) -> dict[str, Part]:
        """The parts of ``outdir`` (absolute) as the last synth into it recorded them, by entry; empty
        when there is no record or it cannot be read whole (a record is only ever a hint: every part
        is checked against ``outdir`` before it is left in place)."""
        try:
            with open(self._record_path(outdir), "rb") as f:
                taken = os.fstat(f.fileno()).st_mtime_ns
                data = json.loads(f.read())
        except (OSError, ValueError):
            return {}
        if not (isinstance(data, dict) and data.get("outdir") == str(outdir) and isinstance(data.get("parts"), list)):
            return {}
        found: dict[str, Part] = {}
        for item in data["parts"]:
            if not (isinstance(item, list) and len(item) == 4 and all(isinstance(v, str) for v in item)):
                return {}
            entry, folders, base, rows = item
            found[entry] = Part(entry, tuple(folders.split("/")), base, rows, taken)
        return found

    def record(self, outdir: Path, parts: Iterable[Part]) -> None:
        """Record the ``parts`` of ``outdir`` (absolute), as a synth promoted them, for the next synth.

        Written whole (a temporary file renamed into place) by a synth holding the output's lock, so
        a record describes the output as it was promoted. Best effort: the output is already promoted
        and complete, so a record that cannot be written is no failure (the next synth then writes
        every part again). Older records beyond ``MAX_RECORDS`` are removed.
        """
        folder = self.directory / OUTPUTS
        rows = [[p.entry, "/".join(p.folders), p.base, p.digest] for p in parts]
        blob = json.dumps({"outdir": str(outdir), "parts": rows}).encode()
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, self._record_path(outdir))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            with os.scandir(folder) as it:
                records = [e for e in it if not e.name.startswith(".")]
            if len(records) > MAX_RECORDS:
                records.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
                for old in records[MAX_RECORDS:]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(old.path)

    def _read(self, entry: str) -> tuple[list[tuple[str, int]], memoryview, int] | None:
        """The entry unpacked (:func:`_unpack`), or None (a miss): absent, or damaged (then removed).

        The entry is one file, read whole with one ``open``: an entry pruned or replaced by another
        process meanwhile is read entirely or not at all.
        """
        src = self.directory / entry
        self.used.add(entry)
        try:
            with open(src, "rb") as f:
                blob = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self.misses += 1
            return None
        unpacked = _unpack(blob)
        if unpacked is None:
            self._discard(src)
            self.misses += 1
        return unpacked

    def _hit(self, entry: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.directory / entry)  # least recently used is pruned first
        self.hits += 1

    def store(self, entry: str, src: Path, names: Iterable[str] | None = None) -> None:
        """Keep the files under ``src`` (or only under its children ``names``) under ``entry``.

        Safe for concurrent runs: the entry is written to a temporary file whose name is unique to
        this process (``.tmp-<key>-<pid>-<random>``) and renamed into place, which is atomic; when
        another run stored the same entry meanwhile, the last rename wins (the contents are equal
        by construction: same key).
        """
        self.used.add(entry)
        final = self.directory / entry
        blob = _pack(src, names)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{entry[:16]}-{os.getpid()}-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            if final.is_dir() and not final.is_symlink():  # an older version's layout under this name
                self._discard(final)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _discard(self, path: Path) -> None:
        # Renamed away first, so a concurrent fetch sees the entry whole or not at all.
        trash = self.directory / f".trash-{path.name[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.rename(trash)
        except OSError:
            return
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                trash.unlink()

    def prune(self, max_entries: int = MAX_ENTRIES) -> None:
        """Drop the least recently used entries beyond ``max_entries`` (never one used by this run)."""
        if not self.directory.is_dir():
            return

        def last_used(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except FileNotFoundError:  # removed by another run meanwhile
                return 0.0

        entries = sorted(
            # Hidden names are other runs' temporary files: never theirs to prune; OUTPUTS is not an entry.
            (
                p
                for p in self.directory.iterdir()
                if p.name not in self.used and not p.name.startswith(".") and p.name != OUTPUTS
            ),
            key=last_used,
            reverse=True,
        )
        for path in entries[max(0, max_entries - len(self.used)) :]:
            self._discard(path)
