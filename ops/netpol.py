"""An evaluator of Kubernetes NetworkPolicy semantics (no CNI needed).

It answers "may ``src`` open a connection to ``dst`` on ``port``/``protocol``?" from a set of
NetworkPolicy objects, as the API documents it (networking.k8s.io/v1, Kubernetes 1.27):

- a pod is isolated for ingress (egress) when any policy of its namespace selects it with that
  policy type; an isolated pod accepts only what some rule of those policies allows;
- ``policyTypes`` left out means ``Ingress``, plus ``Egress`` when the policy has an ``egress`` section;
- a connection needs both ends: the source's egress and the destination's ingress;
- a peer with only ``podSelector`` means pods of the policy's own namespace; with only
  ``namespaceSelector``, every pod of the matching namespaces; with both, matching pods of matching
  namespaces; ``ipBlock`` matches addresses (pods have addresses too; ``except`` is honoured);
- a rule without ``from``/``to`` matches every peer; without ``ports``, every port; a named port
  matches the destination pod's container port of that name; ``endPort`` makes a range.

Workloads outside the manifests (the Gateway, Prometheus, DNS, agents, hosts on the internet) are
modelled as :class:`Pod` with a namespace, or as :class:`Host` (an address only, never isolated).
``port=None`` asks for "every port": only rules without ``ports`` (or non-isolated ends) allow it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]
#: (port or None for every port, protocol)
PortKey = tuple[int | None, str]


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    ports: tuple[tuple[int, str], ...] = ()  # (port, protocol) the pod listens on
    #: container port names: (name, port, protocol), for rules that name a port.
    port_names: tuple[tuple[str, int, str], ...] = ()

    def __hash__(self) -> int:
        return hash((self.name, self.namespace, self.ip))


@dataclass(frozen=True)
class Host:
    """An address outside every namespace (the API server, the internet)."""

    name: str
    ip: str
    ports: tuple[tuple[int, str], ...] = ()


Endpoint = Pod | Host


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """LabelSelector semantics; ``{}`` (and a missing selector) selects everything."""
    if selector is None:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown label selector operator {op!r}")
    return True


def policy_types(policy: Manifest) -> list[str]:
    """The policy's types, with the API's default when ``policyTypes`` is left out."""
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def in_block(block: Manifest, ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(block["cidr"], strict=False)
    if addr.version != net.version or addr not in net:
        return False
    return not any(
        addr.version == e.version and addr in e
        for e in (ipaddress.ip_network(x, strict=False) for x in block.get("except") or [])
    )


@dataclass
class Cluster:
    policies: list[Manifest]
    #: namespace -> its labels (kubernetes.io/metadata.name is added automatically).
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def ns_labels(self, namespace: str) -> dict[str, str]:
        return {**self.namespace_labels.get(namespace, {}), "kubernetes.io/metadata.name": namespace}

    def peer_matches(self, peer: Manifest, policy_ns: str, other: Endpoint) -> bool:
        """Whether one ``from``/``to`` entry of a policy in ``policy_ns`` matches ``other``."""
        if "ipBlock" in peer:
            return in_block(peer["ipBlock"], other.ip)
        if not isinstance(other, Pod):
            return False
        ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
        if ns_sel is None:
            if other.namespace != policy_ns:
                return False
        elif not selects(ns_sel, self.ns_labels(other.namespace)):
            return False
        return selects(pod_sel, other.labels) if pod_sel is not None else True

    @staticmethod
    def port_matches(ports: list[Manifest] | None, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """Whether a rule's ``ports`` admit ``port``/``protocol`` on ``dst`` (named ports: ``dst``'s names)."""
        if not ports:
            return True
        if port is None:
            return False  # "every port" needs a rule without ports
        for p in ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            if "port" not in p:
                return True
            start = p["port"]
            if isinstance(start, str):
                names = dst.port_names if isinstance(dst, Pod) else ()
                if any(n == start and num == port and proto == protocol for n, num, proto in names):
                    return True
                continue
            low = int(start)
            high = int(p["endPort"]) if "endPort" in p else low
            if low <= port <= high:
                return True
        return False

    def policies_for(self, pod: Pod, kind: str) -> list[Manifest]:
        """The policies of ``pod``'s namespace that select it for ``kind`` (Ingress or Egress)."""
        return [
            p
            for p in self.policies
            if p["metadata"].get("namespace") == pod.namespace
            and kind in policy_types(p)
            and selects(p["spec"].get("podSelector") or {}, pod.labels)
        ]

    def isolated(self, ep: Endpoint, kind: str) -> bool:
        return isinstance(ep, Pod) and bool(self.policies_for(ep, kind))

    def ingress_allows(self, src: Endpoint, dst: Pod, port: int | None, protocol: str) -> bool:
        policies = self.policies_for(dst, "Ingress")
        if not policies:
            return True
        return any(
            self._rule_allows(rule, rule.get("from"), p["metadata"]["namespace"], src, dst, port, protocol)
            for p in policies
            for rule in p["spec"].get("ingress") or []
        )

    def egress_allows(self, src: Pod, dst: Endpoint, port: int | None, protocol: str) -> bool:
        policies = self.policies_for(src, "Egress")
        if not policies:
            return True
        return any(
            self._rule_allows(rule, rule.get("to"), p["metadata"]["namespace"], dst, dst, port, protocol)
            for p in policies
            for rule in p["spec"].get("egress") or []
        )

    def _rule_allows(
        self,
        rule: Manifest,
        peers: list[Manifest] | None,
        policy_ns: str,
        other: Endpoint,
        dst: Endpoint,
        port: int | None,
        protocol: str,
    ) -> bool:
        if peers and not any(self.peer_matches(x, policy_ns, other) for x in peers):
            return False
        return self.port_matches(rule.get("ports"), port, protocol, dst)

    def allows(self, src: Endpoint, dst: Endpoint, port: int | None, protocol: str = "TCP") -> bool:
        out = self.egress_allows(src, dst, port, protocol) if isinstance(src, Pod) else True
        inn = self.ingress_allows(src, dst, port, protocol) if isinstance(dst, Pod) else True
        return out and inn

    def flows(
        self, sources: Iterable[Endpoint], destinations: Iterable[Endpoint], ports: Mapping[str, Iterable[PortKey]]
    ) -> set[tuple[str, str, int | None, str]]:
        """Every (source name, destination name, port, protocol) allowed, trying ``ports[dst.name]``."""
        dsts = list(destinations)
        out = set()
        for s in sources:
            for d in dsts:
                for port, proto in ports.get(d.name, ()):
                    if self.allows(s, d, port, proto):
                        out.add((s.name, d.name, port, proto))
        return out
