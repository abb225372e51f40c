"""``iotistica-k8s synth --stdout RELEASE``: releases printed as one YAML stream, as ``helm template`` prints a
chart, and nothing touched (no dist/, no synth cache, no lock, no git index: it works in a read-only checkout).

The documents are the bytes synth writes into ``dist/<release>/`` (synth/manifest_writer.py), one file after the
other in file-name order, each release after the other in release order, joined with ``---``. The whole fleet is
checked first, as synth checks it: bad input is exit 2 with every error listed, and nothing printed on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.fleet_render import EXIT_CONFIG, EXIT_OK, _load, release_files, render
from ops.selection import select


def stream(files: dict[Path, str]) -> str:
    """The manifests of ``files`` (``{<folder>/<file>: text}``) as one YAML stream, in folder and file order."""
    texts = [files[p] for p in sorted(files) if p.suffix == ".yaml"]
    return "---\n".join(texts)


def cmd_stdout(args: argparse.Namespace) -> int:
    from tiers.fleet import Sources, validate_fleet

    if not args.env and not args.selector:
        print("error: synth --stdout: name the release(s) to print, or select them with -l", file=sys.stderr)
        return EXIT_CONFIG
    envs = _load(args.environments, [])
    chosen = select(envs, args.env, args.selector)
    labels = {}
    for e in envs:
        path = args.environments / f"{e.release}.yaml"
        try:
            labels[e.release] = str(path.relative_to(Path.cwd()))
        except ValueError:
            labels[e.release] = str(path)
    errors = validate_fleet(envs, Sources(labels, {}))  # no git status: nothing touched, not even the index
    if errors:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(stream(release_files(render(chosen))))
    sys.stdout.flush()
    return EXIT_OK
