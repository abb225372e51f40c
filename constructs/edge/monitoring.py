"""Monitoring: Prometheus Operator ServiceMonitors for the API and ingestion, and the alert rules.

Contract (seed "Monitoring", platform-facts §13):
- ServiceMonitors ``{release}-api`` and ``{release}-ingestion`` scrape ``/metrics`` on the Services'
  port named ``http`` every 30 s (timeout 10 s). They select the Service by its selector labels and
  then keep only targets of the Service of that name: the enterprise ingestion StatefulSet also has a
  headless Service with the same labels, which would otherwise scrape every pod twice.
- PrometheusRule ``{release}-alerts`` (beyond the chart), built from ingestion's metrics. Every
  threshold that depends on the environment is computed from it, never written down:
  - the stream watermark is a share of THIS environment's REDIS_INGESTION_STREAM_MAXLEN
    (``ingestion.streamMaxlen``, set per tier);
  - the default shares are the ingestion profile's own watermarks (platform-facts §3.2);
  - the HPA alerts compare with this environment's ``hpa.maxReplicas`` and exist only where an HPA does.
- Expressions select ``namespace`` and ``job`` (the Prometheus Operator sets ``job`` to the Service
  name), so two releases never mix. The HPA alerts read kube-state-metrics.
- With Redis Cluster (and its redis_exporter sidecars), ServiceMonitor ``{release}-redis-headless``
  scrapes port ``metrics`` of every node, and three alerts read the exporter's standard metrics: a node
  in ``cluster_state:fail``, fewer masters serving slots than wanted (or slots not served), a master of
  the cluster with fewer replicas than wanted (counted per master, not summed). Each waits longer than
  the repair CronJob's bound (constructs/core/redis_store.py ``repair_bound_seconds``, from
  cluster-node-timeout and the schedule) before it fires.
- ``alert_groups()`` is pure data, used by the construct and by the promtool tests.
- The bindings module is imported on first use, and only when monitoring is enabled.
"""

from __future__ import annotations

from typing import Any

from constructs.api_objects import Component, Scope, api_object, union
from constructs.platform import Props, Release
from tiers.models import IngestionProfile
from tiers.models import Monitoring as MonitoringValues

METRICS_PATH = "/metrics"
PORT_NAME = "http"
#: Per ingestion profile (platform-facts §3.2): REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT (as %),
#: REDIS_MEMORY_HIGH_WATERMARK_PCT, DB_SATURATION_HIGH_WATERMARK_PCT.
PROFILE_WATERMARKS: dict[str, tuple[int, int, int]] = {
    "batch": (80, 75, 70),
    "balanced": (80, 75, 80),
    "streaming": (80, 75, 85),
}
#: The API starts spooling telemetry to disk at this share of the stream cap (its own default watermark).
API_SPOOL_PERCENT = 85


class ScrapeTarget(Props):
    """A Service to scrape: its name, the app/component labels its selector uses, its metrics port name."""

    service: str
    app: str
    port: str = PORT_NAME


class RedisClusterTarget(Props):
    """The Redis Cluster's exporter job (the headless Service), its wanted shape and the repair's bound."""

    service: str
    masters: int
    replicas_per_master: int
    repair_bound_seconds: int

    @property
    def alert_for(self) -> str:
        """The repair bound rounded up to whole minutes, plus one minute for the 30 s scrapes."""
        return f"{-(-self.repair_bound_seconds // 60) + 1}m"


class HpaTarget(Props):
    """An HPA of the release: its name, component and maxReplicas."""

    name: str
    app: str
    max_replicas: int


class MonitoringProps(Props):
    release: Release
    values: MonitoringValues
    targets: list[ScrapeTarget]
    #: The ingestion Service (its ``job`` label) and what the thresholds derive from.
    ingestion_service: str
    stream_maxlen: int
    profile: IngestionProfile
    hpas: list[HpaTarget]
    redis_cluster: RedisClusterTarget | None = None


class Thresholds(Props):
    dwell_warning_ms: int
    dwell_critical_ms: int
    stream_percent: int
    stream_length: int
    redis_memory_ratio: float
    db_saturation_percent: int


def thresholds(v: MonitoringValues, stream_maxlen: int, profile: str) -> Thresholds:
    stream_pct, redis_pct, db_pct = PROFILE_WATERMARKS[profile]
    a = v.alerts
    stream_pct = a.stream_watermark_percent or stream_pct
    return Thresholds(
        dwell_warning_ms=a.dwell_latency_warning_seconds * 1000,
        dwell_critical_ms=a.dwell_latency_critical_seconds * 1000,
        stream_percent=stream_pct,
        stream_length=stream_maxlen * stream_pct // 100,
        redis_memory_ratio=(a.redis_memory_percent or redis_pct) / 100,
        db_saturation_percent=a.db_pool_saturation_percent or db_pct,
    )


def _alert(
    name: str, expr: str, for_: str | None, severity: str, app: str, summary: str, description: str
) -> dict[str, Any]:
    """One alerting rule; ``for_`` None fires on the first evaluation (counters that must never move)."""
    out: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        out["for"] = for_
    out["labels"] = {"severity": severity, "component": app}
    out["annotations"] = {"summary": summary, "description": " ".join(description.split())}
    return out


def alert_groups(props: MonitoringProps) -> list[dict[str, Any]]:
    """The rule groups, as a Prometheus rule file spells them."""
    rel, v = props.release, props.values
    t = thresholds(v, props.stream_maxlen, props.profile)
    ns, job = rel.namespace, props.ingestion_service
    sel = f'namespace="{ns}", job="{job}"'
    by = "max by (namespace, job)"
    ing = "ingestion"
    rules = [
        _alert(
            "IotisticaIngestionDwellLatencyHigh",
            f"{by} (iotistic_ingestion_dwell_latency_p95_ms{{{sel}}}) > {t.dwell_warning_ms}",
            "1m",
            "warning",
            ing,
            f"Ingestion p95 dwell latency is above {t.dwell_warning_ms // 1000}s in {ns}",
            f"""Readings wait {{{{ $value | humanize }}}} ms (p95) in the Redis stream before {job} writes them
            (threshold {t.dwell_warning_ms} ms). Check the ingestion pods' CPU and
            iotistic_ingestion_worker_count, the DB insert latency (iotistic_ingestion_insert_latency_p95_ms)
            and DB pool saturation; add ingestion replicas if its HPA is not already at its maximum.""",
        ),
        _alert(
            "IotisticaIngestionDwellLatencyCritical",
            f"{by} (iotistic_ingestion_dwell_latency_p95_ms{{{sel}}}) > {t.dwell_critical_ms}",
            "1m",
            "critical",
            ing,
            f"Ingestion p95 dwell latency is above {t.dwell_critical_ms // 1000}s in {ns}",
            f"""Readings wait {{{{ $value | humanize }}}} ms (p95) in the Redis stream (threshold
            {t.dwell_critical_ms} ms); dashboards lag and the stream is heading for its cap
            ({props.stream_maxlen}), where unread entries are trimmed. Check that {job} pods are Ready and
            their logs for DB errors or an open circuit breaker, then the database itself; scale ingestion
            out (replicas, hpa.maxReplicas or workerCount).""",
        ),
        _alert(
            "IotisticaIngestionStreamHighWatermark",
            f"{by} (iotistic_ingestion_stream_length{{{sel}}}) >= {t.stream_length}",
            "2m",
            "warning",
            ing,
            f"Ingestion stream at {t.stream_percent}% of its cap in {ns}",
            f"""The ingestion stream holds {{{{ printf "%.0f" $value }}}} entries, at least {t.stream_percent}% of
            REDIS_INGESTION_STREAM_MAXLEN ({props.stream_maxlen}). At {API_SPOOL_PERCENT}% the API spools
            telemetry to disk, and at the cap XADD trims the oldest unread entries (data loss). Ingestion is
            not keeping up: check its dwell latency, Redis connection and DB pool alerts, and scale it out;
            raise ingestion.streamMaxlen only if Redis has memory to spare.""",
        ),
        _alert(
            "IotisticaRedisMemoryHigh",
            f"{by} (iotistic_ingestion_redis_memory_used_bytes{{{sel}}}"
            f" / (iotistic_ingestion_redis_memory_max_bytes{{{sel}}} > 0)) >= {t.redis_memory_ratio:g}",
            "5m",
            "warning",
            "redis",
            f"Redis memory above {round(t.redis_memory_ratio * 100)}% of maxmemory in {ns}",
            f"""Redis ({rel.name("redis")}) uses {{{{ $value | humanizePercentage }}}} of maxmemory. With
            maxmemory-policy noeviction, writes fail once it is full: the API then spools or drops
            telemetry. Check the stream length and the DLQ (ingestion not draining), then raise
            redis.maxmemoryMb together with the memory limit.""",
        ),
        _alert(
            "IotisticaIngestionRedisDisconnected",
            f"min by (namespace, job, pod) (iotistic_ingestion_redis_connected{{{sel}}}) == 0",
            "1m",
            "critical",
            ing,
            f"Ingestion pod {{{{ $labels.pod }}}} lost its Redis connection in {ns}",
            f"""{{{{ $labels.pod }}}} reports iotistic_ingestion_redis_connected = 0: it reads nothing from
            the stream. Check that {rel.name("redis")} pods are Ready, the Secret {rel.name("redis-auth")},
            and the pod's logs for connection errors; restart the pod if Redis is healthy again.""",
        ),
        _alert(
            "IotisticaIngestionRedisOom",
            f"sum by (namespace, job) (increase(iotistic_ingestion_oom_errors_total{{{sel}}}[10m])) > 0",
            None,
            "critical",
            "redis",
            f"Redis refused writes (OOM) in {ns}",
            """Ingestion saw {{ $value | humanize }} Redis OOM errors in 10 minutes: Redis is at maxmemory
            and refuses writes. Follow IotisticaRedisMemoryHigh: drain the stream, then raise
            redis.maxmemoryMb and the memory limit.""",
        ),
        _alert(
            "IotisticaIngestionDlqGrowing",
            f"{by} (delta(iotistic_ingestion_dlq_length{{{sel}}}[15m])) > 0",
            "5m",
            "warning",
            ing,
            f"Ingestion dead-letter queue is growing in {ns}",
            f"""{{{{ $value | humanize }}}} more messages reached the ingestion DLQ in 15 minutes: {job}
            cannot write them after its retries. Read the DLQ entries (XRANGE on the tenant's
            ...:agent:devices:dlq key) and the ingestion logs for the failing readings (bad payloads,
            schema or constraint errors) and fix the sender or the schema. The DLQ is capped (REDIS_DLQ_MAXLEN),
            so a full one stops growing: watch iotistic_ingestion_messages_failed_total too.""",
        ),
        _alert(
            "IotisticaIngestionMessagesDropped",
            f"sum by (namespace, job) (increase(iotistic_ingestion_messages_dropped_total{{{sel}}}[10m])) > 0",
            None,
            "critical",
            ing,
            f"Ingestion dropped messages in {ns}",
            f"""{job} dropped {{{{ $value | humanize }}}} messages in 10 minutes: those readings are lost.
            Check the ingestion logs for the reason (DB down with the spool off or full, invalid
            messages), the spool settings (ingestion.spool) and the DB health.""",
        ),
        _alert(
            "IotisticaIngestionDbPoolSaturated",
            f"max by (namespace, job, pod) (iotistic_ingestion_db_pool_saturation_pct{{{sel}}})"
            f" >= {t.db_saturation_percent}",
            "10m",
            "warning",
            ing,
            f"Ingestion DB pool above {t.db_saturation_percent}% on {{{{ $labels.pod }}}} in {ns}",
            f"""The DB pool of {{{{ $labels.pod }}}} is {{{{ $value | humanize }}}}% saturated (the
            {props.profile} profile backs off from {t.db_saturation_percent}%). Check slow queries and
            locks on the database and its max_connections before raising ingestion.dbPoolSize; more pods
            multiply connections.""",
        ),
    ]
    for hpa in sorted(props.hpas, key=lambda h: h.name):
        title = hpa.app.capitalize()
        rules.append(
            _alert(
                f"Iotistica{title}HpaAtMax",
                f"max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas"
                f'{{namespace="{ns}", horizontalpodautoscaler="{hpa.name}"}}) >= {hpa.max_replicas}',
                v.alerts.hpa_at_max_for,
                "warning",
                hpa.app,
                f"{hpa.name} is pinned at its HPA maximum ({hpa.max_replicas}) in {ns}",
                f"""HPA {hpa.name} has run {hpa.max_replicas} replicas (its maxReplicas) for
                {v.alerts.hpa_at_max_for}: it cannot add capacity. Check the pods' CPU and memory against
                their limits and whether the load is expected; raise {hpa.app}.hpa.maxReplicas (mind the
                DB connections and node capacity) or move the environment to a larger tier.""",
            )
        )
    jobs = f"{rel.name('api')}|{job}"
    rules += [
        _alert(
            "IotisticaMetricsTargetDown",
            f'up{{namespace="{ns}", job=~"{jobs}"}} == 0',
            "5m",
            "warning",
            "monitoring",
            f"Prometheus cannot scrape {{{{ $labels.job }}}} ({{{{ $labels.pod }}}}) in {ns}",
            f"""Scrapes of {METRICS_PATH} on {{{{ $labels.pod }}}} fail, so the alerts that read its metrics are
            blind. Check that the pod is Ready and answers on port {PORT_NAME}; the API's {METRICS_PATH}
            queries the database, so a slow database shows up here as scrape timeouts.""",
        ),
        _alert(
            "IotisticaIngestionMetricsAbsent",
            f'absent(up{{namespace="{ns}", job="{job}"}})',
            "15m",
            "warning",
            "monitoring",
            f"No ingestion metrics from {ns}",
            f"""Prometheus has no scrape target for {job}: every ingestion alert is silent. Check that ServiceMonitor
            {job} exists and that Prometheus selects it (monitoring.labels must match the Prometheus
            serviceMonitorSelector, and its namespace selector must include {ns}).""",
        ),
    ]
    if props.redis_cluster is not None:
        rules += redis_cluster_alerts(rel, props.redis_cluster)
    return [{"name": f"iotistica.{rel.release}", "rules": rules}]


TOTAL_SLOTS = 16384


def redis_cluster_alerts(rel: Release, c: RedisClusterTarget) -> list[dict[str, Any]]:
    """Alerts on the redis_exporter's CLUSTER INFO / INFO metrics; each fires only when the repair
    CronJob has had longer than its bound to fix it."""
    ns, job = rel.namespace, c.service
    sel = f'namespace="{ns}", job="{job}"'
    repair = rel.name("redis-cluster-repair")
    bound = f"{c.repair_bound_seconds} s"
    check = f"""Check the last runs of CronJob {repair} (kubectl -n {ns} get jobs, then logs): it repairs a
        degraded cluster within about {bound}. If it says the state is left to the sync hook, sync the
        application (the {rel.name("redis-cluster-init")} hook forms the cluster and resets split nodes);
        if it fails, its one error line names the node and the reason."""
    return [
        _alert(
            "IotisticaRedisClusterStateFail",
            f"min by (namespace, job, pod) (redis_cluster_state{{{sel}}}) == 0",
            c.alert_for,
            "critical",
            "redis",
            f"Redis Cluster node {{{{ $labels.pod }}}} reports cluster_state:fail in {ns}",
            f"""{{{{ $labels.pod }}}} has reported cluster_state:fail for longer than the repair needs
            ({bound}): it refuses reads and writes, or, restarted empty, it is not part of the cluster.
            {check}""",
        ),
        _alert(
            "IotisticaRedisClusterMastersBelowWanted",
            f"max by (namespace, job) (redis_cluster_size{{{sel}}}) < {c.masters}"
            f" or max by (namespace, job) (redis_cluster_slots_ok{{{sel}}}) < {TOTAL_SLOTS}",
            c.alert_for,
            "critical",
            "redis",
            f"Redis Cluster has fewer than {c.masters} masters or unserved slots in {ns}",
            f"""No node sees {c.masters} masters serving all {TOTAL_SLOTS} slots (value {{{{ $value }}}}): the
            keys of the missing slots fail for every API and ingestion pod. {check}""",
        ),
        # Per master, not summed: 2 + 0 + 1 replicas are 3, yet the master with none loses its slots'
        # keys with its next loss. The exporter (v1.67.0) reports per node INFO's connected_slaves and
        # role (redis_instance_info) and CLUSTER INFO's counts, not which slots a node owns: a master that
        # knows other nodes counts (a fresh, empty node knows only itself and fails ClusterStateFail
        # instead). A member master without slots is not healthy either (the repair makes it a replica).
        _alert(
            "IotisticaRedisClusterReplicasBelowWanted",
            f"(min by (namespace, job, pod) (redis_connected_slaves{{{sel}}}) < {c.replicas_per_master})"
            f" and on (namespace, job, pod)"
            f' max by (namespace, job, pod) (redis_instance_info{{{sel}, role="master"}})'
            f" and on (namespace, job, pod) (max by (namespace, job, pod) (redis_cluster_known_nodes{{{sel}}}) > 1)",
            c.alert_for,
            "warning",
            "redis",
            f"Redis Cluster master {{{{ $labels.pod }}}} has fewer than {c.replicas_per_master} replica(s) in {ns}",
            f"""Master {{{{ $labels.pod }}}} reports {{{{ $value }}}} connected replica(s), {c.replicas_per_master}
            wanted for every master that owns slots, for longer than the repair needs ({bound}): its next loss
            loses its slots' keys and leaves them unserved. Another master may have a surplus replica (one
            re-pointed by hand, CLUSTER REPLICATE, or by a failover sequence). Run redis-cli --cluster check
            on any node: it lists each master's slots and replicas. {check} The repair moves a surplus
            replica to the master that lacks one (its log says CLUSTER REPLICATE); with no surplus replica,
            a pod is missing (see IotisticaRedisClusterStateFail).""",
        ),
    ]


class Monitoring(Component):
    """Outputs: ``service_monitors`` (names), ``rule_name`` (or None), ``groups`` (the rule groups)."""

    def __init__(self, scope: Scope, id: str, *, props: MonitoringProps) -> None:
        super().__init__(scope, id)
        from imports.com.coreos import monitoring as mon  # loaded on use, only when monitoring is enabled

        rel, v = props.release, props.values
        extra = dict(sorted(v.labels.items())) or None
        self.service_monitors: list[str] = []
        for target in sorted(props.targets, key=lambda t: t.service):
            api_object(
                mon.ServiceMonitor,
                self,
                f"ServiceMonitor-{target.app}",
                metadata=rel.api_metadata(target.service, target.app, target.app, extra_labels=extra),
                spec=mon.ServiceMonitorSpec(
                    selector=mon.ServiceMonitorSpecSelector(match_labels=rel.selector(target.app, target.app)),
                    endpoints=[
                        mon.ServiceMonitorSpecEndpoints(
                            port=target.port,
                            path=METRICS_PATH,
                            interval=v.interval,
                            scrape_timeout=v.scrape_timeout,
                            relabelings=[
                                mon.ServiceMonitorSpecEndpointsRelabelings(
                                    action=mon.ServiceMonitorSpecEndpointsRelabelingsAction.KEEP,
                                    source_labels=["__meta_kubernetes_service_name"],
                                    regex=target.service,
                                )
                            ],
                        )
                    ],
                ),
            )
            self.service_monitors.append(target.service)

        self.rule_name: str | None = None
        self.groups: list[dict[str, Any]] = []
        if not v.alerts.enabled:
            return
        self.groups = alert_groups(props)
        self.rule_name = rel.name("alerts")
        api_object(
            mon.PrometheusRule,
            self,
            "PrometheusRule",
            metadata=rel.api_metadata(self.rule_name, "monitoring", "alerts", extra_labels=extra),
            spec=mon.PrometheusRuleSpec(
                groups=[
                    mon.PrometheusRuleSpecGroups(
                        name=group["name"],
                        rules=[
                            mon.PrometheusRuleSpecGroupsRules(
                                alert=r["alert"],
                                expr=union(mon.PrometheusRuleSpecGroupsRulesExpr, "from_string", r["expr"]),
                                for_=r.get("for"),
                                labels=r["labels"],
                                annotations=r["annotations"],
                            )
                            for r in group["rules"]
                        ],
                    )
                    for group in self.groups
                ]
            ),
        )
