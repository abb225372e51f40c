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
                stream_maxlen=env.ingestion.stream_maxlen,
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
