"""Isolation: NetworkPolicies of the release namespace, Pod Security labels, agent fleet namespaces and
the cluster-wide admission policies (platform-facts §11)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from tiers.models.base import (
    Cpu,
    DnsLabel,
    Memory,
    Model,
    rule,
)
from tiers.quantity import cpu_millis, mem_mib

#: ``ipaddress.ip_network`` (strict) of a CIDR: immutable, and the fleet repeats the same few ranges.
_network = lru_cache(maxsize=1024)(ipaddress.ip_network)


def _check_cidr(value: str) -> str:
    try:
        _network(value)
    except ValueError:
        raise ValueError(f"must be a CIDR such as 10.0.0.0/8 (host bits zero), got {value!r}") from None
    return value


Cidr = Annotated[str, AfterValidator(_check_cidr)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]

#: Private ranges (RFC 1918): "the internet" for the API's outbound HTTPS excludes them, so that rule
#: never opens a path to pods or nodes inside the cluster.
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def http_target(url: str) -> tuple[str, str | None, int]:
    """(host, in-cluster namespace or None, port) of an http(s) URL.

    ``svc.ns.svc`` and ``svc.ns.svc.cluster.local`` are in-cluster Services of namespace ``ns``; any
    other host with a dot is taken as outside the cluster (write in-cluster Services in full). A bare
    ``svc`` names no namespace and is refused. Raises ValueError.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"has an invalid port, got {url!r}") from None
    host = parts.hostname
    labels = host.split(".")
    if len(labels) >= 3 and ".".join(labels[2:]) in ("svc", "svc.cluster.local"):
        return host, labels[1], port
    if len(labels) == 1:
        raise ValueError(
            f"must be a public host or an in-cluster name such as svc.namespace.svc.cluster.local "
            f"(so that egress can be allowed), got {url!r}"
        )
    return host, None, port


class NetworkDns(Model):
    """Where cluster DNS runs (egress on 53/UDP and 53/TCP for the pods that resolve names)."""

    namespace: DnsLabel = Field(default="kube-system", description="Namespace of the DNS pods. Default: kube-system.")
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"},
        description="Labels of the DNS pods ({} = every pod of the namespace). Default: {k8s-app: kube-dns} "
        "(CoreDNS on kubeadm, EKS, GKE and AKS).",
    )
    port: PortNumber = Field(default=53, description="DNS port (UDP and TCP). Default: 53.")


class NetworkDatabase(Model):
    """Where the database runs: a namespace selector, a CIDR, or both (either is allowed)."""

    namespace: DnsLabel | None = Field(
        default="iotistica-cnpg-cl01",
        description="Namespace of the CNPG cluster (egress to every pod of it on `port`). Default: "
        "iotistica-cnpg-cl01 (platform-facts §7). null to use only `cidr`.",
    )
    cidr: Cidr | None = Field(
        default=None, description="CIDR of a managed database outside the cluster. Default: none."
    )
    port: PortNumber = Field(default=5432, description="PostgreSQL port. Default: 5432.")

    @model_validator(mode="after")
    def _somewhere(self) -> NetworkDatabase:
        if self.namespace is None and self.cidr is None:
            raise rule("namespace", "set a namespace or a cidr: the API and ingestion must reach the database")
        return self


class NetworkKubernetesApi(Model):
    """The Kubernetes API server as seen by pods (after the kubernetes Service's DNAT)."""

    cidr: Cidr = Field(
        default="0.0.0.0/0",
        description="CIDR of the API server endpoints. Narrow it to the control plane's addresses where known. "
        "Default: 0.0.0.0/0 (only on `ports`, only for pods that talk to the API server).",
    )
    ports: list[PortNumber] = Field(
        default_factory=lambda: [443, 6443],
        description="API server ports (443 on managed clusters, 6443 on kubeadm). Default: [443, 6443].",
    )


class NetworkInternet(Model):
    """Outbound HTTPS to the internet: the API's OpenAI calls (api.aiProvider openai) and its Auth0 tenant
    (dashboard.config.auth0Domain: JWKS and /userinfo)."""

    cidr: Cidr = Field(default="0.0.0.0/0", description="Destination CIDR. Default: 0.0.0.0/0.")
    except_cidrs: list[Cidr] = Field(
        default_factory=lambda: list(PRIVATE_CIDRS),
        description="Excluded from `cidr`, so this rule never reaches inside the cluster. "
        "Default: the RFC 1918 ranges.",
    )
    ports: list[PortNumber] = Field(default_factory=lambda: [443], description="Ports. Default: [443].")

    @model_validator(mode="after")
    def _except_inside(self) -> NetworkInternet:
        outer = _network(self.cidr)
        for i, c in enumerate(self.except_cidrs):
            inner = _network(c)
            if inner.version != outer.version or not inner.subnet_of(outer):  # type: ignore[arg-type]
                raise rule(f"exceptCidrs.{i}", f"must lie inside cidr ({self.cidr}), got {c}")
        return self


class Network(Model):
    """NetworkPolicies of the release namespace: default deny, then exactly the platform's flows
    (constructs/isolation/network_policies.py holds the flow table)."""

    enabled: bool = Field(default=True, description="Emit the release namespace's NetworkPolicies. Default: true.")
    default_deny_egress: bool = Field(
        default=True,
        description="Deny egress too, then allow each pod exactly what it needs (DNS, database, Kubernetes API, "
        "internet HTTPS, in-namespace peers). false = ingress isolation only. Default: true.",
    )
    gateway_namespace: DnsLabel = Field(
        default="envoy-gateway-system",
        description="Namespace of the Gateway's proxy pods (Envoy Gateway runs them in its controller's "
        "namespace). They may reach the API, dashboard, Node-RED and broker. Default: envoy-gateway-system.",
    )
    prometheus_namespace: DnsLabel = Field(
        default="monitoring",
        description="Namespace of Prometheus: it may scrape the metrics ports. Default: monitoring.",
    )
    dns: NetworkDns = Field(default_factory=NetworkDns, description="Cluster DNS.")
    database: NetworkDatabase = Field(default_factory=NetworkDatabase, description="The database.")
    kubernetes_api: NetworkKubernetesApi = Field(
        default_factory=NetworkKubernetesApi, description="The Kubernetes API server."
    )
    internet: NetworkInternet = Field(default_factory=NetworkInternet, description="Outbound HTTPS.")
    agent_namespaces: list[DnsLabel] = Field(
        default_factory=lambda: ["virtual-agents"],
        description="Extra namespaces whose pods (agents the API deploys itself) may reach the API and the "
        "broker; this release's fleet namespaces always may. Default: [virtual-agents] (the API's "
        "VIRTUAL_AGENT_NAMESPACE default).",
    )


class PodSecurity(Model):
    """Pod Security Admission labels of the release namespace (every pod meets `restricted`)."""

    level: Literal["restricted", "baseline"] = Field(
        default="restricted",
        description="pod-security.kubernetes.io/{enforce,audit,warn} of the release namespace. Default: restricted.",
    )
    manage_namespace: bool = Field(
        default=True,
        description="Emit the release Namespace object (labels, PSS labels) into the cluster's platform folder "
        "dist/cluster/<cluster.name>/ (tenant folders hold no cluster-scoped object; the platform Application "
        "creates the namespace before the tenant's Application syncs into it). When false, the namespace must "
        "exist before the first sync: the tenant's Application does not create it. Default: true.",
    )


class FleetQuota(Model):
    """ResourceQuota of a fleet namespace: the seed's per-agent-slot allocation."""

    cpu_request_per_agent: Cpu = Field(default="300m", description="requests.cpu per agent slot. Default: 300m (seed).")
    memory_request_per_agent: Memory = Field(
        default="480Mi", description="requests.memory per agent slot. Default: 480Mi (seed)."
    )
    cpu_limit: Cpu = Field(default="2000m", description="limits.cpu, shared by the whole fleet. Default: 2000m (seed).")
    memory_limit: Memory = Field(
        default="4Gi", description="limits.memory, shared by the whole fleet. Default: 4Gi (seed)."
    )
    secrets_per_agent: int = Field(default=5, ge=1, description="secrets = this x maxAgents. Default: 5 (facts §11).")
    config_maps_per_agent: int = Field(
        default=2, ge=1, description="configmaps = this x maxAgents. Default: 2 (facts §11)."
    )


class FleetLimitRange(Model):
    """LimitRange of a fleet namespace (container defaults for pods that set none)."""

    default_cpu: Cpu = Field(default="100m", description="Container default limit cpu. Default: 100m.")
    default_memory: Memory = Field(default="256Mi", description="Container default limit memory. Default: 256Mi.")
    default_request_cpu: Cpu = Field(default="50m", description="Container default request cpu. Default: 50m.")
    default_request_memory: Memory = Field(
        default="64Mi", description="Container default request memory. Default: 64Mi."
    )
    max_cpu: Cpu = Field(default="1000m", description="Container max cpu. Default: 1000m.")
    max_memory: Memory = Field(default="1Gi", description="Container max memory. Default: 1Gi.")
    min_cpu: Cpu = Field(default="25m", description="Container min cpu. Default: 25m.")
    min_memory: Memory = Field(default="32Mi", description="Container min memory. Default: 32Mi.")
    pod_max_cpu: Cpu = Field(default="800m", description="Pod max cpu. Default: 800m.")
    pod_max_memory: Memory = Field(default="2Gi", description="Pod max memory. Default: 2Gi.")

    @model_validator(mode="after")
    def _ordered(self) -> FleetLimitRange:
        # The API server refuses a LimitRange unless min <= defaultRequest <= default <= max.
        for kind, conv in (("cpu", cpu_millis), ("memory", mem_mib)):
            cap = kind.capitalize()
            chain = [
                (f"min{cap}", getattr(self, f"min_{kind}")),
                (f"defaultRequest{cap}", getattr(self, f"default_request_{kind}")),
                (f"default{cap}", getattr(self, f"default_{kind}")),
                (f"max{cap}", getattr(self, f"max_{kind}")),
            ]
            for (lo_key, lo), (hi_key, hi) in zip(chain, chain[1:], strict=False):
                if conv(hi) < conv(lo):
                    raise rule(hi_key, f"must be >= {lo_key} ({lo}), got {hi}")
        return self


class FleetNetworkPolicy(Model):
    enabled: bool = Field(default=True, description="Isolate the fleet namespace with a NetworkPolicy. Default: true.")
    protocol_ports: list[PortNumber] = Field(
        default_factory=lambda: [80, 443, 502, 4840],
        description="TCP ports agents use towards devices and simulators (HTTP, HTTPS, Modbus 502, OPC UA "
        "4840), allowed between the fleet's own pods. Default: [80, 443, 502, 4840] (the old chart's).",
    )


class Fleet(Model):
    """One fleet namespace `fleet-{release namespace}-{name}`."""

    name: DnsLabel = Field(description="Fleet name; the namespace is fleet-{namespace}-{name}. Required.")
    max_agents: int = Field(ge=1, le=1000, description="Agent slots: the quota scales with it. Required.")
    max_devices: int | None = Field(
        default=None, ge=1, description="Label iotistica.com/max-devices. Default: maxAgents (one device per slot)."
    )
    fleet_type: DnsLabel = Field(default="virtual", description="Label iotistica.com/fleet-type. Default: virtual.")
    quota_policy: DnsLabel = Field(
        default="per-agent-slot", description="Annotation iotistica.com/quota-policy. Default: per-agent-slot."
    )
    description: str | None = Field(
        default=None, description="Annotation iotistica.com/description. Default: generated."
    )
    quota: FleetQuota = Field(default_factory=FleetQuota, description="ResourceQuota overrides.")
    limit_range: FleetLimitRange = Field(default_factory=FleetLimitRange, description="LimitRange overrides.")
    network_policy: FleetNetworkPolicy = Field(default_factory=FleetNetworkPolicy, description="NetworkPolicy.")

    @property
    def devices(self) -> int:
        return self.max_devices if self.max_devices is not None else self.max_agents


class FleetNamespaces(Model):
    """Namespaces for agent fleets (seed "Fleet Namespaces"), each with quota, limits, RBAC, policy."""

    enabled: bool = Field(default=False, description="Provision the fleets below. Default: false.")
    pod_security_enforce: Literal["baseline", "restricted"] = Field(
        default="baseline",
        description="pod-security.kubernetes.io/enforce of fleet namespaces (audit and warn are always "
        "restricted). The API's agent Deployments set pod-level security only (no container "
        "allowPrivilegeEscalation=false / drop ALL; platform-facts §11), which restricted would reject. "
        "Default: baseline.",
    )
    virtual_agent_manager: bool = Field(
        default=True,
        description="Bind the API's ServiceAccount cluster-wide to ClusterRole iotistic-virtual-agent-manager "
        "(namespaces get/create/patch, quotas and RoleBindings in the namespaces it creates). Without it the "
        "API's own fleet creation fails. Default: true.",
    )
    fleets: list[Fleet] = Field(default_factory=list, description="The fleets. Default: [].")

    @model_validator(mode="after")
    def _fleet_rules(self) -> FleetNamespaces:
        if self.enabled and not self.fleets:
            raise rule("fleets", "must list at least one fleet when enabled is true")
        seen: dict[str, int] = {}
        for i, fleet in enumerate(self.fleets):
            if fleet.name in seen:
                raise rule(f"fleets.{i}.name", f"{fleet.name!r} is already used by fleets.{seen[fleet.name]}")
            seen[fleet.name] = i
        return self


AdmissionPolicyVersion = Literal["v1", "v1beta1", "none"]


class Cluster(Model):
    """The cluster this environment runs on, and the cluster-wide objects of its platform folder
    dist/cluster/<name>/ (synced by the platform Application iotistica-cluster-<name>)."""

    name: DnsLabel = Field(
        default="in-cluster",
        description="The cluster, as fleet.yaml names it in `clusters` (docs/fleet.md): it fills argocd."
        "destinationServer, edge.gateway, edge.certificate.issuerName and admissionPolicies. Its platform folder "
        "is dist/cluster/<name>/, synced by the platform Application iotistica-cluster-<name>. Default: the only "
        "cluster of fleet.yaml, else in-cluster (Argo CD's name for the cluster it runs in).",
    )
    admission_policies: AdmissionPolicyVersion = Field(
        default="v1",
        description="API version of the ValidatingAdmissionPolicies that confine the API's cluster-wide rights "
        "(dist/cluster/<name>/): v1 (Kubernetes >= 1.30), v1beta1 (1.28-1.29 with the ValidatingAdmissionPolicy "
        "feature gate and admissionregistration.k8s.io/v1beta1 runtime-config), or none (the cluster enforces "
        "the same elsewhere; validate and explain then warn that the API's grant is cluster-wide). Must be the "
        "same in every environment on the cluster (fleet.yaml derives it from the cluster's Kubernetes minor). "
        "Default: v1.",
    )
