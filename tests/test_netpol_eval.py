"""ops/netpol.py: the NetworkPolicy evaluator, on small hand-written policies (semantics as documented
for networking.k8s.io/v1). The environment-wide proofs that use it are in test_network_and_rbac.py."""

from __future__ import annotations

from typing import Any

import pytest

from ops.netpol import Cluster, Host, Pod, policy_types, selects

NS = "app"


def policy(name: str, pod_selector: dict[str, Any], namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": pod_selector, **spec},
    }


DENY_ALL = policy("deny", {}, policyTypes=["Ingress", "Egress"])
WEB = Pod("web", NS, {"app": "web"}, "10.244.0.10", ((8080, "TCP"),), (("http", 8080, "TCP"),))
DB = Pod("db", NS, {"app": "db"}, "10.244.0.11", ((5432, "TCP"),), (("pg", 5432, "TCP"),))
OTHER_NS = Pod("scraper", "monitoring", {"app": "prom"}, "10.244.1.10")
INTERNET = Host("internet", "104.18.33.45", ((443, "TCP"),))
PRIVATE = Host("lan", "192.168.1.5", ((443, "TCP"),))


def test_no_policy_allows_everything() -> None:
    c = Cluster([])
    assert c.allows(WEB, DB, 5432) and c.allows(INTERNET, WEB, 8080) and c.allows(WEB, INTERNET, 443)
    assert not c.isolated(WEB, "Ingress") and not c.isolated(INTERNET, "Ingress")


def test_default_deny_isolates_both_ways() -> None:
    c = Cluster([DENY_ALL])
    assert c.isolated(WEB, "Ingress") and c.isolated(WEB, "Egress")
    assert not c.allows(WEB, DB, 5432)
    assert not c.allows(OTHER_NS, WEB, 8080)
    assert not c.allows(WEB, INTERNET, 443)
    # Another namespace is not governed by this namespace's policies.
    assert c.allows(OTHER_NS, INTERNET, 443)


def test_a_connection_needs_egress_and_ingress() -> None:
    egress = policy(
        "web-out",
        {"matchLabels": {"app": "web"}},
        policyTypes=["Egress"],
        egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}],
    )
    ingress = policy(
        "db-in",
        {"matchLabels": {"app": "db"}},
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}],
    )
    assert not Cluster([DENY_ALL, egress]).allows(WEB, DB, 5432), "db's ingress is denied"
    assert not Cluster([DENY_ALL, ingress]).allows(WEB, DB, 5432), "web's egress is denied"
    c = Cluster([DENY_ALL, egress, ingress])
    assert c.allows(WEB, DB, 5432)
    assert not c.allows(WEB, DB, 5433), "other ports stay denied"
    assert not c.allows(DB, WEB, 8080), "direction matters"
    assert not c.allows(WEB, DB, 5432, "UDP"), "protocol matters (TCP is the default)"


def test_peer_selectors() -> None:
    by_pod = {"podSelector": {"matchLabels": {"app": "prom"}}}
    by_ns = {"namespaceSelector": {"matchLabels": {"team": "obs"}}}
    both = {**by_ns, **by_pod}
    labels = {"monitoring": {"team": "obs"}}

    def allowed(peer: dict[str, Any], src: Pod | Host) -> bool:
        p = policy("in", {"matchLabels": {"app": "web"}}, ingress=[{"from": [peer]}])
        return Cluster([p], labels).allows(src, WEB, 8080)

    # podSelector alone: pods of the policy's own namespace only.
    assert not allowed(by_pod, OTHER_NS)
    assert allowed(by_pod, Pod("p", NS, {"app": "prom"}, "10.244.0.20"))
    # namespaceSelector alone: every pod of the matching namespaces.
    assert allowed(by_ns, OTHER_NS) and allowed(by_ns, Pod("x", "monitoring", {}, "10.244.1.11"))
    assert not allowed(by_ns, Pod("x", "default", {"app": "prom"}, "10.244.2.11"))
    # Both: matching pods of matching namespaces.
    assert allowed(both, OTHER_NS) and not allowed(both, Pod("x", "monitoring", {}, "10.244.1.11"))
    # kubernetes.io/metadata.name is every namespace's label.
    assert allowed({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}, OTHER_NS)
    # Pod selectors never match a bare address.
    assert not allowed(by_ns, INTERNET)


def test_ip_blocks_with_except() -> None:
    p = policy(
        "out",
        {"matchLabels": {"app": "web"}},
        policyTypes=["Egress"],
        egress=[
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}}],
                "ports": [{"port": 443}],
            }
        ],
    )
    c = Cluster([p])
    assert c.allows(WEB, INTERNET, 443)
    assert not c.allows(WEB, PRIVATE, 443)
    assert not c.allows(WEB, DB, 443), "pods have addresses too: 10.244.0.11 is excepted"


def test_rules_without_peers_or_ports() -> None:
    any_peer = policy("in", {"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": 8080}]}])
    any_port = policy("in", {"matchLabels": {"app": "web"}}, ingress=[{"from": [{"podSelector": {}}]}])
    c1, c2 = Cluster([any_peer]), Cluster([any_port])
    assert c1.allows(INTERNET, WEB, 8080) and c1.allows(OTHER_NS, WEB, 8080) and not c1.allows(DB, WEB, 9090)
    assert c2.allows(DB, WEB, 9090) and c2.allows(DB, WEB, None), "no ports: every port"
    assert not c1.allows(DB, WEB, None), "every port needs a rule without ports"
    empty = policy("in", {"matchLabels": {"app": "web"}}, ingress=[])
    assert not Cluster([empty]).allows(DB, WEB, 8080)


def test_named_ports_and_ranges() -> None:
    named = policy("in", {"matchLabels": {"app": "db"}}, ingress=[{"ports": [{"port": "pg"}]}])
    assert Cluster([named]).allows(WEB, DB, 5432)
    moved = Pod("db2", NS, {"app": "db"}, "10.244.0.12", ((6432, "TCP"),), (("pg", 6432, "TCP"),))
    renamed = Pod("db3", NS, {"app": "db"}, "10.244.0.13", ((5432, "TCP"),), (("postgres", 5432, "TCP"),))
    assert Cluster([named]).allows(WEB, moved, 6432), "a name resolves on the destination pod"
    assert not Cluster([named]).allows(WEB, moved, 5432)
    assert not Cluster([named]).allows(WEB, renamed, 5432)
    ranged = policy("in", {"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": 8000, "endPort": 8100}]}])
    c = Cluster([ranged])
    assert c.allows(DB, WEB, 8000) and c.allows(DB, WEB, 8080) and c.allows(DB, WEB, 8100)
    assert not c.allows(DB, WEB, 8101) and not c.allows(DB, WEB, 7999)


def test_policy_types_default() -> None:
    assert policy_types(policy("a", {})) == ["Ingress"]
    assert policy_types(policy("a", {}, egress=[])) == ["Ingress", "Egress"]
    assert policy_types(policy("a", {}, policyTypes=["Egress"])) == ["Egress"]
    # A policy with an egress section and no policyTypes isolates egress too.
    c = Cluster([policy("a", {"matchLabels": {"app": "web"}}, egress=[])])
    assert not c.allows(WEB, INTERNET, 443)


def test_label_selector_operators() -> None:
    labels = {"tier": "a", "env": "prod"}
    assert selects({}, labels) and selects(None, labels)
    assert selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, labels)
    assert not selects({"matchLabels": {"tier": "b"}}, labels)
    with pytest.raises(ValueError, match="Gt"):
        selects({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, labels)


def test_flows_lists_every_allowed_connection() -> None:
    p = policy(
        "db-in",
        {"matchLabels": {"app": "db"}},
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}],
    )
    c = Cluster([p])
    got = c.flows([WEB, DB], [WEB, DB], {"web": [(8080, "TCP")], "db": [(5432, "TCP")]})
    assert got == {("web", "db", 5432, "TCP"), ("web", "web", 8080, "TCP"), ("db", "web", 8080, "TCP")}
