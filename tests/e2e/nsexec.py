"""Start one container's program in its own root: run as root under ``unshare -m --propagation private``.

Reads a JSON spec (argv[1]) and, inside the private mount namespace it was started in:

1. mounts a tmpfs and, on it, an overlay whose lower layer is the machine's root: the container sees the
   machine's programs (Debian's node, redis-server, mosquitto, psql, python3) and writes only to its
   private upper layer, which disappears with the namespace;
2. binds /proc, /dev and /sys, the shared hosts file (Service names -> 127.x) over ``/etc/hosts``, and
   each volume mount (ConfigMap/Secret files, emptyDirs, claims, the image's own files) at its path;
3. makes the root read-only when the container's ``readOnlyRootFilesystem`` says so (volumes stay as
   mounted), chroots, changes to the working directory, takes the uid, gid and supplementary groups
   of the securityContext, asks the kernel to kill it when its parent (the test's kubelet) dies, and
   execs the container's program with exactly its environment.

The machine's own ``/etc/hosts`` and file system are never changed: every mount lives in the namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def in_root(root: str, path: str) -> str:
    """``path`` inside ``root`` with every symlink resolved as the chrooted program would see it (an
    absolute link such as Debian's ``/var/run -> /run`` points into the root, never at the machine's own
    folders). Components that do not exist yet are kept as they are."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cand = os.path.join(root, *resolved, part)
        if os.path.islink(cand):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks in {path}")
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _traversable(root: str, d: str) -> None:
    """The folders above a mount point, as a container runtime leaves them: enterable by everyone. Here the
    image's root is this machine's, whose packages keep some folders private to their own user (Debian's
    ``/etc/redis`` is 0750 redis:redis); the chmod lands in the container's private upper layer only."""
    while d.startswith(root) and d != root:
        if os.path.isdir(d) and not os.path.islink(d):
            mode = os.stat(d).st_mode & 0o7777
            if mode & 0o005 != 0o005:
                os.chmod(d, mode | 0o055)
        d = os.path.dirname(d)


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())  # noqa: SIM115
    work = spec["work"]
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", work)
    upper, wdir, root = (os.path.join(work, d) for d in ("upper", "work", "root"))
    for d in (upper, wdir, root):
        os.mkdir(d)
    _mount("-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={upper},workdir={wdir}", root)
    for special in ("proc", "dev", "sys"):
        _mount("--rbind", f"/{special}", os.path.join(root, special))
    binds = [{"src": spec["hosts"], "dst": "/etc/hosts", "ro": True}, *spec["mounts"]]
    for m in binds:
        dst = in_root(root, m["dst"])
        _traversable(root, os.path.dirname(dst))
        if os.path.isdir(m["src"]):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "a").close()  # noqa: SIM115
        _mount("--bind", m["src"], dst)
        if m.get("ro"):
            _mount("-o", "remount,bind,ro", dst)
    if spec.get("readonly_root"):
        _mount("-o", "remount,bind,ro", root)
    os.chroot(root)
    os.chdir(spec.get("cwd") or "/")
    uid, gid = spec.get("uid"), spec.get("gid")
    os.setgroups(spec.get("groups") or [])
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    # After the credentials changed (a change clears it): die with the kubelet, even on SIGKILL.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    argv = spec["argv"]
    env = spec["env"]
    path = env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    exe = argv[0]
    if "/" not in exe:
        for d in path.split(":"):
            cand = os.path.join(d, exe)
            if os.access(cand, os.X_OK):
                exe = cand
                break
    os.execve(exe, argv, env)


if __name__ == "__main__":
    main(sys.argv[1])
