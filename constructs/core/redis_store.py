"""RedisStore: streams, pub/sub, cache and dedup for the API and ingestion.

- No persistence by design (seed, platform-facts §6): ``save ""``, ``appendonly no``,
  ``maxmemory-policy noeviction`` (API and ingestion treat OOM as backpressure; an evicting policy
  would silently drop streams). The model enforces a memory limit above maxmemory with headroom.
- Standalone Redis is a **Deployment** ``{release}-redis`` (the seed's ``deploy/<release>-redis``
  check, and the platform's OOM script, look for one).
- Enterprise runs Redis Cluster: a StatefulSet with ``masters * (1 + replicasPerMaster)`` nodes, a
  headless Service for stable pod DNS names, and a bootstrap Job that forms and repairs the cluster
  idempotently on every sync. Clients get ``REDIS_CLUSTER=true``.
- Between syncs, CronJob ``{release}-redis-cluster-repair`` runs the same script every minute in repair
  mode (``REDIS_CLUSTER_MODE=repair``): a no-op on a healthy cluster; otherwise it re-adds rescheduled
  (empty) nodes, fails over lost masters, re-serves lost slots and moves a surplus replica to a
  slot-owning master that lacks one (healthy: every slot-owning master has ``replicasPerMaster``
  replicas). It never creates the cluster and never resets a node (the sync hook's job), and a lock
  key in the cluster keeps it and the hook from repairing at the same time. No token: it finds the
  pods through the headless Service's DNS.
- With ``metrics`` (monitoring on), each cluster pod runs the redis_exporter sidecar (port ``metrics``,
  9121, on the headless Service) for the cluster alerts in constructs/edge/monitoring.py.
- With auth on, the password is read from Secret ``{release}-redis-auth`` key ``password``; it is
  referenced, never written to dist/.
"""

from __future__ import annotations

from pathlib import Path

from cdk8s_plus_27 import k8s

from constructs import secret_catalog as sc
from constructs.api_objects import Component, KubeObject, Scope, api_object
from constructs.isolation.network_policies import Endpoint
from constructs.platform import (
    CHECKSUM_ANNOTATION,
    Props,
    RedisEndpoint,
    Release,
    add_pdb,
    apply_affinity,
    checksum,
    config_map,
    config_map_volume,
    container_security,
    deployment,
    empty_dir,
    env,
    env_field,
    env_secret,
    exec_probe,
    http_probe,
    mount,
    pod_security,
    pod_spec,
    pod_template_metadata,
    resources,
    service,
    sorted_env,
)
from constructs.scan_skips import CKV_SECRET_ENV, checkov_skips
from tiers.models import Image, Redis, Resources, Scheduling

APP = "redis"
PORT = 6379
PORT_NAME = "redis"
BUS_PORT = 16379
BOOTSTRAP_APP = "redis-cluster-init"
REPAIR_APP = "redis-cluster-repair"
#: A uid of 10000 or more (Checkov's CKV_K8S_40); the image needs none of its own: docs/hardening.md "UIDs".
#: 10000 + the uid of `redis` in the official alpine image (999).
UID = 10999
#: Why CKV_K8S_35 (Secrets as env) does not apply, with auth on (docs/hardening.md).
SERVER_SECRET_ENV = (
    "redis-server gets --requirepass/--masterauth from $(REDIS_PASSWORD) (Kubernetes expands only env vars in "
    "args; the Secret holds the bare password and not a config line); redis-cli in the probes and "
    "redis_exporter read the password from the environment (REDISCLI_AUTH, REDIS_PASSWORD)"
)
SCRIPT_SECRET_ENV = "redis-cli reads the password from REDISCLI_AUTH and has no password-file option"

CONFIG_PATH = "/etc/redis/redis.conf"
DATA_DIR = "/data"
BOOTSTRAP_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "redis-cluster-bootstrap.sh"
BOOTSTRAP_RESOURCES = Resources.model_validate(
    {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
)
#: The sync hook's budgets (unchanged): each wait phase 600 s, the whole Job 900 s.
BOOTSTRAP_TIMEOUT_SECONDS = 600
BOOTSTRAP_DEADLINE_SECONDS = 900

# --- the repair CronJob -------------------------------------------------------------------------------
REPAIR_SCHEDULE = "* * * * *"
#: The schedule's period: a fault waits at most this long for the next run.
REPAIR_PERIOD_SECONDS = 60
#: Allowance for scheduling the repair pod and starting its (cached, IfNotPresent) image.
REPAIR_POD_START_SECONDS = 30
#: Allowance for joining nodes and the final `redis-cli --cluster check`, after the failover phases.
REPAIR_JOIN_SECONDS = 30
#: The repair's budget for each wait phase (BOOTSTRAP_TIMEOUT_SECONDS of the CronJob's pods).
REPAIR_TIMEOUT_SECONDS = 120
#: activeDeadlineSeconds of each repair Job, and the expiry of its lock (BOOTSTRAP_LOCK_SECONDS).
REPAIR_DEADLINE_SECONDS = 300

# --- the redis_exporter sidecar (oliver006/redis_exporter) --------------------------------------------
EXPORTER_PORT = 9121
EXPORTER_PORT_NAME = "metrics"
EXPORTER_RESOURCES = Resources.model_validate(
    {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
)


def failover_grace_seconds(node_timeout_ms: int) -> int:
    """How long the script lets Redis fail a lost master over by itself before it forces it (its GRACE)."""
    return node_timeout_ms * 2 // 1000 + 5


def repair_bound_seconds(node_timeout_ms: int) -> int:
    """Worst case from a fault to a healthy cluster with the repair CronJob: the wait for the next run,
    the pod's start, the script's two failover phases (CLUSTER FAILOVER FORCE, then TAKEOVER, each after
    one grace period), then joining the fresh nodes and the final check."""
    return (
        REPAIR_PERIOD_SECONDS
        + REPAIR_POD_START_SECONDS
        + 2 * failover_grace_seconds(node_timeout_ms)
        + REPAIR_JOIN_SECONDS
    )


class RedisStoreProps(Props):
    release: Release
    values: Redis
    scheduling: Scheduling
    #: Run the redis_exporter sidecar on the cluster's pods (monitoring is on).
    metrics: bool = False


def redis_conf(rel: Release, v: Redis) -> str:
    """The redis.conf of this release (tests load it into a real redis-server)."""
    lines = [
        f"# redis.conf for release {rel.release} (tier {rel.tier}), generated by iotistica-k8s.",
        "# Redis is a cache and stream buffer here: no RDB snapshots, no AOF. Durable state is in TimescaleDB.",
        "bind * -::*",
        f"port {PORT}",
        "protected-mode no",
        f"maxmemory {v.maxmemory_mb}mb",
        f"maxmemory-policy {v.maxmemory_policy}",
        'save ""',
        "appendonly no",
    ]
    if v.cluster.enabled:
        lines += [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {v.cluster.node_timeout_ms}",
            "cluster-require-full-coverage no",
        ]
    return "\n".join(lines) + "\n"


class RedisStore(Component):
    """Outputs: ``service_name``, ``port``, ``endpoint`` (what clients need), ``auth_secret``;
    ``network_endpoint``, ``bootstrap_endpoint`` and ``repair_endpoint`` (pods, for the NetworkPolicies);
    with a cluster: ``headless_service``, ``metrics_port`` and ``metrics_port_name`` (None without the
    exporter), and ``repair_bound_seconds`` (how long a repair may need, for the alerts)."""

    def __init__(self, scope: Scope, id: str, *, props: RedisStoreProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name("redis")
        self.service_name = self.name
        self.port = PORT
        self.auth_secret = sc.redis_auth(rel.release).name if v.auth.enabled else None
        self.endpoint = RedisEndpoint(
            host=self.name, port=PORT, cluster=v.cluster.enabled, auth_secret=self.auth_secret
        )
        self.config_text = redis_conf(rel, v)
        self.headless_service: str | None = None
        self.metrics_port: int | None = EXPORTER_PORT if v.cluster.enabled and props.metrics else None
        self.metrics_port_name = EXPORTER_PORT_NAME
        self.repair_bound_seconds = repair_bound_seconds(v.cluster.node_timeout_ms)
        redis_ports = {PORT_NAME: PORT} | ({"cluster-bus": BUS_PORT} if v.cluster.enabled else {})
        if self.metrics_port:
            redis_ports[EXPORTER_PORT_NAME] = self.metrics_port
        self.network_endpoint = Endpoint(key=APP, app=APP, component=APP, ports=redis_ports)
        #: the PostSync cluster bootstrap Job's pods and the repair CronJob's pods (Redis Cluster only)
        self.bootstrap_endpoint = (
            Endpoint(key=BOOTSTRAP_APP, app=BOOTSTRAP_APP, component=APP) if v.cluster.enabled else None
        )
        self.repair_endpoint = Endpoint(key=REPAIR_APP, app=REPAIR_APP, component=APP) if v.cluster.enabled else None

        data = {"redis.conf": self.config_text}
        if v.cluster.enabled:
            data["redis-cluster-bootstrap.sh"] = BOOTSTRAP_SCRIPT.read_text(encoding="utf-8")
        config_map(self, rel, name=self.name, app=APP, component=APP, data=data)

        containers = [self._container(props)]
        if self.metrics_port:
            containers.append(self._exporter(v.cluster.exporter_image))
        template = k8s.PodTemplateSpec(
            metadata=pod_template_metadata(
                rel, APP, APP, annotations={CHECKSUM_ANNOTATION: checksum(self.config_text)}
            ),
            spec=pod_spec(
                containers=containers,
                security=pod_security(UID),
                scheduling=props.scheduling,
                volumes=[
                    config_map_volume("config", self.name),
                    empty_dir("data", "64Mi"),
                ],
                grace_seconds=30,
            ),
        )
        ports = [(PORT_NAME, PORT, PORT_NAME)]
        if not v.cluster.enabled:
            self.workload: KubeObject = deployment(
                self,
                rel,
                name=self.name,
                app=APP,
                component=APP,
                replicas=1,
                template=template,
                scheduling=props.scheduling,
                recreate=True,
                annotations=checkov_skips(self._secret_reasons(SERVER_SECRET_ENV), images=[v.image]),
            )
            service(self, rel, name=self.name, app=APP, component=APP, ports=ports)
            return

        headless = rel.name("redis-headless")
        self.headless_service = headless
        headless_ports = [*ports, ("cluster-bus", BUS_PORT, "cluster-bus")]
        if self.metrics_port:
            headless_ports.append((EXPORTER_PORT_NAME, EXPORTER_PORT, EXPORTER_PORT_NAME))
        service(
            self,
            rel,
            name=headless,
            app=APP,
            component=APP,
            ports=headless_ports,
            headless=True,
            publish_not_ready=True,
            construct_id="HeadlessService",
        )
        service(self, rel, name=self.name, app=APP, component=APP, ports=ports)
        self.workload = api_object(
            k8s.KubeStatefulSet,
            self,
            "StatefulSet",
            metadata=rel.metadata(
                self.name,
                APP,
                APP,
                annotations=checkov_skips(
                    self._secret_reasons(SERVER_SECRET_ENV), images=[v.image, v.cluster.exporter_image]
                ),
            ),
            spec=k8s.StatefulSetSpec(
                service_name=headless,
                replicas=v.cluster.nodes,
                pod_management_policy="Parallel",
                revision_history_limit=5,
                selector=k8s.LabelSelector(match_labels=rel.selector(APP, APP)),
                update_strategy=k8s.StatefulSetUpdateStrategy(
                    type="RollingUpdate", rolling_update=k8s.RollingUpdateStatefulSetStrategy(partition=0)
                ),
                template=template,
            ),
        )
        apply_affinity(self.workload, props.scheduling)
        add_pdb(self, rel, name=self.name, app=APP, component=APP)
        self._bootstrap_job(props, headless)
        self._repair_cron_job(props, headless)

    def _secret_reasons(self, reason: str) -> dict[str, str]:
        return {CKV_SECRET_ENV: reason} if self.auth_secret else {}

    def _password_env(self) -> list[k8s.EnvVar]:
        if not self.auth_secret:
            return []
        return [
            env_secret("REDIS_PASSWORD", self.auth_secret, "password"),
            # redis-cli reads REDISCLI_AUTH itself: probes and the bootstrap need no password argument.
            env_secret("REDISCLI_AUTH", self.auth_secret, "password"),
        ]

    def _container(self, props: RedisStoreProps) -> k8s.Container:
        v = props.values
        # The data dir is an argument, not a config line: redis chdirs while parsing the file, and the
        # same file then loads anywhere (tests run it in a real redis-server with another --dir).
        args = [CONFIG_PATH, "--dir", DATA_DIR]
        values = self._password_env()
        if self.auth_secret:
            args += ["--requirepass", "$(REDIS_PASSWORD)"]
        container_ports = [k8s.ContainerPort(name=PORT_NAME, container_port=PORT, protocol="TCP")]
        if v.cluster.enabled:
            values.append(env_field("POD_IP", "status.podIP"))
            args += ["--cluster-announce-ip", "$(POD_IP)"]
            if self.auth_secret:
                args += ["--masterauth", "$(REDIS_PASSWORD)"]
            container_ports.append(k8s.ContainerPort(name="cluster-bus", container_port=BUS_PORT, protocol="TCP"))
        ordered_env = sorted(values, key=lambda e: e.name)
        return k8s.Container(
            name="redis",
            image=v.image.ref,
            image_pull_policy=v.image.image_pull_policy,
            command=["redis-server"],
            args=args,
            ports=container_ports,
            env=ordered_env or None,
            resources=resources(v.resources),
            security_context=container_security(),
            startup_probe=exec_probe(["redis-cli", "ping"], period=2, failures=30),
            liveness_probe=exec_probe(["redis-cli", "ping"], period=10, failures=3, timeout=5),
            readiness_probe=exec_probe(["redis-cli", "ping"], period=5, failures=3, timeout=3),
            volume_mounts=[
                mount("config", CONFIG_PATH, sub_path="redis.conf", read_only=True),
                mount("data", DATA_DIR),
            ],
        )

    def _exporter(self, image: Image) -> k8s.Container:
        """redis_exporter beside the node: CLUSTER INFO and INFO as redis_cluster_state,
        redis_cluster_slots_ok, redis_cluster_size, redis_connected_slaves, redis_instance_info..."""
        values = [env("REDIS_ADDR", f"redis://localhost:{PORT}")]
        if self.auth_secret:
            values.append(env_secret("REDIS_PASSWORD", self.auth_secret, "password"))
        return k8s.Container(
            name="exporter",
            image=image.ref,
            image_pull_policy=image.image_pull_policy,
            env=sorted_env(values),
            ports=[k8s.ContainerPort(name=EXPORTER_PORT_NAME, container_port=EXPORTER_PORT, protocol="TCP")],
            resources=resources(EXPORTER_RESOURCES),
            security_context=container_security(),
            liveness_probe=http_probe("/health", EXPORTER_PORT_NAME, period=30, failures=3, timeout=5),
            readiness_probe=http_probe("/health", EXPORTER_PORT_NAME, period=10, failures=3, timeout=3),
        )

    def _script_pod(
        self, props: RedisStoreProps, headless: str, app: str, container_name: str, extra: dict[str, str | int]
    ) -> k8s.PodTemplateSpec:
        """The pod that runs redis-cluster-bootstrap.sh against every node (no token, no file writes)."""
        rel, v = props.release, props.values
        nodes = " ".join(
            f"{self.name}-{i}.{headless}.{rel.namespace}.svc.cluster.local:{PORT}" for i in range(v.cluster.nodes)
        )
        values = [
            env("REDIS_NODES", nodes),
            env("REDIS_CLUSTER_REPLICAS", v.cluster.replicas_per_master),
            *(env(k, val) for k, val in extra.items()),
        ]
        if self.auth_secret:
            values.append(env_secret("REDISCLI_AUTH", self.auth_secret, "password"))
        ordered_env = sorted(values, key=lambda e: e.name)
        return k8s.PodTemplateSpec(
            metadata=pod_template_metadata(rel, app, APP),
            spec=pod_spec(
                containers=[
                    k8s.Container(
                        name=container_name,
                        image=v.image.ref,
                        image_pull_policy=v.image.image_pull_policy,
                        command=["sh", "/scripts/redis-cluster-bootstrap.sh"],
                        env=ordered_env,
                        resources=resources(BOOTSTRAP_RESOURCES),
                        security_context=container_security(),
                        volume_mounts=[mount("scripts", "/scripts", read_only=True)],
                    )
                ],
                security=pod_security(UID),
                scheduling=props.scheduling,
                volumes=[config_map_volume("scripts", self.name)],
                restart_policy="Never",
            ),
        )

    def _repair_cron_job(self, props: RedisStoreProps, headless: str) -> None:
        rel = props.release
        name = rel.name(REPAIR_APP)
        api_object(
            k8s.KubeCronJob,
            self,
            "ClusterRepair",
            metadata=rel.metadata(
                name,
                REPAIR_APP,
                APP,
                annotations=checkov_skips(self._secret_reasons(SCRIPT_SECRET_ENV), images=[props.values.image]),
            ),
            spec=k8s.CronJobSpec(
                # Every minute; a run on a healthy cluster is a handful of CLUSTER INFO/NODES calls.
                schedule=REPAIR_SCHEDULE,
                # One repair at a time (the script's lock also keeps it apart from the sync hook).
                concurrency_policy="Forbid",
                starting_deadline_seconds=REPAIR_PERIOD_SECONDS,
                successful_jobs_history_limit=1,
                failed_jobs_history_limit=3,
                job_template=k8s.JobTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=rel.labels(REPAIR_APP, APP)),
                    spec=k8s.JobSpec(
                        # A failed run is retried by the next minute's run, not by the Job.
                        backoff_limit=0,
                        active_deadline_seconds=REPAIR_DEADLINE_SECONDS,
                        template=self._script_pod(
                            props,
                            headless,
                            "redis-cluster-repair",
                            "repair",
                            {
                                "REDIS_CLUSTER_MODE": "repair",
                                "BOOTSTRAP_TIMEOUT_SECONDS": REPAIR_TIMEOUT_SECONDS,
                                "BOOTSTRAP_LOCK_SECONDS": REPAIR_DEADLINE_SECONDS,
                            },
                        ),
                    ),
                ),
            ),
        )

    def _bootstrap_job(self, props: RedisStoreProps, headless: str) -> None:
        rel = props.release
        name = rel.name("redis-cluster-init")
        api_object(
            k8s.KubeJob,
            self,
            "ClusterInit",
            metadata=rel.metadata(
                name,
                "redis-cluster-init",
                APP,
                annotations={
                    **checkov_skips(self._secret_reasons(SCRIPT_SECRET_ENV), images=[props.values.image]),
                    # Runs after every sync, once the StatefulSet is healthy: forms the cluster the first
                    # time, re-adds rescheduled (empty) nodes later, and is a no-op otherwise.
                    "argocd.argoproj.io/hook": "PostSync",
                    "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
                },
            ),
            spec=k8s.JobSpec(
                backoff_limit=6,
                active_deadline_seconds=BOOTSTRAP_DEADLINE_SECONDS,
                template=self._script_pod(
                    props,
                    headless,
                    "redis-cluster-init",
                    "bootstrap",
                    {
                        "BOOTSTRAP_TIMEOUT_SECONDS": BOOTSTRAP_TIMEOUT_SECONDS,
                        "BOOTSTRAP_LOCK_SECONDS": BOOTSTRAP_DEADLINE_SECONDS,
                    },
                ),
            ),
        )
