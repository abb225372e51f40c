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

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tiers import grammar
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
ReleaseName = Annotated[str, _dns_label(RELEASE_MAX), AfterValidator(grammar.dns_1035)]
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
        default="IfNotPresent", description="imagePullPolicy. Default: IfNotPresent (tags are pinned)."
    )

    @model_validator(mode="after")
    def _pinned(self) -> Image:
        if self.tag == "latest" or not _TAG.match(self.tag):
            raise rule("tag", f"must be a pinned tag (not 'latest'), got {self.tag!r}")
        try:
            grammar.image_repository(self.repository)
        except ValueError as exc:
            raise rule("repository", str(exc)) from None
        return self

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Requests(Model):
    cpu: Cpu = Field(description="CPU request. Required.")
    memory: Memory = Field(description="Memory request. Required.")


class Limits(Model):
    cpu: Cpu | None = Field(default=None, description="CPU limit. Default: none (no CPU throttling).")
    memory: Memory = Field(description="Memory limit. Required.")


class Resources(Model):
    """Container resources. Requests and a memory limit are mandatory on every container."""

    requests: Requests = Field(description="Requests. Required.")
    limits: Limits = Field(description="Limits. Required (at least memory).")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        # Floors (platform-facts §16): a zero CPU request starves the container; below 16Mi it is killed at start.
        if cpu_millis(self.requests.cpu) < grammar.MIN_CPU_REQUEST_MILLIS:
            raise rule(
                "requests.cpu",
                f"must be at least {grammar.MIN_CPU_REQUEST_MILLIS}m (the floor), got {self.requests.cpu}",
            )
        for key, value in (("requests.memory", self.requests.memory), ("limits.memory", self.limits.memory)):
            if mem_mib(value) < grammar.MIN_MEMORY_MIB:
                raise rule(key, f"must be at least {grammar.MIN_MEMORY_MIB}Mi (the floor), got {value}")
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

    enabled: bool = Field(default=False, description="Create an HPA. Default: false.")
    min_replicas: int = Field(default=1, ge=1, le=grammar.INT32_MAX, description="minReplicas. Default: 1.")
    max_replicas: int = Field(default=1, ge=1, le=grammar.INT32_MAX, description="maxReplicas. Default: 1.")
    cpu_target_percent: int = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation target. Default: 70."
    )
    memory_target_percent: int = Field(
        default=80, ge=1, le=100, description="Average memory utilisation target. Default: 80."
    )
    scale_up_stabilization_seconds: int = Field(
        default=60, ge=0, le=3600, description="Scale-up stabilisation window. Default: 60 (seed)."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Scale-down stabilisation window. Default: 300 (seed: 5 min)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Hpa:
        if self.min_replicas > self.max_replicas:
            raise rule("minReplicas", f"must be <= maxReplicas ({self.max_replicas}), got {self.min_replicas}")
        return self


class Toleration(Model):
    key: str | None = Field(default=None, description="Taint key. Default: none (matches all keys with Exists).")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Operator. Default: Equal.")
    value: str | None = Field(default=None, description="Taint value. Default: none.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect. Default: all effects."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, description="For NoExecute. Default: forever.")


class Scheduling(Model):
    """Where pods may run. Applied to every pod of the environment unless a component overrides it."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="nodeSelector (label keys and values). Default: {}."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="tolerations. Default: [].")
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="affinity, as the Kubernetes API spells it; checked against the Kubernetes 1.27 schema "
        "(an unknown key is an error, never dropped). Default: {}.",
    )

    @model_validator(mode="after")
    def _kubernetes_grammar(self) -> Scheduling:
        for key, value in self.node_selector.items():
            try:
                grammar.label_key(key)
                grammar.label_value(value)
            except ValueError as exc:
                raise rule(f"nodeSelector.{key}", str(exc)) from None
        for i, t in enumerate(self.tolerations):
            if t.key is not None:
                try:
                    grammar.label_key(t.key)
                except ValueError as exc:
                    raise rule(f"tolerations.{i}.key", str(exc)) from None
        try:
            grammar.affinity(self.affinity)
        except ValueError as exc:
            raise rule("affinity", str(exc)) from None
        return self


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
        description="Name of the database server (the CNPG Cluster's name). Environments on one server share its "
        "max_connections: they must agree on maxConnections, and their connection budgets must fit in it "
        "together. Default: iotistica-cnpg-cl01 (platform-facts §7).",
    )
    max_connections: int = Field(
        default=100,
        ge=1,
        le=grammar.INT32_MAX,
        description="The server's max_connections, the same in every environment on `server`. Default: 100 "
        "(the CNPG cluster's, platform-facts §7).",
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


# --------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------


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
    provisioning_api_url: str = Field(
        default="http://provisioning-api.provisioning.svc.cluster.local:3100",
        description="PROVISIONING_API_URL (Auth0 role lookup, invites). Default: the old chart's in-cluster URL.",
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
    autoscale_min_workers: int = Field(default=2, ge=1, description="AUTOSCALE_MIN_WORKERS. Default: 2.")
    autoscale_max_workers: int = Field(default=12, ge=1, description="AUTOSCALE_MAX_WORKERS. Default: 12.")
    autoscale_lag_scale_up_ms: int = Field(default=5000, ge=1, description="AUTOSCALE_LAG_SCALE_UP_MS. Default: 5000.")
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


class DashboardConfig(Model):
    """`window.env` of the dashboard's config.js (seed: "Update dashboard.config.* ... per environment")."""

    api_url: Annotated[str, AfterValidator(grammar.http_url)] = Field(
        default="https://demo-api.iotistica.com", description="VITE_API_URL: an http(s) URL."
    )
    auth0_domain: str = Field(default="auth.iotistica.com", description="VITE_AUTH0_DOMAIN.")
    auth0_client_id: str = Field(
        default="...", description="VITE_AUTH0_CLIENT_ID (public). Default: the seed's placeholder."
    )
    auth0_audience: str = Field(default="https://api.iotistica.com", description="VITE_AUTH0_AUDIENCE.")
    auth0_callback_url: Annotated[str, AfterValidator(grammar.http_url)] = Field(
        default="https://demo.iotistica.com/auth/callback", description="VITE_AUTH0_CALLBACK_URL: an http(s) URL."
    )
    provisioning_api_url: str = Field(
        default="https://api.iotistica.com/provisioning", description="VITE_PROVISIONING_API_URL."
    )
    app_version: str | None = Field(default=None, description="APP_VERSION. Default: the dashboard image tag.")


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
        description="Security exception (issue 5), the only one of the platform: our own rule is a read-only "
        "root filesystem (stricter than the Kubernetes restricted profile, which Node-RED still meets). The "
        "image keeps settings.js and the @iotistic plugins in /data, its userDir, and Node-RED writes there at "
        "run time; an emptyDir over /data would hide that baked content (platform-facts §9). Set true for an "
        "image that writes elsewhere. Default: false.",
    )
    resources: Resources = _res("100m", "256Mi", "500m", "512Mi")
    scheduling: Scheduling | None = Field(
        default=None, description="Overrides the environment's scheduling. Default: inherit."
    )


# --------------------------------------------------------------------------------------------------
# Issue 5: network isolation, pod security, fleet namespaces
# --------------------------------------------------------------------------------------------------


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
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
    """Outbound HTTPS to the internet (the API's OpenAI calls when api.aiProvider is openai)."""

    cidr: Cidr = Field(default="0.0.0.0/0", description="Destination CIDR. Default: 0.0.0.0/0.")
    except_cidrs: list[Cidr] = Field(
        default_factory=lambda: list(PRIVATE_CIDRS),
        description="Excluded from `cidr`, so this rule never reaches inside the cluster. "
        "Default: the RFC 1918 ranges.",
    )
    ports: list[PortNumber] = Field(default_factory=lambda: [443], description="Ports. Default: [443].")

    @model_validator(mode="after")
    def _except_inside(self) -> NetworkInternet:
        outer = ipaddress.ip_network(self.cidr)
        for i, c in enumerate(self.except_cidrs):
            inner = ipaddress.ip_network(c)
            if inner.version != outer.version or not inner.subnet_of(outer):  # type: ignore[arg-type]
                raise rule(f"exceptCidrs.{i}", f"must lie inside cidr ({self.cidr}), got {c}")
        return self


class Network(Model):
    """NetworkPolicies of the release namespace: default deny, then exactly the platform's flows
    (constructs/network_policies.py holds the flow table)."""

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
        description="Emit the release Namespace object (labels, PSS labels) into dist/<release>/. Argo CD's "
        "CreateNamespace=true is harmless beside it. Default: true.",
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


# --------------------------------------------------------------------------------------------------
# Issue 3: edge (hostnames, Gateway API routes, rate limit, broker certificate) and monitoring
# --------------------------------------------------------------------------------------------------

_HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _check_hostname(value: str) -> str:
    grammar.not_ip(value)
    labels = value.split(".")
    if (
        len(value) > 253
        or len(labels) < 2
        or not all(_HOST_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(
            f"must be a fully qualified DNS name such as api.example.com (lowercase labels of at most 63 "
            f"letters, digits and '-', no wildcard), got {value!r}"
        )
    return value


#: A public hostname: at least two labels, no wildcard, no trailing dot.
Hostname = Annotated[str, AfterValidator(_check_hostname)]
#: A Gateway listener name (Gateway API SectionName).
SectionName = Annotated[str, AfterValidator(_check_dns_name)]

GATEWAY_API = "gateway.networking.k8s.io"
HttpRouteApiVersion = Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]
TlsRouteApiVersion = Literal[
    "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha3", "gateway.networking.k8s.io/v1alpha2"
]
TcpRouteApiVersion = Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"]
EdgeHostKind = Literal["api", "dashboard", "mqtt", "nodered"]
#: How an unset host is derived from the release and ``edge.domain`` (the provisioning service's scheme).
HOST_PATTERNS: dict[str, str] = {
    "api": "api-{release}.{domain}",
    "dashboard": "{release}.{domain}",
    "mqtt": "mqtt-{release}.{domain}",
    "nodered": "nr-{release}.{domain}",
}


class EdgeHosts(Model):
    """Public hostnames. An unset host is derived from the release and ``edge.domain``."""

    api: Hostname | None = Field(
        default=None,
        description="The API's host (HTTPRoute to {release}-api:3002). Default: api-{release}.{edge.domain}.",
    )
    dashboard: Hostname | None = Field(
        default=None,
        description="The dashboard's host (HTTPRoute to {release}-dashboard:80); https://<host> is a CORS origin "
        "of the API unless api.corsOrigins is set. Default: {release}.{edge.domain}.",
    )
    dashboard_aliases: list[Hostname] = Field(
        default_factory=list,
        description="More hosts that serve the dashboard (same HTTPRoute, also CORS origins). Default: [].",
    )
    mqtt: Hostname | None = Field(
        default=None,
        description="The broker's host: SNI hostname of the TLSRoute, commonName of the broker Certificate, "
        "host of the optional websockets route. Default: mqtt-{release}.{edge.domain}.",
    )
    nodered: Hostname | None = Field(
        default=None, description="Node-RED's host (when nodered.enabled). Default: nr-{release}.{edge.domain}."
    )


class EdgeListeners(Model):
    """Listener names (sectionName) of the shared Gateway (platform-facts §5)."""

    https: SectionName = Field(
        default="https", description="HTTPS listener (443, TLS terminated by the Gateway): HTTPRoutes. Default: https."
    )
    mqtt_tls: SectionName = Field(
        default="mqtt-tls",
        description="TLS listener on 8883 in Passthrough mode (mosquitto terminates TLS): the TLSRoute. "
        "Default: mqtt-tls.",
    )
    mqtt: SectionName = Field(default="mqtt", description="TCP listener on 1883: the optional TCPRoute. Default: mqtt.")


class EdgeGateway(Model):
    """The parent Gateway every route attaches to. It must allow routes from this namespace."""

    name: DnsName = Field(default="iotistica-gateway", description="Gateway name. Default: iotistica-gateway.")
    namespace: DnsLabel = Field(
        default="envoy-gateway-system", description="Gateway namespace. Default: envoy-gateway-system."
    )
    listeners: EdgeListeners = Field(default_factory=EdgeListeners, description="Listener names (sectionName).")


class EdgeApiVersions(Model):
    """Route API versions. The defaults are what Envoy Gateway v1.9 reconciles with Gateway API v1.6 CRDs."""

    http_route: HttpRouteApiVersion = Field(
        default="gateway.networking.k8s.io/v1",
        description="HTTPRoute apiVersion. Default: gateway.networking.k8s.io/v1.",
    )
    tls_route: TlsRouteApiVersion = Field(
        default="gateway.networking.k8s.io/v1",
        description="TLSRoute apiVersion (v1 since Gateway API v1.5; Envoy Gateway >= v1.8 watches v1). "
        "Default: gateway.networking.k8s.io/v1.",
    )
    tcp_route: TcpRouteApiVersion = Field(
        default="gateway.networking.k8s.io/v1",
        description="TCPRoute apiVersion (v1 since Gateway API v1.6; Envoy Gateway >= v1.9 watches v1). "
        "Default: gateway.networking.k8s.io/v1.",
    )


class EdgeRoutes(Model):
    """Which routes exist."""

    api: bool = Field(default=True, description="HTTPRoute to the API. Default: true.")
    dashboard: bool = Field(default=True, description="HTTPRoute to the dashboard. Default: true.")
    nodered: bool = Field(default=True, description="HTTPRoute to Node-RED, when nodered.enabled. Default: true.")
    mqtt_tls: bool = Field(
        default=True,
        description="TLSRoute (passthrough) to {release}-mosquitto:8883. Needs mosquitto.tls.enabled. Default: true.",
    )
    mqtt: bool = Field(
        default=False, description="TCPRoute for plain MQTT to {release}-mosquitto:1883 (unencrypted). Default: false."
    )
    websockets: bool = Field(
        default=False,
        description="HTTPRoute for MQTT over websockets (wss://<mqtt host>/ to {release}-mosquitto:9001). "
        "Default: false.",
    )


class EdgeRateLimit(Model):
    """Envoy Gateway BackendTrafficPolicy on the API's HTTPRoute (seed: 1,000 requests per minute)."""

    enabled: bool = Field(default=True, description="Create the BackendTrafficPolicy. Default: true.")
    requests: int = Field(
        default=1000,
        ge=1,
        le=4294967295,
        description="Requests per unit. A local limit: each Envoy replica counts on its own. Default: 1000 (seed).",
    )
    unit: Literal["Second", "Minute", "Hour", "Day", "Week", "Month", "Year"] = Field(
        default="Minute", description="Unit of the limit. Default: Minute (seed)."
    )


class EdgeCertificate(Model):
    """cert-manager Certificate for the broker; it writes the Secret mosquitto mounts for 8883."""

    enabled: bool = Field(
        default=True, description="Create the Certificate (when mosquitto.tls.enabled). Default: true."
    )
    issuer_name: DnsName = Field(
        default="letsencrypt-production", description="Issuer name. Default: letsencrypt-production (seed)."
    )
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field(
        default="ClusterIssuer", description="Issuer kind. Default: ClusterIssuer (seed)."
    )


class Edge(Model):
    """How the environment is reached: hostnames and Gateway API routes through Envoy Gateway."""

    domain: Hostname | None = Field(
        default="iotistica.com",
        description="Domain that unset hosts are derived from (api-{release}.<domain>, ...). null: every host "
        "of an enabled route must be set. Default: iotistica.com.",
    )
    hosts: EdgeHosts = Field(default_factory=EdgeHosts, description="Public hostnames.")
    gateway: EdgeGateway = Field(default_factory=EdgeGateway, description="The parent Gateway.")
    api_versions: EdgeApiVersions = Field(default_factory=EdgeApiVersions, description="Route API versions.")
    routes: EdgeRoutes = Field(default_factory=EdgeRoutes, description="Which routes exist.")
    rate_limit: EdgeRateLimit = Field(default_factory=EdgeRateLimit, description="Rate limit of the API route.")
    certificate: EdgeCertificate = Field(default_factory=EdgeCertificate, description="The broker's Certificate.")

    def host(self, kind: EdgeHostKind, release: str) -> str | None:
        """The host of ``kind``: the one set, else derived from ``domain``; None when neither."""
        explicit: str | None = getattr(self.hosts, kind)
        if explicit is not None:
            return explicit
        if self.domain is None:
            return None
        return HOST_PATTERNS[kind].format(release=release, domain=self.domain)

    def dashboard_hosts(self, release: str) -> list[str]:
        main = self.host("dashboard", release)
        return ([main] if main else []) + [h for h in self.hosts.dashboard_aliases if h != main]


class MonitoringAlerts(Model):
    """The PrometheusRule. Unset thresholds come from the ingestion profile (platform-facts §3.2, §13)."""

    enabled: bool = Field(
        default=True, description="Create the PrometheusRule (when monitoring.enabled). Default: true."
    )
    dwell_latency_warning_seconds: int = Field(
        default=30, ge=1, description="Warn when ingestion's p95 dwell latency exceeds this. Default: 30."
    )
    dwell_latency_critical_seconds: int = Field(
        default=60, ge=1, description="Page when ingestion's p95 dwell latency exceeds this. Default: 60."
    )
    stream_watermark_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Alert when the ingestion stream holds at least this share of ingestion.streamMaxlen. "
        "Default: the profile's REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT (80 for batch, balanced, streaming).",
    )
    redis_memory_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Alert when Redis memory reaches this share of maxmemory. Default: the profile's "
        "REDIS_MEMORY_HIGH_WATERMARK_PCT (75).",
    )
    db_pool_saturation_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Alert when an ingestion pod's DB pool saturation reaches this. Default: the profile's "
        "DB_SATURATION_HIGH_WATERMARK_PCT (batch 70, balanced 80, streaming 85).",
    )
    hpa_at_max_for: Duration = Field(
        default="15m", description="How long an HPA must sit at maxReplicas before it alerts. Default: 15m."
    )

    @model_validator(mode="after")
    def _alert_rules(self) -> MonitoringAlerts:
        if self.dwell_latency_critical_seconds <= self.dwell_latency_warning_seconds:
            raise rule(
                "dwellLatencyCriticalSeconds",
                f"must be > dwellLatencyWarningSeconds ({self.dwell_latency_warning_seconds}), "
                f"got {self.dwell_latency_critical_seconds}",
            )
        return self


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class Monitoring(Model):
    """Prometheus Operator objects: ServiceMonitors for the API and ingestion, and alert rules."""

    enabled: bool = Field(default=False, description="Create ServiceMonitors (and the PrometheusRule). Default: false.")
    interval: Duration = Field(default="30s", description="Scrape interval. Default: 30s (seed).")
    scrape_timeout: Duration = Field(default="10s", description="Scrape timeout, at most the interval. Default: 10s.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the ServiceMonitors and the PrometheusRule, for Prometheus' selectors "
        "(e.g. release: kube-prometheus-stack). Default: {}.",
    )
    alerts: MonitoringAlerts = Field(default_factory=MonitoringAlerts, description="Alert rules.")

    @model_validator(mode="after")
    def _monitoring_rules(self) -> Monitoring:
        if _seconds(self.scrape_timeout) > _seconds(self.interval):
            raise rule("scrapeTimeout", f"must be <= interval ({self.interval}), got {self.scrape_timeout}")
        for key, value in self.labels.items():
            if key.startswith("app.kubernetes.io/") or key.startswith("iotistica.com/"):
                raise rule(f"labels.{key}", "may not override the platform's own labels")
            if not _LABEL_KEY.match(key) or len(key) > 317:
                raise rule(f"labels.{key}", "must be a label key")
            if not _LABEL_VALUE.match(value):
                raise rule(f"labels.{key}", f"must be a label value, got {value!r}")
        return self


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


# --------------------------------------------------------------------------------------------------
# Issue 4: secrets provider, lifecycle jobs (db-init, TimescaleDB policies, stream key resolver), Argo CD
# --------------------------------------------------------------------------------------------------

_DURATION_UNITS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400)}
_ITEM_PATH = re.compile(r"^vaults/[^/\s]+/items/[^/\s]+$")


def duration_seconds(value: str) -> int:
    """``30d`` -> 2592000. ``value`` is a validated Duration."""
    return int(value[:-1]) * _DURATION_UNITS[value[-1]][1]


def pg_interval(value: str) -> str:
    """A Duration as PostgreSQL interval text: ``2d`` -> ``2 days``, ``1h`` -> ``1 hour``."""
    count, unit = int(value[:-1]), _DURATION_UNITS[value[-1]][0]
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _python_image() -> Image:
    return Image(repository="python", tag="3.12.8-alpine3.21")


def _postgres_image() -> Image:
    return Image(repository="postgres", tag="17.2-alpine3.21")


def _job_res() -> Any:
    return _res("50m", "64Mi", "500m", "128Mi")


class OnePassword(Model):
    """Where the 1Password Operator finds each Secret's item (`OnePasswordItem.spec.itemPath`)."""

    item_path: str = Field(
        default="vaults/iotistica/items/{name}",
        description="Item path template; `{name}` is the Secret's name. Default: vaults/iotistica/items/{name} "
        "(the in-repo chart's layout, platform-facts §12).",
    )
    items: dict[str, str] = Field(
        default_factory=dict,
        description="Per-Secret item paths (Secret name -> vaults/<vault>/items/<item>), overriding `itemPath`. "
        "Default: {}.",
    )

    @model_validator(mode="after")
    def _paths(self) -> OnePassword:
        if "{name}" not in self.item_path or not _ITEM_PATH.match(self.item_path.replace("{name}", "x")):
            raise rule("itemPath", f"must look like vaults/<vault>/items/{{name}}, got {self.item_path!r}")
        for name, path in self.items.items():
            if not _DNS_NAME.match(name):
                raise rule(f"items.{name}", "must be keyed by a Secret name")
            if not _ITEM_PATH.match(path):
                raise rule(f"items.{name}", f"must look like vaults/<vault>/items/<item>, got {path!r}")
        return self

    def path_for(self, secret: str) -> str:
        return self.items.get(secret, self.item_path.replace("{name}", secret))


class Secrets(Model):
    """Where the release's Secrets come from. Their material never enters dist/."""

    provider: Literal["existing", "onepassword"] = Field(
        default="existing",
        description="existing: the Secrets of the seed's table must exist before the sync; dist/<release>/"
        "REQUIRED-SECRETS.md lists them. onepassword: a OnePasswordItem per Secret (the 1Password Operator "
        "writes the Secret). Default: existing.",
    )
    one_password: OnePassword = Field(default_factory=OnePassword, description="1Password item paths.")
    redis_auth: Literal["generate", "onepassword"] = Field(
        default="generate",
        description="Source of `{release}-redis-auth` (when redis.auth.enabled). generate: a hook Job creates it "
        "with a random password if it is missing and never rotates it; onepassword: a OnePasswordItem. "
        "Default: generate (seed: the chart creates it).",
    )
    generator_image: Image = Field(
        default_factory=_python_image,
        description="Image of the redis-auth generator Job. Default: python:3.12.8-alpine3.21.",
    )
    generator_resources: Resources = _job_res()


class DbInit(Model):
    """The db-init hook Job (seed "Database Initialization")."""

    enabled: bool = Field(
        default=False,
        description="Run db-init before the API on every sync. Default: false (demo: the role is created by hand "
        "before GitOps); the starter, standard and enterprise presets turn it on.",
    )
    admin_secret_name: DnsName = Field(
        default="pg-admin-credentials",
        description="Admin Secret (keys username, password) db-init connects with. Default: pg-admin-credentials.",
    )
    admin_database: str = Field(
        default="postgres",
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$",
        description="Maintenance database. Default: postgres.",
    )
    wait_seconds: int = Field(default=300, ge=10, le=3600, description="How long to wait for the server. Default: 300.")
    image: Image = Field(
        default_factory=_postgres_image,
        description="psql client image. Default: postgres:17.2-alpine3.21 (the CNPG server runs 17).",
    )
    resources: Resources = _job_res()


def _check_policies(model: Any, window: str | None) -> None:
    """compressAfter < retain; a continuous aggregate's policies lie outside its refresh window."""
    compress, retain = model.compress_after, model.retain
    if compress and retain and duration_seconds(retain) <= duration_seconds(compress):
        raise rule("retain", f"must be longer than compressAfter ({compress}), got {retain}")
    if window is None:
        return
    for key, value in (("compressAfter", compress), ("retain", retain)):
        if value is not None and duration_seconds(value) <= duration_seconds(window):
            raise rule(
                key,
                f"must lie outside the refresh window (longer than refreshStartOffset {window}): every refresh "
                f"would recompress or re-drop it, got {value}",
            )


class ReadingsPolicies(Model):
    """The raw hypertable `readings`. null = no such policy (an existing one is removed)."""

    compress_after: Duration | None = Field(
        default="2d", description="Compress chunks older than this. Default: 2d (seed)."
    )
    retain: Duration | None = Field(
        default="30d",
        description="Drop chunks older than this. Default: 30d (demo, as the provisioning values; the tier "
        "presets: starter 30d, standard 60d, enterprise 90d).",
    )

    @model_validator(mode="after")
    def _policies(self) -> ReadingsPolicies:
        _check_policies(self, None)
        return self


class Readings1mPolicies(Model):
    """The continuous aggregate `readings_1m`. null = no such policy (an existing one is removed)."""

    compress_after: Duration | None = Field(default="7d", description="Compress after. Default: 7d (seed).")
    retain: Duration | None = Field(default="90d", description="Retention. Default: 90d (seed).")
    refresh_start_offset: Duration = Field(
        default="10m",
        description="start_offset of its refresh policy as the API's migration 027 creates it (the job never "
        "changes it; the validator keeps the policies outside it). Default: 10m.",
    )

    @model_validator(mode="after")
    def _policies(self) -> Readings1mPolicies:
        _check_policies(self, self.refresh_start_offset)
        return self


class AgentMetrics5minPolicies(Model):
    """The continuous aggregate `agent_metrics_5min`. null = no such policy (an existing one is removed)."""

    compress_after: Duration | None = Field(default=None, description="Compress after. Default: none.")
    retain: Duration | None = Field(
        default=None, description="Retention. Default: none (the enterprise preset: 60d, seed)."
    )
    refresh_start_offset: Duration = Field(
        default="1h", description="start_offset of its refresh policy as migration 023 creates it. Default: 1h."
    )

    @model_validator(mode="after")
    def _policies(self) -> AgentMetrics5minPolicies:
        _check_policies(self, self.refresh_start_offset)
        return self


class TimescaleDb(Model):
    """The timescaledb-policy hook Job (seed "TimescaleDB Lifecycle Policies"): wave 1, every sync."""

    enabled: bool = Field(
        default=True,
        description="Run the policy Job on every sync. Set false on a fresh database until the API's migrations "
        "(006, 007, 023) have run. Default: true.",
    )
    credentials_secret_name: DnsName | None = Field(
        default=None,
        description="Secret (keys username, password) of a role that owns the tables; policy functions need "
        "ownership. Default: dbInit.adminSecretName.",
    )
    wait_for_tables_seconds: int = Field(
        default=600,
        ge=0,
        le=3600,
        description="Wait this long for the tables, then fail with a clear message. Default: 600.",
    )
    readings: ReadingsPolicies = Field(default_factory=ReadingsPolicies, description="The raw hypertable.")
    readings_1m: Readings1mPolicies = Field(
        default_factory=Readings1mPolicies, alias="readings1m", description="Continuous aggregate readings_1m."
    )
    agent_metrics_5min: AgentMetrics5minPolicies = Field(
        default_factory=AgentMetrics5minPolicies,
        alias="agentMetrics5min",
        description="Continuous aggregate agent_metrics_5min.",
    )
    image: Image = Field(
        default_factory=_postgres_image, description="psql client image. Default: postgres:17.2-alpine3.21."
    )
    resources: Resources = _job_res()

    @model_validator(mode="after")
    def _raw_outlives_refresh(self) -> TimescaleDb:
        if self.readings.retain is None:
            return self
        for key, agg in (("readings1m", self.readings_1m), ("agentMetrics5min", self.agent_metrics_5min)):
            if duration_seconds(self.readings.retain) <= duration_seconds(agg.refresh_start_offset):
                raise rule(
                    "readings.retain",
                    f"must be longer than {key}.refreshStartOffset ({agg.refresh_start_offset}): a refresh would "
                    f"erase aggregates of dropped raw data, got {self.readings.retain}",
                )
        return self


class StreamKeyResolver(Model):
    """The stream key resolver hook Job: license JWT -> `{release}-ingestion-runtime-env`."""

    license_secret_key: str = Field(
        default="key",
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key of the JWT in api-license-credentials-{ns}. Default: key.",
    )
    license_wait_seconds: int = Field(
        default=120,
        ge=0,
        le=1800,
        description="Wait this long for the license Secret (the 1Password Operator may still be writing it), then "
        "fail. Default: 120.",
    )
    image: Image = Field(default_factory=_python_image, description="Default: python:3.12.8-alpine3.21.")
    resources: Resources = _job_res()


class ArgoCd(Model):
    """The Argo CD Application of this environment (dist/argocd/). repoUrl, targetRevision and namespace
    must be the same in every environment: the app-of-apps syncs dist/argocd/ from there."""

    repo_url: str = Field(
        default="https://github.com/Iotistica/iotistica-k8s.git",
        pattern=r"^(https://|ssh://|git@)\S+$",
        description="Git repository holding dist/. Default: https://github.com/Iotistica/iotistica-k8s.git.",
    )
    target_revision: str = Field(
        default="main", pattern=r"^[A-Za-z0-9._/-]{1,200}$", description="Branch, tag or commit. Default: main."
    )
    project: DnsLabel = Field(default="default", description="Argo CD project. Default: default.")
    namespace: DnsLabel = Field(default="argocd", description="Namespace of the Application objects. Default: argocd.")
    destination_server: str = Field(
        default="https://kubernetes.default.svc",
        pattern=r"^https://\S+$",
        description="Target cluster API. Default: https://kubernetes.default.svc (the cluster Argo CD runs in).",
    )


#: The long-running workloads of a release, by the ``app.kubernetes.io/component`` they carry. The old
#: Helm chart used the same component values (platform-facts §12).
HelmWorkload = Literal["api", "dashboard", "ingestion", "mosquitto", "nodered", "redis"]
HELM_WORKLOADS: tuple[HelmWorkload, ...] = ("api", "dashboard", "ingestion", "mosquitto", "nodered", "redis")


class Migration(Model):
    """Moving a live release of the old Helm chart to Argo CD (README "Moving a live Helm release to
    Argo CD"). `iotistica-k8s migrate ENV --from FILE` says whether an environment needs this; new
    environments never do."""

    selector_labels: Literal["native", "helm"] = Field(
        default="native",
        description="Selector labels of the workloads listed in `workloads`. `native`: "
        "`app.kubernetes.io/name: <workload>`. `helm`: the old chart's `app.kubernetes.io/name: iotistic`, "
        "`instance: <release>`, `component: <workload>` (platform-facts §12) on the selector, the pod template "
        "and everything that selects those pods (Services, PDBs, NetworkPolicies, ServiceMonitors), so the "
        "first sync of a Deployment or StatefulSet adopted in place is a rolling update, not a recreate "
        "(selectors are immutable), and a renamed Deployment adopts the old one's ReplicaSet. Default: native.",
    )
    workloads: list[HelmWorkload] = Field(
        default_factory=lambda: list(HELM_WORKLOADS),
        description="With selectorLabels `helm`: the workloads that keep the old chart's selector. List only "
        "those `migrate` reports (a workload whose kind changed, e.g. a StatefulSet Redis now a Deployment, must "
        "not share the old pods' selector). Default: all six.",
    )

    @model_validator(mode="after")
    def _unique(self) -> Migration:
        dupes = sorted({w for w in self.workloads if self.workloads.count(w) > 1})
        if dupes:
            raise rule("workloads", f"must not repeat a workload, got {', '.join(dupes)} twice")
        return self

AdmissionPolicyVersion = Literal["v1", "v1beta1", "none"]


class Cluster(Model):
    """Cluster-wide objects of dist/cluster/. Every environment must agree on these: one cluster runs them."""

    admission_policies: AdmissionPolicyVersion = Field(
        default="v1",
        description="API version of the ValidatingAdmissionPolicies that confine the API's cluster-wide rights "
        "(dist/cluster/): v1 (Kubernetes >= 1.30), v1beta1 (1.28-1.29 with the ValidatingAdmissionPolicy "
        "feature gate and admissionregistration.k8s.io/v1beta1 runtime-config), or none (the cluster enforces "
        "the same elsewhere; validate and explain then warn that the API's grant is cluster-wide). Must be the "
        "same in every environment. Default: v1.",
    )


# --------------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------------

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
    # --- issue 4: secrets provider, lifecycle jobs, Argo CD Application ---
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
        default_factory=Cluster, description="Cluster-wide objects (dist/cluster/); the same in every environment."
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
        # --- issue 5: fleet namespace names, the provisioning API as an egress target ---
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
        # --- issue 3: hosts of the enabled routes, the TLS route, CORS origins ---
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

    @property
    def cors_origins(self) -> list[str]:
        """CORS_ORIGINS of the API: api.corsOrigins, else https://<each dashboard host>."""
        if self.api.cors_origins is not None:
            return list(self.api.cors_origins)
        return [f"https://{host}" for host in self.edge.dashboard_hosts(self.release)]

    def fleet_namespace(self, fleet: str) -> str:
        """The seed's fleet namespace name: ``fleet-{release namespace}-{name}``."""
        return f"fleet-{self.namespace}-{fleet}"

    def fleet_object_name(self, fleet: str) -> str:
        """Name of the quota, limits, RoleBinding and NetworkPolicy inside a fleet namespace."""
        return f"{self.release}-fleet-{fleet}"
