"""Argo CD sync ordering and the building blocks of the lifecycle hook Jobs.

Everything runs in Argo CD's **Sync** phase, ordered by sync waves (Argo CD applies a wave, waits until
its resources are healthy and its hook Jobs have succeeded, then moves on):

====  ==========================================================================================
wave  what
====  ==========================================================================================
 -4   OnePasswordItems (provider ``onepassword``): the operator writes the Secrets
 -3   ServiceAccounts, Roles, RoleBindings and script ConfigMaps of the hook Jobs (plain resources)
 -2   Sync hook Jobs: redis-auth generator, stream key resolver, db-init
 -1   Sync hook Job api-migrations: the API's migrations, once, with the API image's runner (the API pods
      skip them, so replicas never race on them, platform-facts §17)
  0   the workloads (API, ingestion, Redis, broker, dashboard, Node-RED): no annotation
  1   Sync hook Jobs timescaledb-policy (seed: wave "1") and platform-config (the agents' broker row and
      the admin user, platform-facts §17), once the API (and its migrations) is healthy
====  ==========================================================================================

Why not PreSync: a PreSync hook runs before any Sync-phase resource exists, so on a first sync its
ServiceAccount, Role and ConfigMap would not exist yet. Hook Jobs carry
``BeforeHookCreation,HookSucceeded``: a re-sync replaces the previous run, a successful run is removed,
and a failed one stays for ``kubectl logs`` until the next sync.
"""

from __future__ import annotations

from pathlib import Path

from cdk8s_plus_27 import k8s

from constructs.api_objects import KubeObject, Scope, api_object
from constructs.platform import (
    Release,
    config_map_volume,
    container_security,
    empty_dir,
    mount,
    pod_security,
    pod_spec,
    pod_template_metadata,
    resources,
    sorted_env,
)
from constructs.scan_skips import CKV_SECRET_ENV, checkov_skips
from tiers.models import Image, Resources, Scheduling

HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HOOK_DELETE_POLICY = "BeforeHookCreation,HookSucceeded"

WAVE_SECRETS = -4
WAVE_PREREQUISITES = -3
WAVE_SECRET_JOBS = -2
WAVE_MIGRATIONS = -1
WAVE_WORKLOADS = 0
WAVE_POLICY = 1

SCRIPTS_DIR = "/scripts"
#: What the psql hook Jobs share (log, die, the bounded wait, one SQL file in one transaction): each of their
#: ConfigMaps carries it beside the hook's own script, which sources it.
PSQL_HOOK = Path(__file__).resolve().parents[1] / "scripts" / "psql-hook.sh"
#: uid of `nobody` in the python alpine image (the image itself runs as root).
PYTHON_UID = 65534
#: 10000 + the uid of `postgres` in the postgres alpine image (70): psql needs no file of its own
#: (a uid of 10000 or more, Checkov's CKV_K8S_40; docs/hardening.md "UIDs").
POSTGRES_UID = 10070
#: Why CKV_K8S_35 (Secrets as env) does not apply to the psql Jobs (docs/hardening.md).
PSQL_SECRET_ENV = (
    "psql (libpq) takes the password from PGPASSWORD; the Secrets hold bare keys (password username...) and "
    "not a pgpass file"
)


def wave(n: int) -> dict[str, str]:
    return {WAVE: str(n)}


def sync_hook(n: int) -> dict[str, str]:
    return {HOOK: "Sync", WAVE: str(n), DELETE_POLICY: HOOK_DELETE_POLICY}


def secret_rule(verbs: list[str], names: list[str] | None = None) -> k8s.PolicyRule:
    return k8s.PolicyRule(
        api_groups=[""], resources=["secrets"], resource_names=sorted(names) if names else None, verbs=verbs
    )


def job_rbac(scope: Scope, rel: Release, *, name: str, app: str, component: str, rules: list[k8s.PolicyRule]) -> str:
    """A ServiceAccount of its own, a Role with exactly ``rules``, and the binding. Returns the SA name.

    The ServiceAccount does not automount its token; the Job's pod asks for it explicitly.
    """
    meta = rel.metadata(name, app, component, annotations=wave(WAVE_PREREQUISITES))
    api_object(k8s.KubeServiceAccount, scope, "ServiceAccount", metadata=meta, automount_service_account_token=False)
    api_object(k8s.KubeRole, scope, "Role", metadata=meta, rules=rules)
    api_object(
        k8s.KubeRoleBinding,
        scope,
        "RoleBinding",
        metadata=meta,
        role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
        subjects=[k8s.Subject(kind="ServiceAccount", name=name, namespace=rel.namespace)],
    )
    return name


def scripts_config_map(
    scope: Scope, rel: Release, *, name: str, app: str, component: str, files: dict[str, str]
) -> KubeObject:
    return api_object(
        k8s.KubeConfigMap,
        scope,
        "Scripts",
        metadata=rel.metadata(name, app, component, annotations=wave(WAVE_PREREQUISITES)),
        data=dict(sorted(files.items())),
    )


def hook_job(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    job_wave: int,
    image: Image,
    res: Resources,
    command: list[str],
    env: list[k8s.EnvVar],
    uid: int,
    scheduling: Scheduling,
    scripts: str,
    backoff_limit: int,
    deadline_seconds: int,
    service_account: str | None = None,
    skips: dict[str, str] | None = None,
) -> KubeObject:
    """A Sync hook Job at ``job_wave`` running ``command`` from the ``scripts`` ConfigMap (read-only root,
    restricted profile, no token unless ``service_account`` is given). ``skips``: the Checkov checks that do
    not apply to it, with their reasons (constructs/scan_skips.py checkov_skips)."""
    return api_object(
        k8s.KubeJob,
        scope,
        "Job",
        metadata=rel.metadata(
            name, app, component, annotations={**sync_hook(job_wave), **checkov_skips(skips, images=[image])}
        ),
        spec=k8s.JobSpec(
            backoff_limit=backoff_limit,
            active_deadline_seconds=deadline_seconds,
            template=k8s.PodTemplateSpec(
                metadata=pod_template_metadata(rel, app, component),
                spec=pod_spec(
                    containers=[
                        k8s.Container(
                            name=app,
                            image=image.ref,
                            image_pull_policy=image.image_pull_policy,
                            command=command,
                            env=sorted_env(env),
                            resources=resources(res),
                            security_context=container_security(),
                            volume_mounts=[mount("scripts", SCRIPTS_DIR, read_only=True), mount("tmp", "/tmp")],
                        )
                    ],
                    security=pod_security(uid),
                    scheduling=scheduling,
                    volumes=[config_map_volume("scripts", scripts), empty_dir("tmp", "16Mi")],
                    service_account=service_account,
                    restart_policy="Never",
                ),
            ),
        ),
    )


def psql_hook(
    scope: Scope,
    rel: Release,
    *,
    name: str,
    app: str,
    component: str,
    script: Path,
    sql_file: str,
    sql: str,
    wait_sql: str,
    image: Image,
    res: Resources,
    env: list[k8s.EnvVar],
    scheduling: Scheduling,
    deadline_seconds: int,
) -> KubeObject:
    """A psql Sync hook at the policy wave: its ConfigMap (``script``, psql-hook.sh, ``wait.sql`` and
    ``sql_file``) and its Job, which runs ``script`` as the postgres image's user with ``env``."""
    scripts_config_map(
        scope,
        rel,
        name=name,
        app=app,
        component=component,
        files={
            script.name: script.read_text(),
            "psql-hook.sh": PSQL_HOOK.read_text(),
            "wait.sql": wait_sql,
            sql_file: sql,
        },
    )
    return hook_job(
        scope,
        rel,
        name=name,
        app=app,
        component=component,
        job_wave=WAVE_POLICY,
        image=image,
        res=res,
        command=["sh", f"{SCRIPTS_DIR}/{script.name}"],
        env=env,
        uid=POSTGRES_UID,
        scheduling=scheduling,
        scripts=name,
        backoff_limit=2,
        deadline_seconds=deadline_seconds,
        skips={CKV_SECRET_ENV: PSQL_SECRET_ENV},
    )
