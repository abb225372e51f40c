"""StreamKeyResolver: the hook Job that writes ``{release}-ingestion-runtime-env`` from the license.

Seed "Stream key resolver job": an Argo CD hook on every sync extracts the tenant id from the license
JWT (``api-license-credentials-{ns}``, key ``key``) and writes ``INGESTION_TENANT_ID`` and
``REDIS_INGESTION_STREAM_KEY`` into the runtime Secret that ingestion loads with ``envFrom``. The key
carries the Redis hash-tag braces ``tenant:{<id>}:agent:devices:ingestion``: ingestion crashes on the
brace-less form the seed prints (platform-facts §3.4). The logic is ``scripts/secret_jobs.py``
(``resolve-stream-key``), run for real by the tests.

- Sync hook at wave -1: after its RBAC and script (wave -2), before ingestion (wave 0).
- Its own ServiceAccount and Role: ``get`` on the license Secret and ``patch`` on the runtime Secret,
  both by name, and ``create`` on Secrets. Kubernetes cannot restrict ``create`` by resourceName (the
  name is not known when the request is authorised; a create rule with resourceNames never matches), so
  that rule is namespace-wide: the token can create new Secrets but read, change or delete none but
  the two named. The token is mounted only in this short-lived hook pod.
- Image ``python`` (alpine, pinned): the script needs only the standard library (json, base64,
  urllib, ssl), so nothing is installed at run time, and the exact code the tests run is what runs.
"""

from __future__ import annotations

from pathlib import Path

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope
from constructs.isolation.network_policies import Endpoint
from constructs.lifecycle.sync_hooks import (
    PYTHON_UID,
    SCRIPTS_DIR,
    WAVE_SECRET_JOBS,
    hook_job,
    job_rbac,
    scripts_config_map,
    secret_rule,
)
from constructs.platform import Props, Release, env, env_field
from constructs.scan_skips import CKV_SA_TOKEN, REASON_CALLS_KUBE_API
from tiers.models import Scheduling, StreamKeyResolver

APP = "stream-key-resolver"
COMPONENT = "ingestion"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "secret_jobs.py"


class StreamKeyResolverProps(Props):
    release: Release
    values: StreamKeyResolver
    scheduling: Scheduling
    runtime_secret: str


class StreamKeyResolverJob(Component):
    """Outputs: ``name`` (Job), ``runtime_secret``, ``license_secret``, ``network_endpoint``."""

    def __init__(self, scope: Scope, id: str, *, props: StreamKeyResolverProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name(APP)
        self.runtime_secret = props.runtime_secret
        self.license_secret = sc.license_credentials(rel.namespace).name
        self.network_endpoint = Endpoint(key=APP, app=APP, component=COMPONENT)

        scripts_config_map(
            self, rel, name=self.name, app=APP, component=COMPONENT, files={"secret_jobs.py": SCRIPT.read_text()}
        )
        account = job_rbac(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            rules=[
                secret_rule(["get"], [self.license_secret]),
                secret_rule(["patch"], [self.runtime_secret]),
                secret_rule(["create"]),  # cannot be limited by name (see the module docstring)
            ],
        )
        hook_job(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            job_wave=WAVE_SECRET_JOBS,
            image=v.image,
            res=v.resources,
            command=["python3", f"{SCRIPTS_DIR}/secret_jobs.py", "resolve-stream-key"],
            env=[
                env_field("NAMESPACE", "metadata.namespace"),
                env("RELEASE", rel.release),
                env("LICENSE_SECRET_NAME", self.license_secret),
                env("LICENSE_SECRET_FIELD", v.license_secret_key),
                env("LICENSE_WAIT_SECONDS", v.license_wait_seconds),
                env("RUNTIME_SECRET_NAME", self.runtime_secret),
                env("PYTHONDONTWRITEBYTECODE", "1"),
                env("PYTHONUNBUFFERED", "1"),
            ],
            uid=PYTHON_UID,
            scheduling=props.scheduling,
            scripts=self.name,
            backoff_limit=2,
            deadline_seconds=v.license_wait_seconds + 300,
            service_account=account,
            skips={
                CKV_SA_TOKEN: f"{REASON_CALLS_KUBE_API}: it reads the Secret {self.license_secret} and writes "
                f"{self.runtime_secret}"
            },
        )
