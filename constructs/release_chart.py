"""ReleaseChart: one environment, one ArgoCD Application, one folder ``dist/<release>/``.

This is the one place where constructs are wired to each other: each construct receives its slice
of the environment plus the outputs (service names, ports, endpoints) of the constructs it talks to.
"""

from __future__ import annotations

from cdk8s import Chart

from constructs import Construct
from constructs.api_service import ApiService, ApiServiceProps
from constructs.dashboard import Dashboard, DashboardProps
from constructs.ingestion_service import IngestionService, IngestionServiceProps
from constructs.mosquitto_broker import MosquittoBroker, MosquittoBrokerProps
from constructs.nodered import NodeRed, NodeRedProps
from constructs.platform import Release
from constructs.redis_store import RedisStore, RedisStoreProps
from tiers.models import Environment, Scheduling


class ReleaseChart(Chart):
    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env.release, namespace=env.namespace, disable_resource_name_hashes=True)
        rel = Release(release=env.release, namespace=env.namespace, tier=env.tier)
        # Derived values (pool sizes from the connection budget, MAXLEN from buffer seconds) filled in.
        env = env.resolved()
        self.env = env

        def sched(own: Scheduling | None) -> Scheduling:
            return own if own is not None else env.scheduling

        self.redis = RedisStore(
            self, "Redis", props=RedisStoreProps(release=rel, values=env.redis, scheduling=sched(env.redis.scheduling))
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
        if env.nodered.enabled:
            self.nodered: NodeRed | None = NodeRed(
                self,
                "NodeRed",
                props=NodeRedProps(
                    release=rel, values=env.nodered, scheduling=sched(env.nodered.scheduling), api_url=self.api.url
                ),
            )
        else:
            self.nodered = None

        # --- issue 5: release namespace (PSS), API cluster access, fleet namespaces, network isolation ---
        from constructs import dashboard as dashboard_mod
        from constructs import ingestion_service as ingestion_mod
        from constructs import mosquitto_broker as mosquitto_mod
        from constructs import redis_store as redis_mod
        from constructs.api_cluster_access import ApiClusterAccess, ApiClusterAccessProps
        from constructs.fleet_namespace import FleetNamespace, FleetNamespaceProps, fleet_selector_labels
        from constructs.network_policies import Endpoint, PlatformNetworkPolicies, PlatformNetworkPoliciesProps
        from constructs.release_namespace import ReleaseNamespace, ReleaseNamespaceProps

        if env.pod_security.manage_namespace:
            ReleaseNamespace(self, "Namespace", props=ReleaseNamespaceProps(release=rel, level=env.pod_security.level))
        fleets = env.fleet_namespaces
        if fleets.virtual_agent_manager:
            ApiClusterAccess(
                self,
                "ApiClusterAccess",
                props=ApiClusterAccessProps(release=rel, service_account=self.api.service_account),
            )
        # Every pod group of the release, by the labels of its pod template and its container ports.
        broker_ports = {"mqtt": self.mosquitto.mqtt_port, "websockets": self.mosquitto.ws_port}
        if env.mosquitto.tls.enabled:
            broker_ports["mqtts"] = self.mosquitto.mqtts_port
        redis_ports = {"redis": redis_mod.PORT}
        if env.redis.cluster.enabled:
            redis_ports["cluster-bus"] = redis_mod.BUS_PORT
        endpoints = [
            Endpoint(key="api", app="api", component="api", ports={"http": self.api.port}),
            Endpoint(
                key="ingestion", app=ingestion_mod.APP, component=ingestion_mod.APP, ports={"http": ingestion_mod.PORT}
            ),
            Endpoint(key="mosquitto", app=mosquitto_mod.APP, component=mosquitto_mod.APP, ports=broker_ports),
            Endpoint(key="redis", app=redis_mod.APP, component=redis_mod.APP, ports=redis_ports),
            Endpoint(
                key="dashboard",
                app=dashboard_mod.APP,
                component=dashboard_mod.APP,
                ports={"http": dashboard_mod.CONTAINER_PORT},
            ),
        ]
        if env.redis.cluster.enabled:
            endpoints.append(Endpoint(key="redis-cluster-init", app="redis-cluster-init", component=redis_mod.APP))
        if self.nodered is not None:
            endpoints.append(
                Endpoint(key="nodered", app="nodered", component="nodered", ports={"http": self.nodered.port})
            )
        # issue 4: the lifecycle hook Jobs' pods (their flows: network_policies.FLOWS)
        from constructs.sync_hooks import lifecycle_endpoints

        endpoints += lifecycle_endpoints(env)
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
                            enforce=fleets.pod_security_enforce,
                            service_account=self.api.service_account,
                            broker=self.network_endpoints["mosquitto"],
                            api=self.network_endpoints["api"],
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
                    internet=env.api.ai_provider == "openai",
                    fleet_namespace_labels=fleet_selector_labels(env.namespace) if self.fleets else None,
                ),
            )

        # --- issue 3: Gateway API routes, API rate limit, broker certificate, ServiceMonitors, alerts ---
        from constructs.api_rate_limit import ApiRateLimit, ApiRateLimitProps
        from constructs.broker_certificate import BrokerCertificate, BrokerCertificateProps
        from constructs.gateway_routes import Backend, GatewayRoutes, GatewayRoutesProps
        from constructs.monitoring import HpaTarget, Monitoring, MonitoringProps, ScrapeTarget

        broker = self.mosquitto
        self.routes = GatewayRoutes(
            self,
            "Routes",
            props=GatewayRoutesProps(
                release=rel,
                edge=env.edge,
                api=Backend(service=self.api.service_name, port=self.api.port),
                dashboard=Backend(service=self.dashboard.service_name, port=self.dashboard.port),
                nodered=Backend(service=self.nodered.service_name, port=self.nodered.port) if self.nodered else None,
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
        if env.monitoring.enabled:
            hpas = [
                HpaTarget(name=service, app=app, max_replicas=hpa.max_replicas)
                for service, app, hpa in (
                    (self.api.service_name, "api", env.api.hpa),
                    (self.ingestion.service_name, "ingestion", env.ingestion.hpa),
                )
                if hpa.enabled
            ]
            self.monitoring: Monitoring | None = Monitoring(
                self,
                "Monitoring",
                props=MonitoringProps(
                    release=rel,
                    values=env.monitoring,
                    targets=[
                        ScrapeTarget(service=self.api.service_name, app="api"),
                        ScrapeTarget(service=self.ingestion.service_name, app="ingestion"),
                    ],
                    ingestion_service=self.ingestion.service_name,
                    stream_maxlen=env.stream_maxlen,
                    profile=env.ingestion.profile,
                    hpas=hpas,
                ),
            )
        else:
            self.monitoring = None

        # --- issue 4: secrets provider, lifecycle hook Jobs (ordering: constructs/sync_hooks.py) ---
        from constructs.db_init_job import DbInitJob, DbInitJobProps
        from constructs.secrets_provider import SecretsProvider, SecretsProviderProps
        from constructs.stream_key_resolver import StreamKeyResolverJob, StreamKeyResolverProps
        from constructs.timescale_policy_job import TimescalePolicyJob, TimescalePolicyJobProps

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
        self.db_pooler = None
        if env.database.pooler.enabled and env.database.pooler.kind == "cnpg" and env.network.database.namespace:
            from constructs.db_pooler import DbPooler, DbPoolerProps

            self.db_pooler = DbPooler(
                self,
                "DbPooler",
                props=DbPoolerProps(release=rel, values=env.database, cluster_namespace=env.network.database.namespace),
            )
            if self.db_pooler.host != env.pooler_host:
                raise AssertionError("DB_HOST of the pods must be the Pooler's Service")
        self.db_init: DbInitJob | None = None
        if env.db_init.enabled:
            self.db_init = DbInitJob(
                self,
                "DbInit",
                props=DbInitJobProps(release=rel, values=env.db_init, database=env.database, scheduling=env.scheduling),
            )
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
