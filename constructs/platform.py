"""Shared building blocks of every construct: names, labels, security baseline, probes, HPA, PDB.

Names and labels are a contract (DEVELOPERS.md): objects are named ``{release}-{component}``;
metadata carries the full label set; selectors carry only the immutable subset
(``app.kubernetes.io/{name,instance,component}``), never the tier or a version.

The value objects that repeat (``Quantity``, ``IntOrString``) are made once per distinct value
(``union()`` in constructs/api_objects.py: no kernel object under the Python renderer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from cdk8s import ApiObject, ApiObjectMetadata
from cdk8s_plus_27 import k8s
from pydantic import BaseModel, ConfigDict

from constructs.api_objects import JsonPatch, KubeObject, Scope, api_object, union
from tiers.models import Database, Hpa, Resources, Scheduling

PART_OF = "iotistica"
#: ``app.kubernetes.io/name`` of every object of the old Helm chart (its chart name, platform-facts §12).
HELM_CHART_NAME = "iotistic"
MANAGED_BY = "cdk8s"
TIER_LABEL = "iotistica.com/tier"
CHECKSUM_ANNOTATION = "checksum/config"
#: The label set every object of a release carries (``Release.labels``), in a stable order.
LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    TIER_LABEL,
)


class Props(BaseModel):
    """Base of construct props: frozen, no unknown fields, snake_case (props are Python-only)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Release(Props):
    """Who an object belongs to: the release, its namespace and its tier."""

    release: str
    namespace: str
    tier: str
    #: Apps whose pods keep the old Helm chart's selector (``migration.selectorLabels: helm``).
    helm_selectors: frozenset[str] = frozenset()

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"

    def selector(self, app: str, component: str) -> dict[str, str]:
        """The immutable selector subset. Never add the tier or a version here.

        For an app adopted from the old Helm chart (``helm_selectors``) it is that chart's selector,
        ``name: iotistic`` (platform-facts §12): everything that selects pods calls this method, so
        workloads, Services, PDBs and NetworkPolicies stay consistent."""
        return {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": self.release,
            "app.kubernetes.io/name": HELM_CHART_NAME if app in self.helm_selectors else app,
        }

    def labels(self, app: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The full label set carried by every object's metadata (and by pod templates)."""
        labels = {
            **self.selector(app, component),
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/part-of": PART_OF,
            TIER_LABEL: self.tier,
        }
        if extra:
            labels.update(extra)
        return labels

    def metadata(
        self,
        name: str,
        app: str,
        component: str,
        *,
        annotations: dict[str, str] | None = None,
        extra_labels: dict[str, str] | None = None,
    ) -> k8s.ObjectMeta:
        return k8s.ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels=self.labels(app, component, extra_labels),
            annotations=dict(sorted(annotations.items())) if annotations else None,
        )

    def api_metadata(
        self, name: str, app: str, component: str, *, extra_labels: dict[str, str] | None = None
    ) -> ApiObjectMetadata:
        """Like :meth:`metadata`, for the CRD bindings of imports/ (they take cdk8s.ApiObjectMetadata)."""
        return ApiObjectMetadata(name=name, namespace=self.namespace, labels=self.labels(app, component, extra_labels))


# --------------------------------------------------------------------------------------------------
# Value objects (made once per value: constructs/api_objects.py union())
# --------------------------------------------------------------------------------------------------


def quantity(value: str) -> k8s.Quantity:
    return union(k8s.Quantity, "from_string", value)  # type: ignore[no-any-return]


def int_or_string(value: int | str) -> k8s.IntOrString:
    factory = "from_number" if isinstance(value, int) else "from_string"
    return union(k8s.IntOrString, factory, value)  # type: ignore[no-any-return]


def checksum(*parts: str) -> str:
    """A stable sha256 of config text, stamped on pod templates so a config change rolls the pods."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def resources(res: Resources, *, extra_limits: dict[str, str] | None = None) -> k8s.ResourceRequirements:
    limits = {"memory": quantity(res.limits.memory)}
    if res.limits.cpu is not None:
        limits["cpu"] = quantity(res.limits.cpu)
    for key, value in (extra_limits or {}).items():
        limits[key] = quantity(value)
    return k8s.ResourceRequirements(
        requests={"cpu": quantity(res.requests.cpu), "memory": quantity(res.requests.memory)},
        limits=limits,
    )


def heap_mb(res: Resources, percent: int) -> int:
    """V8 old-space size that fits the container's memory limit."""
    return int(res.memory_limit_mib * percent / 100)


# --------------------------------------------------------------------------------------------------
# Environment variables
# --------------------------------------------------------------------------------------------------


_Derived = TypeVar("_Derived", int, str)


def resolved(value: _Derived | None) -> _Derived:
    """A value ``Environment.resolved()`` derives (pool sizes, MAXLEN, the dashboard's own URLs): always set by
    the time constructs run."""
    if value is None:
        raise AssertionError("a derived value reached a construct unresolved (ReleaseChart resolves them)")
    return value


def env(name: str, value: str | int | bool) -> k8s.EnvVar:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return k8s.EnvVar(name=name, value=str(value))


def env_secret(name: str, secret: str, key: str, *, optional: bool = False) -> k8s.EnvVar:
    return k8s.EnvVar(
        name=name,
        value_from=k8s.EnvVarSource(
            secret_key_ref=k8s.SecretKeySelector(name=secret, key=key, optional=optional or None)
        ),
    )


def database_env(db: Database, sql_secret: str, pool_size: int | None) -> list[k8s.EnvVar]:
    """The PostgreSQL client settings the API and ingestion share (seed table: sql-credentials-{ns}).
    A pooler (database.pooler) stands in for the server; credentials and database stay the same."""
    return [
        env("DB_HOST", db.pooler.host)
        if db.pooler.enabled and db.pooler.host
        else env("DB_HOST", db.host)
        if db.host
        else env_secret("DB_HOST", sql_secret, "server"),
        env("DB_PORT", db.port)
        if db.host and db.port and not db.pooler.enabled
        else env_secret("DB_PORT", sql_secret, "port"),
        env_secret("DB_NAME", sql_secret, "dbname"),
        env_secret("DB_USER", sql_secret, "username"),
        env_secret("DB_PASSWORD", sql_secret, "password"),
        env("DB_SSL", db.ssl),
        env("DB_SSL_REJECT_UNAUTHORIZED", db.ssl_reject_unauthorized),
        env("DB_POOL_SIZE", resolved(pool_size)),
    ]


def statement_timeout_env(timeout_ms: int) -> list[k8s.EnvVar]:
    """``DB_STATEMENT_TIMEOUT_MS`` (platform-facts §2.4), and what makes it take effect: the platform's
    api/src/db/connection.ts hands node-pg ``statementTimeout``, a key node-pg 8 does not read (it reads
    ``statement_timeout``), so the sessions ran with the server's default, no limit (platform-facts §1: the
    services run as the seed intends; seen from the database in the e2e run, docs/e2e.md). node-pg does read
    ``PGOPTIONS`` into its ``options`` startup parameter, which the server applies to each session."""
    return [env("DB_STATEMENT_TIMEOUT_MS", timeout_ms), env("PGOPTIONS", f"-c statement_timeout={timeout_ms}")]


def env_field(name: str, field_path: str) -> k8s.EnvVar:
    return k8s.EnvVar(name=name, value_from=k8s.EnvVarSource(field_ref=k8s.ObjectFieldSelector(field_path=field_path)))


def sorted_env(values: list[k8s.EnvVar]) -> list[k8s.EnvVar]:
    """Env vars sorted by name (deterministic output); duplicate names are a programming error."""
    names = [v.name for v in values]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate environment variables: {', '.join(dupes)}")
    return sorted(values, key=lambda v: v.name)


# --------------------------------------------------------------------------------------------------
# Security baseline (Kubernetes "restricted" profile)
# --------------------------------------------------------------------------------------------------


def pod_security(uid: int, gid: int | None = None, fs_group: int | None = None) -> k8s.PodSecurityContext:
    gid = uid if gid is None else gid
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=gid,
        fs_group=gid if fs_group is None else fs_group,
        fs_group_change_policy="OnRootMismatch",
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def container_security(*, read_only_root: bool = True) -> k8s.SecurityContext:
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=read_only_root,
        run_as_non_root=True,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


# --------------------------------------------------------------------------------------------------
# Probes, volumes, scheduling
# --------------------------------------------------------------------------------------------------


def http_probe(
    path: str, port: int | str, *, period: int, failures: int = 3, timeout: int = 3, initial_delay: int | None = None
) -> k8s.Probe:
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=int_or_string(port)),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=timeout,
        initial_delay_seconds=initial_delay,
    )


def tcp_probe(port: int | str, *, period: int, failures: int = 3, timeout: int = 3) -> k8s.Probe:
    return k8s.Probe(
        tcp_socket=k8s.TcpSocketAction(port=int_or_string(port)),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=timeout,
    )


def exec_probe(command: list[str], *, period: int, failures: int = 3, timeout: int = 3) -> k8s.Probe:
    return k8s.Probe(
        exec=k8s.ExecAction(command=command), period_seconds=period, failure_threshold=failures, timeout_seconds=timeout
    )


def empty_dir(name: str, size_limit: str | None = None, *, memory: bool = False) -> k8s.Volume:
    return k8s.Volume(
        name=name,
        empty_dir=k8s.EmptyDirVolumeSource(
            size_limit=quantity(size_limit) if size_limit else None, medium="Memory" if memory else None
        ),
    )


def config_map_volume(name: str, config_map: str, *, mode: int = 0o444) -> k8s.Volume:
    return k8s.Volume(name=name, config_map=k8s.ConfigMapVolumeSource(name=config_map, default_mode=mode))


def mount(name: str, path: str, *, sub_path: str | None = None, read_only: bool | None = None) -> k8s.VolumeMount:
    return k8s.VolumeMount(name=name, mount_path=path, sub_path=sub_path, read_only=read_only)


def tolerations(sched: Scheduling) -> list[k8s.Toleration] | None:
    if not sched.tolerations:
        return None
    return [
        k8s.Toleration(
            key=t.key, operator=t.operator, value=t.value, effect=t.effect, toleration_seconds=t.toleration_seconds
        )
        for t in sched.tolerations
    ]


def node_selector(sched: Scheduling) -> dict[str, str] | None:
    return dict(sorted(sched.node_selector.items())) or None


def apply_affinity(obj: KubeObject, sched: Scheduling, pod_spec_path: str = "/spec/template/spec") -> None:
    """Affinity is passed through as the Kubernetes API spells it (too wide to model field by field)."""
    if sched.affinity:
        obj.add_json_patch(
            JsonPatch.add(f"{pod_spec_path}/affinity", json.loads(json.dumps(sched.affinity, sort_keys=True)))
        )


# --------------------------------------------------------------------------------------------------
# Autoscaling and disruption budgets
# --------------------------------------------------------------------------------------------------


def add_hpa(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    target_kind: Literal["Deployment", "StatefulSet"],
    hpa: Hpa,
) -> KubeObject:
    """HPA with the seed's targets and stabilisation windows (60 s up, 5 min down)."""

    def util(resource: str, percent: int) -> k8s.MetricSpecV2:
        return k8s.MetricSpecV2(
            type="Resource",
            resource=k8s.ResourceMetricSourceV2(
                name=resource, target=k8s.MetricTargetV2(type="Utilization", average_utilization=percent)
            ),
        )

    return api_object(
        k8s.KubeHorizontalPodAutoscalerV2,
        scope,
        "Hpa",
        metadata=rel.metadata(name, app, component),
        spec=k8s.HorizontalPodAutoscalerSpecV2(
            scale_target_ref=k8s.CrossVersionObjectReferenceV2(api_version="apps/v1", kind=target_kind, name=name),
            min_replicas=hpa.min_replicas,
            max_replicas=hpa.max_replicas,
            metrics=[util("cpu", hpa.cpu_target_percent), util("memory", hpa.memory_target_percent)],
            behavior=k8s.HorizontalPodAutoscalerBehaviorV2(
                scale_up=k8s.HpaScalingRulesV2(
                    stabilization_window_seconds=hpa.scale_up_stabilization_seconds,
                    select_policy="Max",
                    policies=[
                        k8s.HpaScalingPolicyV2(type="Percent", value=100, period_seconds=30),
                        k8s.HpaScalingPolicyV2(type="Pods", value=2, period_seconds=30),
                    ],
                ),
                scale_down=k8s.HpaScalingRulesV2(
                    stabilization_window_seconds=hpa.scale_down_stabilization_seconds,
                    select_policy="Max",
                    policies=[k8s.HpaScalingPolicyV2(type="Percent", value=50, period_seconds=60)],
                ),
            ),
        ),
    )


def add_pdb(scope: Scope, rel: Release, *, name: str, app: str, component: str) -> KubeObject:
    """maxUnavailable 1: drains proceed one pod at a time; never blocks a drain outright."""
    return api_object(
        k8s.KubePodDisruptionBudget,
        scope,
        "Pdb",
        metadata=rel.metadata(name, app, component),
        spec=k8s.PodDisruptionBudgetSpec(
            max_unavailable=int_or_string(1),
            selector=k8s.LabelSelector(match_labels=rel.selector(app, component)),
            unhealthy_pod_eviction_policy="AlwaysAllow",
        ),
    )


def min_pods(replicas: int, hpa: Hpa) -> int:
    return hpa.min_replicas if hpa.enabled else replicas


def service(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    ports: Sequence[tuple[str, int, int | str]],
    headless: bool = False,
    construct_id: str = "Service",
    publish_not_ready: bool | None = None,
) -> KubeObject:
    """A ClusterIP (or headless) Service; ports are (name, port, targetPort) and sorted by port."""
    return api_object(
        k8s.KubeService,
        scope,
        construct_id,
        metadata=rel.metadata(name, app, component),
        spec=k8s.ServiceSpec(
            type="ClusterIP",
            cluster_ip="None" if headless else None,
            publish_not_ready_addresses=publish_not_ready,
            selector=rel.selector(app, component),
            ports=[
                k8s.ServicePort(name=n, port=p, target_port=int_or_string(t), protocol="TCP")
                for n, p, t in sorted(ports, key=lambda x: x[1])
            ],
        ),
    )


def config_map(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    data: dict[str, str],
    construct_id: str = "Config",
) -> KubeObject:
    return api_object(
        k8s.KubeConfigMap,
        scope,
        construct_id,
        metadata=rel.metadata(name, app, component),
        data=dict(sorted(data.items())),
    )


def pod_template_metadata(
    rel: Release,
    app: str,
    component: str,
    *,
    annotations: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> k8s.ObjectMeta:
    return k8s.ObjectMeta(
        labels=rel.labels(app, component, extra_labels),
        annotations=dict(sorted(annotations.items())) if annotations else None,
    )


def as_dict(value: Any) -> Any:
    """Helper for tests and checks: a jsii struct or ApiObject as plain JSON."""
    if isinstance(value, (ApiObject, KubeObject)):
        return value.to_json()
    return value


class RedisEndpoint(Props):
    """What a Redis client needs: the RedisStore's outputs, consumed by the API and ingestion."""

    host: str
    port: int
    cluster: bool
    auth_secret: str | None
    auth_secret_key: str = "password"

    def env(self) -> list[k8s.EnvVar]:
        out = [env("REDIS_HOST", self.host), env("REDIS_PORT", self.port), env("REDIS_CLUSTER", self.cluster)]
        if self.auth_secret:
            out.append(env_secret("REDIS_PASSWORD", self.auth_secret, self.auth_secret_key))
        return out


def pod_spec(
    *,
    containers: list[k8s.Container],
    security: k8s.PodSecurityContext,
    scheduling: Scheduling,
    volumes: list[k8s.Volume] | None = None,
    init_containers: list[k8s.Container] | None = None,
    service_account: str | None = None,
    grace_seconds: int = 30,
    restart_policy: str | None = None,
    enable_service_links: bool = False,
) -> k8s.PodSpec:
    """A pod spec with the platform's defaults: no ServiceAccount token unless a ServiceAccount that
    talks to the Kubernetes API is named, no service-link env vars, explicit grace period."""
    ordered_volumes = sorted(volumes, key=lambda v: v.name) if volumes else None
    return k8s.PodSpec(
        containers=containers,
        init_containers=init_containers,
        security_context=security,
        service_account_name=service_account,
        automount_service_account_token=bool(service_account),
        enable_service_links=enable_service_links,
        termination_grace_period_seconds=grace_seconds,
        node_selector=node_selector(scheduling),
        tolerations=tolerations(scheduling),
        volumes=ordered_volumes,
        restart_policy=restart_policy,
    )


def deployment(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    replicas: int | None,
    template: k8s.PodTemplateSpec,
    scheduling: Scheduling,
    recreate: bool = False,
    annotations: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> KubeObject:
    """A Deployment. ``replicas=None`` omits spec.replicas (an HPA owns it; ArgoCD must not fight it)."""
    strategy = (
        k8s.DeploymentStrategy(type="Recreate")
        if recreate
        else k8s.DeploymentStrategy(
            type="RollingUpdate",
            rolling_update=k8s.RollingUpdateDeployment(max_surge=int_or_string(1), max_unavailable=int_or_string(0)),
        )
    )
    obj = api_object(
        k8s.KubeDeployment,
        scope,
        "Deployment",
        metadata=rel.metadata(name, app, component, annotations=annotations, extra_labels=extra_labels),
        spec=k8s.DeploymentSpec(
            replicas=replicas,
            revision_history_limit=5,
            selector=k8s.LabelSelector(match_labels=rel.selector(app, component)),
            strategy=strategy,
            template=template,
        ),
    )
    apply_affinity(obj, scheduling)
    return obj
