"""FleetNamespace: an isolated namespace for one agent fleet (seed "Fleet Namespaces", platform-facts §11).

For each ``fleetNamespaces.fleets[]`` entry, when ``fleetNamespaces.enabled``:

- ``Namespace/fleet-{release namespace}-{name}`` (:class:`FleetNamespaceObject`, in the cluster's platform
  folder dist/cluster/<cluster>/; the model checks it is a DNS-1123 label of at most 63 characters).
  Labels: the platform's set plus the old chart's fleet labels (``iotistica.com/fleet-namespace: "true"``,
  ``customer-id``, ``max-agents``, ``max-devices``, ``fleet-type``), the tenant label
  ``iotistica.com/tenant: <release namespace>`` the API's admission guardrail keys on
  (constructs/isolation/release_namespace.py) and Pod Security Admission:
  ``enforce`` = ``fleetNamespaces.podSecurityEnforce`` (default ``baseline``: the API's agent
  Deployments set pod-level security only, which ``restricted`` would reject), ``audit``/``warn`` =
  ``restricted``. Where the old chart's ``managed-by``/``part-of``
  values collide with the platform's label set, the platform's set wins (``cdk8s``/``iotistica``).
  Annotations ``iotistica.com/{description,created-by,quota-policy}``; ``Prune=false`` because agent
  data lives here and the platform only ever soft-deletes fleets.
- ``ResourceQuota`` from the seed's per-agent-slot allocation: requests ``maxAgents x 300m`` CPU and
  ``maxAgents x 480Mi`` memory; limits ``2000m`` and ``4Gi`` shared by the fleet; pods, claims and
  services = maxAgents, secrets = 5 x, configmaps = 2 x maxAgents.
- ``LimitRange``: container default 100m/256Mi, defaultRequest 50m/64Mi, max 1000m/1Gi, min 25m/32Mi;
  pod max 800m/2Gi.
- ``RoleBinding`` granting ServiceAccount ``iotistic-api`` of the release namespace the ClusterRole
  ``iotistic-fleet-namespace-manager`` (dist/cluster/<cluster>/).
- Optional ``NetworkPolicy`` (on by default), all pods, Ingress + Egress:
  - ingress from the release namespace (any pod), and between the fleet's own pods on the protocol
    ports (agents and the simulators the API deploys beside them);
  - egress to the release's broker pods (mqtt, mqtts) and API pods (3002) through a
    ``namespaceSelector`` for the release namespace. The old chart's rule used ``podSelector: {}``
    alone, which matches only the fleet's own namespace, so agents could never reach the broker;
  - egress on the protocol ports (80, 443, Modbus 502, OPC UA 4840) between the fleet's own pods;
  - DNS to ``network.dns``.

Objects inside the namespace are all named ``{release}-fleet-{name}`` (unique per kind).
"""

from __future__ import annotations

from typing import Literal

from cdk8s_plus_27 import k8s

from constructs.api_objects import Component, Scope, api_object
from constructs.isolation.cluster_rbac import FLEET_NAMESPACE_MANAGER, RBAC_GROUP
from constructs.isolation.network_policies import NS_NAME_LABEL, Endpoint
from constructs.isolation.release_namespace import (
    ARGOCD_SYNC_OPTIONS,
    NO_PRUNE,
    TENANT_LABEL,
    cluster_scoped,
    pss_labels,
)
from constructs.platform import Props, Release, int_or_string, quantity
from tiers.models import Fleet, NetworkDns
from tiers.quantity import cpu_millis, mem_mib

APP = "fleet"
FLEET_NAMESPACE_LABEL = "iotistica.com/fleet-namespace"
CUSTOMER_ID_LABEL = "iotistica.com/customer-id"


def fleet_selector_labels(release_namespace: str) -> dict[str, str]:
    """Labels that select every fleet namespace of one release (used by the release's policies)."""
    return {CUSTOMER_ID_LABEL: release_namespace, FLEET_NAMESPACE_LABEL: "true"}


def _times(n: int, value: str, unit: Literal["cpu", "memory"]) -> str:
    if unit == "cpu":
        return f"{round(n * cpu_millis(value))}m"
    mib = n * mem_mib(value)
    return f"{int(mib)}Mi" if mib == int(mib) else f"{round(mib * 1024)}Ki"


class FleetNamespaceProps(Props):
    release: Release
    fleet: Fleet
    namespace: str
    object_name: str
    service_account: str
    broker: Endpoint
    api: Endpoint
    dns: NetworkDns


class FleetNamespaceObjectProps(Props):
    release: Release
    fleet: Fleet
    namespace: str
    enforce: Literal["baseline", "restricted"]


class FleetNamespaceObject(Component):
    """The ``Namespace`` of one fleet: cluster-scoped, so it lives in the cluster's platform folder
    (constructs/shared_charts.py), never in the tenant's folder. Outputs: ``namespace``."""

    def __init__(self, scope: Scope, id: str, *, props: FleetNamespaceObjectProps) -> None:
        super().__init__(scope, id)
        rel, fleet = props.release, props.fleet
        self.namespace = props.namespace
        fleet_labels = {
            **fleet_selector_labels(rel.namespace),
            TENANT_LABEL: rel.namespace,
            "iotistica.com/fleet-name": fleet.name,
            "iotistica.com/fleet-type": fleet.fleet_type,
            "iotistica.com/max-agents": str(fleet.max_agents),
            "iotistica.com/max-devices": str(fleet.devices),
            **pss_labels(props.enforce),
        }
        description = (
            fleet.description or f"Fleet {fleet.name} of release {rel.release}: {fleet.max_agents} agent slots"
        )
        cluster_scoped(
            api_object(
                k8s.KubeNamespace,
                self,
                "Namespace",
                metadata=k8s.ObjectMeta(
                    name=self.namespace,
                    labels=dict(sorted(rel.labels(APP, APP, fleet_labels).items())),
                    annotations={
                        ARGOCD_SYNC_OPTIONS: NO_PRUNE,
                        "iotistica.com/created-by": "iotistica-k8s",
                        "iotistica.com/description": description,
                        "iotistica.com/quota-policy": fleet.quota_policy,
                    },
                ),
            )
        )


class FleetNamespace(Component):
    """What one fleet puts inside its namespace (the Namespace itself: :class:`FleetNamespaceObject`).
    Outputs: ``namespace``, ``name`` (of the objects inside)."""

    def __init__(self, scope: Scope, id: str, *, props: FleetNamespaceProps) -> None:
        super().__init__(scope, id)
        rel, fleet = props.release, props.fleet
        self.namespace, self.name = props.namespace, props.object_name
        self._quota(rel, fleet)
        self._limit_range(rel, fleet)
        api_object(
            k8s.KubeRoleBinding,
            self,
            "RoleBinding",
            metadata=self._meta(rel),
            role_ref=k8s.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=FLEET_NAMESPACE_MANAGER),
            subjects=[k8s.Subject(kind="ServiceAccount", name=props.service_account, namespace=rel.namespace)],
        )
        if fleet.network_policy.enabled:
            self._network_policy(props)

    def _meta(self, rel: Release) -> k8s.ObjectMeta:
        return k8s.ObjectMeta(name=self.name, namespace=self.namespace, labels=rel.labels(APP, APP))

    def _quota(self, rel: Release, fleet: Fleet) -> None:
        q, n = fleet.quota, fleet.max_agents
        hard = {
            "configmaps": str(q.config_maps_per_agent * n),
            "limits.cpu": q.cpu_limit,
            "limits.memory": q.memory_limit,
            "persistentvolumeclaims": str(n),
            "pods": str(n),
            "requests.cpu": _times(n, q.cpu_request_per_agent, "cpu"),
            "requests.memory": _times(n, q.memory_request_per_agent, "memory"),
            "secrets": str(q.secrets_per_agent * n),
            "services": str(n),
        }
        api_object(
            k8s.KubeResourceQuota,
            self,
            "Quota",
            metadata=self._meta(rel),
            spec=k8s.ResourceQuotaSpec(hard={k: quantity(v) for k, v in sorted(hard.items())}),
        )

    def _limit_range(self, rel: Release, fleet: Fleet) -> None:
        lr = fleet.limit_range

        def pair(cpu: str, memory: str) -> dict[str, k8s.Quantity]:
            return {"cpu": quantity(cpu), "memory": quantity(memory)}

        api_object(
            k8s.KubeLimitRange,
            self,
            "Limits",
            metadata=self._meta(rel),
            spec=k8s.LimitRangeSpec(
                limits=[
                    k8s.LimitRangeItem(
                        type="Container",
                        default=pair(lr.default_cpu, lr.default_memory),
                        default_request=pair(lr.default_request_cpu, lr.default_request_memory),
                        max=pair(lr.max_cpu, lr.max_memory),
                        min=pair(lr.min_cpu, lr.min_memory),
                    ),
                    k8s.LimitRangeItem(type="Pod", max=pair(lr.pod_max_cpu, lr.pod_max_memory)),
                ]
            ),
        )

    def _network_policy(self, props: FleetNamespaceProps) -> None:
        rel = props.release
        release_ns = k8s.LabelSelector(match_labels={NS_NAME_LABEL: rel.namespace})
        own_pods = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector())
        protocol = [
            k8s.NetworkPolicyPort(port=int_or_string(p), protocol="TCP")
            for p in sorted(set(props.fleet.network_policy.protocol_ports))
        ]

        def release_pods(ep: Endpoint, names: tuple[str, ...]) -> k8s.NetworkPolicyEgressRule:
            return k8s.NetworkPolicyEgressRule(
                to=[
                    k8s.NetworkPolicyPeer(
                        namespace_selector=release_ns,
                        pod_selector=k8s.LabelSelector(match_labels=rel.selector(ep.app, ep.component)),
                    )
                ],
                ports=[
                    k8s.NetworkPolicyPort(port=int_or_string(port), protocol="TCP")
                    for port in sorted(ep.ports[n] for n in names if n in ep.ports)
                ],
            )

        dns = props.dns
        dns_peer = k8s.NetworkPolicyPeer(
            namespace_selector=k8s.LabelSelector(match_labels={NS_NAME_LABEL: dns.namespace}),
            pod_selector=k8s.LabelSelector(match_labels=dict(sorted(dns.pod_labels.items())))
            if dns.pod_labels
            else None,
        )
        api_object(
            k8s.KubeNetworkPolicy,
            self,
            "NetworkPolicy",
            metadata=self._meta(rel),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.NetworkPolicyIngressRule(from_=[k8s.NetworkPolicyPeer(namespace_selector=release_ns)]),
                    k8s.NetworkPolicyIngressRule(from_=[own_pods], ports=protocol),
                ],
                egress=[
                    release_pods(props.broker, ("mqtt", "mqtts")),
                    release_pods(props.api, ("http",)),
                    k8s.NetworkPolicyEgressRule(to=[own_pods], ports=protocol),
                    k8s.NetworkPolicyEgressRule(
                        to=[dns_peer],
                        ports=[
                            k8s.NetworkPolicyPort(port=int_or_string(dns.port), protocol="UDP"),
                            k8s.NetworkPolicyPort(port=int_or_string(dns.port), protocol="TCP"),
                        ],
                    ),
                ],
            ),
        )
