"""What a picture is made of, and dist/ read back: constants, :class:`Topology` (nodes, edges, flows)
and the helpers that read a release's manifests and their pod templates. Takes files, gives dicts and dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ops.netpol import Cluster, Endpoint, PortKey

Manifest = dict[str, Any]
Flow = tuple[str, str, int | None, str]  # (source node id, destination node id, port or None, protocol)

NAME = "app.kubernetes.io/name"
HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"
ROUTE_KINDS = ("HTTPRoute", "TLSRoute", "TCPRoute", "UDPRoute", "GRPCRoute")
#: Sources sharing one destination and port set are drawn through one junction from this many on.
MERGE_FROM = 3

WELL_KNOWN = {
    53: "DNS",
    443: "HTTPS",
    1883: "MQTT",
    3306: "MySQL",
    5432: "PostgreSQL",
    6379: "Redis",
    6443: "Kubernetes API",
    8883: "MQTT/TLS",
    9001: "MQTT/WebSocket",
    16379: "Redis cluster bus",
}


class DistError(Exception):
    """dist/ does not hold what was asked for (bad input: the caller names the path)."""


# --------------------------------------------------------------------------------------------------
# The picture's data
# --------------------------------------------------------------------------------------------------


@dataclass
class Node:
    id: str
    label: list[str]
    cluster: tuple[str, ...]  # nested cluster titles, outermost first; () = top level
    style: str  # workload, job, service, route, listener, host, peer, address, secret-made, ...
    order: str = ""  # sort key within its cluster (default: the id)


@dataclass
class Edge:
    src: str
    dst: str
    kind: str  # flow, flow-part, route, selects, reads, order, binds, grants, confines, uses
    label: str = ""
    flows: tuple[Flow, ...] = ()


@dataclass
class Topology:
    release: str
    namespace: str
    view: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    #: every endpoint the policies were evaluated on, by node id
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    #: the ports tried on each endpoint (as destination), by node id
    ports: dict[str, list[PortKey]] = field(default_factory=dict)
    cluster: Cluster | None = None
    #: every allowed flow with one end in a governed namespace (the drawn flows)
    flows: set[Flow] = field(default_factory=set)

    def add(self, node: Node) -> Node:
        self.nodes.setdefault(node.id, node)
        return self.nodes[node.id]

    def edge(self, src: str, dst: str, kind: str, label: str = "", flows: tuple[Flow, ...] = ()) -> None:
        e = Edge(src, dst, kind, label, flows)
        if e not in self.edges:
            self.edges.append(e)


# --------------------------------------------------------------------------------------------------
# Reading dist/
# --------------------------------------------------------------------------------------------------


#: libyaml's parser when PyYAML has it (several times faster than the pure-Python one).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_folder(folder: Path) -> list[Manifest]:
    objs: list[Manifest] = []
    for file in sorted(folder.glob("*.yaml")):
        for doc in yaml.load_all(file.read_text(), Loader=_LOADER):
            if isinstance(doc, dict) and "kind" in doc:
                objs.append(doc)
    return objs


def releases(dist: Path) -> list[str]:
    """The release folders of dist/ (those with a Namespace and not the shared ones)."""
    return sorted(
        p.name for p in dist.iterdir() if p.is_dir() and p.name not in ("cluster", "argocd") and any(p.glob("*.yaml"))
    )


def load(dist: Path, release: str) -> tuple[list[Manifest], list[Manifest]]:
    folder = dist / release
    if release in ("cluster", "argocd") or not folder.is_dir() or not any(folder.glob("*.yaml")):
        known = ", ".join(releases(dist)) if dist.is_dir() else "none"
        raise DistError(f"{folder}: no synthesized release {release!r} (known: {known}; run make synth)")
    # The release's cluster-scoped objects are its own files in its cluster's platform folder
    # dist/cluster/<cluster>/ (named in its argocd-tenant.json): they are drawn with the release, as when
    # they were in its folder; the rest of that folder is what the release shares (cluster-wide rights).
    cluster = dist / "cluster"
    tenant_file = folder / "argocd-tenant.json"
    if tenant_file.is_file():
        cluster = cluster / json.loads(tenant_file.read_text())["cluster"]["name"]
    shared = read_folder(cluster) if cluster.is_dir() else []
    own = [o for o in shared if (_meta(o).get("labels") or {}).get("app.kubernetes.io/instance") == release]
    objs = read_folder(folder) + own
    objs.sort(key=lambda o: (o["kind"], _meta(o).get("name") or ""))  # file order, as one folder read them
    return objs, [o for o in shared if o not in own]


def _meta(o: Manifest) -> Manifest:
    meta: Manifest = o.get("metadata") or {}
    return meta


def ref(o: Manifest) -> str:
    return f"{o['kind']}/{_meta(o).get('name')}"


def pod_template(o: Manifest) -> Manifest | None:
    """The pod template of anything that runs pods (Deployment, StatefulSet, Job, CronJob, ...)."""
    spec = o.get("spec") or {}
    if o["kind"] == "Pod":
        return {"metadata": _meta(o), "spec": spec}
    if "jobTemplate" in spec:
        spec = (spec["jobTemplate"] or {}).get("spec") or {}
    tpl = spec.get("template")
    return tpl if isinstance(tpl, dict) and "containers" in (tpl.get("spec") or {}) else None


def _walk(node: Any) -> Iterator[Manifest]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def secrets_read(pod_spec: Manifest) -> list[str]:
    names: set[str] = set()
    for d in _walk(pod_spec):
        for key in ("secretKeyRef", "secretRef"):
            if isinstance(d.get(key), dict) and d[key].get("name"):
                names.add(d[key]["name"])
        if isinstance(d.get("secret"), dict) and d["secret"].get("secretName"):
            names.add(d["secret"]["secretName"])
    names.update(s["name"] for s in pod_spec.get("imagePullSecrets") or [] if s.get("name"))
    return sorted(names)


def configmaps_read(pod_spec: Manifest) -> set[str]:
    names: set[str] = set()
    for d in _walk(pod_spec):
        for key in ("configMapKeyRef", "configMapRef"):
            if isinstance(d.get(key), dict) and d[key].get("name"):
                names.add(d[key]["name"])
        if isinstance(d.get("configMap"), dict) and d["configMap"].get("name"):
            names.add(d["configMap"]["name"])
    return names


def _wave(o: Manifest) -> int:
    try:
        return int((_meta(o).get("annotations") or {}).get(WAVE, "0"))
    except ValueError:
        return 0


def _resources(pod_spec: Manifest) -> list[str]:
    out = []
    for c in pod_spec.get("containers") or []:
        r = c.get("resources") or {}
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        out.append(
            f"{c.get('name')}: {req.get('cpu', '-')}/{req.get('memory', '-')}"
            f" (limit {lim.get('cpu', '-')}/{lim.get('memory', '-')})"
        )
    return out


def port_label(ports: Iterable[PortKey]) -> str:
    parts = []
    for port, proto in sorted(set(ports), key=lambda p: (p[0] is not None, p[0] or 0, p[1])):
        text = "any port" if port is None else str(port)
        parts.append(text if proto == "TCP" else f"{text}/{proto}")
    return ", ".join(parts)


def _selector_text(sel: Manifest | None) -> str:
    if not sel:
        return "any pod"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        parts.append(f"{e['key']} {e['operator']} {','.join(e.get('values') or [])}".strip())
    return ", ".join(parts) or "any pod"


def _labels_for(sel: Manifest | None) -> dict[str, str]:
    """Labels a stand-in needs to be matched by ``sel`` (In: its first value; Exists: any value)."""
    labels = dict((sel or {}).get("matchLabels") or {})
    for e in (sel or {}).get("matchExpressions") or []:
        if e["operator"] == "In" and e.get("values"):
            labels[e["key"]] = e["values"][0]
        elif e["operator"] == "Exists":
            labels[e["key"]] = "x"
    return labels
