"""The topology of one environment, drawn from what the app wrote into dist/ (never from the model).

``build(dist, release)`` reads ``dist/<release>/*.yaml`` (and ``dist/cluster/*.yaml`` for cluster-wide
rights) and returns a :class:`Topology`: nodes grouped in clusters per concern, and edges. Two views:

- ``network``: public hosts -> Gateway listeners -> routes -> Services -> workloads (replicas or HPA
  range, resources), the hook Jobs in sync order, fleet namespaces with their quota, the Secrets each
  workload reads (made in the cluster or provided by an operator), and the network flows. Flow edges
  come only from evaluating the NetworkPolicies (:mod:`ops.netpol`) between every pair of endpoints:
  the workloads of dist/ plus one stand-in per peer the policies name (a namespace, a pod selector in a
  namespace, an address range). Everything not drawn is denied, except where a node says its
  ingress or egress is open (no policy isolates it).
- ``rights``: each ServiceAccount, the pods that mount its token, what it may do and where (Roles,
  ClusterRoles, bindings), and the admission policies that confine it.

The code is generic over kinds: an object of a kind it has no special case for is attached to the node
it references or selects, or listed under "other objects", so new objects show without code changes.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ops.netpol import Cluster, Endpoint, Host, Pod, PortKey, in_block, selects

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
    cluster = dist / "cluster"
    return read_folder(folder), read_folder(cluster) if cluster.is_dir() else []


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


# --------------------------------------------------------------------------------------------------
# Network view
# --------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, release: str, objs: list[Manifest], cluster_objs: list[Manifest]) -> None:
        self.objs = objs
        self.cluster_objs = cluster_objs
        namespaces = [o for o in objs if o["kind"] == "Namespace"]
        ns_names = [_meta(o)["name"] for o in namespaces]
        counts: dict[str, int] = defaultdict(int)
        for o in objs:
            if _meta(o).get("namespace"):
                counts[_meta(o)["namespace"]] += 1
        self.namespace = release if release in ns_names else max(counts, key=lambda n: counts[n], default=release)
        self.ns_labels = {_meta(o)["name"]: dict(_meta(o).get("labels") or {}) for o in namespaces}
        self.policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
        self.governed = {_meta(p)["namespace"] for p in self.policies}
        self.fleets = sorted(n for n in ns_names if n != self.namespace)
        self.topo = Topology(release, self.namespace, "network")
        self.attached: dict[str, list[str]] = defaultdict(list)  # node id -> objects drawn inside it
        self.drawn: set[int] = set()  # id() of objects that have their own node or are attached
        self._ips = (f"10.244.{i // 200}.{i % 200 + 10}" for i in range(10**6))
        self.stand_in_labels: dict[str, list[str]] = {}
        self.host_labels: dict[str, list[str]] = {}

    # -- helpers ------------------------------------------------------------------------------------

    def ns_cluster(self, ns: str) -> tuple[str, ...]:
        if ns == self.namespace:
            return (f"namespace {ns}",)
        if ns in self.fleets:
            return ("fleet namespaces", f"namespace {ns}")
        return ("other namespaces", f"namespace {ns}")

    def mark(self, o: Manifest) -> None:
        self.drawn.add(id(o))

    def attach(self, node_id: str, o: Manifest) -> None:
        self.attached[node_id].append(ref(o))
        self.mark(o)

    # -- workloads ----------------------------------------------------------------------------------

    def workloads(self) -> dict[str, tuple[Manifest, Manifest]]:
        """Node id -> (object, pod template) for everything that runs pods."""
        out = {}
        for o in self.objs:
            tpl = pod_template(o)
            if tpl is not None:
                out[f"wl:{ref(o)}"] = (o, tpl)
        return out

    def build(self) -> Topology:
        t = self.topo
        workloads = self.workloads()
        hpas = {
            (
                (o["spec"].get("scaleTargetRef") or {}).get("kind"),
                (o["spec"].get("scaleTargetRef") or {}).get("name"),
            ): o
            for o in self.objs
            if o["kind"] == "HorizontalPodAutoscaler"
        }
        made = self.cluster_made_secrets(workloads)
        hooks = sorted(
            (o for o, _ in workloads.values() if HOOK in (_meta(o).get("annotations") or {})),
            key=lambda o: (_wave(o), _meta(o)["name"]),
        )
        for wid, (o, tpl) in workloads.items():
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            ns = meta.get("namespace", self.namespace)
            hpa = hpas.get((o["kind"], meta["name"]))
            if hpa is not None:
                self.mark(hpa)
                scale = f"HPA {hpa['spec'].get('minReplicas', 1)}..{hpa['spec']['maxReplicas']} replicas"
            elif o["kind"] in ("Job", "CronJob", "Pod"):
                scale = o["kind"] + (f" schedule {spec['schedule']}" if "schedule" in spec else "")
            else:
                scale = f"{spec.get('replicas', 1)} replica(s)"
            annotations = meta.get("annotations") or {}
            if HOOK in annotations:
                scale += f", hook {annotations[HOOK]}, wave {_wave(o)}"
            role = self.role_of(o, tpl)
            label = [f"{o['kind']} {meta['name']}", *([role] if role else []), scale, *_resources(tpl["spec"])]
            concern = "hook Jobs (sync order)" if HOOK in annotations else self.concern_of(o, tpl)
            order = f"{_wave(o) + 1000:06d} {meta['name']}" if HOOK in annotations else ""
            t.add(
                Node(wid, label, (*self.ns_cluster(ns), concern), "job" if HOOK in annotations else "workload", order)
            )
            for s in secrets_read(tpl["spec"]):
                sid = f"secret:{ns}/{s}"
                source = made.get(s)
                t.add(
                    Node(
                        sid,
                        [f"Secret {s}", source or "provided by an operator"],
                        (
                            *self.ns_cluster(ns),
                            "Secrets made in the cluster" if source else "Secrets an operator provides",
                        ),
                        "secret-made" if source else "secret-operator",
                    )
                )
                t.edge(wid, sid, "reads")
            for cm in sorted(configmaps_read(tpl["spec"])):
                for c in self.objs:
                    if c["kind"] == "ConfigMap" and _meta(c).get("name") == cm and _meta(c).get("namespace") == ns:
                        self.attach(wid, c)
        for a, b in zip(hooks, hooks[1:], strict=False):
            t.edge(f"wl:{ref(a)}", f"wl:{ref(b)}", "order", "then")
        self.services(workloads)
        self.routes()
        self.fleet_namespaces()
        self.network(workloads)
        self.leftovers(workloads)
        for nid, refs in self.attached.items():
            if nid in t.nodes:
                t.nodes[nid].label.append("+ " + ", ".join(sorted(set(refs))))
        return t

    def role_of(self, o: Manifest, tpl: Manifest) -> str:
        """What a workload is, from its images and configuration (Redis cluster/single, broker)."""
        images = " ".join(c.get("image", "") for c in tpl["spec"].get("containers") or [])
        replicas = (o.get("spec") or {}).get("replicas", 1)
        if re.search(r"(^|[/\s])(redis|valkey)[:@]", images) and o["kind"] not in ("Job", "CronJob", "Pod"):
            text = " ".join(
                str((c.get("data") or {}).values())
                for c in self.objs
                if c["kind"] == "ConfigMap" and _meta(c).get("name") in configmaps_read(tpl["spec"])
            )
            args = " ".join(str(a) for c in tpl["spec"].get("containers") or [] for a in c.get("args") or [])
            cluster = "cluster-enabled yes" in text or "--cluster-enabled yes" in args
            return f"Redis Cluster ({replicas} nodes)" if cluster else "Redis (single)"
        if re.search(r"(^|[/\s])[\w.-]*(mosquitto|emqx|vernemq|rabbitmq)[\w.-]*[:@]", images):
            return "MQTT broker"
        if re.search(r"(^|[/\s])(postgres|timescaledb)[\w.-]*[:@]", images) and o["kind"] in ("Job", "CronJob"):
            return "SQL job"
        return ""

    def concern_of(self, o: Manifest, tpl: Manifest) -> str:
        role = self.role_of(o, tpl)
        if role.startswith("Redis"):
            return "data"
        if role == "MQTT broker":
            return "messaging"
        if o["kind"] in ("Job", "CronJob"):
            return "jobs"
        return "applications"

    def cluster_made_secrets(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> dict[str, str]:
        """Secret name -> what makes it in the cluster (generator Jobs, cert-manager, secret operators)."""
        made: dict[str, str] = {}
        roles = {(_meta(o).get("namespace"), _meta(o)["name"]): o for o in self.objs if o["kind"] == "Role"}
        writers: dict[tuple[str | None, str], set[str]] = defaultdict(set)  # (ns, sa) -> secrets it may write
        for b in self.objs:
            if b["kind"] != "RoleBinding" or b["roleRef"]["kind"] != "Role":
                continue
            role = roles.get((_meta(b).get("namespace"), b["roleRef"]["name"]))
            if role is None:
                continue
            written: set[str] = set()  # named under a write verb
            read: set[str] = set()  # named under other verbs
            creates = False
            for rule in role.get("rules") or []:
                if "secrets" not in rule.get("resources", []):
                    continue
                write = bool(set(rule.get("verbs", [])) & {"create", "update", "patch"})
                creates = creates or (write and not rule.get("resourceNames"))
                (written if write else read).update(rule.get("resourceNames") or [])
            # A generator with an unrestricted create makes the Secrets it names for writing, or else
            # the one it checks for (get by name) before creating it.
            names = written or (read if creates else set())
            if names:
                for s in b.get("subjects") or []:
                    if s.get("kind") == "ServiceAccount":
                        writers[(s.get("namespace"), s["name"])] |= names
        for wid, (o, tpl) in workloads.items():
            ns = _meta(o).get("namespace")
            sa = tpl["spec"].get("serviceAccountName")
            if sa and (ns, sa) in writers:
                for s in writers[(ns, sa)]:
                    made[s] = f"made by {wid.removeprefix('wl:')}"
        for o in self.objs:
            spec = o.get("spec") or {}
            if o["kind"] == "Certificate" and spec.get("secretName"):
                made[spec["secretName"]] = f"issued by cert-manager ({ref(o)})"
            elif o["kind"] == "OnePasswordItem":
                made[_meta(o)["name"]] = f"synced from 1Password ({ref(o)})"
            elif o["kind"] == "ExternalSecret":
                target = (spec.get("target") or {}).get("name") or _meta(o)["name"]
                made[target] = f"synced by External Secrets ({ref(o)})"
        return made

    # -- services and routes ------------------------------------------------------------------------

    def services(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] != "Service":
                continue
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            sid = f"svc:{meta.get('namespace')}/{meta['name']}"
            ports = ", ".join(
                f"{p.get('name', '')}:{p['port']}".lstrip(":") for p in spec.get("ports") or [] if "port" in p
            )
            kind = "headless" if spec.get("clusterIP") == "None" else spec.get("type", "ClusterIP")
            t.add(
                Node(
                    sid,
                    [f"Service {meta['name']}", f"{kind} {ports}"],
                    self.ns_cluster(meta["namespace"]) + ("services",),
                    "service",
                )
            )
            sel = spec.get("selector")
            if not sel:
                continue
            for wid, (w, tpl) in workloads.items():
                if _meta(w).get("namespace") == meta.get("namespace") and selects(
                    {"matchLabels": sel}, (tpl.get("metadata") or {}).get("labels") or {}
                ):
                    t.edge(sid, wid, "selects")

    def routes(self) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] not in ROUTE_KINDS:
                continue
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            rid = f"route:{o['kind']}/{meta['name']}"
            matches = sorted(
                {
                    (m.get("path") or {}).get("value", "")
                    for r in spec.get("rules") or []
                    for m in r.get("matches") or []
                    if (m.get("path") or {}).get("value")
                }
            )
            label = [f"{o['kind']} {meta['name']}", *(["paths " + " ".join(matches)] if matches else [])]
            t.add(Node(rid, label, ("Gateway routes",), "route"))
            listeners = []
            for p in spec.get("parentRefs") or []:
                gw_ns = p.get("namespace", meta.get("namespace"))
                lid = f"listener:{gw_ns}/{p['name']}/{p.get('sectionName', '*')}"
                t.add(
                    Node(
                        lid,
                        [f"listener {p.get('sectionName', '(all)')}", *([f"port {p['port']}"] if "port" in p else [])],
                        (f"Gateway {gw_ns}/{p['name']}",),
                        "listener",
                    )
                )
                listeners.append(lid)
                t.edge(lid, rid, "route")
            for host in spec.get("hostnames") or []:
                hid = f"host:{host}"
                t.add(Node(hid, [host], ("public hosts",), "host"))
                for lid in listeners:
                    t.edge(hid, lid, "route")
            for rule in spec.get("rules") or []:
                for b in rule.get("backendRefs") or []:
                    if b.get("kind", "Service") != "Service":
                        continue
                    sid = f"svc:{b.get('namespace', meta.get('namespace'))}/{b['name']}"
                    t.edge(rid, sid, "route", str(b.get("port", "")))

    def fleet_namespaces(self) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] != "Namespace":
                continue
            self.mark(o)
            name = _meta(o)["name"]
            nid = f"ns:{name}"
            ann = _meta(o).get("annotations") or {}
            label = [f"Namespace {name}"]
            if ann.get("iotistica.com/description"):
                label.append(ann["iotistica.com/description"])
            pss = (_meta(o).get("labels") or {}).get("pod-security.kubernetes.io/enforce")
            if pss:
                label.append(f"pod security: {pss}")
            own = [p for p in self.policies if _meta(p).get("namespace") == name]
            deny = [
                "+".join(p["spec"].get("policyTypes") or [])
                for p in own
                if not (p["spec"].get("podSelector") or {})
                and not p["spec"].get("ingress")
                and not p["spec"].get("egress")
            ]
            if own:
                label.append(
                    f"{len(own)} NetworkPolicies"
                    + (f", default deny {', '.join(deny)}" if deny else ", no default deny")
                )
            for q in self.objs:
                if q["kind"] == "ResourceQuota" and _meta(q).get("namespace") == name:
                    self.mark(q)
                    hard = (q.get("spec") or {}).get("hard") or {}
                    label.append("quota " + ", ".join(f"{k} {v}" for k, v in sorted(hard.items())))
                if q["kind"] == "LimitRange" and _meta(q).get("namespace") == name:
                    self.mark(q)
                    for lim in (q.get("spec") or {}).get("limits") or []:
                        d = lim.get("default") or {}
                        if d:
                            label.append(
                                f"{lim.get('type', '')} default limit " + "/".join(str(v) for _, v in sorted(d.items()))
                            )
            t.add(Node(nid, label, self.ns_cluster(name), "namespace"))

    # -- network flows ------------------------------------------------------------------------------

    def network(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> None:
        t = self.topo
        for p in self.policies:
            self.mark(p)
        cluster = Cluster(self.policies, self.ns_labels)
        t.cluster = cluster
        eps: dict[str, Endpoint] = {}
        ports: dict[str, set[PortKey]] = defaultdict(set)
        for wid, (o, tpl) in workloads.items():
            cps = [p for c in tpl["spec"].get("containers") or [] for p in c.get("ports") or []]
            pod = Pod(
                wid,
                _meta(o).get("namespace", self.namespace),
                dict((tpl.get("metadata") or {}).get("labels") or {}),
                next(self._ips),
                tuple(sorted({(p["containerPort"], p.get("protocol", "TCP")) for p in cps})),
                tuple(sorted((p["name"], p["containerPort"], p.get("protocol", "TCP")) for p in cps if "name" in p)),
            )
            eps[wid] = pod
            ports[wid] |= set(pod.ports)

        # One stand-in per peer the policies name, unless a workload already answers to it.
        blocks: list[Manifest] = []
        for p in self.policies:
            pns = _meta(p)["namespace"]
            spec = p.get("spec") or {}
            if not any(
                cluster.peer_matches({"podSelector": spec.get("podSelector") or {}}, pns, e) for e in eps.values()
            ):
                self.stand_in(eps, pns, None, spec.get("podSelector") or {})
            for direction, key in (("ingress", "from"), ("egress", "to")):
                for rule in spec.get(direction) or []:
                    peers = rule.get(key) or [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]
                    for peer in peers:
                        if "ipBlock" in peer:
                            blocks.append(peer["ipBlock"])
                        elif not any(cluster.peer_matches(peer, pns, e) for e in eps.values()):
                            self.stand_in(eps, pns, peer.get("namespaceSelector"), peer.get("podSelector"))
        for host in self.address_ranges(blocks):
            eps[host.name] = host

        # Ports tried on each stand-in: those the rules that reach it name (None: a rule without ports).
        for p in self.policies:
            pns = _meta(p)["namespace"]
            spec = p.get("spec") or {}
            for rule in spec.get("ingress") or []:
                for eid, ep in eps.items():
                    if eid.startswith("wl:") or not isinstance(ep, Pod) or ep.namespace != pns:
                        continue
                    if selects(spec.get("podSelector") or {}, ep.labels):
                        ports[eid] |= self.rule_ports(rule)
            for rule in spec.get("egress") or []:
                for eid, ep in eps.items():
                    if eid.startswith("wl:"):
                        continue
                    # A stand-in pod takes the ports of the rules that name it by selector; an address
                    # range those of every rule that reaches it (pods have addresses too, but a range
                    # stands for them all: the picture draws "api -> 10.0.0.0/8", not one edge per pod).
                    peers = rule.get("to") or [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]
                    named = [x for x in peers if ("ipBlock" in x) == isinstance(ep, Host)]
                    if any(cluster.peer_matches(x, pns, ep) for x in named):
                        ports[eid] |= self.rule_ports(rule)

        t.endpoints = eps
        t.ports = {k: sorted(v, key=lambda p: (p[0] is not None, p[0] or 0, p[1])) for k, v in ports.items()}
        governed = {k for k, e in eps.items() if isinstance(e, Pod) and e.namespace in self.governed}
        flows = {f for f in cluster.flows(eps.values(), eps.values(), t.ports) if f[0] in governed or f[1] in governed}
        t.flows = flows
        touched = {f[0] for f in flows} | {f[1] for f in flows}
        db = self.database_note(workloads)
        for eid, ep in eps.items():
            if isinstance(ep, Pod) and eid.startswith("wl:"):
                node = t.nodes[eid]
                for kind in ("Ingress", "Egress"):
                    if not cluster.isolated(ep, kind):
                        node.label.append(f"{kind.lower()}: open (no policy isolates it)")
                continue
            if eid not in touched:
                continue
            received = {p for f in flows if f[1] == eid for p in [f[2]] if p is not None}
            known = sorted({WELL_KNOWN[p] for p in received if p in WELL_KNOWN})
            extra = []
            if 5432 in received and db:
                extra = db
            elif known:
                extra = [" / ".join(known)]
            if isinstance(ep, Host):
                t.add(Node(eid, [*self.host_labels[eid], *extra], ("outside the cluster (addresses)",), "address"))
            else:
                t.add(Node(eid, [*self.stand_in_labels[eid], *extra], self.ns_cluster(ep.namespace), "peer"))
        self.flow_edges(flows)

    def stand_in(self, eps: dict[str, Endpoint], pns: str, ns_sel: Manifest | None, pod_sel: Manifest | None) -> None:
        if ns_sel is None:
            ns, ns_text, ns_labels = pns, pns, None
        else:
            names = (ns_sel.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            ns_labels = _labels_for(ns_sel)
            if names:
                ns, ns_text = names, names
            elif not ns_sel:
                ns, ns_text = "(any namespace)", "any namespace"
            else:
                ns_text = "namespaces " + _selector_text(ns_sel)
                ns = f"({_selector_text(ns_sel)})"
        pod_text = _selector_text(pod_sel)
        eid = f"peer:{ns}/{pod_text}"
        if eid in eps:
            return
        if ns_labels is not None and ns not in self.ns_labels:
            self.ns_labels[ns] = ns_labels
        eps[eid] = Pod(eid, ns, _labels_for(pod_sel), next(self._ips))
        self.stand_in_labels[eid] = [ns_text, f"pods: {pod_text}"]

    def address_ranges(self, blocks: list[Manifest]) -> list[Host]:
        """One stand-in address per region of the address space the ipBlocks tell apart."""
        self.host_labels = {}
        uniq = {(b["cidr"], tuple(b.get("except") or [])): b for b in blocks}
        blocks = [uniq[k] for k in sorted(uniq)]
        candidates: list[tuple[str, str, str]] = []  # (address, net, how)
        for b in blocks:
            net = ipaddress.ip_network(b["cidr"], strict=False)
            candidates.append((str(net.network_address), str(net), "cidr"))
            for e in b.get("except") or []:
                ex = ipaddress.ip_network(e, strict=False)
                candidates.append((str(ex.network_address), str(ex), "except"))
                after = int(ex.broadcast_address) + 1
                if after <= int(net.broadcast_address):
                    candidates.append(
                        (
                            str(ipaddress.ip_address(after) if net.version == 4 else ipaddress.IPv6Address(after)),
                            "",
                            "after",
                        )
                    )
        groups: dict[tuple[bool, ...], list[tuple[str, str, str]]] = defaultdict(list)
        for c in candidates:
            sig = tuple(in_block(b, c[0]) for b in blocks)
            if any(sig):
                groups[sig].append(c)
        hosts = []
        all_excepts = sorted({e for b in blocks for e in b.get("except") or []})
        for _sig, members in sorted(groups.items(), key=lambda kv: kv[0], reverse=True):
            nets = sorted({net for _a, net, how in members if how == "except"}) or sorted(
                {net for _a, net, how in members if how == "cidr"}
            )
            minus = [e for e in all_excepts if e not in nets] if all(how != "except" for _a, _n, how in members) else []
            ip = next((a for a, _n, how in members if how != "cidr"), members[0][0])
            text = ", ".join(nets) + (" except " + ", ".join(minus) if minus else "")
            hid = f"addr:{text}"
            hosts.append(Host(hid, ip))
            self.host_labels[hid] = ["addresses " + text]
        return hosts

    @staticmethod
    def rule_ports(rule: Manifest) -> set[PortKey]:
        if not rule.get("ports"):
            return {(None, "TCP")}
        out: set[PortKey] = set()
        for p in rule["ports"]:
            proto = p.get("protocol", "TCP")
            port = p.get("port")
            if port is None:
                out.add((None, proto))
            elif isinstance(port, int):
                out.update((n, proto) for n in range(port, p.get("endPort", port) + 1))
        return out

    def database_note(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> list[str]:
        """The external PostgreSQL/TimescaleDB as the workloads' env describes it."""
        host = ""
        timescale = False
        for _o, tpl in workloads.values():
            for c in tpl["spec"].get("containers") or []:
                for e in c.get("env") or []:
                    name = e.get("name", "")
                    if "TIMESCALE" in name.upper() or "timescale" in str(e.get("value", "")).lower():
                        timescale = True
                    if name in ("DB_HOST", "PGHOST", "POSTGRES_HOST", "DATABASE_HOST") and not host:
                        if "value" in e:
                            host = f"host {e['value']}"
                        else:
                            k = ((e.get("valueFrom") or {}).get("secretKeyRef")) or {}
                            host = f"host from Secret {k.get('name')} key {k.get('key')}" if k else ""
        if not host:
            return []
        return ["external PostgreSQL" + (" / TimescaleDB" if timescale else ""), host]

    def flow_edges(self, flows: set[Flow]) -> None:
        t = self.topo
        pair: dict[tuple[str, str], set[PortKey]] = defaultdict(set)
        for s, d, port, proto in flows:
            pair[(s, d)].add((port, proto))
        shared: dict[tuple[str, frozenset[PortKey]], list[str]] = defaultdict(list)
        for (s, d), pset in pair.items():
            shared[(d, frozenset(pset))].append(s)
        for (d, ps), srcs in sorted(shared.items(), key=lambda kv: (kv[0][0], port_label(kv[0][1]))):
            label = port_label(ps)
            these = tuple(sorted((s, d, p, proto) for s in srcs for p, proto in ps))
            if len(srcs) >= MERGE_FROM and d not in srcs:
                jid = f"join:{d}:{label}"
                t.add(Node(jid, [], t.nodes[d].cluster[:-1] if d in t.nodes else (), "junction"))
                for s in sorted(srcs):
                    t.edge(s, jid, "flow-part")
                t.edge(jid, d, "flow", label, these)
            else:
                for s in sorted(srcs):
                    t.edge(s, d, "flow", label, tuple(sorted((s, d, p, proto) for p, proto in ps)))

    def leftovers(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> None:
        """Attach every other object to the node it targets or selects; list the rest."""
        t = self.topo
        by_name: dict[tuple[str, str], str] = {}
        for nid in t.nodes:
            kind_name = nid.split(":", 1)[1]
            if "/" in kind_name and nid.startswith(("wl:", "route:")):
                k, n = kind_name.split("/", 1)
                by_name[(k, n)] = nid
            if nid.startswith("svc:"):
                by_name[("Service", kind_name.split("/", 1)[1])] = nid
        for o in self.objs:
            if id(o) in self.drawn or o["kind"] in (
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
            ):
                continue
            spec = o.get("spec") or {}
            targets = [spec.get("scaleTargetRef"), spec.get("targetRef"), *(spec.get("targetRefs") or [])]
            found = [by_name.get((r.get("kind", ""), r.get("name", ""))) for r in targets if isinstance(r, dict)]
            hit = [h for h in found if h]
            sel = spec.get("selector")
            if not hit and isinstance(sel, dict):
                sel = sel if "matchLabels" in sel or "matchExpressions" in sel else {"matchLabels": sel}
                for wid, (_w, tpl) in workloads.items():
                    if sel.get("matchLabels") and selects(sel, (tpl.get("metadata") or {}).get("labels") or {}):
                        hit.append(wid)
                if not hit:
                    for sid in [n for n in t.nodes if n.startswith("svc:")]:
                        svc = next(
                            s
                            for s in self.objs
                            if s["kind"] == "Service" and f"svc:{_meta(s).get('namespace')}/{_meta(s)['name']}" == sid
                        )
                        if sel.get("matchLabels") and selects(sel, _meta(svc).get("labels") or {}):
                            hit.append(sid)
            if o["kind"] == "Certificate":
                hit += [f"secret:{_meta(o).get('namespace')}/{spec.get('secretName')}"]
            hit = [h for h in hit if h in t.nodes]
            if hit:
                for h in sorted(set(hit)):
                    self.attach(h, o)
            elif o["kind"] not in ("ConfigMap",):
                oid = f"obj:{o['kind']}"
                node = t.add(Node(oid, [o["kind"]], ("other objects",), "other"))
                node.label.append(_meta(o).get("name", ""))
                self.mark(o)


def build(dist: Path, release: str, view: str = "network") -> Topology:
    objs, cluster_objs = load(dist, release)
    if view == "rights":
        return rights(release, objs, cluster_objs)
    return _Builder(release, objs, cluster_objs).build()


# --------------------------------------------------------------------------------------------------
# Rights view
# --------------------------------------------------------------------------------------------------


def _rule_text(rule: Manifest) -> str:
    groups = ",".join(g or "core" for g in rule.get("apiGroups") or []) or "core"
    if rule.get("nonResourceURLs"):
        what = " ".join(rule["nonResourceURLs"])
    else:
        what = ",".join(rule.get("resources") or [])
        if rule.get("resourceNames"):
            what += " [" + ",".join(rule["resourceNames"]) + "]"
        what = f"{groups}: {what}"
    return f"{what}: {','.join(rule.get('verbs') or [])}"


def t_sas(t: Topology) -> set[tuple[str, str]]:
    """(namespace, name) of the ServiceAccounts drawn in a rights view."""
    out = set()
    for k in t.nodes:
        if k.startswith("sa:"):
            ns, _, name = k.removeprefix("sa:").partition("/")
            out.add((ns, name))
    return out


def _confines(text: str, ns: str, name: str) -> bool:
    """Whether an admission policy's text (CEL, match rules) names this ServiceAccount's user."""
    if f"system:serviceaccount:{ns}:{name}" in text or f"system:serviceaccount:{ns}:'" in text:
        return True
    if "userInfo" not in text:
        return False
    quoted = (r"[\'\"]" + re.escape(x) + r"[\'\"]" for x in (ns, name))
    return all(re.search(q, text) for q in quoted)


def rights(release: str, objs: list[Manifest], cluster_objs: list[Manifest]) -> Topology:
    b = _Builder(release, objs, cluster_objs)
    t = Topology(release, b.namespace, "rights")
    everything = objs + cluster_objs
    roles = {
        (o["kind"], _meta(o).get("namespace"), _meta(o)["name"]): o
        for o in everything
        if o["kind"] in ("Role", "ClusterRole")
    }
    sas: set[tuple[str, str]] = set()
    for o in objs:
        if o["kind"] == "ServiceAccount":
            sas.add((_meta(o).get("namespace", b.namespace), _meta(o)["name"]))

    def sa_node(ns: str, name: str) -> str:
        sid = f"sa:{ns}/{name}"
        t.add(Node(sid, [f"ServiceAccount {name}", f"namespace {ns}"], ("ServiceAccounts",), "sa"))
        return sid

    for ns, name in sorted(sas):
        sa_node(ns, name)
    for o in objs:
        tpl = pod_template(o)
        if tpl is None:
            continue
        spec = tpl["spec"]
        ns = _meta(o).get("namespace", b.namespace)
        sa = spec.get("serviceAccountName", "default")
        mounts = spec.get("automountServiceAccountToken")
        if mounts is False:
            continue
        wid = f"wl:{ref(o)}"
        t.add(Node(wid, [f"{o['kind']} {_meta(o)['name']}", "mounts a token"], ("pods with a token",), "workload"))
        t.edge(wid, sa_node(ns, sa), "uses")
    for bd in everything:
        if bd["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        # This release's ServiceAccounts only (dist/cluster/ holds bindings of every release).
        subjects = [
            s
            for s in bd.get("subjects") or []
            if s.get("kind") == "ServiceAccount"
            and s.get("namespace", _meta(bd).get("namespace")) in {b.namespace, *b.fleets}
        ]
        if not subjects:
            continue
        rr = bd["roleRef"]
        where = f"in namespace {_meta(bd)['namespace']}" if bd["kind"] == "RoleBinding" else "cluster-wide"
        role_ns = _meta(bd).get("namespace") if rr["kind"] == "Role" else None
        role = roles.get((rr["kind"], role_ns, rr["name"]))
        rid = f"role:{rr['kind']}/{role_ns or ''}/{rr['name']}"
        rule_lines = [_rule_text(r) for r in (role or {}).get("rules") or []] or ["(not in dist/)"]
        t.add(Node(rid, [f"{rr['kind']} {rr['name']}", *rule_lines], ("Roles and ClusterRoles",), "role"))
        bid = f"binding:{bd['kind']}/{_meta(bd).get('namespace', '')}/{_meta(bd)['name']}"
        t.add(Node(bid, [f"{bd['kind']} {_meta(bd)['name']}", where], ("bindings",), "binding"))
        t.edge(bid, rid, "grants")
        for s in subjects:
            t.edge(sa_node(s.get("namespace", _meta(bd).get("namespace", "")), s["name"]), bid, "binds", where)
    # Admission policies (kind ValidatingAdmissionPolicy and its Binding, any apiVersion).
    policies = {_meta(o)["name"]: o for o in everything if o["kind"] == "ValidatingAdmissionPolicy"}
    bound = {
        (o.get("spec") or {}).get("policyName") for o in everything if o["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    unbound: list[Manifest] = [
        {
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "(none: not enforced)"},
            "spec": {"policyName": n},
        }
        for n in sorted(set(policies) - bound)
    ]
    for o in everything + unbound:
        if o["kind"] != "ValidatingAdmissionPolicyBinding":
            continue
        bspec: Manifest = o.get("spec") or {}
        name = str(bspec.get("policyName", ""))
        pol: Manifest = policies.get(name) or {}
        spec = pol.get("spec") or {}
        resource_rules: list[Manifest] = ((spec.get("matchConstraints") or {}).get("resourceRules")) or []
        what = sorted(
            {
                f"{','.join(rule.get('operations') or [])} {','.join(rule.get('resources') or [])}"
                for rule in resource_rules
            }
        )
        actions = ",".join(bspec.get("validationActions") or [])
        checks = [v.get("message") or v.get("expression", "") for v in spec.get("validations") or []]
        pid = f"vap:{name}"
        label = [f"ValidatingAdmissionPolicy {name}", *what, f"binding {_meta(o)['name']}: {actions}", *checks[:4]]
        if len(checks) > 4:
            label.append(f"... {len(checks) - 4} more checks")
        t.add(Node(pid, label, ("admission policies",), "policy"))
        text = yaml.safe_dump([pol, o])
        confined = [(ns, n) for ns, n in sorted(t_sas(t)) if _confines(text, ns, n)]
        for ns, n in confined:
            t.edge(pid, f"sa:{ns}/{n}", "confines")
        if not confined:
            who = "users its matchConditions name" if "userInfo" in text else "every matching request"
            t.nodes[pid].label.append(f"confines: {who} (none of this release's ServiceAccounts)")
    return t


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

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


#: docs/topology/README.md: the same text whatever the fleet, so adding a release edits no shared file.
TOPOLOGY_INDEX = (
    "# Topology pictures\n\n"
    "Generated by `iotistica-k8s docs` from `dist/`; do not edit. `<release>.md` is the Mermaid picture of\n"
    "`dist/<release>/`, one page per release, each the release's own file: `iotistica-k8s docs` writes the\n"
    "pages of every release (a new one's too) and removes those of releases that are gone; `iotistica-k8s\n"
    "docs --check` fails when a page here differs from its release's `dist/` folder or its release is gone.\n"
    "How to read them, and SVG or PNG of any release: [docs/graph.md](../graph.md).\n"
)


def topology_docs(dist: Path, out: Path, check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) ``out/<release>.md`` for every release of ``dist``.

    Returns the paths that were stale (written unless ``check``). A page is stale when it differs from
    its release's folder in ``dist``, or when its release is no longer there (then it is removed). With
    ``check``, a release without a page is not stale: a page belongs to its release alone, so adding a
    client (``new``, ``make synth``) leaves every page current; ``iotistica-k8s docs`` adds its page.
    The index (README.md) is the same for every fleet (:data:`TOPOLOGY_INDEX`).
    """
    stale: list[str] = []
    have = {p.name: p for p in out.glob("*.md")} if out.is_dir() else {}
    names = releases(dist) if dist.is_dir() else []
    drawn = [r for r in names if not check or f"{r}.md" in have]
    want = {f"{r}.md": mermaid_doc(build(dist, r)) for r in drawn}
    want["README.md"] = TOPOLOGY_INDEX
    for name, text in sorted(want.items()):
        path = out / name
        if name not in have or have[name].read_text() != text:
            stale.append(str(path.relative_to(out.parent.parent)) if out.parent.parent in path.parents else str(path))
            if not check:
                out.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for name in sorted(set(have) - set(want) - {f"{r}.md" for r in names}):
        stale.append(str(have[name]))
        if not check:
            have[name].unlink()
    return stale
