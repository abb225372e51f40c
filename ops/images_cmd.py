"""``iotistica-k8s images``: the fleet's images and the digests tiers/images.lock records; with
``--resolve`` asks each registry and records the digests. Takes the argparse namespace, gives an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ops.fleet_render import (
    EXIT_FAILED,
    EXIT_OK,
    _containers,
    render,
)

if TYPE_CHECKING:
    from tiers.models import Environment


def fleet_images(envs: Sequence[Environment]) -> list[str]:
    """``repository:tag`` of every container image the fleet deploys (dist/ with these environments)."""
    rendered = render(envs)
    return sorted({c["image"].split("@", 1)[0] for objs in rendered.values() for o in objs for c in _containers(o)})


def cmd_images(args: argparse.Namespace) -> int:
    """List the fleet's images and their digests; with --resolve, ask each registry and record the digests."""
    from tiers import registry
    from tiers.images import LOCK, LOCK_LABEL, lock_text
    from tiers.loader import load_environments, read_lock

    lock_path = args.lock or LOCK
    label = str(args.lock) if args.lock else LOCK_LABEL
    lock = read_lock(lock_path, label)
    envs = load_environments(args.environments, base=Path.cwd(), images_lock=lock_path)
    refs = fleet_images(envs)
    if not args.resolve:
        for ref in refs:
            print(f"{ref}@{lock[ref]}" if ref in lock else f"{ref} (no digest: kept by tag)")
        return EXIT_OK
    updated, unresolved, reached = dict(lock), [], 0
    down: dict[str, str] = {}  # registry -> why it did not answer (asked once per run)
    for ref in refs:
        where = registry.locate(ref.rpartition(":")[0]).registry
        try:
            if where in down:
                raise registry.Unreachable(down[where])
            digest = registry.resolve(ref)
        except registry.Unreachable as exc:
            down[where] = str(exc)
            print(f"unreachable: {ref}: {exc}", file=sys.stderr)
            unresolved.append(ref)
            continue
        except registry.Refused as exc:
            reached += 1
            print(f"not resolved: {ref}: {exc}", file=sys.stderr)
            unresolved.append(ref)
            continue
        reached += 1
        old = lock.get(ref)
        state = "unchanged" if old == digest else ("recorded" if old is None else f"changed from {old}")
        print(f"{state}: {ref}@{digest}")
        updated[ref] = digest
    if updated != lock:
        tmp = lock_path.with_name(f".{lock_path.name}.tmp")
        tmp.write_text(lock_text(updated), encoding="utf-8")
        tmp.replace(lock_path)
    if not reached:
        print(f"error: no registry reachable: nothing recorded in {label}", file=sys.stderr)
        return EXIT_FAILED
    if unresolved:
        print(
            f"error: {len(unresolved)} of {len(refs)} image(s) not resolved; {label} records the others",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"ok: {len(refs)} image(s) resolved in {label}")
    return EXIT_OK
