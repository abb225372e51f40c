"""Lifecycle: the Secrets provider, the sync hook Jobs (db-init, TimescaleDB policies, stream key
resolver), the Argo CD Application and the move of a live Helm release."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from tiers.models.base import (
    _DNS_NAME,
    DnsLabel,
    DnsName,
    Duration,
    Image,
    Model,
    Resources,
    _res,
    rule,
)

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
    """The Argo CD side of this environment (docs/argocd.md): its Application (generated by the
    ApplicationSet of dist/argocd/) and its AppProject. repoUrl, targetRevision and namespace must be the
    same in every environment: the app-of-apps syncs dist/argocd/ from there."""

    repo_url: str = Field(
        default="https://github.com/Iotistica/iotistica-k8s.git",
        pattern=r"^(https://|ssh://|git@)\S+$",
        description="Git repository holding dist/. Default: https://github.com/Iotistica/iotistica-k8s.git.",
    )
    target_revision: str = Field(
        default="main", pattern=r"^[A-Za-z0-9._/-]{1,200}$", description="Branch, tag or commit. Default: main."
    )
    project: DnsLabel = Field(
        default="default",
        description="Not used any more: every tenant's Application uses its own AppProject, named after the "
        "release (dist/argocd/AppProject.<release>.k8s.yaml), and the platform Applications the project "
        "iotistica-platform (docs/argocd.md). Kept so that existing files stay valid. Default: default.",
    )
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
