"""A small evaluator of Kubernetes NetworkPolicy semantics, for tests (no CNI needed).

It answers "may ``src`` open a connection to ``dst`` on ``port``/``protocol``?" from a set of
NetworkPolicy objects, as the API documents it:

- a pod is isolated for ingress (egress) when any policy of its namespace selects it with that
  policy type; an isolated pod accepts only what some rule of those policies allows;
- a connection needs both ends: the source's egress and the destination's ingress;
- a peer with only ``podSelector`` means pods of the policy's own namespace; with only
  ``namespaceSelector``, every pod of the matching namespaces; with both, matching pods of matching
  namespaces; ``ipBlock`` matches addresses (pods have addresses too; ``except`` is honoured);
- a rule without ``from``/``to`` matches every peer; without ``ports``, every port.

Workloads outside the manifests (the Gateway, Prometheus, DNS, agents, hosts on the internet) are
modelled as :class:`Pod` with a namespace, or as :class:`Host` (an address only, never isolated).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    ports: tuple[tuple[int, str], ...] = ()  # (port, protocol) the pod listens on


@dataclass(frozen=True)
class Host:
    """An address outside every namespace (the API server, the internet)."""

    name: str
    ip: str
    ports: tuple[tuple[int, str], ...] = ()


Endpoint = Pod | Host


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """LabelSelector semantics; ``{}`` selects everything."""
    if selector is None:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass
class Cluster:
    policies: list[Manifest]
    #: namespace -> its labels (kubernetes.io/metadata.name is added automatically).
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def ns_labels(self, namespace: str) -> dict[str, str]:
        return {**self.namespace_labels.get(namespace, {}), "kubernetes.io/metadata.name": namespace}

    def _peer_matches(self, peer: Manifest, policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            addr = ipaddress.ip_address(other.ip)
            if addr not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(addr in ipaddress.ip_network(e) for e in block.get("except", []))
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
    def _port_matches(ports: list[Manifest] | None, port: int, protocol: str) -> bool:
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            if "port" not in p:
                return True
            start = p["port"]
            if not isinstance(start, int):
                raise AssertionError(f"named ports are not modelled here: {p}")
            if start <= port <= p.get("endPort", start):
                return True
        return False

    def _policies_for(self, pod: Pod, kind: str) -> list[Manifest]:
        return [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.labels)
        ]

    def ingress_allows(self, src: Endpoint, dst: Pod, port: int, protocol: str) -> bool:
        policies = self._policies_for(dst, "Ingress")
        if not policies:
            return True
        for p in policies:
            for rule in p["spec"].get("ingress") or []:
                peers = rule.get("from")
                if (not peers or any(self._peer_matches(x, dst.namespace, src) for x in peers)) and (
                    self._port_matches(rule.get("ports"), port, protocol)
                ):
                    return True
        return False

    def egress_allows(self, src: Pod, dst: Endpoint, port: int, protocol: str) -> bool:
        policies = self._policies_for(src, "Egress")
        if not policies:
            return True
        for p in policies:
            for rule in p["spec"].get("egress") or []:
                peers = rule.get("to")
                if (not peers or any(self._peer_matches(x, src.namespace, dst) for x in peers)) and (
                    self._port_matches(rule.get("ports"), port, protocol)
                ):
                    return True
        return False

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        out = self.egress_allows(src, dst, port, protocol) if isinstance(src, Pod) else True
        inn = self.ingress_allows(src, dst, port, protocol) if isinstance(dst, Pod) else True
        return out and inn
