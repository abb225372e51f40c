"""Drawing a :class:`Topology`: Graphviz (DOT, SVG, PNG through the `dot` program) and Mermaid text;
flow ids for the SVG's links. Takes a topology, gives bytes or text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ops.graph.model import (
    Flow,
    Node,
    Topology,
)

STYLES: dict[str, dict[str, str]] = {
    "workload": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe"},
    "job": {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": "#fef3c7"},
    "service": {"shape": "box", "style": "filled", "fillcolor": "#e0e7ff"},
    "route": {"shape": "cds", "style": "filled", "fillcolor": "#ede9fe"},
    "listener": {"shape": "box", "style": "filled", "fillcolor": "#ddd6fe"},
    "host": {"shape": "oval", "style": "filled", "fillcolor": "#f5f5f4"},
    "peer": {"shape": "box", "style": "filled,dotted", "fillcolor": "#f1f5f9"},
    "address": {"shape": "octagon", "style": "filled", "fillcolor": "#f1f5f9"},
    "secret-made": {"shape": "note", "style": "filled", "fillcolor": "#dcfce7"},
    "secret-operator": {"shape": "note", "style": "filled", "fillcolor": "#fee2e2"},
    "namespace": {"shape": "folder", "style": "filled", "fillcolor": "#fafaf9"},
    "junction": {"shape": "point", "width": "0.08"},
    "other": {"shape": "box", "style": "dashed"},
    "sa": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe"},
    "role": {"shape": "box", "style": "filled", "fillcolor": "#fef3c7"},
    "binding": {"shape": "box", "style": "filled", "fillcolor": "#f5f5f4"},
    "policy": {"shape": "box", "style": "filled", "fillcolor": "#fee2e2"},
}
EDGE_STYLES: dict[str, dict[str, str]] = {
    "flow": {"color": "#1d4ed8", "penwidth": "1.6"},
    "flow-part": {"color": "#1d4ed8", "penwidth": "1.6", "arrowhead": "none"},
    "route": {"color": "#7c3aed"},
    "selects": {"color": "#6b7280", "style": "dashed", "arrowhead": "none"},
    "reads": {"color": "#9ca3af", "style": "dotted"},
    "order": {"color": "#b45309", "style": "bold"},
    "uses": {"color": "#6b7280"},
    "binds": {"color": "#6b7280"},
    "grants": {"color": "#b45309"},
    "confines": {"color": "#dc2626", "style": "dashed"},
}
LEGEND = {
    "network": [
        ("flow", "allowed connection (NetworkPolicies evaluated; label: ports). Not drawn = denied"),
        ("route", "public host -> Gateway listener -> route -> Service"),
        ("selects", "Service selects pods"),
        ("reads", "workload reads Secret (green: made in the cluster, red: an operator provides it)"),
        ("order", "hook Jobs run in this order (Argo CD sync waves)"),
    ],
    "rights": [
        ("uses", "pod mounts the ServiceAccount's token"),
        ("binds", "ServiceAccount bound (label: where)"),
        ("grants", "binding grants the role's rules"),
        ("confines", "admission policy confines the ServiceAccount's requests"),
    ],
}


def flow_id(flows: Iterable[Flow]) -> str:
    """The SVG id of a flow edge: every flow it stands for, ``src>dst:port/protocol`` joined by ``|``."""
    return "flow|" + "|".join(f"{s}>{d}:{'*' if p is None else p}/{proto}" for s, d, p, proto in sorted(flows, key=str))


def parse_flow_id(text: str) -> set[Flow]:
    out: set[Flow] = set()
    for part in text.split("|")[1:]:
        sd, _, pp = part.rpartition(":")
        s, _, d = sd.partition(">")
        port, _, proto = pp.partition("/")
        out.add((s, d, None if port == "*" else int(port), proto))
    return out


def _clusters(t: Topology) -> dict[tuple[str, ...], list[Node]]:
    tree: dict[tuple[str, ...], list[Node]] = defaultdict(list)
    for n in sorted(t.nodes.values(), key=lambda n: n.id):
        tree[n.cluster].append(n)
    for nodes in tree.values():
        nodes.sort(key=lambda n: (n.order or n.id, n.id))
    return tree


def to_dot(t: Topology) -> Any:
    """A ``graphviz.Digraph`` of the topology (nodes in clusters per concern, a legend)."""
    import graphviz  # type: ignore[import-untyped]

    g = graphviz.Digraph(
        name=f"{t.release}-{t.view}",
        graph_attr={
            "rankdir": "LR",
            "compound": "true",
            "fontname": "Helvetica",
            "fontsize": "11",
            "label": f"{t.release} (namespace {t.namespace}): {t.view} view, drawn from dist/{t.release}",
            "labelloc": "t",
            "newrank": "true",
            "nodesep": "0.25",
            "ranksep": "0.9",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    tree = _clusters(t)
    paths = sorted({p[: i + 1] for p in tree for i in range(len(p))} | {()})
    counter = iter(range(10**6))
    # DOT names: short and plain (a ':' in a name would mean a port); the node id is its SVG id.
    names = {nid: f"n{i}" for i, nid in enumerate(sorted(t.nodes))}

    def emit(path: tuple[str, ...], parent: Any) -> None:
        for n in tree.get(path, []):
            attrs = dict(STYLES.get(n.style, {}))
            attrs["id"] = n.id
            attrs["class"] = f"node-{n.style}"
            label = "\\n".join(line.replace("\\", "/").replace('"', "'") for line in n.label)
            parent.node(names[n.id], label="" if n.style == "junction" else label, **attrs)
        for child in [p for p in paths if len(p) == len(path) + 1 and p[: len(path)] == path]:
            with parent.subgraph(name=f"cluster_{next(counter)}") as sub:
                sub.attr(label=child[-1], style="rounded", color="#94a3b8", fontname="Helvetica", fontsize="11")
                emit(child, sub)

    emit((), g)
    for e in t.edges:
        attrs = dict(EDGE_STYLES.get(e.kind, {}))
        attrs["class"] = e.kind
        if e.kind == "flow":
            attrs["id"] = flow_id(e.flows)
            attrs["tooltip"] = ", ".join(f"{s} -> {d}" for s, d, *_ in e.flows[:20])
        if e.label:
            attrs["label"] = e.label
        g.edge(names[e.src], names[e.dst], **attrs)
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="legend", style="rounded", color="#94a3b8", fontname="Helvetica")
        for i, (kind, text) in enumerate(LEGEND[t.view]):
            a, b = f"legend{i}a", f"legend{i}b"
            lg.node(a, label="", shape="point", width="0.05", id=f"legend-{i}-a")
            lg.node(b, label=text, shape="plaintext", id=f"legend-{i}-b")
            lg.edge(a, b, **{**EDGE_STYLES.get(kind, {}), "class": f"legend {kind}", "id": f"legend-{kind}"})
    return g


class GraphvizMissing(Exception):
    """Graphviz (the ``dot`` program, or the Python binding ``graphviz``) is not installed here."""


def render(t: Topology, fmt: str, dpi: int | None = None) -> bytes:
    """Render through Graphviz's ``dot`` (svg, png) or return the DOT source / Mermaid text.

    Raises :class:`GraphvizMissing` (saying how to install it and what works without it) when the
    format needs what is not installed: svg and png the ``dot`` program, dot the Python binding."""
    if fmt == "mermaid":
        return to_mermaid(t).encode()
    try:
        g = to_dot(t)
    except ModuleNotFoundError as exc:
        if exc.name != "graphviz":
            raise
        raise GraphvizMissing(
            "needs the Python package graphviz (pinned in requirements.lock): run `make setup`; "
            "--format mermaid works without it"
        ) from None
    if dpi:
        g.graph_attr["dpi"] = str(dpi)
    if fmt == "dot":
        return str(g.source).encode()
    import graphviz

    try:
        data: bytes = g.pipe(format=fmt, engine="dot")
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(
            "needs Graphviz's `dot` program, which is not on PATH: install Debian's graphviz package "
            "(`apt-get install graphviz`, or scripts/ensure-system-deps.sh as root); "
            "--format mermaid and --format dot work without it"
        ) from None
    return data


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


MERMAID_SHAPES = {
    "host": ('(["', '"])'),
    "route": ('>"', '"]'),
    "peer": ('["', '"]'),
    "address": ('{{"', '"}}'),
    "secret-made": ('[/"', '"/]'),
    "secret-operator": ('[\\"', '"\\]'),
    "junction": ("((", "))"),
    "namespace": ('[("', '")]'),
}
MERMAID_ARROWS = {
    "flow": "-->",
    "flow-part": "---",
    "route": "==>",
    "selects": "-.-",
    "reads": "-.->",
    "order": "==>",
    "uses": "-->",
    "binds": "-->",
    "grants": "-->",
    "confines": "-.->",
}


def to_mermaid(t: Topology) -> str:
    """Mermaid flowchart text of the topology: deterministic (sorted), no layout data."""
    ids = {nid: f"n{i}" for i, nid in enumerate(sorted(t.nodes))}
    tree = _clusters(t)
    paths = sorted({p[: i + 1] for p in tree for i in range(len(p))})
    lines = ["flowchart LR"]
    sub_ids = iter(range(10**6))

    def emit(path: tuple[str, ...], depth: int) -> None:
        pad = "  " * depth
        for n in tree.get(path, []):
            if n.style == "junction":
                lines.append(f'{pad}{ids[n.id]}((" "))')
                continue
            left, right = MERMAID_SHAPES.get(n.style, ('["', '"]'))
            label = "<br/>".join(_mermaid_text(x) for x in n.label)
            lines.append(f"{pad}{ids[n.id]}{left}{label}{right}")
            lines.append(f"{pad}class {ids[n.id]} {n.style.replace('-', '_')}")
        for child in [p for p in paths if len(p) == len(path) + 1 and p[: len(path)] == path]:
            lines.append(f'{pad}subgraph s{next(sub_ids)}["{_mermaid_text(child[-1])}"]')
            emit(child, depth + 1)
            lines.append(f"{pad}end")

    emit((), 1)
    for e in sorted(t.edges, key=lambda e: (e.kind, e.src, e.dst, e.label)):
        arrow = MERMAID_ARROWS.get(e.kind, "-->")
        label = f'|"{_mermaid_text(e.label)}"|' if e.label else ""
        lines.append(f"  {ids[e.src]} {arrow}{label} {ids[e.dst]}")
    for style in sorted({n.style for n in t.nodes.values()} - {"junction"}):
        attrs = STYLES.get(style, {})
        dashed = (
            ",stroke-dasharray: 4 2" if "dashed" in attrs.get("style", "") or "dotted" in attrs.get("style", "") else ""
        )
        lines.append(
            f"  classDef {style.replace('-', '_')} fill:{attrs.get('fillcolor', '#ffffff')},stroke:#334155{dashed}"
        )
    return "\n".join(lines) + "\n"


def mermaid_doc(t: Topology) -> str:
    """A Markdown page with the Mermaid picture and how to read it (docs/topology/<release>.md)."""
    return (
        f"# Topology of `{t.release}` (namespace `{t.namespace}`)\n\n"
        f"Generated by `iotistica-k8s docs` from `dist/{t.release}/`; do not edit. The same picture as SVG or PNG:\n"
        f"`iotistica-k8s graph {t.release} --format svg -o {t.release}.svg`.\n\n"
        "How to read it: solid arrows are the connections the NetworkPolicies allow (label: ports), found by\n"
        "evaluating every policy between every pair of endpoints; anything not drawn is denied, except where a\n"
        "workload says `ingress: open` or `egress: open`. Several sources sharing one destination and ports meet\n"
        "in a small circle first. Thick arrows: public host -> Gateway listener -> route -> Service; dashed lines:\n"
        "Service selects pods; dotted arrows: Secrets read (parallelogram leaning right: made in the cluster;\n"
        "leaning left: an operator provides it). Hook Jobs are chained in sync order.\n\n"
        "```mermaid\n" + to_mermaid(t) + "```\n"
    )
