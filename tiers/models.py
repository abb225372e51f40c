"""The environment model: every setting of one Iotistica release, with its default.

Keys are camelCase in YAML (``api.hpa.minReplicas``), snake_case in Python. Every model is frozen and
forbids unknown keys. Defaults are the seed's *demo / trial* values ("Default values" in the seed);
``tiers/presets/<tier>.yaml`` overlays the tier tables on top of them, and the environment file
overlays the tier. Where the seed and the platform's code disagree (platform-facts §1), the field
description says which value the manifests carry and why.

Cross-field rules live in validators and raise :func:`rule`, so the loader can report them at the
exact key path (``api.hpa.minReplicas: must be <= maxReplicas (4), got 6``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tiers.quantity import cpu_millis, mem_mib

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_DURATION = re.compile(r"^\d+[smhd]$")

#: The longest suffix any object adds to the release name is ``-ingestion-headless`` (19). A
#: release of 40 characters keeps every derived name, StatefulSet pod names included, under 63.
RELEASE_MAX = 40


def rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule violation reported at ``<model path>.<field>``."""
    return PydanticCustomError("rule", "{field}: {detail}", {"field": field, "detail": message})


def _dns_label(max_len: int) -> Any:
    def check(value: str) -> str:
        if len(value) > max_len:
            raise ValueError(f"must be at most {max_len} characters, got {len(value)} ({value!r})")
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
                f"with a letter or digit), got {value!r}"
            )
        return value

    return AfterValidator(check)


def _check_cpu(value: str) -> str:
    cpu_millis(value)
    return value


def _check_mem(value: str) -> str:
    mem_mib(value)
    return value


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"must be a duration such as 15m or 7d, got {value!r}")
    return value


def _check_dns_name(value: str) -> str:
    if not _DNS_NAME.match(value):
        raise ValueError(f"must be a DNS name, got {value!r}")
    return value


DnsLabel = Annotated[str, _dns_label(63)]
ReleaseName = Annotated[str, _dns_label(RELEASE_MAX)]
Cpu = Annotated[str, AfterValidator(_check_cpu)]
Memory = Annotated[str, AfterValidator(_check_mem)]
Duration = Annotated[str, AfterValidator(_check_duration)]
DnsName = Annotated[str, AfterValidator(_check_dns_name)]


class Model(BaseModel):
    """Base of every settings model: frozen, no unknown keys, camelCase keys in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class Image(Model):
    """A container image, always pinned to a tag."""

    repository: str = Field(description="Image repository, e.g. `iotistic/api`. Required.")
    tag: str = Field(description="Image tag. Required; `latest` is refused.")
    pull_policy: Literal["IfNotPresent", "Always"] = Field(
        "IfNotPresent", description="imagePullPolicy. Default: IfNotPresent (tags are pinned)."
    )

    @model_validator(mode="after")
    def _pinned(self) -> Image:
        if self.tag == "latest" or not _TAG.match(self.tag):
            raise rule("tag", f"must be a pinned tag (not 'latest'), got {self.tag!r}")
        if ":" in self.repository or not self.repository:
            raise rule("repository", f"must be a repository without a tag, got {self.repository!r}")
        return self

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Requests(Model):
    cpu: Cpu = Field(description="CPU request. Required.")
    memory: Memory = Field(description="Memory request. Required.")


class Limits(Model):
    cpu: Cpu | None = Field(None, description="CPU limit. Default: none (no CPU throttling).")
    memory: Memory = Field(description="Memory limit. Required.")


class Resources(Model):
    """Container resources. Requests and a memory limit are mandatory on every container."""

    requests: Requests = Field(description="Requests. Required.")
    limits: Limits = Field(description="Limits. Required (at least memory).")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        if mem_mib(self.limits.memory) < mem_mib(self.requests.memory):
            raise rule(
                "limits.memory",
                f"must be >= requests.memory ({self.requests.memory}), got {self.limits.memory}",
            )
        if self.limits.cpu is not None and cpu_millis(self.limits.cpu) < cpu_millis(self.requests.cpu):
            raise rule("limits.cpu", f"must be >= requests.cpu ({self.requests.cpu}), got {self.limits.cpu}")
        return self

    @property
    def memory_limit_mib(self) -> float:
        return mem_mib(self.limits.memory)


def _res(cpu: str, mem: str, cpu_limit: str | None, mem_limit: str) -> Any:
    return Field(
        default_factory=lambda: Resources(
            requests=Requests(cpu=cpu, memory=mem), limits=Limits(cpu=cpu_limit, memory=mem_limit)
        ),
        description=f"Container resources. Default: requests {cpu}/{mem}, limits {cpu_limit or 'none'}/{mem_limit}.",
    )


class Hpa(Model):
    """A HorizontalPodAutoscaler. When enabled, the workload omits spec.replicas."""

    enabled: bool = Field(False, description="Create an HPA. Default: false.")
    min_replicas: int = Field(1, ge=1, description="minReplicas. Default: 1.")
    max_replicas: int = Field(1, ge=1, description="maxReplicas. Default: 1.")
    cpu_target_percent: int = Field(70, ge=1, le=100, description="Average CPU utilisation target. Default: 70.")
    memory_target_percent: int = Field(80, ge=1, le=100, description="Average memory utilisation target. Default: 80.")
    scale_up_stabilization_seconds: int = Field(
        60, ge=0, le=3600, description="Scale-up stabilisation window. Default: 60 (seed)."
    )
    scale_down_stabilization_seconds: int = Field(
        300, ge=0, le=3600, description="Scale-down stabilisation window. Default: 300 (seed: 5 min)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Hpa:
        if self.min_replicas > self.max_replicas:
            raise rule("minReplicas", f"must be <= maxReplicas ({self.max_replicas}), got {self.min_replicas}")
        return self


class Toleration(Model):
    key: str | None = Field(None, description="Taint key. Default: none (matches all keys with Exists).")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Operator. Default: Equal.")
    value: str | None = Field(None, description="Taint value. Default: none.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect. Default: all effects."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute. Default: forever.")


class Scheduling(Model):
    """Where pods may run. Applied to every pod of the environment unless a component overrides it."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector. Default: {}.")
    tolerations: list[Toleration] = Field(default_factory=list, description="tolerations. Default: [].")
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="affinity, as the Kubernetes API spells it (passed through). Default: {}.",
    )


class Database(Model):
    """The external TimescaleDB (CNPG or managed). Credentials come from `sql-credentials-{ns}`."""

    ssl: bool = Field(True, description="DB_SSL. The code turns SSL on unless exactly 'false'. Default: true.")
    ssl_reject_unauthorized: bool = Field(
        False,
        description="DB_SSL_REJECT_UNAUTHORIZED. CNPG serves a self-signed CA and the code has no CA-file "
        "setting, so the default is false, as in the old charts.",
    )
    max_connections: int = Field(
        100, ge=1, description="The server's max_connections (capacity checks). Default: 100 (CNPG cluster)."
    )


# --------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------


class DiskSpool(Model):
    enabled: bool = Field(True, description="DISK_SPOOL_ENABLED. Default: true (seed; code default is off).")
    max_size_mb: int = Field(1000, ge=1, description="DISK_SPOOL_MAX_SIZE_MB. Default: 1000 (seed; code default 500).")


class Api(Model):
    """The Cloud API (`iotistic/api`, port 3002)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/api", tag="v0.0.22-rc.1"),
        description="Default: iotistic/api:v0.0.22-rc.1.",
    )
    replicas: int = Field(1, ge=1, description="Replicas, or minReplicas when the HPA is on. Default: 1.")
    workers: int | None = Field(
        None,
        ge=1,
        description="The seed's 'API workers'. The API reads no such setting (platform-facts §14); the "
        "value is recorded as the annotation iotistica.com/api-workers only. Default: unset.",
    )
    resources: Resources = _res("100m", "256Mi", "500m", "1Gi")
    hpa: Hpa = Field(default_factory=Hpa, description="Autoscaling. Default: off.")
    heap_percent: int = Field(
        75,
        ge=25,
        le=90,
        description="V8 heap (--max-old-space-size) as a percentage of the memory limit. The image's "
        "built-in 1536 MB does not fit small tiers. Default: 75.",
    )
    db_pool_size: int = Field(20, ge=5, le=100, description="DB_POOL_SIZE. Default: 20 (seed; code 50).")
    db_statement_timeout_ms: int = Field(
        45000, ge=1000, le=600000, description="DB_STATEMENT_TIMEOUT_MS. Default: 45000 (seed; code 60000)."
    )
    mqtt_auth_cache_ttl_seconds: int = Field(
        300, ge=0, description="MQTT_AUTH_CACHE_TTL_SECONDS. Default: 300 (seed; code 30)."
    )
    mqtt_persist_db: bool = Field(
        True,
        description="The seed's MQTT_PERSIST_TO_DB, which the code never reads; it is emitted as "
        "MQTT_PERSIST_DB, the variable the broker monitor reads. Default: true.",
    )
    disk_spool: DiskSpool = Field(default_factory=DiskSpool, description="The API's Redis-outage spool.")
    ai_provider: Literal["openai", "ollama"] = Field(
        "openai", description="AI_PROVIDER. Default: openai (seed; code default ollama)."
    )
    jwt_access_token_expiry: Duration = Field("15m", description="JWT_ACCESS_TOKEN_EXPIRY. Default: 15m.")
    jwt_refresh_token_expiry: Duration = Field("7d", description="JWT_REFRESH_TOKEN_EXPIRY. Default: 7d.")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["https://demo.iotistica.com"],
        description="CORS_ORIGINS (joined with commas). A bare '*' makes the API refuse to start and is "
        "rejected; wildcards such as https://*.iotistica.com are allowed. Default: "
        "[https://demo.iotistica.com].",
    )
    node_env: Literal["production", "development"] = Field(
        "production",
        description="NODE_ENV. Anything but production applies a development license profile. Default: production.",
    )
    log_level: Literal["error", "warn", "info", "debug"] = Field("info", description="LOG_LEVEL. Default: info.")
    provisioning_api_url: str = Field(
        "http://provisioning-api.provisioning.svc.cluster.local:3100",
        description="PROVISIONING_API_URL (Auth0 role lookup, invites). Default: the old chart's in-cluster URL.",
    )
    extra_env: dict[str, str] = Field(
        default_factory=dict,
        description="Additional environment variables. They may not redefine a managed one. Default: {}.",
    )
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")

    @model_validator(mode="after")
    def _api_rules(self) -> Api:
        for i, origin in enumerate(self.cors_origins):
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
        return self


IngestionProfile = Literal["batch", "balanced", "streaming"]


class SpoolPersistence(Model):
    enabled: bool = Field(
        False, description="Back the spool with a PersistentVolumeClaim (one per pod). Default: false (emptyDir)."
    )
    size: Memory = Field("10Gi", description="Claim size. Default: 10Gi.")
    storage_class_name: str | None = Field(None, description="StorageClass. Default: the cluster default.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod"] = Field(
        "ReadWriteOnce", description="Access mode. Default: ReadWriteOnce. A claim is never shared by pods."
    )


class IngestionSpool(Model):
    enabled: bool = Field(True, description="INGESTION_SPOOL_ENABLED (DB-outage spool). Default: true.")
    max_size_mb: int = Field(1000, ge=1, description="INGESTION_SPOOL_MAX_SIZE_MB. Default: 1000.")
    persistence: SpoolPersistence = Field(default_factory=SpoolPersistence, description="Spool storage.")


class Ingestion(Model):
    """The ingestion service (`iotistic/ingestion`, port 3003)."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/ingestion", tag="v0.0.22-rc.1"),
        description="Default: iotistic/ingestion:v0.0.22-rc.1.",
    )
    replicas: int = Field(1, ge=1, description="Replicas, or minReplicas when the HPA is on. Default: 1.")
    workload_kind: Literal["auto", "Deployment", "StatefulSet"] = Field(
        "auto",
        description="auto: a StatefulSet (a claim per pod) when the spool is persistent and more than "
        "one pod may run, else a Deployment. Default: auto.",
    )
    resources: Resources = _res("300m", "256Mi", "1000m", "1Gi")
    hpa: Hpa = Field(default_factory=Hpa, description="Autoscaling. Default: off.")
    heap_percent: int = Field(75, ge=25, le=90, description="V8 heap as % of the memory limit. Default: 75.")
    profile: IngestionProfile = Field(
        "batch", description="INGESTION_PROFILE. Default: batch (seed; the code's default is balanced)."
    )
    worker_count: int = Field(4, ge=1, description="WORKER_COUNT. Default: 4 (batch profile).")
    batch_size: int = Field(500, ge=1, description="BATCH_SIZE. Default: 500 (batch profile).")
    autoscale_min_workers: int = Field(2, ge=1, description="AUTOSCALE_MIN_WORKERS. Default: 2.")
    autoscale_max_workers: int = Field(12, ge=1, description="AUTOSCALE_MAX_WORKERS. Default: 12.")
    autoscale_lag_scale_up_ms: int = Field(5000, ge=1, description="AUTOSCALE_LAG_SCALE_UP_MS. Default: 5000.")
    autoscale_lag_critical_ms: int = Field(15000, ge=1, description="AUTOSCALE_LAG_CRITICAL_MS. Default: 15000.")
    stream_maxlen: int = Field(
        10000,
        ge=100,
        description="REDIS_INGESTION_STREAM_MAXLEN, set on ingestion and on the API alike. Default: 10000.",
    )
    db_pool_size: int = Field(20, ge=1, le=100, description="DB_POOL_SIZE of each pod. Default: 20 (batch).")
    spool: IngestionSpool = Field(default_factory=IngestionSpool, description="The DB-outage spool.")
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")

    @model_validator(mode="after")
    def _ingestion_rules(self) -> Ingestion:
        if self.autoscale_min_workers > self.autoscale_max_workers:
            raise rule(
                "autoscaleMinWorkers",
                f"must be <= autoscaleMaxWorkers ({self.autoscale_max_workers}), got {self.autoscale_min_workers}",
            )
        if not self.autoscale_min_workers <= self.worker_count <= self.autoscale_max_workers:
            raise rule(
                "workerCount",
                f"must lie within autoscaleMinWorkers..autoscaleMaxWorkers "
                f"({self.autoscale_min_workers}..{self.autoscale_max_workers}), got {self.worker_count}",
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
        True,
        description="requirepass from Secret `{release}-redis-auth`, key `password` (never written to dist/). "
        "Default: true.",
    )


class RedisCluster(Model):
    enabled: bool = Field(False, description="Run Redis Cluster (StatefulSet). Default: false.")
    masters: int = Field(3, ge=3, le=16, description="Master nodes (hash-slot owners). Default: 3, the minimum.")
    replicas_per_master: int = Field(1, ge=0, le=3, description="Replicas of each master. Default: 1.")
    node_timeout_ms: int = Field(5000, ge=1000, description="cluster-node-timeout. Default: 5000.")

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
        1536, ge=16, description="maxmemory in MiB (Redis reads 'mb' as MiB). Default: 1536 (demo)."
    )
    maxmemory_policy: Literal["noeviction"] = Field(
        "noeviction",
        description="Fixed: API and ingestion treat OOM as backpressure; an evicting policy silently drops streams.",
    )
    headroom_percent: int = Field(
        25,
        ge=10,
        le=200,
        description="The memory limit must exceed maxmemory by at least this much (buffers, "
        "fragmentation, replication). Default: 25.",
    )
    auth: RedisAuth = Field(default_factory=RedisAuth, description="Password auth.")
    cluster: RedisCluster = Field(default_factory=RedisCluster, description="Redis Cluster.")
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")

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
    enabled: bool = Field(True, description="The 8883 TLS listener. Default: true.")
    secret_name: DnsLabel | None = Field(
        None,
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
    auth_http_timeout_seconds: int = Field(5, ge=1, le=60, description="auth_opt_http_timeout. Default: 5.")
    sys_interval_seconds: int = Field(
        10, ge=1, description="sys_interval ($SYS feeds the API's broker monitor). Default: 10."
    )
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")


class DashboardConfig(Model):
    """`window.env` of the dashboard's config.js (seed: "Update dashboard.config.* ... per environment")."""

    api_url: str = Field("https://demo-api.iotistica.com", description="VITE_API_URL.")
    auth0_domain: str = Field("auth.iotistica.com", description="VITE_AUTH0_DOMAIN.")
    auth0_client_id: str = Field("...", description="VITE_AUTH0_CLIENT_ID (public). Default: the seed's placeholder.")
    auth0_audience: str = Field("https://api.iotistica.com", description="VITE_AUTH0_AUDIENCE.")
    auth0_callback_url: str = Field("https://demo.iotistica.com/auth/callback", description="VITE_AUTH0_CALLBACK_URL.")
    provisioning_api_url: str = Field(
        "https://api.iotistica.com/provisioning", description="VITE_PROVISIONING_API_URL."
    )
    app_version: str | None = Field(None, description="APP_VERSION. Default: the dashboard image tag.")


class Dashboard(Model):
    """The web UI: static SPA served by nginx."""

    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/dashboard", tag="v0.0.22-rc.1"),
        description="Default: iotistic/dashboard:v0.0.22-rc.1.",
    )
    replicas: int = Field(1, ge=1, description="Replicas. Default: 1.")
    resources: Resources = _res("100m", "128Mi", "200m", "256Mi")
    config: DashboardConfig = Field(default_factory=DashboardConfig, description="config.js values.")
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")


class NodeRed(Model):
    """Optional Node-RED (flows stored in the API)."""

    enabled: bool = Field(False, description="Deploy Node-RED. Default: false.")
    image: Image = Field(
        default_factory=lambda: Image(repository="iotistic/nodered", tag="v0.0.22-rc.1"),
        description="Default: iotistic/nodered:v0.0.22-rc.1.",
    )
    port: int = Field(1880, ge=1024, le=65535, description="Listening port (PORT). Default: 1880.")
    resources: Resources = _res("100m", "256Mi", "500m", "512Mi")
    scheduling: Scheduling | None = Field(None, description="Overrides the environment's scheduling. Default: inherit.")


# --------------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------------

Tier = Literal["demo", "starter", "standard", "enterprise"]


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

    @model_validator(mode="after")
    def _environment_rules(self) -> Environment:
        if self.release in ("cluster", "argocd"):
            raise rule("release", f"{self.release!r} is reserved for dist/{self.release}/")
        if self.tier == "enterprise" and not self.redis.cluster.enabled:
            raise rule("redis.cluster.enabled", "must be true on the enterprise tier (the seed requires Redis Cluster)")
        return self
