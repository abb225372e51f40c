"""``iotistica-k8s graph``: the argparse namespace in, one environment drawn from dist/ (:mod:`ops.graph`)
as SVG/PNG/DOT/Mermaid out. ops.graph is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from ops.fleet_render import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
)


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw one environment from dist/ (network flows from its NetworkPolicies, or the rights view)."""
    from ops import graph

    fmt = args.format or (args.output.suffix.lstrip(".") if args.output and args.output.suffix else "svg")
    if fmt not in GRAPH_FORMATS:
        print(f"error: {args.output}: unknown format {fmt!r} (one of {', '.join(GRAPH_FORMATS)})", file=sys.stderr)
        return EXIT_CONFIG
    try:
        topology = graph.build(args.dist, args.env_name, view=args.view)
    except graph.DistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        data = graph.render(topology, fmt, dpi=args.dpi)
    except graph.GraphvizMissing as exc:
        print(f"error: graph --format {fmt}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output is None:
        sys.stdout.buffer.write(data)
        return EXIT_OK
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({fmt}, {len(topology.nodes)} nodes, {len(topology.flows)} allowed flows)")
    return EXIT_OK


GRAPH_FORMATS = ("svg", "png", "dot", "mermaid")
