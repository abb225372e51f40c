"""Output files: created new, or linked from the output folder they will replace when it has the same bytes.

Takes (folder, name, bytes) triples and a fresh destination folder, plus the folder of the output it
will replace; gives the files written. Both writers of a synth write through here: the YAML writer
(synth/manifest_writer.py, a rendered chart) and the cache (synth/cache.py, a hit).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

#: Flags of a file created whole in a fresh folder.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _file_mode() -> int | None:
    """The mode ``open()`` gives a new file here (0666 less the umask), read without changing the
    umask (``os.umask`` is process-wide); None where the kernel does not tell it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


class FolderWriter:
    """Creates the files of one output folder (``dest``, fresh: a staging folder's).

    With ``previous``, the same folder of the output that ``dest`` will replace when it is promoted
    (synth/output.py), a file whose bytes equal the file at the same path there is a hard link to that file
    instead of a new file. Creating files is most of writing a large output (an inode each; ~0.2 ms
    on this machine's ext4), a link is a tenth of it, and the promotion then removes the old folder
    without freeing those inodes. The output is the same bytes either way, and the two never stay
    shared: once promoted, the old folder is removed and each file has one link again (a failed
    synth removes its staging folder instead). Only a regular file of this user, with one link and
    a new file's mode, is reused, and only when its bytes are the same (read and compared, also after
    the link is made, in case the path was replaced meanwhile); anything else is written new.
    """

    mode = _file_mode()

    def __init__(self, dest: Path, previous: Path | None = None) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(dest, _FOLDER)
        self.previous: int | None = None
        self.linked = 0
        if previous is not None and self.mode is not None:
            with contextlib.suppress(OSError):
                self.previous = os.open(previous, _FOLDER)

    def write(self, name: str, data: bytes | memoryview) -> None:
        if self.previous is not None:
            data = bytes(data)  # bytes compare with memcmp; a memoryview compares byte by byte
            if self._link(name, data):
                return
        fd = os.open(name, _CREATE, 0o666, dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _link(self, name: str, data: bytes) -> bool:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.previous)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if not (
                stat.S_ISREG(st.st_mode)
                and stat.S_IMODE(st.st_mode) == self.mode
                and st.st_nlink == 1
                and st.st_uid == os.geteuid()
                and st.st_size == len(data)
                and os.read(fd, len(data) + 1) == data
            ):
                return False
            os.link(name, name, src_dir_fd=self.previous, dst_dir_fd=self.fd, follow_symlinks=False)
            now = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev) and os.pread(fd, len(data) + 1, 0) == data:
                self.linked += 1
                return True
            os.unlink(name, dir_fd=self.fd)  # the path was replaced or changed meanwhile: write it new
            return False
        except OSError:  # no hard links on this file system, or another error: write it new
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.fd)
        if self.previous is not None:
            os.close(self.previous)

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tree(dest: Path, files: Iterable[tuple[str, str, bytes | memoryview]], previous: Path | None) -> None:
    """Create ``files`` (folder relative to ``dest``, name, bytes) under ``dest``, a :class:`FolderWriter`
    per folder; ``previous``: the folder ``dest`` will replace (its files with the same bytes are linked)."""
    writers: dict[str, FolderWriter] = {}
    try:
        for folder, name, data in files:
            writer = writers.get(folder)
            if writer is None:
                writer = writers[folder] = FolderWriter(dest / folder, previous / folder if previous else None)
            writer.write(name, data)
    finally:
        for writer in writers.values():
            writer.close()
