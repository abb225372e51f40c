"""The platform's core: the external database and its pooler, the API, ingestion, Redis, the MQTT
broker, the dashboard and Node-RED."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tiers import grammar
from tiers.models.base import (
    _DNS_LABEL,
    _ENV_NAME,
    DnsLabel,
    DnsName,
    Duration,
    Hpa,
    Image,
    Memory,
    Model,
    Resources,
    Scheduling,
    _res,
    rule,
)
from tiers.quantity import mem_mib


class DatabasePooler(Model):
    """PgBouncer between the pods and the server, so pods may hold more connections than the server gives.

    ``cnpg``: a CloudNativePG ``Pooler`` (postgresql.cnpg.io/v1) named ``{release}-pooler`` in the CNPG
    cluster's namespace (``network.database.namespace``); CNPG runs PgBouncer and authenticates through the
    cluster. ``external``: any other database (managed services): run PgBouncer (or the provider's proxy)
    yourself and give its host; nothing is emitted.
    """

    enabled: bool = Field(default=False, description="Connect through a pooler. Default: false.")
    kind: Literal["cnpg", "external"] = Field(
        default="cnpg", description="cnpg: emit a CNPG Pooler; external: use `host`. Default: cnpg."
    )
    host: DnsName | None = Field(
        default=None,
        description="DB_HOST of the API and ingestion while the pooler is on. Default (cnpg): "
        "{release}-pooler.{network.database.namespace}.svc.cluster.local; required for external.",
    )
    instances: int = Field(default=2, ge=1, le=10, description="PgBouncer pods (cnpg). Default: 2.")
    pool_mode: Literal["session", "transaction"] = Field(
        default="session",
        description="PgBouncer pool_mode. session keeps every session feature the services use (advisory locks "
        "of migrations, SET, prepared statements) and caps server connections, clients queue; transaction "
        "multiplexes more but breaks session state. Default: session.",
    )
    max_client_connections: int = Field(
        default=400,
        ge=2,
        le=100000,
        description="PgBouncer max_client_conn per instance: the pods' pools are sized against it. Default: 400.",
    )
    image: Image = Field(
        default_factory=lambda: Image(repository="ghcr.io/cloudnative-pg/pgbouncer", tag="1.24.1"),
        description="PgBouncer image of the CNPG Pooler (pinned, as every image). Default: "
        "ghcr.io/cloudnative-pg/pgbouncer:1.24.1.",
    )
    resources: Resources = _res("50m", "64Mi", "500m", "128Mi")

    @model_validator(mode="after")
    def _pooler_rules(self) -> DatabasePooler:
        if self.enabled and self.kind == "external" and self.host is None:
            raise rule("host", "must be set for an external pooler")
        if self.kind == "cnpg" and self.host is not None:
            raise rule("host", "is derived for a cnpg pooler (the Pooler's Service); set it only with kind: external")
        return self


class Database(Model):
    """The external TimescaleDB (CNPG or managed). Credentials come from `sql-credentials-{ns}`."""

    ssl: bool = Field(default=True, description="DB_SSL. The code turns SSL on unless exactly 'false'. Default: true.")
    ssl_reject_unauthorized: bool = Field(
        default=False,
        description="DB_SSL_REJECT_UNAUTHORIZED. CNPG serves a self-signed CA and the code has no CA-file "
        "setting, so the default is false, as in the old charts.",
    )
    server: DnsLabel = Field(
        default="iotistica-cnpg-cl01",
        description="Name of the database server (the CNPG Cluster's name; with fleet.yaml, one of its "
        "databaseServers, which fills maxConnections, host and port). Environments on one server share its "
        "max_connections: they must agree on maxConnections, and their connection budgets must fit in it "
        "together. Default: the only server of fleet.yaml, else iotistica-cnpg-cl01 (platform-facts §7).",
    )
    host: DnsName | None = Field(
        default=None,
        description="DB_HOST of the API and ingestion (without a pooler). Default: fleet.yaml's "
        "`databaseServers.<server>.host`, else none: the `server` key of sql-credentials-{ns}.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="DB_PORT of the API and ingestion, used with `host`. Default: fleet.yaml's "
        "`databaseServers.<server>.port` when the server has a host, else none: the `port` key of "
        "sql-credentials-{ns}.",
    )
    max_connections: int = Field(
        default=100,
        ge=1,
        le=grammar.INT32_MAX,
        description="The server's max_connections, the same in every environment on `server`. Default: fleet.yaml's "
        "`databaseServers.<server>.maxConnections` (then an environment may not set another value), else 100 "
        "(the CNPG cluster's bootstrap value, platform-facts §7).",
    )
    connection_budget: int = Field(
        default=40,
        ge=2,
        le=10000,
        description="Connections this environment may hold on the server at HPA max: the API's and ingestion's "
        "pools together (or, with a pooler, the pooler's server connections). Pool sizes left null are derived "
        "from it. Default: 40 (demo: one API and one ingestion pod of the seed's 20); presets: starter 40, "
        "standard 80, enterprise 160.",
    )
    api_share_percent: int = Field(
        default=50,
        ge=1,
        le=99,
        description="Share of the client connections given to the API when its pool size is derived; ingestion "
        "gets the rest. Default: 50.",
    )
    pooler: DatabasePooler = Field(default_factory=lambda: DatabasePooler(), description="A connection pooler.")

    def client_connections(self) -> int:
        """Connections the pods' pools may open: the budget, or what the pooler accepts."""
        return self.pooler.max_client_connections if self.pooler.enabled else self.connection_budget


class DiskSpool(Model):
    enabled: bool = Field(default=True, description="DISK_SPOOL_ENABLED. Default: true (seed; code default is off).")
    max_size_mb: int = Field(
        default=1000, ge=1, description="DISK_SPOOL_MAX_SIZE_MB. Default: 1000 (seed; code default 500)."
    )


#: The API's agent namespace variable and its code default (platform-facts §11).
VIRTUAL_AGENT_NAMESPACE = "VIRTUAL_AGENT_NAMESPACE"
DEFAULT_AGENT_NAMESPACE = "virtual-agents"


class Api(Model):
    """The Cloud API (`iotistic/api`, port 3002)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/api", tag="v0.0.22-rc.1"),
        description="Default: iotistic/api:v0.0.22-rc.1.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=grammar.INT32_MAX,
        description="Replicas while the HPA is off. With api.hpa.enabled the HPA owns the count (spec.replicas "
        "is omitted) and api.hpa.minReplicas is the floor; this value must then not exceed "
        "hpa.maxReplicas. Default: 1.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        description="The seed's 'API workers'. The API reads no such setting (platform-facts §14); the "
        "value is recorded as the annotation iotistica.com/api-workers only. Default: unset.",
    )
    resources: Resources = _res("100m", "256Mi", "500m", "1Gi")
    hpa: Hpa = Field(default_factory=Hpa, description="Autoscaling. Default: off.")
    heap_percent: int = Field(
        default=75,
        ge=25,
        le=90,
        description="V8 heap (--max-old-space-size) as a percentage of the memory limit. The image's "
        "built-in 1536 MB does not fit small tiers. Default: 75.",
    )
    db_pool_size: int | None = Field(
        default=None,
        ge=5,
        le=100,
        description="DB_POOL_SIZE of each pod (the API clamps it to 5..100). null: derived from "
        "database.connectionBudget (its api share divided by the API pods at HPA max). Default: null; the "
        "tier presets set the seed's 20.",
    )
    db_statement_timeout_ms: int = Field(
        default=45000, ge=1000, le=600000, description="DB_STATEMENT_TIMEOUT_MS. Default: 45000 (seed; code 60000)."
    )
    mqtt_auth_cache_ttl_seconds: int = Field(
        default=300, ge=0, description="MQTT_AUTH_CACHE_TTL_SECONDS. Default: 300 (seed; code 30)."
    )
    mqtt_persist_db: bool = Field(
        default=True,
        description="The seed's MQTT_PERSIST_TO_DB, which the code never reads; it is emitted as "
        "MQTT_PERSIST_DB, the variable the broker monitor reads. Default: true.",
    )
    disk_spool: DiskSpool = Field(default_factory=DiskSpool, description="The API's Redis-outage spool.")
    ai_provider: Literal["openai", "ollama"] = Field(
        default="openai", description="AI_PROVIDER. Default: openai (seed; code default ollama)."
    )
    jwt_access_token_expiry: Duration = Field(default="15m", description="JWT_ACCESS_TOKEN_EXPIRY. Default: 15m.")
    jwt_refresh_token_expiry: Duration = Field(default="7d", description="JWT_REFRESH_TOKEN_EXPIRY. Default: 7d.")
    cors_origins: list[str] | None = Field(
        default=None,
        description="CORS_ORIGINS (joined with commas). A bare '*' makes the API refuse to start and is "
        "rejected; wildcards such as https://*.iotistica.com are allowed. Default: derived, "
        "https://<host> for edge.hosts.dashboard and each of edge.hosts.dashboardAliases.",
    )
    node_env: Literal["production", "development"] = Field(
        default="production",
        description="NODE_ENV. Anything but production applies a development license profile. Default: production.",
    )
    log_level: Literal["error", "warn", "info", "debug"] = Field(
        default="info", description="LOG_LEVEL. Default: info."
    )
    trust_proxy_hops: int = Field(
        default=1,
        ge=1,
        le=10,
        description="TRUST_PROXY: how many proxies in front of the API append to X-Forwarded-For, so the API "
        "takes the client address from the entry the first of them wrote and its login rate limit keys on the "
        "real client (unset, the API trusts every hop and a forged header escapes the limit, platform-facts §17). "
        "Default: 1, the gateway (Envoy appends the address it saw). Add one per load balancer before the "
        "gateway that appends its own entry.",
    )
    provisioning_api_url: str = Field(
        default="http://provisioning-api.provisioning.svc.cluster.local:3100",
        description="PROVISIONING_API_URL (Auth0 role lookup, invites). Platform-wide: one provisioning service "
        "for every tenant (shared by design). Default: the old chart's in-cluster URL.",
    )
    extra_env: dict[str, str] = Field(
        default_factory=dict,
        description="Additional environment variables. They may not redefine a managed one. Default: {}.",
    )
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )

    @model_validator(mode="after")
    def _api_rules(self) -> Api:
        if self.cors_origins is not None and not self.cors_origins:
            raise rule("corsOrigins", "must list an origin, or be left unset to derive it from the dashboard hosts")
        for i, origin in enumerate(self.cors_origins or []):
            if origin.strip() == "*":
                raise rule(
                    f"corsOrigins.{i}",
                    "a bare '*' makes the API refuse to start; list the origins or use a wildcard "
                    "such as https://*.iotistica.com",
                )
            if not origin or "," in origin or origin != origin.strip():
                raise rule(f"corsOrigins.{i}", f"must be one origin without commas or spaces, got {origin!r}")
        for name in self.extra_env:
            if not _ENV_NAME.match(name):
                raise rule(f"extraEnv.{name}", "must be an environment variable name ([A-Z_][A-Z0-9_]*)")
        # The agent namespace is one the API may create (its admission guardrail allows it by name).
        agents = self.extra_env.get(VIRTUAL_AGENT_NAMESPACE)
        bad = agents is not None and (len(agents) > 63 or not _DNS_LABEL.match(agents))
        if agents is not None and (bad or agents == "default" or agents.startswith("kube-")):
            raise rule(
                f"extraEnv.{VIRTUAL_AGENT_NAMESPACE}",
                f"must be a DNS-1123 label other than default and kube-*, got {agents!r}",
            )
        for i, origin in enumerate(self.cors_origins or []):
            try:
                grammar.origin(origin)
            except ValueError as exc:
                raise rule(f"corsOrigins.{i}", str(exc)) from None
        if self.hpa.enabled and self.replicas > self.hpa.max_replicas:
            raise rule("replicas", f"must be <= hpa.maxReplicas ({self.hpa.max_replicas}), got {self.replicas}")
        _check_node_heap(self.resources, self.heap_percent, "API")
        return self

    @property
    def agent_namespace(self) -> str:
        """The namespace the API creates for agents outside fleets (platform-facts §11)."""
        return self.extra_env.get(VIRTUAL_AGENT_NAMESPACE, DEFAULT_AGENT_NAMESPACE)


IngestionProfile = Literal["batch", "balanced", "streaming"]


def _check_node_heap(res: Resources, heap_percent: int, service: str) -> None:
    """NODE_OPTIONS --max-old-space-size is heapPercent of the memory limit: keep it above the floor."""
    heap = int(res.memory_limit_mib * heap_percent / 100)
    if heap < grammar.MIN_NODE_HEAP_MIB:
        need = -(-grammar.MIN_NODE_HEAP_MIB * 100 // heap_percent)
        raise rule(
            "resources.limits.memory",
            f"gives NODE_OPTIONS=--max-old-space-size={heap} ({heap_percent}% of {res.limits.memory}); the "
            f"{service} needs a heap of at least {grammar.MIN_NODE_HEAP_MIB} MiB, so a memory limit of at least "
            f"{need}Mi, got {res.limits.memory}",
        )


class SpoolPersistence(Model):
    enabled: bool = Field(
        default=False,
        description="Back the spool with a PersistentVolumeClaim (one per pod). Default: false (emptyDir).",
    )
    size: Memory = Field(default="10Gi", description="Claim size. Default: 10Gi.")
    storage_class_name: str | None = Field(default=None, description="StorageClass. Default: the cluster default.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod"] = Field(
        default="ReadWriteOnce", description="Access mode. Default: ReadWriteOnce. A claim is never shared by pods."
    )


class IngestionSpool(Model):
    enabled: bool = Field(default=True, description="INGESTION_SPOOL_ENABLED (DB-outage spool). Default: true.")
    max_size_mb: int = Field(default=1000, ge=1, description="INGESTION_SPOOL_MAX_SIZE_MB. Default: 1000.")
    persistence: SpoolPersistence = Field(default_factory=SpoolPersistence, description="Spool storage.")


class Ingestion(Model):
    """The ingestion service (`iotistic/ingestion`, port 3003)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/ingestion", tag="v0.0.22-rc.1"),
        description="Default: iotistic/ingestion:v0.0.22-rc.1.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=grammar.INT32_MAX,
        description="Replicas while the HPA is off. With ingestion.hpa.enabled the HPA owns the count "
        "(spec.replicas is omitted) and ingestion.hpa.minReplicas is the floor; this value must then not "
        "exceed hpa.maxReplicas. Default: 1.",
    )
    workload_kind: Literal["auto", "Deployment", "StatefulSet"] = Field(
        default="auto",
        description="auto: a StatefulSet (a claim per pod) when the spool is persistent and more than "
        "one pod may run, else a Deployment. Default: auto.",
    )
    resources: Resources = _res("300m", "256Mi", "1000m", "1Gi")
    hpa: Hpa = Field(default_factory=Hpa, description="Autoscaling. Default: off.")
    heap_percent: int = Field(default=75, ge=25, le=90, description="V8 heap as % of the memory limit. Default: 75.")
    profile: IngestionProfile = Field(
        default="batch", description="INGESTION_PROFILE. Default: batch (seed; the code's default is balanced)."
    )
    worker_count: int = Field(default=4, ge=1, description="WORKER_COUNT. Default: 4 (batch profile).")
    batch_size: int = Field(default=500, ge=1, description="BATCH_SIZE. Default: 500 (batch profile).")
    autoscale_min_workers: int | None = Field(
        default=None,
        ge=1,
        description=(
            "AUTOSCALE_MIN_WORKERS. Default: null, the workerCount (the seed's workers per pod are the floor: the"
            " autoscaler adds workers under lag and retires them again, and a retired worker leaves the entry it"
            " last read pending for 60 s)."
        ),
    )
    autoscale_max_workers: int = Field(default=12, ge=1, description="AUTOSCALE_MAX_WORKERS. Default: 12.")
    autoscale_lag_scale_up_ms: int = Field(
        default=5000, ge=1, description="AUTOSCALE_LAG_SCALE_UP_MS, and AUTOSCALE_LAG_TARGET_MS with it. Default: 5000."
    )
    autoscale_lag_critical_ms: int = Field(
        default=15000, ge=1, description="AUTOSCALE_LAG_CRITICAL_MS. Default: 15000."
    )
    stream_maxlen: int | None = Field(
        default=10000,
        ge=100,
        le=grammar.INT32_MAX,
        description="REDIS_INGESTION_STREAM_MAXLEN, set on ingestion and on the API alike. null: derived from "
        "streamBufferSeconds. Set exactly one of the two. Default: 10000.",
    )
    stream_buffer_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86400,
        description="Size the stream to hold this many seconds at the tier's rated readings/s (starter 200, "
        "standard 2,000, enterprise 50,000; not for demo): MAXLEN = seconds x rated. Needs streamMaxlen: null. "
        "Default: null.",
    )
    db_pool_size: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="DB_POOL_SIZE of each pod. null: derived from database.connectionBudget (what the API's "
        "pools leave, divided by the ingestion pods at HPA max). Default: null.",
    )
    spool: IngestionSpool = Field(default_factory=IngestionSpool, description="The DB-outage spool.")
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )

    @property
    def min_workers(self) -> int:
        """AUTOSCALE_MIN_WORKERS as resolved: the setting, else the workerCount."""
        return self.worker_count if self.autoscale_min_workers is None else self.autoscale_min_workers

    @model_validator(mode="after")
    def _ingestion_rules(self) -> Ingestion:
        if self.min_workers > self.autoscale_max_workers:
            raise rule(
                "autoscaleMinWorkers",
                f"must be <= autoscaleMaxWorkers ({self.autoscale_max_workers}), got {self.min_workers}",
            )
        if not self.min_workers <= self.worker_count <= self.autoscale_max_workers:
            raise rule(
                "workerCount",
                f"must lie within autoscaleMinWorkers..autoscaleMaxWorkers "
                f"({self.min_workers}..{self.autoscale_max_workers}), got {self.worker_count}",
            )
        if self.autoscale_lag_scale_up_ms >= self.autoscale_lag_critical_ms:
            raise rule(
                "autoscaleLagScaleUpMs",
                f"must be < autoscaleLagCriticalMs ({self.autoscale_lag_critical_ms}), "
                f"got {self.autoscale_lag_scale_up_ms}",
            )
        persistent = self.spool.enabled and self.spool.persistence.enabled
        if persistent and self.workload_kind == "Deployment" and self.max_pods > 1:
            raise rule(
                "workloadKind",
                f"a Deployment with a persistent spool would share one {self.spool.persistence.access_mode} "
                f"claim between {self.max_pods} pods; use StatefulSet (or auto), or one replica without HPA",
            )
        if (self.stream_maxlen is None) == (self.stream_buffer_seconds is None):
            raise rule(
                "streamMaxlen",
                "set exactly one of streamMaxlen and streamBufferSeconds (the tier presets set streamMaxlen; "
                "write streamMaxlen: null to size the stream in seconds)",
            )
        if self.hpa.enabled and self.replicas > self.hpa.max_replicas:
            raise rule("replicas", f"must be <= hpa.maxReplicas ({self.hpa.max_replicas}), got {self.replicas}")
        _check_node_heap(self.resources, self.heap_percent, "ingestion")
        if self.spool.persistence.enabled and not self.spool.enabled:
            raise rule("spool.persistence.enabled", "needs spool.enabled: true")
        if persistent and mem_mib(self.spool.persistence.size) < self.spool.max_size_mb:
            raise rule(
                "spool.persistence.size",
                f"must hold spool.maxSizeMb ({self.spool.max_size_mb} MiB), got {self.spool.persistence.size}",
            )
        return self

    @property
    def max_pods(self) -> int:
        return self.hpa.max_replicas if self.hpa.enabled else self.replicas

    @property
    def kind(self) -> Literal["Deployment", "StatefulSet"]:
        """The workload kind after resolving ``auto``."""
        if self.workload_kind != "auto":
            return self.workload_kind
        persistent = self.spool.enabled and self.spool.persistence.enabled
        return "StatefulSet" if persistent and self.max_pods > 1 else "Deployment"


class RedisAuth(Model):
    enabled: bool = Field(
        default=True,
        description="requirepass from Secret `{release}-redis-auth`, key `password` (never written to dist/). "
        "Default: true.",
    )


class RedisCluster(Model):
    enabled: bool = Field(default=False, description="Run Redis Cluster (StatefulSet). Default: false.")
    masters: int = Field(
        default=3, ge=3, le=16, description="Master nodes (hash-slot owners). Default: 3, the minimum."
    )
    replicas_per_master: int = Field(default=1, ge=0, le=3, description="Replicas of each master. Default: 1.")
    node_timeout_ms: int = Field(default=5000, ge=1000, description="cluster-node-timeout. Default: 5000.")
    exporter_image: Image = Field(
        default_factory=lambda: Image(repository="oliver006/redis_exporter", tag="v1.67.0"),
        description="The redis_exporter sidecar beside each cluster node. Default: oliver006/redis_exporter:v1.67.0.",
    )

    @property
    def nodes(self) -> int:
        return self.masters * (1 + self.replicas_per_master)


class Redis(Model):
    """Redis: streams, pub/sub, cache, dedup. No persistence by design (all durable state is in the DB)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="redis", tag="7.4.2-alpine"),
        description="Default: redis:7.4.2-alpine (the seed's redis:7-alpine, pinned).",
    )
    resources: Resources = _res("100m", "1Gi", "250m", "2Gi")
    maxmemory_mb: int = Field(
        default=1536, ge=16, description="maxmemory in MiB (Redis reads 'mb' as MiB). Default: 1536 (demo)."
    )
    maxmemory_policy: Literal["noeviction"] = Field(
        default="noeviction",
        description="Fixed: API and ingestion treat OOM as backpressure; an evicting policy silently drops streams.",
    )
    headroom_percent: int = Field(
        default=25,
        ge=10,
        le=200,
        description="The memory limit must exceed maxmemory by at least this much (buffers, "
        "fragmentation, replication). Default: 25.",
    )
    auth: RedisAuth = Field(default_factory=RedisAuth, description="Password auth.")
    cluster: RedisCluster = Field(default_factory=RedisCluster, description="Redis Cluster.")
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )

    @model_validator(mode="after")
    def _headroom(self) -> Redis:
        need = self.maxmemory_mb * (100 + self.headroom_percent) / 100
        if self.resources.memory_limit_mib < need:
            raise rule(
                "resources.limits.memory",
                f"must exceed maxmemoryMb ({self.maxmemory_mb} MiB) by {self.headroom_percent}% "
                f"(>= {need:.0f}Mi), got {self.resources.limits.memory}",
            )
        return self


class MosquittoTls(Model):
    enabled: bool = Field(default=True, description="The 8883 TLS listener. Default: true.")
    secret_name: DnsLabel | None = Field(
        default=None,
        description="Secret holding tls.crt/tls.key (cert-manager's Certificate writes it). "
        "Default: {release}-mosquitto-tls.",
    )


class Mosquitto(Model):
    """The MQTT broker (mosquitto with the go-auth HTTP backend)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iegomez/mosquitto-go-auth", tag="3.0.0-mosquitto_2.0.18"),
        description="Default: iegomez/mosquitto-go-auth:3.0.0-mosquitto_2.0.18 (platform-facts §5).",
    )
    resources: Resources = _res("100m", "64Mi", "200m", "128Mi")
    tls: MosquittoTls = Field(default_factory=MosquittoTls, description="TLS on 8883.")
    auth_http_timeout_seconds: int = Field(default=5, ge=1, le=60, description="auth_opt_http_timeout. Default: 5.")
    sys_interval_seconds: int = Field(
        default=10, ge=1, description="sys_interval ($SYS feeds the API's broker monitor). Default: 10."
    )
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )


#: The seed's VITE_AUTH0_CLIENT_ID: a placeholder for the Auth0 application's client id, not one (seed "Dashboard").
AUTH0_CLIENT_ID_PLACEHOLDER = "..."


class DashboardConfig(Model):
    """`window.env` of the dashboard's config.js (seed: "Update dashboard.config.* ... per environment").

    The URLs of the tenant's own services are derived from its own hosts (edge.hosts) unless set; the Auth0
    tenant and the provisioning service are platform-wide: one for every tenant, by design.
    """

    api_url: Annotated[str, AfterValidator(grammar.http_url)] | None = Field(
        default=None,
        description="VITE_API_URL: an http(s) URL, this tenant's own API. Default: derived, https://<edge.hosts.api> "
        "(set or derived from edge.domain).",
    )
    auth0_domain: DnsName | None = Field(
        default="auth.iotistica.com",
        description="VITE_AUTH0_DOMAIN, and the API's AUTH0_DOMAIN: the API's Auth0 settings are derived from "
        "these config.js values, so the dashboard's login and the API's checks use one tenant (platform-facts "
        "§17). A hostname, no scheme: the API fetches https://<domain>/.well-known/jwks.json and "
        "https://<domain>/userinfo and expects the issuer https://<domain>/ (AUTH0_ISSUER). null: no Auth0 "
        "login (config.js without the VITE_AUTH0_* keys, as the chart did, and AUTH0_ENABLED=false). "
        "Platform-wide: every tenant signs in through the one Auth0 tenant (shared by design). "
        "Default: auth.iotistica.com.",
    )
    auth0_client_id: str = Field(
        default=AUTH0_CLIENT_ID_PLACEHOLDER,
        min_length=1,
        description="VITE_AUTH0_CLIENT_ID (public), and the API's AUTH0_CLIENT_ID (it also accepts tokens for "
        "this audience). The seed's '...' is a placeholder, not a client id: the API then gets no "
        "AUTH0_CLIENT_ID, and the dashboard's login cannot start until the real one is set here. "
        "Default: the seed's placeholder.",
    )
    auth0_audience: str = Field(
        default="https://api.iotistica.com",
        min_length=1,
        description="VITE_AUTH0_AUDIENCE, and the API's AUTH0_AUDIENCE: the identifier of the platform's API in "
        "Auth0, not a URL the dashboard calls; the API accepts access tokens for it (and for a real "
        "auth0ClientId), none for another. Platform-wide "
        "(shared by design). Default: https://api.iotistica.com.",
    )
    auth0_callback_url: Annotated[str, AfterValidator(grammar.http_url)] | None = Field(
        default=None,
        description="VITE_AUTH0_CALLBACK_URL: an http(s) URL on this tenant's own dashboard (list it among the "
        "Auth0 application's callback URLs). Default: derived, https://<edge.hosts.dashboard>/auth/callback.",
    )
    provisioning_api_url: str = Field(
        default="https://api.iotistica.com/provisioning",
        description="VITE_PROVISIONING_API_URL. Platform-wide: one provisioning service for every tenant "
        "(shared by design). Default: https://api.iotistica.com/provisioning.",
    )
    app_version: str | None = Field(default=None, description="APP_VERSION. Default: the dashboard image tag.")

    @property
    def auth0_enabled(self) -> bool:
        """An Auth0 login is offered: the dashboard has a domain (config.js VITE_AUTH0_*, AUTH0_ENABLED)."""
        return self.auth0_domain is not None

    @property
    def auth0_issuer(self) -> str | None:
        """The issuer of the tenant's tokens: https://<domain>/ (the API's own default, platform-facts §2)."""
        return f"https://{self.auth0_domain}/" if self.auth0_domain is not None else None

    @property
    def auth0_real_client_id(self) -> str | None:
        """The client id, unless it is the seed's placeholder."""
        return None if self.auth0_client_id == AUTH0_CLIENT_ID_PLACEHOLDER else self.auth0_client_id


class Dashboard(Model):
    """The web UI: static SPA served by nginx."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/dashboard", tag="v0.0.22-rc.1"),
        description="Default: iotistic/dashboard:v0.0.22-rc.1.",
    )
    replicas: int = Field(default=1, ge=1, le=grammar.INT32_MAX, description="Replicas. Default: 1.")
    resources: Resources = _res("100m", "128Mi", "200m", "256Mi")
    config: DashboardConfig = Field(default_factory=DashboardConfig, description="config.js values.")
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )


class NodeRed(Model):
    """Optional Node-RED (flows stored in the API)."""

    enabled: bool = Field(default=False, description="Deploy Node-RED. Default: false.")
    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/nodered", tag="v0.0.22-rc.1"),
        description="Default: iotistic/nodered:v0.0.22-rc.1.",
    )
    port: int = Field(default=1880, ge=1024, le=65535, description="Listening port (PORT). Default: 1880.")
    read_only_root_filesystem: bool = Field(
        default=False,
        description="Security exception, the only one of the platform: our own rule is a read-only "
        "root filesystem (stricter than the Kubernetes restricted profile, which Node-RED still meets). The "
        "image keeps settings.js and the @iotistic plugins in /data, its userDir, and Node-RED writes there at "
        "run time; an emptyDir over /data would hide that baked content (platform-facts §9). Set true for an "
        "image that writes elsewhere. Default: false.",
    )
    resources: Resources = _res("100m", "256Mi", "500m", "512Mi")
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )
