"""The fleet file (``fleet.yaml`` beside ``environments/``): what the tenants share, declared once.

The Git repository and revision ``dist/`` is synced from, the Argo CD namespace, the clusters (their
Argo CD destination, Kubernetes minor, Gateway, ClusterIssuer, admission policy version), the database
servers (host, port, ``max_connections``, the cluster they serve) and fleet-wide defaults (image tags of
every tenant). The loader (tiers/fleet_file.py) reads it once per run and lays it between the tier
preset and the environment file. docs/fleet.md describes it.

An absent file is :data:`DEFAULT_FLEET`: one cluster, ``in-cluster``, with today's defaults, and no
declared database server (each environment then states its server's ``maxConnections``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tiers import grammar
from tiers.models.base import _TAG, DnsLabel, DnsName, Model, rule
from tiers.models.isolation import AdmissionPolicyVersion, PortNumber

#: The image components a fleet-wide default may set, as ``<component>.image`` of an environment.
ImageComponent = Literal["api", "ingestion", "dashboard", "nodered", "redis", "mosquitto"]
IMAGE_COMPONENTS: tuple[ImageComponent, ...] = ("api", "ingestion", "dashboard", "nodered", "redis", "mosquitto")
#: The cluster an environment runs on when it names none and the fleet file has no single cluster.
DEFAULT_CLUSTER = "in-cluster"
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"


def admission_for_minor(minor: int) -> AdmissionPolicyVersion:
    """The admission policy version a Kubernetes 1.<minor> serves (docs/kubernetes-versions.md)."""
    return "v1" if minor >= 30 else "v1beta1" if minor >= 28 else "none"


class FleetGit(Model):
    """The Git repository Argo CD syncs ``dist/`` from."""

    repo_url: str = Field(
        default="https://github.com/Iotistica/iotistica-k8s.git",
        pattern=r"^(https://|ssh://|git@)\S+$",
        description="Git repository holding dist/: every environment's argocd.repoUrl. "
        "Default: https://github.com/Iotistica/iotistica-k8s.git.",
    )
    target_revision: str = Field(
        default="main",
        pattern=r"^[A-Za-z0-9._/-]{1,200}$",
        description="Branch, tag or commit: every environment's argocd.targetRevision. Default: main.",
    )


class FleetArgoCd(Model):
    """Where Argo CD runs."""

    namespace: DnsLabel = Field(
        default="argocd",
        description="Namespace of the Application objects: every environment's argocd.namespace. Default: argocd.",
    )


class FleetGateway(Model):
    """The cluster's shared Gateway every tenant's routes attach to."""

    name: DnsName = Field(default="iotistica-gateway", description="Gateway name. Default: iotistica-gateway.")
    namespace: DnsLabel = Field(
        default="envoy-gateway-system", description="Gateway namespace. Default: envoy-gateway-system."
    )


class FleetCluster(Model):
    """One Kubernetes cluster tenants run on (an Argo CD destination)."""

    name: DnsLabel = Field(description="The cluster's name, as environments name it (`cluster.name`). Required.")
    destination_server: str = Field(
        default=IN_CLUSTER_SERVER,
        pattern=r"^https://\S+$",
        description="Its API server as Argo CD knows it (the Application's destination.server): every tenant's "
        "argocd.destinationServer. One cluster, one destination. Default: https://kubernetes.default.svc "
        "(the cluster Argo CD runs in).",
    )
    kubernetes_minor: int | None = Field(
        default=None,
        ge=20,
        le=99,
        description="Its Kubernetes minor version (31 for 1.31): the default of admissionPolicies, and a "
        "check of it (docs/kubernetes-versions.md). Default: unknown (admissionPolicies then defaults to v1).",
    )
    admission_policies: AdmissionPolicyVersion | None = Field(
        default=None,
        description="API version of its ValidatingAdmissionPolicies: every tenant's cluster.admissionPolicies. "
        "Default: from kubernetesMinor (v1 from 1.30, v1beta1 on 1.28-1.29, none before), v1 when unknown.",
    )
    gateway: FleetGateway = Field(
        default_factory=FleetGateway,
        description="The shared Gateway: the default of every tenant's edge.gateway.name and namespace.",
    )
    cluster_issuer: DnsName = Field(
        default="letsencrypt-production",
        description="The cert-manager ClusterIssuer: the default of every tenant's edge.certificate.issuerName "
        "(issuerKind ClusterIssuer). Default: letsencrypt-production (seed).",
    )

    @property
    def admission(self) -> AdmissionPolicyVersion:
        """admissionPolicies, as set or derived from the minor."""
        if self.admission_policies is not None:
            return self.admission_policies
        return admission_for_minor(self.kubernetes_minor) if self.kubernetes_minor is not None else "v1"

    @model_validator(mode="after")
    def _fits_minor(self) -> FleetCluster:
        minor, version = self.kubernetes_minor, self.admission_policies
        if minor is not None and version is not None and version != "none":
            lowest = 30 if version == "v1" else 28
            if minor < lowest:
                raise rule(
                    "admissionPolicies",
                    f"{version} is served from Kubernetes 1.{lowest}, this cluster runs 1.{minor}; use "
                    f"{admission_for_minor(minor)} (docs/kubernetes-versions.md)",
                )
        return self


class DatabaseServer(Model):
    """One PostgreSQL/TimescaleDB server tenants share (a CNPG Cluster or a managed server)."""

    name: DnsLabel = Field(description="The server's name, as environments name it (`database.server`). Required.")
    host: DnsName | None = Field(
        default=None,
        description="Its DNS name: DB_HOST of its tenants (without a pooler). Default: none (each tenant's "
        "sql-credentials Secret holds the host, key `server`).",
    )
    port: PortNumber = Field(
        default=5432,
        description="Its PostgreSQL port: the egress port of its tenants' NetworkPolicies "
        "(network.database.port), and DB_PORT when `host` is set. Default: 5432.",
    )
    max_connections: int = Field(
        ge=1,
        le=2147483647,
        description="Its max_connections: every tenant's database.maxConnections. Its tenants' connection "
        "budgets together must fit in it, less the superuser's reserve. Required.",
    )
    cluster: DnsLabel | None = Field(
        default=None,
        description="The cluster whose tenants it serves (a name of `clusters`). Default: the only cluster.",
    )


class ImageDefault(Model):
    """A fleet-wide image default for one component (the environment file still wins)."""

    repository: str | None = Field(default=None, description="Image repository. Default: the model's.")
    tag: str | None = Field(default=None, description="Image tag (`latest` is refused). Default: the model's.")

    @model_validator(mode="after")
    def _pinned(self) -> ImageDefault:
        if self.tag is not None and (self.tag == "latest" or not _TAG.match(self.tag)):
            raise rule("tag", f"must be a pinned tag (not 'latest'), got {self.tag!r}")
        if self.repository is not None:
            try:
                grammar.image_repository(self.repository)
            except ValueError as exc:
                raise rule("repository", str(exc)) from None
        return self


class FleetImages(Model):
    """Image defaults of every tenant, by component."""

    api: ImageDefault | None = Field(default=None, description="Every tenant's api.image. Default: the model's.")
    ingestion: ImageDefault | None = Field(
        default=None, description="Every tenant's ingestion.image. Default: the model's."
    )
    dashboard: ImageDefault | None = Field(
        default=None, description="Every tenant's dashboard.image. Default: the model's."
    )
    nodered: ImageDefault | None = Field(
        default=None, description="Every tenant's nodered.image. Default: the model's."
    )
    redis: ImageDefault | None = Field(default=None, description="Every tenant's redis.image. Default: the model's.")
    mosquitto: ImageDefault | None = Field(
        default=None, description="Every tenant's mosquitto.image. Default: the model's."
    )


class FleetDefaults(Model):
    """Fleet-wide settings of every tenant, between the tier preset and the environment file."""

    images: FleetImages = Field(default_factory=FleetImages, description="Image defaults by component.")


class FleetSettings(Model):
    """The fleet file: what every tenant shares, declared once."""

    git: FleetGit = Field(default_factory=FleetGit, description="The Git repository dist/ is synced from.")
    argocd: FleetArgoCd = Field(default_factory=FleetArgoCd, description="Where Argo CD runs.")
    clusters: list[FleetCluster] = Field(
        default_factory=lambda: [FleetCluster(name=DEFAULT_CLUSTER)],
        min_length=1,
        description="The clusters tenants run on. Default: one, in-cluster (the cluster Argo CD runs in).",
    )
    database_servers: list[DatabaseServer] = Field(
        default_factory=list,
        description="The database servers tenants share. Default: none (each environment states its server's "
        "maxConnections).",
    )
    defaults: FleetDefaults = Field(
        default_factory=FleetDefaults, description="Fleet-wide defaults of every tenant (the environment wins)."
    )

    def cluster(self, name: str) -> FleetCluster | None:
        return next((c for c in self.clusters if c.name == name), None)

    def server(self, name: str) -> DatabaseServer | None:
        return next((s for s in self.database_servers if s.name == name), None)

    @model_validator(mode="after")
    def _fleet_file_rules(self) -> FleetSettings:
        names: dict[str, int] = {}
        destinations: dict[str, int] = {}
        for i, c in enumerate(self.clusters):
            if c.name in names:
                raise rule(f"clusters.{i}.name", f"{c.name!r} is already declared by clusters.{names[c.name]}")
            if c.destination_server in destinations:
                j = destinations[c.destination_server]
                raise rule(
                    f"clusters.{i}.destinationServer",
                    f"{c.destination_server!r} is already the destination of clusters.{j} ({self.clusters[j].name}): "
                    "one cluster, one destination",
                )
            names[c.name], destinations[c.destination_server] = i, i
        servers: dict[str, int] = {}
        for i, s in enumerate(self.database_servers):
            if s.name in servers:
                raise rule(
                    f"databaseServers.{i}.name", f"{s.name!r} is already declared by databaseServers.{servers[s.name]}"
                )
            servers[s.name] = i
            if s.cluster is None:
                if len(self.clusters) > 1:
                    raise rule(
                        f"databaseServers.{i}.cluster",
                        f"required: the fleet has {len(self.clusters)} clusters ({', '.join(names)})",
                    )
            elif s.cluster not in names:
                raise rule(
                    f"databaseServers.{i}.cluster",
                    f"unknown cluster {s.cluster!r}; declared: {', '.join(names)}{did_you_mean(s.cluster, names)}",
                )
        return self

    def server_cluster(self, server: DatabaseServer) -> str:
        """The cluster a server serves (the only one when it names none)."""
        return server.cluster or self.clusters[0].name


def did_you_mean(word: str, choices: object) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)  # type: ignore[call-overload]
    return f"; did you mean {close[0]!r}?" if close else ""


#: The fleet of a project without fleet.yaml.
DEFAULT_FLEET = FleetSettings()
