"""One validation for the whole fleet: synth and `validate` share tiers/fleet.py, and client N+1 can
never break clients 1..N. Also what Kubernetes or the services would refuse, and capacity as a model."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import app
import cli
from tests.helpers import ENV_DIR, SHIPPED, by, env_from, error_of, synth_env
from tiers import TIERS
from tiers.fleet import (
    SHARED_APPLICATIONS,
    Sources,
    fleet_capacity,
    git_status,
    shared_identities,
    validate_fleet,
)
from tiers.loader import load_environments
from tiers.models import Api, Environment

ROOT = Path(__file__).resolve().parent.parent


def seed_files(d: Path) -> Path:
    """The seed's example fleet (the shipped files of helpers.SHIPPED, whatever else environments/ holds)
    copied into ``d``, with the seed's fleet file (its database server) beside it: the tests of behaviour
    below own their fleet, so a client the operator adds to environments/ changes none of their numbers or
    orderings."""
    d.mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy(ENV_DIR / f"{name}.yaml", d / f"{name}.yaml")
    (d.parent / "fleet.yaml").write_text(SEED_FLEET_FILE)
    return d


#: The seed's fleet: one cluster, the CNPG cluster iotistica-cnpg-cl01 at max_connections 500 (platform-facts
#: §7), whatever the operator's fleet.yaml declares.
SEED_FLEET_FILE = """\
clusters:
  - name: in-cluster
databaseServers:
  - name: iotistica-cnpg-cl01
    maxConnections: 500
"""


@functools.cache
def seed_fleet() -> tuple[Environment, ...]:
    """The seed's example fleet, loaded from a temporary copy (see :func:`seed_files`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return tuple(load_environments(seed_files(Path(tmp) / "environments")))


def fleet_dir(tmp_path: Path, git: bool = False) -> Path:
    d = seed_files(tmp_path / "environments")
    if git:
        run = {"cwd": d, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q"], **run)  # type: ignore[call-overload]
        subprocess.run(["git", "add", "."], **run)  # type: ignore[call-overload]
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "fleet"], **run)  # type: ignore[call-overload]
    return d


def new_client(d: Path, name: str = "client-acme", **extra: Any) -> Path:
    data = {"release": name, "namespace": name, "tier": "demo", "database": {"maxConnections": 500}}
    data.update(extra)
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def synth_and_validate(d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """The first error line of synth and of validate --strict, both with exit 2, nothing written."""
    out = tmp_path / "out"
    assert app.main(["--environments", str(d), "--outdir", str(out), "--no-cache"]) == 2
    synth_err = capsys.readouterr().err.strip().splitlines()
    assert not out.exists()
    assert cli.main(["--environments", str(d), "validate", "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # errors go to stderr
    return synth_err[0], captured.err.strip().splitlines()[0]


# --------------------------------------------------------------------------------------------------
# One rule set: what synth refuses, validate refuses, with the same line
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("iotistica-apps", {}, "release: 'iotistica-apps' is the name of a shared Argo CD Application"),
        ("iotistica-cluster", {}, "release: 'iotistica-cluster' is the name of a shared Argo CD Application"),
        (
            "client-acme",
            {"argocd": {"repoUrl": "https://example.com/fork.git"}},
            "declares 'https://github.com/Iotistica/iotistica-k8s.git' (git.repoUrl), this file",
        ),
        ("client-acme", {"argocd": {"targetRevision": "dev"}}, "declares 'main' (git.targetRevision), this file 'dev'"),
        ("client-acme", {"edge": {"hosts": {"api": "api.iotistica.com"}}}, "host 'api.iotistica.com'"),
        ("client-acme", {"namespace": "kube-system"}, "namespace: 'kube-system' is reserved"),
        ("client-acme", {"namespace": "fleet-iotistica-pilot"}, "namespace 'fleet-iotistica-pilot' is already used"),
        # names a tenant's API may create (docs/guardrail.md): never a release namespace
        *(
            ("client-acme", {"namespace": ns}, f"namespace: {ns!r} starts with {ns[: ns.index('-') + 1]!r}, a name")
            for ns in ("fleet-acme", "fleet-0a1b2c3d")
        ),
        (
            "client-acme",
            {"namespace": "virtual-agents-x"},
            "namespace: 'virtual-agents-x' starts with 'virtual-agents-'",
        ),
        (
            "client-acme",
            {"database": {"maxConnections": 100}},
            "declares 500 (databaseServers.0.maxConnections), this file 100",
        ),
        ("client-acme", {"cluster": {"name": "edge-b"}}, "cluster.name: unknown cluster 'edge-b'"),
        ("client-acme", {"database": {"server": "iotistica-cnpg-cl02"}}, "database.server: unknown database server"),
    ],
)
def test_synth_and_validate_refuse_the_same_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, extra: dict[str, Any], expected: str
) -> None:
    d = fleet_dir(tmp_path, git=True)  # the new file is blamed, whatever its name
    data: dict[str, Any] = {"release": name, "namespace": name, "tier": "demo", "database": {"maxConnections": 500}}
    for key, value in extra.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    (d / f"{name}.yaml").write_text(yaml.safe_dump(data))
    synth, validate = synth_and_validate(d, tmp_path, capsys)
    assert synth == validate
    assert synth.startswith(f"error: {d / name}.yaml: ") or synth.startswith(f"error: {name}.yaml: ")
    assert expected in synth


def test_shared_application_names_are_the_charts(environments: dict[str, Environment]) -> None:
    """The names validate keeps from releases are the Applications dist/argocd/ holds besides theirs."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ArgoCdChart
    from tiers.shared import shared_props

    envs = list(environments.values())
    names = {o["metadata"]["name"] for o in ArgoCdChart(Root(), shared_props(envs)).to_json()}
    clusters = {f"iotistica-cluster-{e.cluster.name}" for e in envs}
    assert names - {e.release for e in envs} - clusters == set(SHARED_APPLICATIONS) - {"iotistica-cluster"}


def test_validate_builds_the_shared_charts(capsys: pytest.CaptureFixture[str]) -> None:
    rendered = cli.render_shared(load_environments(ENV_DIR))
    names = {o["metadata"]["name"] for o in rendered["argocd"]}
    shared = {"iotistica-apps", "iotistica-cluster-in-cluster", "iotistica-platform", "iotistica-tenants"}
    assert {*shared, *(p.stem for p in ENV_DIR.glob("*.yaml"))} == names
    assert {o["kind"] for o in rendered["cluster/in-cluster"]} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }


# --------------------------------------------------------------------------------------------------
# Blame: both files, the key, and which side is new or changed against git
# --------------------------------------------------------------------------------------------------


def test_a_new_file_is_blamed_not_the_unchanged_one(tmp_path: Path) -> None:
    d = fleet_dir(tmp_path, git=True)
    # "aaa" sorts before client-demo: without git the later name would be blamed, i.e. client-demo.
    new_client(d, "aaa", namespace="demo")
    envs = load_environments(d)
    sources = Sources.of(envs, d)
    assert sources.state("aaa") == "new" and sources.state("client-demo") == "unchanged"
    (err,) = validate_fleet(envs, sources)
    assert err.file == str(d / "aaa.yaml") and err.path == "namespace"
    assert str(d / "client-demo.yaml") in err.message
    assert "aaa.yaml is new" in err.message and "client-demo.yaml unchanged" in err.message


def test_a_changed_file_is_blamed(tmp_path: Path) -> None:
    d = fleet_dir(tmp_path, git=True)
    demo = d / "client-demo.yaml"
    demo.write_text(demo.read_text().replace("mqtt: mqtt-demo.iotistica.com", "mqtt: mqtt.iotistica.com"))
    envs = load_environments(d)
    (err,) = validate_fleet(envs, Sources.of(envs, d))
    assert err.file == str(demo) and err.path == "edge.hosts.mqtt"
    assert "iotistica.yaml (edge.hosts.mqtt)" in err.message and "client-demo.yaml is changed" in err.message


def test_argocd_disagreement_blames_the_changed_file(tmp_path: Path) -> None:
    """Without a fleet file, the environments agree among themselves (with one, it declares the value:
    test_synth_and_validate_refuse_the_same_fleet)."""
    d = fleet_dir(tmp_path, git=True)
    (d.parent / "fleet.yaml").unlink()
    with (d / "iotistica.yaml").open("a") as f:
        f.write("argocd:\n  repoUrl: https://example.com/other.git\n")
    envs = load_environments(d)
    (err,) = validate_fleet(envs, Sources.of(envs, d))
    assert err.file == str(d / "iotistica.yaml") and err.path == "argocd.repoUrl"
    assert "client-demo.yaml has 'https://github.com/Iotistica/iotistica-k8s.git'" in err.message
    assert "this file (changed) 'https://example.com/other.git'" in err.message


def test_blame_degrades_without_git(tmp_path: Path) -> None:
    d = fleet_dir(tmp_path)
    assert git_status(d, list(d.glob("*.yaml"))) == {}
    new_client(d, "zzz", namespace="demo")
    envs = load_environments(d)
    (err,) = validate_fleet(envs, Sources.of(envs, d))
    assert err.file == str(d / "zzz.yaml") and "client-demo.yaml (namespace)" in err.message
    assert " is new" not in err.message


# --------------------------------------------------------------------------------------------------
# Cross-environment rules
# --------------------------------------------------------------------------------------------------


def _fleet_errors(*extra: Environment) -> list[str]:
    envs = [*seed_fleet(), *extra]
    status = {e.release: "unchanged" for e in envs} | {e.release: "new" for e in extra}
    return [str(e) for e in validate_fleet(envs, Sources(labels={}, status=status))]


def _client(**overrides: Any) -> Environment:
    data: dict[str, Any] = {
        "release": "client-acme",
        "namespace": "client-acme",
        "tier": "demo",
        "database": {"maxConnections": 500},
    }
    data.update(overrides)
    return Environment.model_validate(data)


@pytest.mark.parametrize(
    ("hosts", "key"),
    [
        ({"api": "api.iotistica.com"}, "edge.hosts.api"),
        ({"dashboard": "app.iotistica.com"}, "edge.hosts.dashboard"),
        ({"mqtt": "mqtt.iotistica.com"}, "edge.hosts.mqtt"),
        ({"nodered": "api.iotistica.com"}, "edge.hosts.nodered"),
        ({"dashboardAliases": ["enterprise.iotistica.com"]}, "edge.hosts.dashboardAliases.0"),
        ({"api": "nr-iotistica.iotistica.com"}, "edge.hosts.api"),  # a host another release derives
    ],
)
def test_hosts_are_unique_across_environments(hosts: dict[str, Any], key: str) -> None:
    errors = _fleet_errors(_client(edge={"hosts": hosts}))
    assert len(errors) == 1 and errors[0].startswith(f"environments/client-acme.yaml: {key}: host "), errors


@pytest.mark.parametrize(
    "namespace",
    [
        "kube-system",
        "kube-public",
        "default",
        "argocd",
        "cert-manager",
        "envoy-gateway-system",
        "monitoring",
        "iotistica-cnpg-cl01",
        "virtual-agents",
    ],
)
def test_reserved_namespaces_are_refused(namespace: str) -> None:
    errors = _fleet_errors(_client(namespace=namespace))
    assert errors and errors[0].startswith(f"environments/client-acme.yaml: namespace: '{namespace}' is "), errors


@pytest.mark.parametrize("namespace", ["iotistica", "fleet-iotistica-pilot"])
def test_namespace_of_another_environment_or_its_fleet(namespace: str) -> None:
    (err,) = _fleet_errors(_client(namespace=namespace))
    assert err.startswith(f"environments/client-acme.yaml: namespace: namespace '{namespace}' is already used by ")


def test_a_fleet_namespace_may_not_take_another_namespace() -> None:
    fleets = {"enabled": True, "fleets": [{"name": "pilot", "maxAgents": 1}]}
    # client-acme in namespace "iotistica" is refused above; here its fleet takes iotistica's fleet namespace.
    env = _client(namespace="iot", fleetNamespaces=fleets, release="fleet-clash")
    assert env.fleet_namespace("pilot") == "fleet-iot-pilot"
    other = _client(namespace="fleet-iot-pilot")
    errors = _fleet_errors(env, other)
    assert any("fleet-iot-pilot" in e for e in errors), errors


def test_shared_identities_are_every_object_outside_the_release_namespace() -> None:
    pooled = env_from("iotistica", database={"pooler": {"enabled": True}})
    for env in [*(env_from(name) for name in SHIPPED), pooled]:
        ids = {ident for _, ident in shared_identities(env)}
        for o in synth_env(env):
            ns = o["metadata"].get("namespace", "")
            if ns != env.namespace or o["kind"] == "Namespace":
                assert (o["kind"], ns, o["metadata"]["name"]) in ids, (env.release, o["kind"], o["metadata"])
        # (Applications live in dist/argocd/, rendered by the shared chart.)


def test_generated_object_names_that_collide_are_refused() -> None:
    a = _client(release="acme", namespace="acme", database={"pooler": {"enabled": True}})
    b = _client(release="beta", namespace="beta", database={"pooler": {"enabled": True}})
    ids_a = {i for _, i in shared_identities(a)}
    assert ("Pooler", "iotistica-cnpg-cl01", "acme-pooler") in ids_a
    assert not ids_a & {i for _, i in shared_identities(b)}
    # validate also compares the rendered objects of every folder of dist/.
    objs = {"a": [{"kind": "Pooler", "metadata": {"name": "x", "namespace": "db"}}], "b": []}
    objs["b"] = list(objs["a"])
    assert cli.identity_clashes(objs) == [("b", "a", "Pooler/db/x")]


# --------------------------------------------------------------------------------------------------
# What Kubernetes or the services refuse
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"release": "1acme", "namespace": "acme"}, "release: must be a DNS-1035 label"),
        ({"api": {"replicas": 10**20}}, "api.replicas: input should be less than or equal to 2147483647"),
        ({"api": {"hpa": {"maxReplicas": 2**31}}}, "api.hpa.maxReplicas: input should be less than or equal"),
        (
            {"api": {"resources": {"requests": {"cpu": "0", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}}},
            "api.resources.requests.cpu: must be at least 10m (the floor), got 0",
        ),
        (
            {"api": {"resources": {"requests": {"cpu": "100m", "memory": "0Mi"}, "limits": {"memory": "0Mi"}}}},
            "api.resources.requests.memory: must be at least 16Mi (the floor), got 0Mi",
        ),
        (
            {
                "ingestion": {
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
                }
            },
            "ingestion.resources.limits.memory: gives NODE_OPTIONS=--max-old-space-size=96 (75% of 128Mi); the "
            "ingestion needs a heap of at least 128 MiB, so a memory limit of at least 171Mi",
        ),
        ({"scheduling": {"affinity": {"podAntiAfinity": {}}}}, "'podAntiAfinity' was unexpected"),
        (
            {
                "api": {
                    "scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}}
                }
            },
            "api.scheduling.affinity: is not a Kubernetes 1.27 Affinity at nodeAffinity.",
        ),
        ({"scheduling": {"nodeSelector": {"bad key": "x"}}}, "scheduling.nodeSelector.bad key: must be a label key"),
        ({"scheduling": {"nodeSelector": {"-x.io/zone": "a"}}}, "must be a label key"),
        ({"scheduling": {"tolerations": [{"key": "a b"}]}}, "scheduling.tolerations.0.key: must be a label key"),
        ({"api": {"image": {"repository": "iotistic/ap i", "tag": "v1"}}}, "api.image.repository: must be an image"),
        ({"api": {"image": {"repository": "Iotistic/API", "tag": "v1"}}}, "api.image.repository: must be an image"),
        ({"edge": {"hosts": {"api": "10.0.0.1"}}}, "edge.hosts.api: must be a DNS name, not an IP address"),
        ({"edge": {"hosts": {"mqtt": "1.2.3.4"}}}, "edge.hosts.mqtt: must be a DNS name, not an IP address"),
        ({"edge": {"domain": "example.123"}}, "edge.domain: must be a fully qualified DNS name"),
        ({"api": {"corsOrigins": ["app.example.com"]}}, "api.corsOrigins.0: must be an origin scheme://host[:port]"),
        ({"api": {"corsOrigins": ["https://app.example.com/path"]}}, "api.corsOrigins.0: must be an origin"),
        ({"api": {"corsOrigins": ["ftp://app.example.com"]}}, "api.corsOrigins.0: must be an origin"),
        ({"dashboard": {"config": {"apiUrl": "ftp://api.example.com"}}}, "dashboard.config.apiUrl: must be an http(s)"),
        ({"dashboard": {"config": {"apiUrl": "api.example.com"}}}, "dashboard.config.apiUrl: must be an http(s)"),
    ],
)
def test_refused_like_kubernetes_or_the_services(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    data: dict[str, Any] = {"release": "acme", "namespace": "acme", "tier": "demo", **overrides}
    name = data["release"]
    assert expected in error_of(tmp_path, data, name=name)


@pytest.mark.parametrize(
    "overrides",
    [
        {"api": {"corsOrigins": ["https://app.example.com", "https://*.example.com", "http://localhost:5173"]}},
        {"api": {"image": {"repository": "registry.example.com:5000/team/api", "tag": "v1"}}},
        {"scheduling": {"nodeSelector": {"kubernetes.io/arch": "amd64", "node-role": ""}}},
        {
            "scheduling": {
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "acme"}},
                                },
                            }
                        ]
                    }
                }
            }
        },
    ],
)
def test_valid_input_still_passes(tmp_path: Path, overrides: dict[str, Any]) -> None:
    from tiers.loader import load_environment

    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump({"release": "acme", "namespace": "acme", "tier": "demo", **overrides}))
    load_environment(path)


def test_affinity_reaches_the_pods() -> None:
    aff = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["iot"]}]},
                }
            ]
        }
    }
    objs = synth_env(env_from("client-demo", scheduling={"affinity": aff}))
    assert by(objs, "Deployment", "client-demo-api")["spec"]["template"]["spec"]["affinity"] == aff


def test_yml_files_are_refused_by_synth_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = fleet_dir(tmp_path)
    (d / "client-acme.yml").write_text("release: client-acme\n")
    synth, validate = synth_and_validate(d, tmp_path, capsys)
    assert synth == validate
    assert synth.endswith(
        "client-acme.yml: environment files end in .yaml: rename it to client-acme.yaml (it is not read)"
    )


def test_api_replicas_documentation_matches_behaviour(tmp_path: Path) -> None:
    doc = Api.model_fields["replicas"].description or ""
    assert "while the HPA is off" in doc and "hpa.minReplicas is the floor" in doc
    objs = synth_env(env_from("iotistica", api={"replicas": 3}))
    assert "replicas" not in by(objs, "Deployment", "iotistica-api")["spec"]
    assert by(objs, "HorizontalPodAutoscaler", "iotistica-api")["spec"]["minReplicas"] == 2
    err = error_of(tmp_path, {"release": "acme", "namespace": "acme", "tier": "standard", "api": {"replicas": 9}})
    assert "api.replicas: must be <= hpa.maxReplicas (4), got 9" in err


# --------------------------------------------------------------------------------------------------
# Capacity as a model
# --------------------------------------------------------------------------------------------------


def _env_var(objs: list[dict[str, Any]], kind: str, name: str, var: str) -> Any:
    (container,) = [c for c in by(objs, kind, name)["spec"]["template"]["spec"]["containers"]]
    return next(e for e in container["env"] if e["name"] == var)


def test_pool_sizes_are_derived_from_the_budget() -> None:
    env = env_from("iotistica")
    assert env.database.connection_budget == 80 and env.api.db_pool_size is None
    assert (env.api_db_pool_size, env.ingestion_db_pool_size) == (10, 5)  # 4 x 10 + 8 x 5 = 80
    objs = synth_env(env)
    assert _env_var(objs, "Deployment", "iotistica-api", "DB_POOL_SIZE")["value"] == "10"
    assert _env_var(objs, "Deployment", "iotistica-ingestion", "DB_POOL_SIZE")["value"] == "5"
    # Set explicitly, a pool size is used as it is (the seed's 20 on the demo tier).
    demo = env_from("client-demo")
    assert (demo.api.db_pool_size, demo.api_db_pool_size, demo.ingestion_db_pool_size) == (20, 20, 20)


def test_stream_maxlen_from_buffer_seconds() -> None:
    env = env_from("iotistica-enterprise")
    assert env.ingestion.stream_buffer_seconds == 60 and env.stream_maxlen == 3_000_000
    objs = synth_env(env)
    assert (
        _env_var(objs, "StatefulSet", "iotistica-enterprise-ingestion", "REDIS_INGESTION_STREAM_MAXLEN")["value"]
        == "3000000"
    )
    assert (
        _env_var(objs, "Deployment", "iotistica-enterprise-api", "REDIS_INGESTION_STREAM_MAXLEN")["value"] == "3000000"
    )


def test_stream_buffer_needs_a_rated_tier_and_one_setting(tmp_path: Path) -> None:
    base = {"release": "acme", "namespace": "acme", "tier": "demo"}
    err = error_of(tmp_path, {**base, "ingestion": {"streamMaxlen": None, "streamBufferSeconds": 60}})
    assert "ingestion.streamBufferSeconds: the demo tier has no rated load" in err
    err = error_of(tmp_path, {**base, "tier": "standard", "ingestion": {"streamBufferSeconds": 60}})
    assert "ingestion.streamMaxlen: set exactly one of streamMaxlen and streamBufferSeconds" in err


def test_cnpg_pooler_is_emitted_and_the_pods_use_it() -> None:
    env = env_from("iotistica", database={"pooler": {"enabled": True}})
    objs = synth_env(env)
    pooler = by(objs, "Pooler", "iotistica-pooler")
    assert pooler["apiVersion"] == "postgresql.cnpg.io/v1"
    assert pooler["metadata"]["namespace"] == "iotistica-cnpg-cl01"
    assert pooler["spec"]["cluster"] == {"name": "iotistica-cnpg-cl01"}
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "session"
    assert pooler["spec"]["pgbouncer"]["parameters"]["default_pool_size"] == "40"  # budget 80 / 2 instances
    host = "iotistica-pooler.iotistica-cnpg-cl01.svc.cluster.local"
    for kind, name in (("Deployment", "iotistica-api"), ("Deployment", "iotistica-ingestion")):
        assert _env_var(objs, kind, name, "DB_HOST") == {"name": "DB_HOST", "value": host}
    # Pools are now sized against what PgBouncer accepts (400), not the server budget.
    assert (env.api_db_pool_size, env.ingestion_db_pool_size) == (50, 25)
    assert not cli.policy_problems(env, objs)


def test_external_pooler_needs_a_host_and_emits_nothing(tmp_path: Path) -> None:
    base = {"release": "acme", "namespace": "acme", "tier": "demo"}
    err = error_of(tmp_path, {**base, "database": {"pooler": {"enabled": True, "kind": "external"}}})
    assert "database.pooler.host: must be set for an external pooler" in err
    env = env_from("client-demo", database={"pooler": {"enabled": True, "kind": "external", "host": "pgb.example.com"}})
    objs = synth_env(env)
    assert not [o for o in objs if o["kind"] == "Pooler"]
    assert _env_var(objs, "Deployment", "client-demo-api", "DB_HOST")["value"] == "pgb.example.com"


def test_budgets_on_one_server_must_fit_it() -> None:
    envs = list(seed_fleet())
    assert not fleet_capacity(envs, Sources(labels={}, status={}))  # 40 + 80 + 160 + 40 = 320 of 490
    big = _client(
        tier="enterprise",
        database={"maxConnections": 500, "connectionBudget": 200},
        redis={"cluster": {"enabled": True}},
    )
    (finding,) = fleet_capacity([*envs, big], Sources(labels={}, status={"client-acme": "new"}))
    assert finding.file == "environments/client-acme.yaml" and finding.path == "database.connectionBudget"
    assert "hold 520 connections together" in finding.message and "above its max_connections 500" in finding.message


def test_new_files_pass_strict_alone_and_in_the_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for tier in ("demo", "starter", "standard", "enterprise"):
        alone = tmp_path / f"alone-{tier}"
        assert cli.main(["--environments", str(alone), "new", "client-acme", "--tier", tier]) == 0
        assert cli.main(["--environments", str(alone), "validate", "--strict"]) == 0, capsys.readouterr().err
        fleet = seed_files(tmp_path / f"fleet-{tier}")
        assert cli.main(["--environments", str(fleet), "new", "client-acme", "--tier", tier]) == 0
        assert "maxConnections" not in (fleet / "client-acme.yaml").read_text()  # fleet.yaml declares it
        assert cli.main(["--environments", str(fleet), "validate", "--strict"]) == 0, capsys.readouterr().err
    capsys.readouterr()


def test_new_refuses_a_client_the_server_cannot_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's fleet holds 320 of the 490 connections of its server (declared in fleet.yaml): a standard
    client (80) fits, an enterprise one (160) after it does not, and `new` refuses it as validate and synth
    do (exit 2, one line, nothing written)."""
    fleet = seed_files(tmp_path / "env")
    assert cli.main(["--environments", str(fleet), "new", "client-std", "--tier", "standard"]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["--environments", str(fleet), "new", "client-big", "--tier", "enterprise"]) == 2
    refused = capsys.readouterr().err
    assert refused.startswith(f"error: {fleet / 'client-big'}.yaml: database.connectionBudget: ")
    assert "hold 560 connections together" in refused and refused.count("\n") == 1
    assert not (fleet / "client-big.yaml").exists()
    assert cli.main(["--environments", str(fleet), "validate"]) == 0


def test_new_refuses_a_file_that_breaks_the_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = seed_files(tmp_path / "env")
    rc = cli.main(["--environments", str(fleet), "new", "client-acme", "--tier", "demo", "--namespace", "iotistica"])
    assert rc == 2 and not (fleet / "client-acme.yaml").exists()
    assert "namespace 'iotistica' is already used by" in capsys.readouterr().err


def test_departures_from_the_seed_are_in_the_files_and_the_docs() -> None:
    page = (ROOT / "docs" / "environments.md").read_text()
    section = page.split("## Where the seed and the code disagree")[1].split("\n## ")[0]
    for needle in ("DB_POOL_SIZE", "1,200,000", "streamBufferSeconds", "maxConnections: 500"):
        assert needle in section, needle
    # The presets carry the departures --strict needs, each with the seed's number beside it, so that a
    # file's tier can change alone; the tiers where the seed's value holds keep it.
    presets = {t: (ROOT / "tiers" / "presets" / f"{t}.yaml").read_text() for t in TIERS}
    for preset in ("demo", "starter"):
        assert "dbPoolSize: 20           # seed: DB_POOL_SIZE 20" in presets[preset]
    for preset in ("standard", "enterprise"):
        assert "# seed: DB_POOL_SIZE 20" in presets[preset] and "  dbPoolSize: null\n" in presets[preset]
    assert "# seed: MAXLEN 1,200,000 messages, which holds 24 s" in presets["enterprise"]
    assert "  streamMaxlen: null\n  streamBufferSeconds: 60\n" in presets["enterprise"]
