"""SecretsProvider: where every Secret of a release comes from. No Secret material ever enters dist/.

- ``secrets.provider: existing`` (default): the Secrets of the seed's table are referenced by name only
  and must exist before the sync; ``dist/<release>/REQUIRED-SECRETS.md`` (not applied: Argo CD reads only
  ``*.yaml``) lists them, with keys and readers (:mod:`constructs.lifecycle.required_secrets`).
- ``secrets.provider: onepassword``: a ``OnePasswordItem`` per Secret (same name; item path from
  ``secrets.onePassword``) at sync wave -3, so the 1Password Operator writes them before any reader.
- ``{release}-redis-auth`` (when ``redis.auth.enabled``): ``secrets.redisAuth: generate`` runs a Sync
  hook Job at wave -1 (``scripts/secret_jobs.py ensure-redis-auth``) that creates it with a random
  password only if it is missing and never changes it afterwards (the Secret is immutable); or
  ``onepassword``: a OnePasswordItem like the others.
- The generator's Role: ``get`` on that one Secret by name, ``create`` on Secrets. ``create`` cannot be
  restricted by resourceName in Kubernetes RBAC (the name is not part of the authorisation of a create;
  a create rule with resourceNames never matches), so the token may create other *new* Secrets in the
  namespace, but it can read, change or delete none of the existing ones. It lives only in the hook pod.

:func:`secret_plan` is the single list both the manifests and REQUIRED-SECRETS.md are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cdk8s import ApiObjectMetadata

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope, api_object
from constructs.isolation.network_policies import Endpoint
from constructs.lifecycle.sync_hooks import (
    PYTHON_UID,
    SCRIPTS_DIR,
    WAVE_SECRET_JOBS,
    WAVE_SECRETS,
    hook_job,
    job_rbac,
    scripts_config_map,
    secret_rule,
    wave,
)
from constructs.platform import Props, Release, env, env_field
from constructs.scan_skips import CKV_SA_TOKEN, REASON_CALLS_KUBE_API
from tiers.errors import SettingError
from tiers.models import Environment

APP_ITEM = "secrets"
APP_GENERATOR = "redis-auth-generator"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "secret_jobs.py"

Source = Literal["existing", "onepassword", "generated", "resolver"]


@dataclass(frozen=True)
class SecretNeed:
    """One Secret a release reads: what it holds, who reads it, and where it comes from."""

    ref: sc.SecretRef
    source: Source
    item_path: str | None = None

    @property
    def name(self) -> str:
        return self.ref.name


def secret_plan(environment: Environment) -> list[SecretNeed]:
    """Every Secret the release's pods read, in a stable order: the seed's table, then the database admin
    Secrets of the jobs, then the Secrets written in the cluster (redis auth, ingestion runtime env)."""
    e = environment
    refs = list(sc.required(e.namespace))
    readers: dict[str, list[str]] = {}
    if e.db_init.enabled:
        readers.setdefault(e.db_init.admin_secret_name, []).append("db-init Job (admin role)")
    if e.timescaledb.enabled:
        readers.setdefault(e.policy_credentials_secret, []).append("timescaledb-policy Job (table owner)")
    for name, users in readers.items():
        refs.append(sc.SecretRef(name, ("username", "password"), ", ".join(users)))

    external: Source = "onepassword" if e.secrets.provider == "onepassword" else "existing"
    one = e.secrets.one_password
    plan = [SecretNeed(r, external, one.path_for(r.name) if external == "onepassword" else None) for r in refs]
    if e.redis.auth.enabled:
        redis = sc.redis_auth(e.release)
        if e.secrets.redis_auth == "onepassword":
            plan.append(SecretNeed(redis, "onepassword", one.path_for(redis.name)))
        else:
            plan.append(SecretNeed(redis, "generated"))
    plan.append(SecretNeed(sc.ingestion_runtime_env(e.release), "resolver"))

    names = [n.name for n in plan]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SettingError("secrets", f"one Secret name is used for two purposes: {', '.join(dupes)}")
    items = {n.name for n in plan if n.source == "onepassword"}
    unknown = sorted(set(one.items) - items)
    if unknown:
        raise SettingError(
            "secrets.onePassword.items",
            f"{', '.join(unknown)} is not a Secret this release takes from 1Password "
            f"({', '.join(sorted(items)) or 'none'})",
        )
    return plan


class SecretsProviderProps(Props):
    release: Release
    environment: Environment


class SecretsProvider(Component):
    """Outputs: ``plan`` (list of SecretNeed), ``redis_auth_job`` (Job name or None),
    ``generator_endpoint`` (its pods, or None)."""

    def __init__(self, scope: Scope, id: str, *, props: SecretsProviderProps) -> None:
        super().__init__(scope, id)
        rel, e = props.release, props.environment
        self.plan = secret_plan(e)
        self.redis_auth_job: str | None = None
        #: the redis-auth generator's pods, when it runs
        self.generator_endpoint: Endpoint | None = None

        items = [n for n in self.plan if n.source == "onepassword"]
        if items:
            from imports.com.onepassword import OnePasswordItem, OnePasswordItemSpec

            for need in items:
                api_object(
                    OnePasswordItem,
                    self,
                    f"Item-{need.name}",
                    metadata=ApiObjectMetadata(
                        name=need.name,
                        namespace=rel.namespace,
                        labels=rel.labels(APP_ITEM, APP_ITEM),
                        annotations=wave(WAVE_SECRETS),
                    ),
                    spec=OnePasswordItemSpec(item_path=need.item_path),
                )

        generated = [n for n in self.plan if n.source == "generated"]
        if generated:
            self._generator(rel, e, generated[0].name)

    def _generator(self, rel: Release, e: Environment, secret: str) -> None:
        name = rel.name(APP_GENERATOR)
        scope = Component(self, "RedisAuthGenerator")
        scripts_config_map(
            scope, rel, name=name, app=APP_GENERATOR, component="redis", files={"secret_jobs.py": SCRIPT.read_text()}
        )
        account = job_rbac(
            scope,
            rel,
            name=name,
            app=APP_GENERATOR,
            component="redis",
            rules=[
                secret_rule(["get"], [secret]),
                secret_rule(["create"]),  # cannot be limited by name (see the module docstring)
            ],
        )
        hook_job(
            scope,
            rel,
            name=name,
            app=APP_GENERATOR,
            component="redis",
            job_wave=WAVE_SECRET_JOBS,
            image=e.secrets.generator_image,
            res=e.secrets.generator_resources,
            command=["python3", f"{SCRIPTS_DIR}/secret_jobs.py", "ensure-redis-auth"],
            env=[
                env_field("NAMESPACE", "metadata.namespace"),
                env("RELEASE", rel.release),
                env("REDIS_AUTH_SECRET_NAME", secret),
                env("PYTHONDONTWRITEBYTECODE", "1"),
                env("PYTHONUNBUFFERED", "1"),
            ],
            uid=PYTHON_UID,
            scheduling=e.scheduling,
            scripts=name,
            backoff_limit=2,
            deadline_seconds=300,
            service_account=account,
            skips={CKV_SA_TOKEN: f"{REASON_CALLS_KUBE_API}: it reads and creates the Secret {secret}"},
        )
        self.redis_auth_job = name
        self.generator_endpoint = Endpoint(key=APP_GENERATOR, app=APP_GENERATOR, component="redis")
