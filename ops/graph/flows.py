"""The network view's state and its flows: :class:`_FlowBuilder` takes a release's manifests and, by
evaluating every NetworkPolicy (:mod:`ops.netpol`) between every pair of endpoints, adds the allowed
flows (and the stand-ins for the peers the policies name) to its :class:`Topology`.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from ops.graph.model import (
    MERGE_FROM,
    WELL_KNOWN,
    Flow,
    Manifest,
    Node,
    Topology,
    _labels_for,
    _meta,
    _selector_text,
    pod_template,
    port_label,
    ref,
)
from ops.netpol import Cluster, Endpoint, Host, Pod, PortKey, in_block, selects


class _FlowBuilder:
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
