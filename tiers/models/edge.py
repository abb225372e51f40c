"""The edge and monitoring: public hostnames, Gateway API routes, the API's rate limit, the broker's
certificate, ServiceMonitors and alert rules."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tiers import grammar
from tiers.models.base import (
    DnsLabel,
    DnsName,
    Duration,
    Model,
    _check_dns_name,
    rule,
)

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
