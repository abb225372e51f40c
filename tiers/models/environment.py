"""The environment: one release, the tier's rated load and the values derived from the parts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tiers.models.base import (
    _DNS_LABEL,
    DnsLabel,
    Model,
    ReleaseName,
    Scheduling,
    rule,
)
from tiers.models.core import (
    DEFAULT_AGENT_NAMESPACE,
    Api,
    Dashboard,
    DashboardConfig,
    Database,
    Ingestion,
    Mosquitto,
    NodeRed,
    Redis,
)
from tiers.models.edge import (
    Edge,
    EdgeHostKind,
    Monitoring,
    _check_hostname,
)
from tiers.models.isolation import (
    Cluster,
    FleetNamespaces,
    Network,
    PodSecurity,
    http_target,
)
from tiers.models.lifecycle import (
    ArgoCd,
    DbInit,
    Migration,
    Secrets,
    StreamKeyResolver,
    TimescaleDb,
)

Tier = Literal["demo", "starter", "standard", "enterprise"]
#: Rated readings/s per tier, from the seed's tier headings (starter ~200 r/s, standard ~2,000,
#: enterprise ~50,000); the demo tier is not rated.
RATED_READINGS_PER_SECOND: dict[str, int | None] = {
    "demo": None,
    "starter": 200,
    "standard": 2000,
    "enterprise": 50000,
}


class Environment(Model):
    """One release: what `dist/<release>/` holds and one ArgoCD Application syncs."""

    release: ReleaseName = Field(description="Helm-style release name; prefixes every object. Required.")
    namespace: DnsLabel = Field(description="Target namespace. Required.")
    tier: Tier = Field(description="demo | starter | standard | enterprise. Required.")
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Scheduling of every pod.")
    database: Database = Field(default_factory=Database, description="The external database.")
    api: Api = Field(default_factory=Api, description="The Cloud API.")
    ingestion: Ingestion = Field(default_factory=Ingestion, description="The ingestion service.")
    redis: Redis = Field(default_factory=Redis, description="Redis.")
    mosquitto: Mosquitto = Field(default_factory=Mosquitto, description="The MQTT broker.")
    dashboard: Dashboard = Field(default_factory=Dashboard, description="The dashboard.")
    nodered: NodeRed = Field(default_factory=NodeRed, description="Node-RED.")
    network: Network = Field(default_factory=Network, description="NetworkPolicies of the release namespace.")
    pod_security: PodSecurity = Field(default_factory=PodSecurity, description="Pod Security Admission labels.")
    fleet_namespaces: FleetNamespaces = Field(default_factory=FleetNamespaces, description="Agent fleet namespaces.")
    edge: Edge = Field(default_factory=Edge, description="Hostnames, Gateway API routes, rate limit, certificate.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="ServiceMonitors and alert rules.")
    # Lifecycle: the Secrets provider, the hook Jobs, the Argo CD Application, the move from Helm.
    secrets: Secrets = Field(default_factory=Secrets, description="Where the release's Secrets come from.")
    db_init: DbInit = Field(default_factory=DbInit, description="The db-init hook Job.")
    timescaledb: TimescaleDb = Field(default_factory=TimescaleDb, description="The TimescaleDB policy hook Job.")
    stream_key_resolver: StreamKeyResolver = Field(
        default_factory=StreamKeyResolver, description="The stream key resolver hook Job."
    )
    argocd: ArgoCd = Field(default_factory=ArgoCd, description="The Argo CD Application.")
    migration: Migration = Field(
        default_factory=Migration, description="Compatibility with a live release of the old Helm chart."
    )
    cluster: Cluster = Field(
        default_factory=Cluster,
        description="The cluster this environment runs on and its cluster-wide objects (dist/cluster/<name>/).",
    )

    @property
    def rated_readings_per_second(self) -> int | None:
        """The tier's rated load from the seed's headings (demo is not rated)."""
        return RATED_READINGS_PER_SECOND[self.tier]

    @property
    def api_pods_max(self) -> int:
        return self.api.hpa.max_replicas if self.api.hpa.enabled else self.api.replicas

    @property
    def stream_maxlen(self) -> int:
        """REDIS_INGESTION_STREAM_MAXLEN: as set, or streamBufferSeconds x the rated readings/s."""
        if self.ingestion.stream_maxlen is not None:
            return self.ingestion.stream_maxlen
        return (self.ingestion.stream_buffer_seconds or 0) * (self.rated_readings_per_second or 0)

    @property
    def api_db_pool_size(self) -> int:
        """DB_POOL_SIZE of an API pod: as set, or its share of the client connections per pod at HPA max."""
        if self.api.db_pool_size is not None:
            return self.api.db_pool_size
        share = self.database.client_connections() * self.database.api_share_percent // 100
        return max(5, min(100, share // self.api_pods_max))

    @property
    def ingestion_db_pool_size(self) -> int:
        """DB_POOL_SIZE of an ingestion pod: as set, or what the API leaves, per pod at HPA max."""
        if self.ingestion.db_pool_size is not None:
            return self.ingestion.db_pool_size
        left = self.database.client_connections() - self.api_db_pool_size * self.api_pods_max
        return max(1, min(100, left // self.ingestion.max_pods))

    @property
    def pooler_host(self) -> str | None:
        """DB_HOST while a pooler is on (None without one)."""
        pooler = self.database.pooler
        if not pooler.enabled:
            return None
        if pooler.host is not None:
            return pooler.host
        return f"{self.release}-pooler.{self.network.database.namespace}.svc.cluster.local"

    def resolved(self) -> Environment:
        """This environment with every derived value filled in (what the constructs render)."""
        pooler = self.database.pooler.model_copy(update={"host": self.pooler_host or self.database.pooler.host})
        return self.model_copy(
            update={
                "database": self.database.model_copy(update={"pooler": pooler}),
                "api": self.api.model_copy(update={"db_pool_size": self.api_db_pool_size}),
                "dashboard": self.dashboard.model_copy(update={"config": self.dashboard_config}),
                "ingestion": self.ingestion.model_copy(
                    update={
                        "db_pool_size": self.ingestion_db_pool_size,
                        "stream_maxlen": self.stream_maxlen,
                        "stream_buffer_seconds": None,
                    }
                ),
            }
        )

    @property
    def policy_credentials_secret(self) -> str:
        """The Secret the TimescaleDB policy Job connects with (a role that owns the tables)."""
        return self.timescaledb.credentials_secret_name or self.db_init.admin_secret_name

    @model_validator(mode="after")
    def _environment_rules(self) -> Environment:
        if self.release in ("cluster", "argocd"):
            raise rule("release", f"{self.release!r} is reserved for dist/{self.release}/")
        agents = self.api.agent_namespace
        own_agents = (DEFAULT_AGENT_NAMESPACE, f"{DEFAULT_AGENT_NAMESPACE}-{self.namespace}")
        guarded = self.fleet_namespaces.virtual_agent_manager and self.cluster.admission_policies != "none"
        if guarded and agents not in own_agents:
            raise rule(
                "api.extraEnv.VIRTUAL_AGENT_NAMESPACE",
                f"must be {own_agents[0]} or {own_agents[1]}, the agent namespaces the admission guardrail lets "
                f"this release's API create (docs/guardrail.md), got {agents!r}",
            )
        if self.ingestion.stream_buffer_seconds is not None and self.rated_readings_per_second is None:
            raise rule(
                "ingestion.streamBufferSeconds", f"the {self.tier} tier has no rated load; set streamMaxlen instead"
            )
        pooler = self.database.pooler
        if pooler.enabled and pooler.kind == "cnpg" and self.network.database.namespace is None:
            raise rule(
                "database.pooler.kind",
                "cnpg needs network.database.namespace (the CNPG cluster's namespace, where its Pooler runs); "
                "for a database outside the cluster use kind: external with your own PgBouncer",
            )
        if pooler.enabled and self.database.connection_budget < pooler.instances:
            raise rule(
                "database.connectionBudget",
                f"must give each of the pooler's {pooler.instances} instances a server connection, "
                f"got {self.database.connection_budget}",
            )
        if self.tier == "enterprise" and not self.redis.cluster.enabled:
            raise rule("redis.cluster.enabled", "must be true on the enterprise tier (the seed requires Redis Cluster)")
        # Isolation: fleet namespace names (seed "Fleet Namespaces"), the provisioning API as an egress target.
        for i, fleet in enumerate(self.fleet_namespaces.fleets):
            namespace, base = self.fleet_namespace(fleet.name), self.fleet_object_name(fleet.name)
            for what, name in (("fleet namespace", namespace), ("object name", base)):
                if len(name) > 63 or not _DNS_LABEL.match(name):
                    room = 63 - (len(name) - len(fleet.name))
                    raise rule(
                        f"fleetNamespaces.fleets.{i}.name",
                        f"the {what} {name!r} must be a DNS-1123 label of at most 63 characters, got "
                        f"{len(name)}; use a name of at most {max(room, 0)} characters",
                    )
        if self.network.enabled and self.network.default_deny_egress:
            try:
                http_target(self.api.provisioning_api_url)
            except ValueError as exc:
                raise rule("api.provisioningApiUrl", str(exc)) from None
        # Edge: hosts of the enabled routes, the TLS route, CORS origins.
        self._edge_rules()
        return self

    def _edge_rules(self) -> None:
        edge, routes = self.edge, self.edge.routes
        tls = self.mosquitto.tls.enabled
        needs: dict[EdgeHostKind, str | None] = {
            "api": "edge.routes.api" if routes.api else None,
            "dashboard": "edge.routes.dashboard" if routes.dashboard else None,
            "nodered": "edge.routes.nodered" if routes.nodered and self.nodered.enabled else None,
            "mqtt": "edge.routes.mqttTls"
            if routes.mqtt_tls
            else "edge.routes.websockets"
            if routes.websockets
            else "edge.certificate.enabled"
            if edge.certificate.enabled and tls
            else None,
        }
        for kind, why in needs.items():
            host = edge.host(kind, self.release)
            if host is None:
                if why is not None:
                    raise rule(f"edge.hosts.{kind}", f"must be set while {why} is on (edge.domain is null)")
                continue
            if getattr(edge.hosts, kind) is None:
                try:
                    _check_hostname(host)
                except ValueError as exc:
                    raise rule("edge.domain", f"derived host of {kind}: {exc}") from None
        if routes.mqtt_tls and not tls:
            raise rule(
                "edge.routes.mqttTls",
                "needs mosquitto.tls.enabled: true (the Gateway passes TLS through to mosquitto's 8883 listener)",
            )
        https: dict[str, str] = {}
        listed: list[tuple[str, str | None]] = []
        if routes.api:
            listed.append(("edge.hosts.api", edge.host("api", self.release)))
        if routes.dashboard:
            listed += [("edge.hosts.dashboard", h) for h in self.edge.dashboard_hosts(self.release)]
        if routes.nodered and self.nodered.enabled:
            listed.append(("edge.hosts.nodered", edge.host("nodered", self.release)))
        if routes.websockets:
            listed.append(("edge.hosts.mqtt", edge.host("mqtt", self.release)))
        for key, host in listed:
            if host is None:
                continue
            if host in https:
                raise rule(key, f"{host!r} is already routed by {https[host]} on the same HTTPS listener")
            https[host] = key
        if self.api.cors_origins is None and not self.cors_origins:
            raise rule("api.corsOrigins", "must be set: there is no dashboard host to derive it from")
        # The dashboard's own URLs derive from this environment's own hosts (never another tenant's).
        config = self.dashboard.config
        for key, value, kind in (
            ("dashboard.config.apiUrl", config.api_url, "api"),
            ("dashboard.config.auth0CallbackUrl", config.auth0_callback_url, "dashboard"),
        ):
            if value is None and edge.host(kind, self.release) is None:  # type: ignore[arg-type]
                raise rule(key, f"must be set: there is no edge.hosts.{kind} to derive it from (edge.domain is null)")

    @property
    def cors_origins(self) -> list[str]:
        """CORS_ORIGINS of the API: api.corsOrigins, else https://<each dashboard host>."""
        if self.api.cors_origins is not None:
            return list(self.api.cors_origins)
        return [f"https://{host}" for host in self.edge.dashboard_hosts(self.release)]

    @property
    def dashboard_config(self) -> DashboardConfig:
        """dashboard.config with the URLs of this tenant's own services filled in from its own hosts."""
        config = self.dashboard.config
        api_url = config.api_url or f"https://{self.edge.host('api', self.release)}"
        callback = config.auth0_callback_url or f"https://{self.edge.host('dashboard', self.release)}/auth/callback"
        return config.model_copy(update={"api_url": api_url, "auth0_callback_url": callback})

    def fleet_namespace(self, fleet: str) -> str:
        """The seed's fleet namespace name: ``fleet-{release namespace}-{name}``."""
        return f"fleet-{self.namespace}-{fleet}"

    def fleet_object_name(self, fleet: str) -> str:
        """Name of the quota, limits, RoleBinding and NetworkPolicy inside a fleet namespace."""
        return f"{self.release}-fleet-{fleet}"
