"""IngestionService: the Redis Streams consumer that writes to TimescaleDB (port 3003).

- Env names are the ones the code reads (platform-facts §3): the DB-outage spool is
  ``INGESTION_SPOOL_*`` (the seed's ``DISK_SPOOL_*`` is never read by ingestion).
- The tenant and the stream key come from Secret ``{release}-ingestion-runtime-env`` (``envFrom``),
  written by the stream-key resolver Job with the braces the code requires.
- Spool persistence never shares a ReadWriteOnce claim: one pod gets one claim (Deployment with
  ``Recreate``); several pods get a StatefulSet with ``volumeClaimTemplates``. The model rejects a
  Deployment with a persistent spool and more than one pod.
"""

from __future__ import annotations

from cdk8s_plus_27 import k8s

from constructs import secret_catalog as sc
from constructs.api_objects import Component, KubeObject, Scope, api_object
from constructs.isolation.network_policies import Endpoint
from constructs.platform import (
    Props,
    RedisEndpoint,
    Release,
    add_hpa,
    add_pdb,
    apply_affinity,
    container_security,
    database_env,
    deployment,
    empty_dir,
    env,
    heap_mb,
    http_probe,
    min_pods,
    mount,
    pod_security,
    pod_spec,
    pod_template_metadata,
    quantity,
    resolved,
    resources,
    service,
    sorted_env,
)
from constructs.scan_skips import CKV_SECRET_ENV, checkov_skips
from tiers.models import Database, Ingestion, Scheduling

APP = "ingestion"
PORT = 3003
PORT_NAME = "http"
#: A uid of 10000 or more (Checkov's CKV_K8S_40); the image needs none of its own: docs/hardening.md "UIDs".
#: The same as the API's (the same node:alpine image family, platform-facts §10).
UID = 11000
#: Why Checkov's checks that do not apply to ingestion are skipped on its workload (docs/hardening.md).
CHECKOV_REASONS = {
    CKV_SECRET_ENV: "the image's entrypoint (node dist/index.js) reads DB_PASSWORD REDIS_PASSWORD and the stream "
    "key resolver's runtime Secret (envFrom) from the environment only and has no *_FILE variant "
    "(platform-facts §3.3 §3.4)",
}
SPOOL_PATH = "/var/lib/iotistic/spool"
SPOOL_VOLUME = "spool"


class IngestionServiceProps(Props):
    release: Release
    values: Ingestion
    scheduling: Scheduling
    database: Database
    redis: RedisEndpoint


class IngestionService(Component):
    """Outputs: ``service_name``, ``port``, ``kind``, ``runtime_secret``, ``network_endpoint``."""

    def __init__(self, scope: Scope, id: str, *, props: IngestionServiceProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name("ingestion")
        self.service_name = self.name
        self.port = PORT
        self.network_endpoint = Endpoint(key=APP, app=APP, component=APP, ports={PORT_NAME: PORT})
        self.kind = v.kind
        self.runtime_secret = rel.name("ingestion-runtime-env")
        persistent = v.spool.enabled and v.spool.persistence.enabled

        volumes = [empty_dir("tmp", "256Mi")]
        if not persistent:
            volumes.append(empty_dir(SPOOL_VOLUME, f"{v.spool.max_size_mb + v.spool.max_size_mb // 10 + 64}Mi"))
        elif self.kind == "Deployment":
            claim = rel.name("ingestion-spool")
            api_object(
                k8s.KubePersistentVolumeClaim,
                self,
                "SpoolClaim",
                metadata=rel.metadata(claim, APP, APP),
                spec=self._claim_spec(v),
            )
            volumes.append(
                k8s.Volume(
                    name=SPOOL_VOLUME, persistent_volume_claim=k8s.PersistentVolumeClaimVolumeSource(claim_name=claim)
                )
            )

        template = k8s.PodTemplateSpec(
            metadata=pod_template_metadata(rel, APP, APP),
            spec=pod_spec(
                containers=[self._container(props)],
                security=pod_security(UID),
                scheduling=props.scheduling,
                volumes=volumes,
                grace_seconds=45,
            ),
        )
        replicas = None if v.hpa.enabled else v.replicas
        if self.kind == "Deployment":
            # One pod with one ReadWriteOnce claim: Recreate, so the old pod releases it first.
            self.workload: KubeObject = deployment(
                self,
                rel,
                name=self.name,
                app=APP,
                component=APP,
                replicas=replicas,
                template=template,
                scheduling=props.scheduling,
                recreate=persistent,
                annotations=checkov_skips(CHECKOV_REASONS, images=[v.image]),
            )
        else:
            headless = rel.name("ingestion-headless")
            service(
                self,
                rel,
                name=headless,
                app=APP,
                component=APP,
                ports=[(PORT_NAME, PORT, PORT_NAME)],
                headless=True,
                construct_id="HeadlessService",
            )
            claims = None
            if persistent:
                claims = [
                    k8s.KubePersistentVolumeClaimProps(
                        metadata=k8s.ObjectMeta(name=SPOOL_VOLUME, labels=rel.labels(APP, APP)),
                        spec=self._claim_spec(v),
                    )
                ]
            self.workload = api_object(
                k8s.KubeStatefulSet,
                self,
                "StatefulSet",
                metadata=rel.metadata(
                    self.name, APP, APP, annotations=checkov_skips(CHECKOV_REASONS, images=[v.image])
                ),
                spec=k8s.StatefulSetSpec(
                    service_name=headless,
                    replicas=replicas,
                    pod_management_policy="Parallel",
                    revision_history_limit=5,
                    selector=k8s.LabelSelector(match_labels=rel.selector(APP, APP)),
                    update_strategy=k8s.StatefulSetUpdateStrategy(
                        type="RollingUpdate", rolling_update=k8s.RollingUpdateStatefulSetStrategy(partition=0)
                    ),
                    template=template,
                    volume_claim_templates=claims,
                ),
            )
            apply_affinity(self.workload, props.scheduling)
        service(self, rel, name=self.name, app=APP, component=APP, ports=[(PORT_NAME, PORT, PORT_NAME)])
        if v.hpa.enabled:
            add_hpa(self, rel, name=self.name, app=APP, component=APP, target_kind=self.kind, hpa=v.hpa)
        if min_pods(v.replicas, v.hpa) >= 2:
            add_pdb(self, rel, name=self.name, app=APP, component=APP)

    @staticmethod
    def _claim_spec(v: Ingestion) -> k8s.PersistentVolumeClaimSpec:
        p = v.spool.persistence
        return k8s.PersistentVolumeClaimSpec(
            access_modes=[p.access_mode],
            storage_class_name=p.storage_class_name,
            resources=k8s.ResourceRequirements(requests={"storage": quantity(p.size)}),
        )

    def _container(self, props: IngestionServiceProps) -> k8s.Container:
        rel, v, db = props.release, props.values, props.database
        sql = sc.sql_credentials(rel.namespace).name
        values = [
            env("PORT", PORT),
            env("NODE_ENV", "production"),
            env("LOG_LEVEL", "info"),
            env("NODE_OPTIONS", f"--max-old-space-size={heap_mb(v.resources, v.heap_percent)}"),
            env("INGESTION_PROFILE", v.profile),
            env("WORKER_COUNT", v.worker_count),
            env("BATCH_SIZE", v.batch_size),
            env("AUTOSCALE_MIN_WORKERS", v.min_workers),
            env("AUTOSCALE_MAX_WORKERS", v.autoscale_max_workers),
            env("AUTOSCALE_LAG_SCALE_UP_MS", v.autoscale_lag_scale_up_ms),
            # The seed: "scale up when stream lag exceeds" AUTOSCALE_LAG_SCALE_UP_MS. The code counts any lag below
            # AUTOSCALE_LAG_TARGET_MS towards a scale-down first (worker.ts maybeAutoscale), and the batch profile's
            # target is 10000 (platform-facts §3.2), so a lag between the two would never add a worker. The target
            # is set to the scale-up threshold so that the seed's threshold is the one that acts.
            env("AUTOSCALE_LAG_TARGET_MS", v.autoscale_lag_scale_up_ms),
            env("AUTOSCALE_LAG_CRITICAL_MS", v.autoscale_lag_critical_ms),
            env("REDIS_INGESTION_STREAM_MAXLEN", resolved(v.stream_maxlen)),
            *database_env(db, sql, v.db_pool_size),
            *props.redis.env(),
            env("INGESTION_SPOOL_ENABLED", v.spool.enabled),
            env("INGESTION_SPOOL_PATH", SPOOL_PATH),
            env("INGESTION_SPOOL_MAX_SIZE_MB", v.spool.max_size_mb),
        ]
        return k8s.Container(
            name="ingestion",
            image=v.image.ref,
            image_pull_policy=v.image.image_pull_policy,
            ports=[k8s.ContainerPort(name=PORT_NAME, container_port=PORT, protocol="TCP")],
            env=sorted_env(values),
            env_from=[k8s.EnvFromSource(secret_ref=k8s.SecretEnvSource(name=self.runtime_secret, optional=False))],
            resources=resources(v.resources),
            security_context=container_security(),
            startup_probe=http_probe("/health", PORT_NAME, period=5, failures=36),
            liveness_probe=http_probe("/health", PORT_NAME, period=10, failures=3),
            readiness_probe=http_probe("/health", PORT_NAME, period=5, failures=3),
            volume_mounts=[mount(SPOOL_VOLUME, SPOOL_PATH), mount("tmp", "/tmp")],
        )
