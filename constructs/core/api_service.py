"""ApiService: the Cloud API (Deployment, Service on 3002, ServiceAccount, HPA, PDB).

Contract (seed "Operational Checks"):
- Deployment and Service ``{release}-api``; pods carry ``app: iotistic-api`` so that
  ``kubectl logs -l app=iotistic-api`` works; the ServiceAccount is ``iotistic-api`` because the
  API's fleet code hard-codes that name (platform-facts §11).
- Probes exactly as the seed: startup ``/health`` every 5 s up to 36 failures, liveness every 10 s,
  readiness every 5 s.
- With an HPA, ``spec.replicas`` is omitted so that ArgoCD self-heal does not fight the HPA.
"""

from __future__ import annotations

from cdk8s_plus_27 import k8s

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope, api_object
from constructs.isolation.network_policies import Endpoint
from constructs.platform import (
    Props,
    RedisEndpoint,
    Release,
    add_hpa,
    add_pdb,
    container_security,
    database_env,
    deployment,
    empty_dir,
    env,
    env_field,
    env_secret,
    heap_mb,
    http_probe,
    min_pods,
    mount,
    pod_security,
    pod_spec,
    pod_template_metadata,
    resources,
    service,
    sorted_env,
    statement_timeout_env,
)
from constructs.scan_skips import CKV_SA_TOKEN, CKV_SECRET_ENV, REASON_CALLS_KUBE_API, checkov_skips
from tiers.errors import SettingError
from tiers.models import Api, DashboardConfig, Database, Scheduling

APP = "api"
PORT = 3002
PORT_NAME = "http"
SERVICE_ACCOUNT = "iotistic-api"
POD_LABELS = {"app": "iotistic-api"}
#: The image's appuser has no declared numeric uid (platform-facts §10), so one is set explicitly.
#: A uid of 10000 or more (Checkov's CKV_K8S_40: no clash with a uid of the node or of the image's
#: own users). The process needs no file the image's user owns: every path it writes is a volume
#: owned through fsGroup (emptyDir/PVC, fsGroupChangePolicy OnRootMismatch regroups an older volume)
#: and what it reads is mounted or world-readable in the image (docs/hardening.md, platform-facts §10).
#: The app's files are read-only to it either way (the old chart's 1000 was node, not appuser).
UID = 11000
#: Why Checkov's checks that do not apply to the API are skipped on its Deployment (docs/hardening.md).
CHECKOV_REASONS = {
    CKV_SECRET_ENV: "the image's entrypoint (node dist/index.js) reads DB_PASSWORD JWT_SECRET MQTT_PASSWORD "
    "and its other secrets from the environment only and has no *_FILE variant (platform-facts §2.4)",
    CKV_SA_TOKEN: REASON_CALLS_KUBE_API + ": it deploys virtual agents into the fleet namespaces (platform-facts §11)",
}
SPOOL_PATH = "/var/lib/iotistic/spool"
#: The API's switch that leaves its migrations to the api-migrations Job (api/src/bootstrap/database.ts).
MIGRATIONS_SKIP_ENV = "DB_SKIP_MIGRATIONS"


class ApiServiceProps(Props):
    release: Release
    values: Api
    scheduling: Scheduling
    database: Database
    broker_url: str
    redis: RedisEndpoint
    stream_maxlen: int
    #: CORS_ORIGINS: api.corsOrigins, else derived from the dashboard host(s) (Environment.cors_origins).
    cors_origins: list[str]
    #: The dashboard's config.js values: the API's Auth0 settings are derived from the same ones (auth0_env).
    dashboard_config: DashboardConfig


class ApiService(Component):
    """The API. Outputs: ``service_name``, ``port``, ``url``, ``service_account``, ``network_endpoint``,
    ``skip_migrations_env`` (set to true: the api-migrations Job runs them)."""

    def __init__(self, scope: Scope, id: str, *, props: ApiServiceProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name("api")
        self.service_name = self.name
        self.port = PORT
        self.url = f"http://{self.name}:{PORT}"
        self.service_account = SERVICE_ACCOUNT
        self.skip_migrations_env = MIGRATIONS_SKIP_ENV
        self.network_endpoint = Endpoint(key=APP, app=APP, component=APP, ports={PORT_NAME: PORT})

        api_object(
            k8s.KubeServiceAccount,
            self,
            "ServiceAccount",
            metadata=rel.metadata(SERVICE_ACCOUNT, APP, APP),
            automount_service_account_token=True,
        )

        template = k8s.PodTemplateSpec(
            metadata=pod_template_metadata(rel, APP, APP, extra_labels=POD_LABELS),
            spec=pod_spec(
                containers=[self._container(props)],
                security=pod_security(UID),
                scheduling=props.scheduling,
                volumes=[
                    empty_dir("spool", f"{v.disk_spool.max_size_mb + v.disk_spool.max_size_mb // 10 + 64}Mi"),
                    empty_dir("tmp", "256Mi"),
                ],
                service_account=SERVICE_ACCOUNT,
                grace_seconds=30,
            ),
        )
        annotations = checkov_skips(CHECKOV_REASONS, images=[v.image])
        if v.workers:
            annotations["iotistica.com/api-workers"] = str(v.workers)
        self.deployment = deployment(
            self,
            rel,
            name=self.name,
            app=APP,
            component=APP,
            replicas=None if v.hpa.enabled else v.replicas,
            template=template,
            scheduling=props.scheduling,
            annotations=annotations,
        )
        service(self, rel, name=self.name, app=APP, component=APP, ports=[(PORT_NAME, PORT, PORT_NAME)])
        if v.hpa.enabled:
            add_hpa(self, rel, name=self.name, app=APP, component=APP, target_kind="Deployment", hpa=v.hpa)
        if min_pods(v.replicas, v.hpa) >= 2:
            add_pdb(self, rel, name=self.name, app=APP, component=APP)

    def _container(self, props: ApiServiceProps) -> k8s.Container:
        rel, v, db = props.release, props.values, props.database
        sql = sc.sql_credentials(rel.namespace).name
        mqtt = sc.mqtt_credentials(rel.namespace).name
        values = [
            env("PORT", PORT),
            env("NODE_ENV", v.node_env),
            env("LOG_LEVEL", v.log_level),
            env("NODE_OPTIONS", f"--max-old-space-size={heap_mb(v.resources, v.heap_percent)}"),
            env_field("NAMESPACE", "metadata.namespace"),
            env("CLOUD_API_URL", f"http://{self.name}.{rel.namespace}.svc.cluster.local:{PORT}"),
            env("CORS_ORIGINS", ",".join(props.cors_origins)),
            # The hops whose X-Forwarded-For entries are trusted: the gateway (platform-facts §2.1, §17).
            env("TRUST_PROXY", v.trust_proxy_hops),
            # Database (seed table: sql-credentials-{ns})
            *database_env(db, sql, v.db_pool_size),
            *statement_timeout_env(v.db_statement_timeout_ms),
            # The migrations run once per sync in the api-migrations hook Job, before any API pod starts: the
            # API's runner takes no lock, so replicas starting at once race on them (platform-facts §17).
            env(MIGRATIONS_SKIP_ENV, True),
            # Redis and the ingestion stream
            *props.redis.env(),
            env("REDIS_INGESTION_STREAM_MAXLEN", props.stream_maxlen),
            env("DISK_SPOOL_ENABLED", v.disk_spool.enabled),
            env("DISK_SPOOL_PATH", SPOOL_PATH),
            env("DISK_SPOOL_MAX_SIZE_MB", v.disk_spool.max_size_mb),
            # MQTT
            env("MQTT_BROKER_URL", props.broker_url),
            env_secret("MQTT_USERNAME", mqtt, "username"),
            env_secret("MQTT_PASSWORD", mqtt, "password"),
            env("MQTT_AUTH_CACHE_TTL_SECONDS", v.mqtt_auth_cache_ttl_seconds),
            env("MQTT_PERSIST_DB", v.mqtt_persist_db),
            # Auth, license, tokens
            env_secret("JWT_SECRET", sc.api_jwt(rel.namespace).name, "token"),
            env("JWT_ACCESS_TOKEN_EXPIRY", v.jwt_access_token_expiry),
            env("JWT_REFRESH_TOKEN_EXPIRY", v.jwt_refresh_token_expiry),
            env_secret("IOTISTIC_LICENSE_KEY", sc.license_credentials(rel.namespace).name, "key"),
            env_secret("LICENSE_PUBLIC_KEY", sc.license_public_key().name, "key"),
            env_secret("INTERNAL_AUTH_TOKEN", sc.internal_auth_token().name, "token"),
            env_secret("INITIAL_ADMIN_BOOTSTRAP_TOKEN", sc.bootstrap_token().name, "token"),
            env("PROVISIONING_API_URL", v.provisioning_api_url),
            *auth0_env(props.dashboard_config),
            # AI
            env("AI_PROVIDER", v.ai_provider),
        ]
        if v.ai_provider == "openai":
            values.append(env_secret("OPENAI_API_KEY", sc.openai_credentials().name, "key"))
        managed = {e.name for e in values}
        clashes = sorted(managed & set(v.extra_env))
        if clashes:
            raise SettingError("api.extraEnv", f"may not redefine managed variables: {', '.join(clashes)}")
        values += [env(k, val) for k, val in v.extra_env.items()]
        return k8s.Container(
            name="api",
            image=v.image.ref,
            image_pull_policy=v.image.image_pull_policy,
            ports=[k8s.ContainerPort(name=PORT_NAME, container_port=PORT, protocol="TCP")],
            env=sorted_env(values),
            resources=resources(v.resources),
            security_context=container_security(),
            startup_probe=http_probe("/health", PORT_NAME, period=5, failures=36),
            liveness_probe=http_probe("/health", PORT_NAME, period=10, failures=3),
            readiness_probe=http_probe("/health", PORT_NAME, period=5, failures=3),
            lifecycle=k8s.Lifecycle(pre_stop=k8s.LifecycleHandler(exec=k8s.ExecAction(command=["sleep", "5"]))),
            volume_mounts=[mount("spool", SPOOL_PATH), mount("tmp", "/tmp")],
        )


def auth0_env(c: DashboardConfig) -> list[k8s.EnvVar]:
    """The API's side of the dashboard's Auth0 login, from the dashboard's own config.js values (platform-facts
    §2 Auth, §17), so that the two can never disagree. The API (api/src/middleware/jwt-auth.ts) verifies an
    Auth0 access token itself, RS256 only, against the JWKS at ``<AUTH0_ISSUER>.well-known/jwks.json``, with
    issuer ``AUTH0_ISSUER`` and audience ``AUTH0_AUDIENCE`` (or ``AUTH0_CLIENT_ID``); it is on only when
    ``AUTH0_ENABLED=true`` and domain and audience are set. ``POST /api/v1/auth/auth0-exchange``
    (api/src/routes/auth/auth.ts) sends the token to ``https://<AUTH0_DOMAIN>/userinfo``. The issuer is what
    Auth0 issues for the domain the dashboard signs in at, ``https://<domain>/`` (the API's own default,
    written out). The seed's placeholder client id is left out: it names no Auth0 application."""
    if c.auth0_domain is None:
        return [env("AUTH0_ENABLED", False)]
    out = [
        env("AUTH0_ENABLED", True),
        env("AUTH0_DOMAIN", c.auth0_domain),
        env("AUTH0_ISSUER", str(c.auth0_issuer)),
        env("AUTH0_AUDIENCE", c.auth0_audience),
    ]
    if c.auth0_real_client_id is not None:
        out.append(env("AUTH0_CLIENT_ID", c.auth0_real_client_id))
    return out
