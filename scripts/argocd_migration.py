#!/usr/bin/env python3
"""The one hand-made commit of the move to Argo CD tenancy (docs/argocd.md "Moving a live fleet").

    scripts/argocd_migration.py protect [DIST]     (default: dist, relative to the project root)

On a dist/ of the layout before tenancy (project ``default``, one Application per release in
dist/argocd/, the shared cluster-scoped objects in dist/cluster/*.yaml, each release's ClusterRoleBinding
in its folder), adds ``argocd.argoproj.io/sync-options: Prune=false`` to every object whose owning
Application changes in the move: every object of dist/cluster/*.yaml, every ClusterRoleBinding of a
release folder, and every Application of dist/argocd/ but the app-of-apps. (The Namespaces carry it
already.) Argo CD reads that annotation on the live object when it would prune it, so once this commit
is synced, no Application of the old layout can delete what the new layout's Applications adopt.

Refuses (exit 2, one line) a dist/ already in the new layout. Edits those files in place; the next
``make synth`` (of the new code) writes the new layout without the annotation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
NO_PRUNE = "Prune=false"
APP_OF_APPS = "iotistica-apps"


def protected(rel: str, obj: dict[str, Any]) -> bool:
    """Whether the object at ``rel`` (a path relative to dist/) changes owner in the move."""
    folder = rel.split("/")[0]
    if folder == "cluster":
        return True
    if folder == "argocd":
        return obj["kind"] == "Application" and obj["metadata"]["name"] != APP_OF_APPS
    return obj["kind"] == "ClusterRoleBinding"


def protect(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with Prune=false among its sync options (kept once, the others kept)."""
    meta = obj.setdefault("metadata", {})
    notes = meta.setdefault("annotations", {}) or {}
    options = [o for o in str(notes.get(SYNC_OPTIONS, "")).split(",") if o]
    if NO_PRUNE not in options:
        options.append(NO_PRUNE)
    notes[SYNC_OPTIONS] = ",".join(options)
    meta["annotations"] = dict(sorted(notes.items()))
    return obj


def protect_tree(tree: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """{path relative to dist/: objects} with the protected objects annotated (a new tree)."""
    import copy

    return {rel: [protect(copy.deepcopy(o)) if protected(rel, o) else o for o in objs] for rel, objs in tree.items()}


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] != "protect":
        print("usage: scripts/argocd_migration.py protect [DIST]", file=sys.stderr)
        return 2
    dist = (ROOT / (argv[1] if len(argv) == 2 else "dist")).resolve()
    if not (dist / "cluster").is_dir() or any(p.is_dir() for p in (dist / "cluster").iterdir()):
        print(
            f"error: {dist}: not the layout before tenancy (dist/cluster/ has folders or is missing)", file=sys.stderr
        )
        return 2
    from synth.manifest_writer import dump

    changed = 0
    for path in sorted(dist.glob("*/*.k8s.yaml")):
        rel = path.relative_to(dist).as_posix()
        objs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if not any(protected(rel, o) for o in objs):
            continue
        path.write_text("---\n".join(dump(protect(o)) for o in objs))
        changed += 1
    print(f"argocd_migration: Prune=false on the objects of {changed} file(s) of {dist}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
