"""ReleaseChart: one environment, one ArgoCD Application, one folder ``dist/<release>/`` (namespaced objects only).

This is the one place where constructs are wired to each other: each construct receives its slice
of the environment plus the outputs (service names, ports, URLs, network endpoints) of the constructs
it talks to. A release is four steps, one per concern (docs/architecture.md):

1. core: Redis, the broker, the API, ingestion, the dashboard, Node-RED (optional);
2. edge: Gateway API routes, the API rate limit, the broker certificate, monitoring;
3. lifecycle: the secrets provider and the hook Jobs (sync order: constructs/lifecycle/sync_hooks.py);
4. isolation: what the fleet namespaces hold and the NetworkPolicies over the pods of the three steps
   before it (the cluster-scoped objects of a release, its Namespaces and the API's ClusterRoleBinding,
   are in its cluster's platform folder: constructs/shared_charts.py).
"""

from __future__ import annotations

from constructs.api_objects import ObjectChart, Root
from constructs.core.api_service import ApiService, ApiServiceProps
from constructs.core.dashboard import Dashboard, DashboardProps
from constructs.core.db_pooler import DbPooler, DbPoolerProps
from constructs.core.ingestion_service import IngestionService, IngestionServiceProps
from constructs.core.mosquitto_broker import MosquittoBroker, MosquittoBrokerProps
from constructs.core.nodered import NodeRed, NodeRedProps
from constructs.core.redis_store import RedisStore, RedisStoreProps
from constructs.edge.api_rate_limit import ApiRateLimit, ApiRateLimitProps
from constructs.edge.broker_certificate import BrokerCertificate, BrokerCertificateProps
from constructs.edge.gateway_routes import Backend, GatewayRoutes, GatewayRoutesProps
from constructs.edge.monitoring import HpaTarget, Monitoring, MonitoringProps, RedisClusterTarget, ScrapeTarget
from constructs.isolation.fleet_namespace import FleetNamespace, FleetNamespaceProps, fleet_selector_labels
from constructs.isolation.network_policies import Endpoint, PlatformNetworkPolicies, PlatformNetworkPoliciesProps
from constructs.lifecycle.api_migrations_job import ApiMigrationsJob, ApiMigrationsJobProps
from constructs.lifecycle.db_init_job import DbInitJob, DbInitJobProps
from constructs.lifecycle.platform_config_job import PlatformConfigJob, PlatformConfigJobProps
from constructs.lifecycle.secrets_provider import SecretsProvider, SecretsProviderProps
from constructs.lifecycle.stream_key_resolver import StreamKeyResolverJob, StreamKeyResolverProps
from constructs.lifecycle.timescale_policy_job import TimescalePolicyJob, TimescalePolicyJobProps
from constructs.platform import Release
from tiers.models import Environment, Scheduling


class ReleaseChart(ObjectChart):
    def __init__(self, scope: Root, env: Environment) -> None:
        super().__init__(scope, env.release, namespace=env.namespace, disable_resource_name_hashes=True)
        # Derived values (pool sizes from the connection budget, MAXLEN from buffer seconds) filled in.
        env = env.resolved()
        self.env = env
        migration = env.migration
        self.rel = Release(
            release=env.release,
            namespace=env.namespace,
            tier=env.tier,
            helm_selectors=frozenset(migration.workloads if migration.selector_labels == "helm" else ()),
        )
        self._core()
        self._edge()
        self._lifecycle()
        self._isolation()

    def _sched(self, own: Scheduling | None) -> Scheduling:
        return own if own is not None else self.env.scheduling

    def _core(self) -> None:
        """The platform's services; each publishes its Service name, port, URL and network endpoint."""
        env, rel, sched = self.env, self.rel, self._sched
        self.redis = RedisStore(
            self,
            "Redis",
            props=RedisStoreProps(
                release=rel,
                values=env.redis,
                scheduling=sched(env.redis.scheduling),
                metrics=env.monitoring.enabled,
            ),
        )
        self.mosquitto = MosquittoBroker(
            self,
            "Mosquitto",
            props=MosquittoBrokerProps(
                release=rel,
                values=env.mosquitto,
                scheduling=sched(env.mosquitto.scheduling),
                auth_host=rel.name("api"),
                auth_port=3002,
            ),
        )
        self.api = ApiService(
            self,
            "Api",
            props=ApiServiceProps(
                release=rel,
                values=env.api,
                scheduling=sched(env.api.scheduling),
                database=env.database,
                broker_url=self.mosquitto.mqtt_url,
                redis=self.redis.endpoint,
                stream_maxlen=env.stream_maxlen,
                cors_origins=env.cors_origins,
                dashboard_config=env.dashboard.config,
            ),
        )
        if self.api.service_name != self.mosquitto.auth_host or self.api.port != self.mosquitto.auth_port:
            raise AssertionError("the broker's auth callback must point at the API service")
        self.ingestion = IngestionService(
            self,
            "Ingestion",
            props=IngestionServiceProps(
                release=rel,
                values=env.ingestion,
                scheduling=sched(env.ingestion.scheduling),
                database=env.database,
                redis=self.redis.endpoint,
            ),
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            props=DashboardProps(release=rel, values=env.dashboard, scheduling=sched(env.dashboard.scheduling)),
        )
        self.nodered: NodeRed | None = None
        if env.nodered.enabled:
            self.nodered = NodeRed(
                self,
                "NodeRed",
                props=NodeRedProps(
                    release=rel, values=env.nodered, scheduling=sched(env.nodered.scheduling), api_url=self.api.url
                ),
            )
        # A PgBouncer Pooler beside the CNPG cluster, when the connection budget asks for one.
        self.db_pooler: DbPooler | None = None
        if env.database.pooler.enabled and env.database.pooler.kind == "cnpg" and env.network.database.namespace:
            self.db_pooler = DbPooler(
                self,
                "DbPooler",
                props=DbPoolerProps(release=rel, values=env.database, cluster_namespace=env.network.database.namespace),
            )
            if self.db_pooler.host != env.pooler_host:
                raise AssertionError("DB_HOST of the pods must be the Pooler's Service")

    def _edge(self) -> None:
        """Traffic in (Gateway API routes, rate limit), the broker's certificate, metrics and alerts."""
        env, rel, broker, nodered = self.env, self.rel, self.mosquitto, self.nodered
        self.routes = GatewayRoutes(
            self,
            "Routes",
            props=GatewayRoutesProps(
                release=rel,
                edge=env.edge,
                api=Backend(service=self.api.service_name, port=self.api.port),
                dashboard=Backend(service=self.dashboard.service_name, port=self.dashboard.port),
                nodered=Backend(service=nodered.service_name, port=nodered.port) if nodered else None,
                mqtt=Backend(service=broker.service_name, port=broker.mqtt_port),
                mqtts=Backend(service=broker.service_name, port=broker.mqtts_port) if broker.tls_secret_name else None,
                websockets=Backend(service=broker.service_name, port=broker.ws_port),
            ),
        )
        if env.edge.rate_limit.enabled and self.routes.api_route:
            ApiRateLimit(
                self,
                "ApiRateLimit",
                props=ApiRateLimitProps(release=rel, values=env.edge.rate_limit, route=self.routes.api_route),
            )
        self.certificate: BrokerCertificate | None = None
        mqtt_host = env.edge.host("mqtt", env.release)
        if env.edge.certificate.enabled and broker.tls_secret_name and mqtt_host:
            self.certificate = BrokerCertificate(
                self,
                "BrokerCertificate",
                props=BrokerCertificateProps(
                    release=rel, values=env.edge.certificate, host=mqtt_host, secret_name=broker.tls_secret_name
                ),
            )
        self.monitoring: Monitoring | None = None
        if env.monitoring.enabled:
            hpas = [
                HpaTarget(name=service, app=app, max_replicas=hpa.max_replicas)
                for service, app, hpa in (
                    (self.api.service_name, "api", env.api.hpa),
                    (self.ingestion.service_name, "ingestion", env.ingestion.hpa),
                )
                if hpa.enabled
            ]
            redis_targets: list[ScrapeTarget] = []
            redis_cluster: RedisClusterTarget | None = None
            if self.redis.headless_service and self.redis.metrics_port:
                redis_targets.append(
                    ScrapeTarget(
                        service=self.redis.headless_service,
                        app=self.redis.network_endpoint.app,
                        port=self.redis.metrics_port_name,
                    )
                )
                cluster = env.redis.cluster
                redis_cluster = RedisClusterTarget(
                    service=self.redis.headless_service,
                    masters=cluster.masters,
                    replicas_per_master=cluster.replicas_per_master,
                    repair_bound_seconds=self.redis.repair_bound_seconds,
                )
            self.monitoring = Monitoring(
                self,
                "Monitoring",
                props=MonitoringProps(
                    release=rel,
                    values=env.monitoring,
                    targets=[
                        ScrapeTarget(service=self.api.service_name, app="api"),
                        ScrapeTarget(service=self.ingestion.service_name, app="ingestion"),
                        *redis_targets,
                    ],
                    redis_cluster=redis_cluster,
                    ingestion_service=self.ingestion.service_name,
                    stream_maxlen=env.stream_maxlen,
                    profile=env.ingestion.profile,
                    hpas=hpas,
                ),
            )

    def _lifecycle(self) -> None:
        """Secrets (referenced, 1Password items or generated in the cluster) and the sync hook Jobs."""
        env, rel = self.env, self.rel
        if self.redis.auth_secret and self.redis.auth_secret != f"{env.release}-redis-auth":
            raise AssertionError("the secrets provider writes the Secret Redis reads")
        self.secrets = SecretsProvider(self, "Secrets", props=SecretsProviderProps(release=rel, environment=env))
        self.stream_key_resolver = StreamKeyResolverJob(
            self,
            "StreamKeyResolver",
            props=StreamKeyResolverProps(
                release=rel,
                values=env.stream_key_resolver,
                scheduling=env.scheduling,
                runtime_secret=self.ingestion.runtime_secret,
            ),
        )
        self.db_init: DbInitJob | None = None
        if env.db_init.enabled:
            self.db_init = DbInitJob(
                self,
                "DbInit",
                props=DbInitJobProps(release=rel, values=env.db_init, database=env.database, scheduling=env.scheduling),
            )
        # The API's migrations, once per sync before the API starts; the API pods skip them (platform-facts §17).
        self.api_migrations = ApiMigrationsJob(
            self,
            "ApiMigrations",
            props=ApiMigrationsJobProps(
                release=rel, values=env.api, database=env.database, scheduling=self._sched(env.api.scheduling)
            ),
        )
        if self.api.skip_migrations_env != ApiMigrationsJob.SKIP_ENV:
            raise AssertionError("the API pods must leave the migrations to the api-migrations Job")
        self.timescale_policy: TimescalePolicyJob | None = None
        if env.timescaledb.enabled:
            self.timescale_policy = TimescalePolicyJob(
                self,
                "TimescalePolicy",
                props=TimescalePolicyJobProps(
                    release=rel,
                    values=env.timescaledb,
                    database=env.database,
                    credentials_secret=env.policy_credentials_secret,
                    scheduling=env.scheduling,
                ),
            )
        # Settings the platform keeps in its database (platform-facts §17): the broker agents are handed, the admin.
        agents_mqtt = (
            env.edge.host("mqtt", env.release) if env.edge.routes.mqtt_tls and self.mosquitto.tls_secret_name else None
        )
        self.platform_config = PlatformConfigJob(
            self,
            "PlatformConfig",
            props=PlatformConfigJobProps(
                release=rel,
                database=env.database,
                image=env.timescaledb.image,
                resources=env.timescaledb.resources,
                scheduling=env.scheduling,
                mqtt_host=agents_mqtt,
                admin_email=f"admin@{env.edge.domain or 'example.invalid'}",
            ),
        )

    def _endpoints(self) -> list[Endpoint]:
        """Every pod group of the release, as its construct publishes it (labels and container ports)."""
        optional = (
            self.redis.bootstrap_endpoint,
            self.redis.repair_endpoint,
            self.nodered.network_endpoint if self.nodered else None,
            self.stream_key_resolver.network_endpoint,
            self.secrets.generator_endpoint,
            self.db_init.network_endpoint if self.db_init else None,
            self.timescale_policy.network_endpoint if self.timescale_policy else None,
            self.platform_config.network_endpoint,
            self.api_migrations.network_endpoint,
        )
        return [
            self.api.network_endpoint,
            self.ingestion.network_endpoint,
            self.mosquitto.network_endpoint,
            self.redis.network_endpoint,
            self.dashboard.network_endpoint,
            *(e for e in optional if e is not None),
        ]

    def _isolation(self) -> None:
        """What the fleet namespaces hold, NetworkPolicies."""
        env, rel = self.env, self.rel
        # The release Namespace, the fleet Namespaces and the API's ClusterRoleBinding are cluster-scoped:
        # they are the tenant's files in its cluster's platform folder (constructs/shared_charts.py), never
        # here (synth/render.py refuses a cluster-scoped object in a tenant folder).
        fleets = env.fleet_namespaces
        endpoints = self._endpoints()
        self.network_endpoints = {e.key: e for e in endpoints}
        self.fleets: list[FleetNamespace] = []
        if fleets.enabled:
            for fleet in fleets.fleets:
                self.fleets.append(
                    FleetNamespace(
                        self,
                        f"Fleet-{fleet.name}",
                        props=FleetNamespaceProps(
                            release=rel,
                            fleet=fleet,
                            namespace=env.fleet_namespace(fleet.name),
                            object_name=env.fleet_object_name(fleet.name),
                            service_account=self.api.service_account,
                            broker=self.mosquitto.network_endpoint,
                            api=self.api.network_endpoint,
                            dns=env.network.dns,
                        ),
                    )
                )
        if env.network.enabled:
            self.network = PlatformNetworkPolicies(
                self,
                "NetworkPolicies",
                props=PlatformNetworkPoliciesProps(
                    release=rel,
                    values=env.network,
                    endpoints=endpoints,
                    provisioning_api_url=env.api.provisioning_api_url,
                    # HTTPS out: OpenAI, and the Auth0 tenant (JWKS, /userinfo) when the dashboard offers its login.
                    internet=env.api.ai_provider == "openai" or env.dashboard.config.auth0_enabled,
                    fleet_namespace_labels=fleet_selector_labels(env.namespace) if self.fleets else None,
                ),
            )
