"""PlatformNetworkPolicies: default deny in the release namespace, then exactly the platform's flows.

``FLOWS`` below is the whole contract, one line per permitted connection. Each line opens both ends:
the ingress rule on the destination's pods and, with ``network.defaultDenyEgress`` (default on), the
egress rule on the source's pods. A flow whose source or destination is not deployed (Node-RED off,
no Redis Cluster) is skipped. Adding a workload (a hook Job, say) means: its construct publishes its
pods as an :class:`Endpoint` (``network_endpoint``), release_chart.py collects it, and its flows go
here. Any pod of the release that no flow names stays fully isolated, and tests/test_network_and_rbac.py
fails until it is placed in the table.

Sources outside the namespace: ``gateway`` (the Gateway's proxy pods, ``network.gatewayNamespace``),
``prometheus`` (``network.prometheusNamespace``) and ``agents`` (this release's fleet namespaces and
``network.agentNamespaces``). Destinations outside the namespace: ``dns``, ``database``,
``kubernetes-api``, ``provisioning-api`` (from ``api.provisioningApiUrl``) and ``internet`` (HTTPS,
private ranges excluded; only with ``api.aiProvider: openai`` or an Auth0 domain in ``dashboard.config``).

Objects: ``NetworkPolicy/{release}-default-deny`` (every pod, Ingress + Egress, no rule) and one
``NetworkPolicy/{release}-{endpoint}`` per endpoint holding its allowed ingress and egress. Ports are
the pods' container ports (a NetworkPolicy sees traffic after the Service's translation: the
dashboard's Service port 80 arrives on 8080).

Caveats (documented, not fixable here): kubelet probes are not subject to NetworkPolicy on common
CNIs; Cilium matches the API server with its ``kube-apiserver`` entity rather than an ipBlock (narrow
``network.kubernetesApi.cidr`` accordingly); NodeLocal DNSCache needs ``network.dns`` pointed at it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_27 import k8s

from constructs.api_objects import Component, KubeObject, Scope, api_object
from constructs.platform import Props, Release, int_or_string
from tiers.models import Network, http_target

NS_NAME_LABEL = "kubernetes.io/metadata.name"

# Peers outside the release namespace.
GATEWAY = "gateway"
PROMETHEUS = "prometheus"
AGENTS = "agents"
DNS = "dns"
DATABASE = "database"
KUBERNETES_API = "kubernetes-api"
PROVISIONING_API = "provisioning-api"
INTERNET = "internet"
EXTERNAL_SOURCES = (GATEWAY, PROMETHEUS, AGENTS)
EXTERNAL_DESTINATIONS = (DNS, DATABASE, KUBERNETES_API, PROVISIONING_API, INTERNET)


@dataclass(frozen=True)
class Flow:
    """``source`` may open connections to ``destination`` on the destination endpoint's named ``ports``
    (external destinations take their ports from the settings). ``requires``: a port name the
    destination must have for the flow to exist at all."""

    source: str
    destination: str
    ports: tuple[str, ...] = ()
    why: str = ""
    requires: str | None = None


#: The platform's flows (isolation concern). Keep it sorted by destination; every line says why.
FLOWS: tuple[Flow, ...] = (
    # --- the API (3002) ---
    Flow(GATEWAY, "api", ("http",), "HTTPRoute: REST, WebSocket /ws"),
    Flow("mosquitto", "api", ("http",), "go-auth HTTP backend: /mosquitto-auth/{user,superuser,acl}"),
    Flow("nodered", "api", ("http",), "Node-RED flow storage (IOTISTIC_BASE_URL)"),
    Flow(AGENTS, "api", ("http",), "agents' IOTISTICA_API (= CLOUD_API_URL): provisioning, state"),
    Flow(PROMETHEUS, "api", ("http",), "/metrics"),
    # --- ingestion (3003) ---
    Flow(PROMETHEUS, "ingestion", ("http",), "/metrics"),
    # --- the broker ---
    Flow(GATEWAY, "mosquitto", ("mqtt", "mqtts", "websockets"), "TCPRoute 1883, TLSRoute 8883, websockets 9001"),
    Flow("api", "mosquitto", ("mqtt",), "the API's MQTT subscription (MQTT_BROKER_URL)"),
    Flow("nodered", "mosquitto", ("mqtt",), "Node-RED MQTT nodes"),
    Flow(AGENTS, "mosquitto", ("mqtt", "mqtts"), "agents' MQTT_BROKER_URL"),
    # --- Redis ---
    Flow("api", "redis", ("redis",), "streams, pub/sub, cache, rate limits"),
    Flow("ingestion", "redis", ("redis",), "stream consumer"),
    Flow("redis", "redis", ("redis", "cluster-bus"), "Redis Cluster replication and gossip", "cluster-bus"),
    Flow("redis-cluster-init", "redis", ("redis", "cluster-bus"), "redis-cli --cluster create/fix", "cluster-bus"),
    Flow("redis-cluster-repair", "redis", ("redis",), "CLUSTER commands, redis-cli --cluster", "cluster-bus"),
    Flow(PROMETHEUS, "redis", ("metrics",), "redis_exporter sidecar /metrics (Redis Cluster alerts)", "metrics"),
    # --- UIs ---
    Flow(GATEWAY, "dashboard", ("http",), "HTTPRoute (Service 80 -> nginx 8080)"),
    Flow(GATEWAY, "nodered", ("http",), "HTTPRoute"),
    # --- outside the namespace ---
    Flow("api", DNS, why="resolves Services and external hosts"),
    Flow("ingestion", DNS, why="resolves Redis and the database"),
    Flow("mosquitto", DNS, why="resolves the API (auth callback)"),
    Flow("nodered", DNS, why="resolves the API and the broker"),
    Flow("redis-cluster-init", DNS, why="resolves the StatefulSet's pod names"),
    Flow("redis-cluster-repair", DNS, why="resolves the StatefulSet's pod names"),
    Flow("db-init", DNS, why="hook Job: resolves the database host"),
    Flow("timescaledb-policy", DNS, why="hook Job: resolves the database host"),
    Flow("platform-config", DNS, why="hook Job: resolves the database host"),
    Flow("api-migrations", DNS, why="hook Job: resolves the database host"),
    Flow("api", DATABASE, why="TimescaleDB"),
    Flow("ingestion", DATABASE, why="TimescaleDB writer"),
    Flow("db-init", DATABASE, why="hook Job: role, database, grants, extensions"),
    Flow("timescaledb-policy", DATABASE, why="hook Job: compression and retention policies"),
    Flow("platform-config", DATABASE, why="hook Job: the agents' broker row, the admin user (platform-facts §17)"),
    Flow("api-migrations", DATABASE, why="hook Job: the API's migrations, before the API starts (platform-facts §17)"),
    Flow("api", KUBERNETES_API, why="virtual-agent deployer (platform-facts §11)"),
    Flow("stream-key-resolver", KUBERNETES_API, why="hook Job: license Secret in, runtime Secret out"),
    Flow("redis-auth-generator", KUBERNETES_API, why="hook Job: creates {release}-redis-auth if missing"),
    Flow("api", PROVISIONING_API, why="PROVISIONING_API_URL: Auth0 role lookup, invites"),
    Flow("api", INTERNET, why="OpenAI (AI_PROVIDER=openai); Auth0 (AUTH0_DOMAIN: JWKS, /userinfo)"),
)


class Endpoint(Props):
    """A group of pods of the release: selected by name/instance/component, listening on named ports."""

    key: str
    app: str
    component: str
    ports: dict[str, int] = {}


class PlatformNetworkPoliciesProps(Props):
    release: Release
    values: Network
    endpoints: list[Endpoint]
    provisioning_api_url: str
    internet: bool
    #: matchLabels of this release's fleet namespaces, or None when it has none.
    fleet_namespace_labels: dict[str, str] | None


def _ports(numbers: list[int], protocol: str = "TCP") -> list[k8s.NetworkPolicyPort]:
    return [k8s.NetworkPolicyPort(port=int_or_string(n), protocol=protocol) for n in sorted(set(numbers))]


def _namespace(name: str, pod_labels: dict[str, str] | None = None) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(
        namespace_selector=k8s.LabelSelector(match_labels={NS_NAME_LABEL: name}),
        pod_selector=k8s.LabelSelector(match_labels=dict(sorted(pod_labels.items()))) if pod_labels else None,
    )


def _ip_block(cidr: str, excepts: list[str] | None = None) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=cidr, except_=sorted(excepts) if excepts else None))


class PlatformNetworkPolicies(Component):
    """Outputs: ``policies`` (endpoint key -> KubeNetworkPolicy), ``flows`` (the flows in effect)."""

    def __init__(self, scope: Scope, id: str, *, props: PlatformNetworkPoliciesProps) -> None:
        super().__init__(scope, id)
        rel, net = props.release, props.values
        self.props = props
        self.endpoints = {e.key: e for e in props.endpoints}
        egress = net.default_deny_egress
        self.flows = [f for f in FLOWS if self._in_effect(f)]

        api_object(
            k8s.KubeNetworkPolicy,
            self,
            "DefaultDeny",
            metadata=rel.metadata(rel.name("default-deny"), "default-deny", "network"),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(),
                policy_types=["Ingress", "Egress"] if egress else ["Ingress"],
            ),
        )
        self.policies: dict[str, KubeObject] = {}
        for key in sorted(self.endpoints):
            ep = self.endpoints[key]
            ingress = [self._ingress_rule(f) for f in self.flows if f.destination == key]
            egress_rules = [r for f in self.flows if f.source == key for r in self._egress_rules(f)] if egress else []
            types = (["Ingress"] if ingress else []) + (["Egress"] if egress_rules else [])
            if not types:
                continue
            self.policies[key] = api_object(
                k8s.KubeNetworkPolicy,
                self,
                f"Allow-{key}",
                metadata=rel.metadata(rel.name(key), ep.app, ep.component),
                spec=k8s.NetworkPolicySpec(
                    pod_selector=k8s.LabelSelector(match_labels=rel.selector(ep.app, ep.component)),
                    policy_types=types,
                    ingress=ingress or None,
                    egress=egress_rules or None,
                ),
            )

    # --- which flows apply ---------------------------------------------------------------------

    def _in_effect(self, flow: Flow) -> bool:
        src_ok = flow.source in self.endpoints or (
            flow.source in EXTERNAL_SOURCES and (flow.source != AGENTS or bool(self._agent_peers()))
        )
        if flow.destination in EXTERNAL_DESTINATIONS:
            dst_ok = flow.destination != INTERNET or self.props.internet
            return src_ok and dst_ok and flow.source in self.endpoints
        dst = self.endpoints.get(flow.destination)
        if dst is None or not src_ok:
            return False
        if flow.requires and flow.requires not in dst.ports:
            return False
        return any(p in dst.ports for p in flow.ports)

    def _dst_ports(self, flow: Flow) -> list[int]:
        dst = self.endpoints[flow.destination]
        return [dst.ports[p] for p in flow.ports if p in dst.ports]

    # --- peers ---------------------------------------------------------------------------------

    def _pods(self, key: str) -> k8s.NetworkPolicyPeer:
        ep = self.endpoints[key]
        return k8s.NetworkPolicyPeer(
            pod_selector=k8s.LabelSelector(match_labels=self.props.release.selector(ep.app, ep.component))
        )

    def _agent_peers(self) -> list[k8s.NetworkPolicyPeer]:
        peers = []
        if self.props.fleet_namespace_labels:
            peers.append(
                k8s.NetworkPolicyPeer(
                    namespace_selector=k8s.LabelSelector(
                        match_labels=dict(sorted(self.props.fleet_namespace_labels.items()))
                    )
                )
            )
        peers += [_namespace(ns) for ns in sorted(set(self.props.values.agent_namespaces))]
        return peers

    def _source_peers(self, source: str) -> list[k8s.NetworkPolicyPeer]:
        net = self.props.values
        if source == GATEWAY:
            return [_namespace(net.gateway_namespace)]
        if source == PROMETHEUS:
            return [_namespace(net.prometheus_namespace)]
        if source == AGENTS:
            return self._agent_peers()
        return [self._pods(source)]

    def _ingress_rule(self, flow: Flow) -> k8s.NetworkPolicyIngressRule:
        return k8s.NetworkPolicyIngressRule(from_=self._source_peers(flow.source), ports=_ports(self._dst_ports(flow)))

    def _egress_rules(self, flow: Flow) -> list[k8s.NetworkPolicyEgressRule]:
        net = self.props.values
        dst = flow.destination
        if dst == DNS:
            dns = _namespace(net.dns.namespace, net.dns.pod_labels)
            return [k8s.NetworkPolicyEgressRule(to=[dns], ports=_ports([net.dns.port], "UDP") + _ports([net.dns.port]))]
        if dst == DATABASE:
            db = net.database
            peers = ([_namespace(db.namespace)] if db.namespace else []) + ([_ip_block(db.cidr)] if db.cidr else [])
            return [k8s.NetworkPolicyEgressRule(to=peers, ports=_ports([db.port]))]
        if dst == KUBERNETES_API:
            api = net.kubernetes_api
            return [k8s.NetworkPolicyEgressRule(to=[_ip_block(api.cidr)], ports=_ports(api.ports))]
        if dst == PROVISIONING_API:
            _host, namespace, port = http_target(self.props.provisioning_api_url)
            peer = _namespace(namespace) if namespace else _ip_block(net.internet.cidr, net.internet.except_cidrs)
            return [k8s.NetworkPolicyEgressRule(to=[peer], ports=_ports([port]))]
        if dst == INTERNET:
            peer = _ip_block(net.internet.cidr, net.internet.except_cidrs)
            return [k8s.NetworkPolicyEgressRule(to=[peer], ports=_ports(net.internet.ports))]
        return [k8s.NetworkPolicyEgressRule(to=[self._pods(dst)], ports=_ports(self._dst_ports(flow)))]
