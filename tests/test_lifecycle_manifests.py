"""The lifecycle concern in the manifests: secrets provider, hook Jobs and their RBAC, sync ordering,
Argo CD Applications, REQUIRED-SECRETS.md, and no Secret material anywhere in dist/.

The scripts themselves run for real in test_secret_jobs.py, test_db_init_real.py,
test_timescale_policy_sql.py and test_timescale_policy_real.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from constructs.lifecycle.required_secrets import FILENAME, render, write_required_secrets
from constructs.lifecycle.secrets_provider import secret_plan
from tests.helpers import ENV_DIR, SHIPPED, by, container, env_from, env_map, kinds, pod_specs, synth_env
from tests.test_crd_schemas import crds
from tiers.loader import ConfigError, load_environment

HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"
DELETE = "argocd.argoproj.io/hook-delete-policy"
PHASES = {"PreSync": 0, "Sync": 1, "PostSync": 2}
SEED_TABLE = (
    "sql-credentials-{ns}",
    "mqtt-credentials-{ns}",
    "openai-credentials-master",
    "api-jwt-{ns}",
    "api-license-credentials-{ns}",
    "api-license-public-key-master",
    "api-bootstrap-token-master",
    "internal-auth-token-master",
)


def validate_crd(o: dict[str, Any]) -> None:
    """Strictly against the vendored CRD (tests/crd-schemas/), metadata aside (checked elsewhere)."""
    group, version = o["apiVersion"].rsplit("/", 1)
    served, schema = crds()[(group, o["kind"])][version]
    assert served
    schema = {**schema, "required": [r for r in schema.get("required", []) if r != "metadata"]}
    body = {k: v for k, v in o.items() if k != "metadata"}
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(body)]
    assert not errors, f"{o['kind']}/{o['metadata']['name']}: {errors[:5]}"


def notes(o: dict[str, Any]) -> dict[str, str]:
    return o["metadata"].get("annotations") or {}


def order(o: dict[str, Any]) -> tuple[int, int]:
    """(phase, wave) as Argo CD orders a sync: by phase, then by wave (default 0)."""
    a = notes(o)
    return PHASES[a.get(HOOK, "Sync")], int(a.get(WAVE, "0"))


def secret_refs(spec: dict[str, Any]) -> set[str]:
    """Every Secret name a pod spec reads (env, envFrom, volumes)."""
    names: set[str] = set()
    for c in spec.get("initContainers", []) + spec["containers"]:
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                names.add(src["secretRef"]["name"])
    for v in spec.get("volumes", []):
        if "secret" in v:
            names.add(v["secret"]["secretName"])
    return names


def producers(objs: list[dict[str, Any]], release: str) -> dict[str, dict[str, Any]]:
    """Secret name -> the object that makes it exist in the cluster."""
    out = {o["metadata"]["name"]: o for o in kinds(objs, "OnePasswordItem")}
    jobs = {o["metadata"]["name"]: o for o in kinds(objs, "Job")}
    if f"{release}-redis-auth-generator" in jobs:
        out[f"{release}-redis-auth"] = jobs[f"{release}-redis-auth-generator"]
    out[f"{release}-ingestion-runtime-env"] = jobs[f"{release}-stream-key-resolver"]
    return out


# --------------------------------------------------------------------------------------------------
# Ordering: the whole sync, for every shipped environment and the 1Password variant
# --------------------------------------------------------------------------------------------------

VARIANTS = {
    **{r: (r, {}) for r in SHIPPED},
    "enterprise-onepassword": (
        "iotistica-enterprise",
        {"secrets": {"provider": "onepassword", "redisAuth": "onepassword"}},
    ),
    "standard-onepassword": ("iotistica", {"secrets": {"provider": "onepassword"}}),
}


@pytest.fixture(scope="module")
def variants(manifests) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    out = {}
    for key, (release, overrides) in VARIANTS.items():
        env = env_from(release, **overrides)
        out[key] = (env, manifests[release] if not overrides else synth_env(env))
    return out


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_the_whole_sync_order(variants, key) -> None:
    env, objs = variants[key]
    release = env.release
    made_by = producers(objs, release)
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]

    # 1. Everything a pod reads that is produced in the cluster is produced in an earlier wave.
    for o, spec in pod_specs(objs):
        for secret in secret_refs(spec):
            if secret in made_by:
                assert order(made_by[secret]) < order(o), (
                    f"{secret} must exist before {o['kind']}/{o['metadata']['name']}"
                )

    # 2. A hook Job's ServiceAccount, Role, RoleBinding and script ConfigMap exist before it runs.
    for job in kinds(objs, "Job"):
        if notes(job).get(HOOK) != "Sync":
            continue
        spec = job["spec"]["template"]["spec"]
        needs = [("ConfigMap", v["configMap"]["name"]) for v in spec.get("volumes", []) if "configMap" in v]
        if "serviceAccountName" in spec:
            sa = spec["serviceAccountName"]
            needs += [("ServiceAccount", sa), ("Role", sa), ("RoleBinding", sa)]
        for kind, name in needs:
            assert order(by(objs, kind, name)) < order(job), f"{kind}/{name} before Job/{job['metadata']['name']}"
            assert HOOK not in notes(by(objs, kind, name)), "prerequisites are plain, tracked resources"

    # 3. db-init before the API; the resolver before ingestion; the generator before Redis.
    api = by(objs, "Deployment", f"{release}-api")
    migrations = by(objs, "Job", f"{release}-api-migrations")
    if env.db_init.enabled:
        assert order(by(objs, "Job", f"{release}-db-init")) < order(migrations)
    # The API's migrations run once, before the API, whose pods skip them (platform-facts §17).
    assert order(migrations) < order(api)
    api_env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert api_env["DB_SKIP_MIGRATIONS"] == "true"
    ingestion = next(o for o in workloads if o["metadata"]["name"] == f"{release}-ingestion")
    resolver = by(objs, "Job", f"{release}-stream-key-resolver")
    assert order(resolver) < order(ingestion)
    license_secret = f"api-license-credentials-{env.namespace}"  # read through the API, not secretKeyRef
    if license_secret in made_by:
        assert order(made_by[license_secret]) < order(resolver)
    redis = next(o for o in workloads if o["metadata"]["name"] == f"{release}-redis")
    if env.secrets.redis_auth == "generate":
        assert order(by(objs, "Job", f"{release}-redis-auth-generator")) < order(redis)
    else:
        assert order(by(objs, "OnePasswordItem", f"{release}-redis-auth")) < order(redis)

    # 4. The policy job: a Sync hook at wave "1", after every workload.
    policy = by(objs, "Job", f"{release}-timescaledb-policy")
    assert notes(policy)[HOOK] == "Sync" and notes(policy)[WAVE] == "1"
    assert all(order(w) < order(policy) for w in workloads)

    # 5. Re-syncs stay clean: every hook is replaced on the next sync (and ours are removed on success).
    for job in kinds(objs, "Job"):
        assert HOOK in notes(job), f"Job/{job['metadata']['name']} is a hook"
        policies = notes(job)[DELETE].split(",")
        assert "BeforeHookCreation" in policies
        if job["metadata"]["name"] != f"{release}-redis-cluster-init":
            assert policies == ["BeforeHookCreation", "HookSucceeded"]


def test_the_waves_are_the_documented_ones(manifests) -> None:
    objs = manifests["iotistica"]
    waves = {(o["kind"], o["metadata"]["name"]): notes(o).get(WAVE) for o in objs}
    assert waves[("Job", "iotistica-db-init")] == "-2"
    assert waves[("Job", "iotistica-stream-key-resolver")] == "-2"
    assert waves[("Job", "iotistica-redis-auth-generator")] == "-2"
    assert waves[("Role", "iotistica-stream-key-resolver")] == "-3"
    assert waves[("ConfigMap", "iotistica-db-init")] == "-3"
    # The API's migrations: once, after db-init and before the API, whose pods skip them (platform-facts §17).
    assert waves[("Job", "iotistica-api-migrations")] == "-1"
    assert waves[("Job", "iotistica-timescaledb-policy")] == "1"
    assert waves[("Deployment", "iotistica-api")] is None  # wave 0


# --------------------------------------------------------------------------------------------------
# Jobs, RBAC and Secret references per environment
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SHIPPED)
def test_every_environment_has_its_lifecycle_jobs(manifests, environments, release) -> None:
    objs, env = manifests[release], environments[release]
    jobs = {o["metadata"]["name"] for o in kinds(objs, "Job")}
    expected = {f"{release}-stream-key-resolver", f"{release}-redis-auth-generator", f"{release}-timescaledb-policy"}
    assert expected <= jobs
    # Seed: db-init is disabled for demo environments, on for the others.
    assert (f"{release}-db-init" in jobs) is (env.tier != "demo")
    assert not kinds(objs, "OnePasswordItem") and not kinds(objs, "Secret")


def rules(objs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted(by(objs, "Role", name)["rules"], key=lambda r: r["verbs"])


def test_resolver_rbac_is_least_privilege(manifests) -> None:
    objs = manifests["iotistica"]
    name = "iotistica-stream-key-resolver"
    assert rules(objs, name) == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["api-license-credentials-iotistica"],
            "verbs": ["get"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["iotistica-ingestion-runtime-env"],
            "verbs": ["patch"],
        },
    ]
    binding = by(objs, "RoleBinding", name)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "iotistica"}]
    assert by(objs, "ServiceAccount", name)["automountServiceAccountToken"] is False
    spec = by(objs, "Job", name)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == name and spec["automountServiceAccountToken"] is True
    env = env_map(container(by(objs, "Job", name)))
    assert env["LICENSE_SECRET_NAME"] == "api-license-credentials-iotistica" and env["LICENSE_SECRET_FIELD"] == "key"
    assert env["RUNTIME_SECRET_NAME"] == "iotistica-ingestion-runtime-env"
    # ingestion loads exactly that Secret
    ingestion = by(objs, "Deployment", "iotistica-ingestion")
    assert container(ingestion)["envFrom"] == [
        {"secretRef": {"name": "iotistica-ingestion-runtime-env", "optional": False}}
    ]


def test_generator_rbac_is_least_privilege(manifests) -> None:
    objs = manifests["client-demo"]
    assert rules(objs, "client-demo-redis-auth-generator") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["client-demo-redis-auth"], "verbs": ["get"]},
    ]
    job = by(objs, "Job", "client-demo-redis-auth-generator")
    assert container(job)["command"] == ["python3", "/scripts/secret_jobs.py", "ensure-redis-auth"]
    assert env_map(container(job))["REDIS_AUTH_SECRET_NAME"] == "client-demo-redis-auth"


def test_sql_jobs_mount_no_token_and_use_the_admin_secret(manifests) -> None:
    objs = manifests["iotistica"]
    for name in ("iotistica-db-init", "iotistica-timescaledb-policy"):
        job = by(objs, "Job", name)
        spec = job["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
        env = env_map(container(job))
        assert env["PGUSER"] == {"secretKeyRef": {"name": "pg-admin-credentials", "key": "username"}}
        assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "pg-admin-credentials", "key": "password"}}
        assert env["PGHOST"] == {"secretKeyRef": {"name": "sql-credentials-iotistica", "key": "server"}}
        assert env["PGSSLMODE"] == "require"
        assert container(job)["image"] == "postgres:17.2-alpine3.21"
    env = env_map(container(by(objs, "Job", "iotistica-db-init")))
    assert env["APP_USER"] == {"secretKeyRef": {"name": "sql-credentials-iotistica", "key": "username"}}
    assert env["APP_DB"] == {"secretKeyRef": {"name": "sql-credentials-iotistica", "key": "dbname"}}
    assert env["REQUIRE_TIMESCALEDB"] == "true"


def test_policy_job_runs_as_the_configured_owner() -> None:
    objs = synth_env(env_from("iotistica", timescaledb={"credentialsSecretName": "iotistica-table-owner"}))
    env = env_map(container(by(objs, "Job", "iotistica-timescaledb-policy")))
    assert env["PGUSER"] == {"secretKeyRef": {"name": "iotistica-table-owner", "key": "username"}}
    assert env["PGDATABASE"] == {"secretKeyRef": {"name": "sql-credentials-iotistica", "key": "dbname"}}


@pytest.mark.parametrize(
    "release, raw_retention",
    [
        ("client-demo", "30 days"),
        ("iotistica-starter", "30 days"),
        ("iotistica", "60 days"),
        ("iotistica-enterprise", "90 days"),
    ],
)
def test_seed_compression_and_retention_per_tier(manifests, release, raw_retention) -> None:
    sql = by(manifests[release], "ConfigMap", f"{release}-timescaledb-policy")["data"]["policy.sql"]
    blocks = {m.group(1): m.group(0) for m in re.finditer(r"-- (\w+: \w+ policy)[^\n]*\n.*?\$step\$;", sql, re.S)}
    assert "INTERVAL '2 days'" in blocks["readings: compression policy"]  # seed: compress after 2 days
    assert (
        f"add_retention_policy('public.readings', INTERVAL '{raw_retention}')" in blocks["readings: retention policy"]
    )
    assert (
        "add_compression_policy('public.readings_1m', INTERVAL '7 days')" in blocks["readings_1m: compression policy"]
    )
    assert "add_retention_policy('public.readings_1m', INTERVAL '90 days')" in blocks["readings_1m: retention policy"]
    metrics = blocks["agent_metrics_5min: retention policy"]
    if release == "iotistica-enterprise":  # seed: 60 days (enterprise)
        assert "add_retention_policy('public.agent_metrics_5min', INTERVAL '60 days')" in metrics
    else:
        assert "add_retention_policy" not in metrics and "remove_retention_policy" in metrics
    # compression is switched on first: the hypertable, then the aggregate, then the policies
    assert sql.index("ALTER TABLE public.readings SET") < sql.index("ALTER MATERIALIZED VIEW public.readings_1m")
    assert sql.index("ALTER MATERIALIZED VIEW public.readings_1m") < sql.index("add_compression_policy(")
    assert "timescaledb.compress_segmentby = 'agent_uuid, metric_name'" in sql
    assert "timescaledb.compress_orderby = 'time DESC'" in sql
    assert "if_not_exists" not in sql, "if_not_exists never changes a live policy: the job compares and replaces"


@pytest.mark.parametrize(
    "override, where",
    [
        ({"readings1m": {"compressAfter": "5m"}}, "timescaledb.readings1m.compressAfter"),
        ({"readings1m": {"retain": "10m"}}, "timescaledb.readings1m.retain"),
        ({"agentMetrics5min": {"retain": "30m"}}, "timescaledb.agentMetrics5min.retain"),
        ({"agentMetrics5min": {"compressAfter": "1h"}}, "timescaledb.agentMetrics5min.compressAfter"),
        ({"readings": {"compressAfter": "30d", "retain": "7d"}}, "timescaledb.readings.retain"),
    ],
)
def test_policies_outside_the_refresh_window(tmp_path: Path, override, where) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"release": "x", "namespace": "x", "tier": "standard", "timescaledb": override}))
    with pytest.raises(ConfigError) as err:
        load_environment(path)
    assert err.value.path == where, str(err.value)


# --------------------------------------------------------------------------------------------------
# Secrets provider
# --------------------------------------------------------------------------------------------------


def test_onepassword_provider_items() -> None:
    env = env_from(
        "iotistica",
        secrets={
            "provider": "onepassword",
            "onePassword": {
                "itemPath": "vaults/prod/items/{name}",
                "items": {"openai-credentials-master": "vaults/shared/items/openai"},
            },
        },
    )
    objs = synth_env(env)
    items = {o["metadata"]["name"]: o for o in kinds(objs, "OnePasswordItem")}
    expected = {n.format(ns="iotistica") for n in SEED_TABLE} | {"pg-admin-credentials"}
    assert set(items) == expected, "every Secret of the seed's table and the admin Secret; redis-auth is generated"
    assert items["sql-credentials-iotistica"]["spec"] == {"itemPath": "vaults/prod/items/sql-credentials-iotistica"}
    assert items["openai-credentials-master"]["spec"] == {"itemPath": "vaults/shared/items/openai"}
    for o in items.values():
        assert o["apiVersion"] == "onepassword.com/v1" and o["metadata"]["namespace"] == "iotistica"
        assert notes(o)[WAVE] == "-4"
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == "iotistica"
        assert "data" not in o and "stringData" not in o
        validate_crd(o)
    assert by(objs, "Job", "iotistica-redis-auth-generator")


def test_default_item_path_and_redis_auth_from_onepassword() -> None:
    objs = synth_env(env_from("client-demo", secrets={"provider": "onepassword", "redisAuth": "onepassword"}))
    item = by(objs, "OnePasswordItem", "client-demo-redis-auth")
    assert item["spec"] == {"itemPath": "vaults/iotistica/items/client-demo-redis-auth"}  # the in-repo chart's layout
    assert not [o for o in kinds(objs, "Job") if o["metadata"]["name"] == "client-demo-redis-auth-generator"]
    assert not [o for o in kinds(objs, "Role") if o["metadata"]["name"] == "client-demo-redis-auth-generator"]
    # demo: no db-init, but the policy job still needs a table owner
    assert {o["metadata"]["name"] for o in kinds(objs, "OnePasswordItem")} >= {"pg-admin-credentials"}


def test_redis_auth_disabled_needs_no_generator() -> None:
    objs = synth_env(env_from("client-demo", redis={"auth": {"enabled": False}}))
    assert "client-demo-redis-auth-generator" not in {o["metadata"]["name"] for o in kinds(objs, "Job")}
    assert "client-demo-redis-auth" not in render(env_from("client-demo", redis={"auth": {"enabled": False}}))


@pytest.mark.parametrize(
    "secrets, message",
    [
        ({"provider": "onepassword", "onePassword": {"items": {"nope": "vaults/a/items/b"}}}, "nope is not a Secret"),
        ({"onePassword": {"items": {"api-jwt-iotistica": "vaults/a/items/b"}}}, "api-jwt-iotistica is not a Secret"),
    ],
)
def test_unknown_item_overrides_are_refused(secrets, message) -> None:
    with pytest.raises(ValueError, match=message):
        secret_plan(env_from("iotistica", secrets=secrets))


@pytest.mark.parametrize(
    "one_password, where",
    [
        ({"itemPath": "vaults/iotistica/items/fixed"}, "secrets.onePassword.itemPath"),
        ({"itemPath": "iotistica/{name}"}, "secrets.onePassword.itemPath"),
        ({"items": {"sql-credentials-x": "vaults/x"}}, "secrets.onePassword.items.sql-credentials-x"),
    ],
)
def test_item_paths_are_validated(tmp_path: Path, one_password, where) -> None:
    path = tmp_path / "x.yaml"
    data = {"release": "x", "namespace": "x", "tier": "demo", "secrets": {"onePassword": one_password}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_environment(path)
    assert err.value.path == where


def test_required_secrets_file(environments, tmp_path: Path) -> None:
    write_required_secrets(list(environments.values()), tmp_path)
    text = (tmp_path / "iotistica-enterprise" / FILENAME).read_text()
    for name in SEED_TABLE:
        assert f"| `{name.format(ns='iotistica-enterprise')}` |" in text
    assert (
        "| `pg-admin-credentials` | `username`, `password` | db-init Job (admin role), timescaledb-policy Job" in text
    )
    assert "`iotistica-enterprise-redis-auth`" in text and "never rotated automatically" in text
    assert (
        "| `iotistica-enterprise-ingestion-runtime-env` | `INGESTION_TENANT_ID`, `REDIS_INGESTION_STREAM_KEY` |" in text
    )
    assert "kubectl -n iotistica-enterprise create secret generic sql-credentials-iotistica-enterprise" in text
    demo = (tmp_path / "client-demo" / FILENAME).read_text()
    assert "db-init" not in demo and "timescaledb-policy Job (table owner)" in demo
    op = render(env_from("iotistica", secrets={"provider": "onepassword"}))
    assert "1Password item `vaults/iotistica/items/api-jwt-iotistica`" in op and "kubectl" not in op


# --------------------------------------------------------------------------------------------------
# Argo CD Applications
# --------------------------------------------------------------------------------------------------


def argocd_objects(envs: list[Any]) -> list[dict[str, Any]]:
    from constructs.api_objects import Root
    from constructs.shared_charts import ArgoCdChart
    from tiers.shared import shared_props

    return list(ArgoCdChart(Root(), shared_props(envs)).to_json())


def test_one_project_per_environment_one_application_set_and_the_platform_applications(environments) -> None:
    objs = argocd_objects(list(environments.values()))
    by_kind: dict[str, dict[str, Any]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    files = {p.stem for p in ENV_DIR.glob("*.yaml")}  # the fleet as environments/ holds it, not as shipped
    assert set(by_kind["AppProject"]) == {*files, "iotistica-platform"}
    assert set(by_kind["Application"]) == {"iotistica-cluster-in-cluster", "iotistica-apps"}
    assert set(by_kind["ApplicationSet"]) == {"iotistica-tenants"}
    for release, env in environments.items():
        project = by_kind["AppProject"][release]["spec"]
        assert project["sourceRepos"] == ["https://github.com/Iotistica/iotistica-k8s.git"]
        owned = {env.namespace} | {
            env.fleet_namespace(f.name) for f in env.fleet_namespaces.fleets if env.fleet_namespaces.enabled
        }
        assert project["destinations"] == [
            {"namespace": ns, "server": "https://kubernetes.default.svc"} for ns in sorted(owned)
        ]
        assert project["clusterResourceWhitelist"] == []
    appset = by_kind["ApplicationSet"]["iotistica-tenants"]["spec"]
    template = appset["template"]["spec"]
    assert template["source"] == {
        "repoURL": "https://github.com/Iotistica/iotistica-k8s.git",
        "targetRevision": "main",
        "path": "{{ .path.path }}",
        "directory": {"include": "*.yaml", "recurse": False},  # REQUIRED-SECRETS.md is never applied
    }
    assert template["destination"] == {"server": "{{ .cluster.server }}", "namespace": "{{ .namespace }}"}
    assert template["project"] == "{{ .project }}"
    assert template["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "syncOptions" not in template["syncPolicy"], "no CreateNamespace: the platform Application creates them"
    apps = by_kind["Application"]
    root = apps["iotistica-apps"]
    assert root["spec"]["source"]["path"] == "dist/argocd" and root["spec"]["destination"]["namespace"] == "argocd"
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert apps["iotistica-cluster-in-cluster"]["spec"]["source"]["path"] == "dist/cluster/in-cluster"
    assert {a["spec"]["project"] for a in apps.values()} == {"iotistica-platform"}
    for o in objs:
        validate_crd(o)
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "iotistica"


def test_repo_and_revision_are_configurable_and_must_agree(environments) -> None:
    settings = {"repoUrl": "https://git.example.com/ops/iot.git", "targetRevision": "v1.2.3", "project": "iot"}
    envs = [env_from(r, argocd=settings) for r in SHIPPED]
    objs = {(o["kind"], o["metadata"]["name"]): o for o in argocd_objects(envs)}
    appset = objs["ApplicationSet", "iotistica-tenants"]["spec"]
    assert appset["template"]["spec"]["source"]["repoURL"] == "https://git.example.com/ops/iot.git"
    assert appset["generators"][0]["git"] == {
        "repoURL": "https://git.example.com/ops/iot.git",
        "revision": "v1.2.3",
        "files": [{"path": "dist/*/argocd-tenant.json"}],
    }
    assert objs["Application", "iotistica-apps"]["spec"]["source"]["targetRevision"] == "v1.2.3"
    assert objs["AppProject", "iotistica"]["spec"]["sourceRepos"] == ["https://git.example.com/ops/iot.git"]
    mixed = [env_from("client-demo", argocd={"targetRevision": "release"}), env_from("iotistica")]
    with pytest.raises(ConfigError, match="argocd.targetRevision: must be the same in every environment"):
        argocd_objects(mixed)
    with pytest.raises(ConfigError, match="name of a shared Argo CD Application"):
        argocd_objects([env_from("client-demo").model_copy(update={"release": "iotistica-apps"})])
    with pytest.raises(ConfigError, match="name of a shared Argo CD object"):
        argocd_objects([env_from("client-demo").model_copy(update={"release": "iotistica-platform"})])


# --------------------------------------------------------------------------------------------------
# No secret material anywhere in dist/
# --------------------------------------------------------------------------------------------------

PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE)-----")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
TOKENISH = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
SECRETISH_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|LICENSE_KEY|_AUTH)$")


def high_entropy(text: str) -> list[str]:
    """Runs of base64/base64url characters of 32+ with upper case, lower case and digits mixed: what keys,
    tokens and generated passwords look like (hex checksums and words do not)."""
    return [
        m
        for m in TOKENISH.findall(text)
        if re.search(r"[A-Z]", m) and re.search(r"[a-z]", m) and re.search(r"[0-9]", m)
    ]


def scan(root: Path) -> list[str]:
    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel, text = path.relative_to(root), path.read_text()
        if PEM.search(text) or JWT.search(text):
            problems.append(f"{rel}: key, certificate or JWT")
        problems += [f"{rel}: high-entropy string {s[:12]}..." for s in high_entropy(text)]
        if path.suffix != ".yaml":
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if doc.get("kind") == "Secret":
                problems.append(f"{rel}: kind Secret")
            if doc.get("kind") != "ConfigMap" and ("data" in doc or "stringData" in doc):
                problems.append(f"{rel}: data/stringData on a {doc.get('kind')}")
            for _o, spec in pod_specs([doc]):
                for c in spec.get("initContainers", []) + spec["containers"]:
                    for e in c.get("env", []):
                        if SECRETISH_ENV.search(e["name"]) and "value" in e:
                            problems.append(f"{rel}: {e['name']} has a literal value")
    return problems


def test_no_secret_material_anywhere_in_dist(tmp_path: Path) -> None:
    import app

    out = tmp_path / "dist"
    assert app.main(["--outdir", str(out), "--no-cache"]) == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {FILENAME, "Application.iotistica-apps.k8s.yaml"}
    for release in SHIPPED:
        assert (out / release / FILENAME).exists(), "REQUIRED-SECRETS.md beside every release's manifests"
    assert scan(out) == []


def test_the_scan_catches_secret_material(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Secret.x.k8s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {p: eA==}\n"
    )
    (tmp_path / "a" / "Deployment.y.k8s.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "y"},
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "c", "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}]}
                    }
                },
            }
        )
    )
    (tmp_path / "a" / "notes.md").write_text("token: Zm9vYmFyQkFaMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u\n")
    (tmp_path / "a" / "key.md").write_text("-----BEGIN RSA PRIVATE KEY-----\n")
    found = scan(tmp_path)
    assert any("kind Secret" in p for p in found) and any("data/stringData" in p for p in found)
    assert any("DB_PASSWORD has a literal value" in p for p in found)
    assert any("high-entropy" in p for p in found) and any("key, certificate or JWT" in p for p in found)
