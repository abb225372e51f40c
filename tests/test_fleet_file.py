"""The fleet file (fleet.yaml, docs/fleet.md): clusters, database servers, Git and fleet-wide defaults
declared once, laid between the tier preset and the environment file; its rules run by synth and
`validate` alike. Each test makes its own fleet in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import app
import cli
from tests.helpers import ENV_DIR, container, env_map, synth_env
from tiers.fleet import Sources, validate_fleet
from tiers.loader import load_environments, read_fleet
from tiers.reference import FLEET_END, FLEET_START, fleet_reference

ROOT = Path(__file__).resolve().parent.parent

TWO_CLUSTERS: dict[str, Any] = {
    "clusters": [
        {"name": "eu-1", "destinationServer": "https://eu-1.example.com:6443", "kubernetesMinor": 31},
        {
            "name": "us-1",
            "destinationServer": "https://us-1.example.com:6443",
            "kubernetesMinor": 29,
            "gateway": {"name": "edge", "namespace": "gateway-system"},
            "clusterIssuer": "letsencrypt-us",
        },
    ],
    "databaseServers": [
        {"name": "pg-eu", "maxConnections": 200, "cluster": "eu-1"},
        {"name": "pg-us", "host": "pg-us.db.example.com", "port": 6432, "maxConnections": 100, "cluster": "us-1"},
    ],
}


def minimal(name: str, tier: str = "demo", **extra: Any) -> dict[str, Any]:
    """A minimal client file: release, namespace, tier and its hosts."""
    hosts = {"api": f"api.{name}.example.com", "dashboard": f"{name}.example.com", "mqtt": f"mqtt.{name}.example.com"}
    return {"release": name, "namespace": name, "tier": tier, "edge": {"hosts": hosts}, **extra}


def make_fleet(tmp_path: Path, fleet: dict[str, Any] | None, *envs: dict[str, Any]) -> Path:
    """environments/ with ``envs`` and, unless None, fleet.yaml beside it."""
    d = tmp_path / "environments"
    d.mkdir(parents=True)
    if fleet is not None:
        (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    for data in envs:
        (d / f"{data['release']}.yaml").write_text(yaml.safe_dump(data))
    return d


def synth(d: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``app.py`` (what `make synth` runs) on the environments folder ``d`` into ``out``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--environments", str(d), "--outdir", str(out), "--no-cache"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(out.parent), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        check=False,
    )


def validate(capsys: pytest.CaptureFixture[str], d: Path, *flags: str) -> tuple[int, list[str]]:
    rc = cli.main(["--environments", str(d), "validate", *flags])
    return rc, [line for line in capsys.readouterr().err.splitlines() if not line.startswith("unpinned: ")]


# --------------------------------------------------------------------------------------------------
# The shipped fleet
# --------------------------------------------------------------------------------------------------


def test_the_shipped_fleet_declares_its_server_once() -> None:
    """fleet.yaml declares the server's max_connections; no environment file restates it."""
    source = read_fleet(ROOT / "fleet.yaml")
    assert source.present
    servers = {s.name: s.max_connections for s in source.fleet.database_servers}
    for e in load_environments(ENV_DIR):
        assert e.database.max_connections == servers[e.database.server], e.release
        assert "maxConnections" not in (ENV_DIR / f"{e.release}.yaml").read_text(), e.release
        assert e.cluster.name in {c.name for c in source.fleet.clusters}


@pytest.mark.parametrize("tier", ["demo", "starter", "standard", "enterprise"])
def test_a_minimal_client_file_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str], tier: str) -> None:
    """release, namespace, tier and hosts: its cluster and database server come from fleet.yaml, and
    `validate --strict` passes, alone and beside the shipped environments, on every tier (the presets carry
    what --strict needs: docs/environments.md)."""
    fleet = yaml.safe_load((ROOT / "fleet.yaml").read_text())
    for server in fleet.get("databaseServers") or []:  # room for one more client beside whatever fleet ships
        server["maxConnections"] += 160  # the largest preset budget (enterprise)
    d = make_fleet(tmp_path, fleet, minimal("client-min", tier))
    assert validate(capsys, d, "--strict") == (0, [])
    for path in ENV_DIR.glob("*.yaml"):
        (d / path.name).write_text(path.read_text())
    rc, err = validate(capsys, d, "--strict")
    assert rc == 0, err


def test_without_a_fleet_file_there_is_one_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_fleet(tmp_path, None, minimal("acme"), minimal("beta", cluster={"name": "edge-b"}))
    (acme,) = load_environments(d, ["acme"])
    assert acme.cluster.name == "in-cluster" and acme.argocd.destination_server == "https://kubernetes.default.svc"
    rc, err = validate(capsys, d)
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"error: {d / 'beta.yaml'}: cluster.name: unknown cluster 'edge-b'")


# --------------------------------------------------------------------------------------------------
# Several clusters
# --------------------------------------------------------------------------------------------------


def test_the_cluster_and_server_fill_the_environment(tmp_path: Path) -> None:
    d = make_fleet(
        tmp_path,
        TWO_CLUSTERS,
        minimal("acme", cluster={"name": "eu-1"}, database={"server": "pg-eu"}),
        minimal("beta", cluster={"name": "us-1"}, database={"server": "pg-us"}),
    )
    acme, beta = load_environments(d)
    assert acme.argocd.destination_server == "https://eu-1.example.com:6443"
    assert acme.cluster.admission_policies == "v1" and acme.database.max_connections == 200
    assert (
        acme.edge.gateway.name == "iotistica-gateway" and acme.edge.certificate.issuer_name == "letsencrypt-production"
    )
    assert acme.database.host is None and acme.network.database.port == 5432
    assert beta.cluster.name == "us-1" and beta.argocd.destination_server == "https://us-1.example.com:6443"
    assert beta.cluster.admission_policies == "v1beta1"  # from kubernetesMinor 29
    assert (beta.edge.gateway.namespace, beta.edge.gateway.name) == ("gateway-system", "edge")
    assert (beta.edge.certificate.issuer_kind, beta.edge.certificate.issuer_name) == ("ClusterIssuer", "letsencrypt-us")
    assert (beta.database.host, beta.database.port, beta.database.max_connections) == (
        "pg-us.db.example.com",
        6432,
        100,
    )
    assert beta.network.database.port == 6432
    # The server's host and port reach the pods (without a pooler); without a host, the Secret's keys.
    api = next(o for o in synth_env(beta) if o["kind"] == "Deployment" and o["metadata"]["name"] == "beta-api")
    env = env_map(container(api, "api"))
    assert env["DB_HOST"] == "pg-us.db.example.com" and env["DB_PORT"] == "6432"
    api = next(o for o in synth_env(acme) if o["kind"] == "Deployment" and o["metadata"]["name"] == "acme-api")
    assert env_map(container(api, "api"))["DB_HOST"] == {
        "secretKeyRef": {"name": "sql-credentials-acme", "key": "server"}
    }


def test_two_clusters_split_in_dist(tmp_path: Path) -> None:
    """A synth (app.py, as `make synth`) of tenants on two clusters: each cluster its platform folder with the
    admission policies in the version its Kubernetes minor serves, its tenants' Namespaces and bindings, and
    its platform Application; each tenant's AppProject and record name its own cluster's destination only."""
    eu: dict[str, Any] = {"cluster": {"name": "eu-1"}, "database": {"server": "pg-eu"}}
    us: dict[str, Any] = {"cluster": {"name": "us-1"}, "database": {"server": "pg-us"}}
    d = make_fleet(tmp_path, TWO_CLUSTERS, minimal("acme", **eu), minimal("beta", **us))
    out = tmp_path / "dist"
    proc = synth(d, out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "cluster").iterdir()) == ["eu-1", "us-1"]
    for cluster, tenant, version in (("eu-1", "acme", "v1"), ("us-1", "beta", "v1beta1")):
        folder = out / "cluster" / cluster
        policies = [yaml.safe_load(f.read_text()) for f in folder.glob("ValidatingAdmissionPolicy*.yaml")]
        assert policies and {o["apiVersion"] for o in policies} == {f"admissionregistration.k8s.io/{version}"}
        names = {f.name for f in folder.glob("Namespace.*.yaml")}
        assert names == {f"Namespace.{tenant}.k8s.yaml"}, names  # its own tenant's only
        server = next(c["destinationServer"] for c in TWO_CLUSTERS["clusters"] if c["name"] == cluster)
        app = yaml.safe_load((out / "argocd" / f"Application.iotistica-cluster-{cluster}.k8s.yaml").read_text())
        assert app["spec"]["source"]["path"] == f"dist/cluster/{cluster}"
        assert app["spec"]["destination"]["server"] == server
        project = yaml.safe_load((out / "argocd" / f"AppProject.{tenant}.k8s.yaml").read_text())
        assert {x["server"] for x in project["spec"]["destinations"]} == {server}
        record = json.loads((out / tenant / "argocd-tenant.json").read_text())
        assert record["cluster"] == {"name": cluster, "server": server}


def test_a_namespace_is_unique_per_cluster_and_a_host_fleet_wide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eu: dict[str, Any] = {"cluster": {"name": "eu-1"}, "database": {"server": "pg-eu"}}
    us: dict[str, Any] = {"cluster": {"name": "us-1"}, "database": {"server": "pg-us"}}
    fleet = json.loads(json.dumps(TWO_CLUSTERS))
    d = make_fleet(
        tmp_path, fleet, minimal("acme", namespace="shared", **eu), minimal("beta", namespace="shared", **us)
    )
    assert validate(capsys, d) == (0, [])  # one namespace name on two clusters
    (d / "gamma.yaml").write_text(yaml.safe_dump(minimal("gamma", namespace="shared", **eu)))
    rc, err = validate(capsys, d)
    assert rc == 2 and err[0].startswith(f"error: {d / 'gamma.yaml'}: namespace: namespace 'shared' on cluster 'eu-1'")
    (d / "gamma.yaml").write_text(yaml.safe_dump({**minimal("gamma", **eu), "edge": minimal("beta")["edge"]}))
    rc, err = validate(capsys, d)
    assert rc == 2 and "host 'api.beta.example.com' is already used" in err[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"cluster": {"name": "eu1"}}, "cluster.name: unknown cluster 'eu1' is not in"),
        ({"cluster": {"name": "eu1"}}, "did you mean 'eu-1'?"),
        ({"cluster": {"name": "eu-1"}, "database": {"server": "pg-e"}}, "database.server: unknown database server"),
        ({"cluster": {"name": "eu-1"}, "database": {"server": "pg-e"}}, "did you mean 'pg-eu'?"),
        ({"cluster": {"name": "eu-1"}, "database": {"server": "pg-us"}}, "'pg-us' serves cluster 'us-1'"),
        ({"database": {"server": "pg-eu"}}, "cluster.name: no cluster named; the default 'in-cluster' is not in"),
        (
            {"cluster": {"name": "eu-1"}},
            "database.server: no server named; the default 'iotistica-cnpg-cl01' is not in",
        ),
        (
            {"cluster": {"name": "eu-1"}, "database": {"server": "pg-eu", "maxConnections": 300}},
            "database.maxConnections: ",
        ),
        (
            {
                "cluster": {"name": "eu-1"},
                "database": {"server": "pg-eu"},
                "argocd": {"destinationServer": "https://x"},
            },
            "argocd.destinationServer: ",
        ),
    ],
)
def test_an_environment_is_refused_naming_its_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict[str, Any], expected: str
) -> None:
    """Synth and validate alike: exit 2, one line naming the environment file and the key, nothing written."""
    d = make_fleet(tmp_path, TWO_CLUSTERS, minimal("acme", **extra))
    out = tmp_path / "out"
    assert app.main(["--environments", str(d), "--outdir", str(out), "--no-cache"]) == 2
    synth_err = capsys.readouterr().err.strip().splitlines()
    assert not out.exists()
    rc, err = validate(capsys, d)
    assert rc == 2 and len(err) == 1 and err == synth_err
    assert err[0].startswith(f"error: {d / 'acme.yaml'}: ") and expected in err[0]


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (
            lambda f: f["clusters"][1].update(destinationServer="https://eu-1.example.com:6443"),
            "clusters.1.destinationServer",
            "is already the destination of clusters.0 (eu-1)",
        ),
        (lambda f: f["clusters"][1].update(name="eu-1"), "clusters.1.name", "already declared by clusters.0"),
        (lambda f: f["databaseServers"][1].update(cluster="us-2"), "databaseServers.1.cluster", "did you mean 'us-1'?"),
        (lambda f: f["databaseServers"][1].pop("cluster"), "databaseServers.1.cluster", "required: the fleet has 2"),
        (lambda f: f["clusters"][1].update(admissionPolicies="v1"), "clusters.1.admissionPolicies", "runs 1.29"),
        (lambda f: f.update(defaults={"images": {"api": {"tag": "latest"}}}), "defaults.images.api.tag", "pinned"),
        (lambda f: f.update(cluster={}), "cluster", "unknown key"),
    ],
)
def test_a_bad_fleet_file_is_refused_naming_it_and_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, key: str, expected: str
) -> None:
    fleet = json.loads(json.dumps(TWO_CLUSTERS))
    change(fleet)
    d = make_fleet(tmp_path, fleet, minimal("acme", cluster={"name": "eu-1"}, database={"server": "pg-eu"}))
    rc, err = validate(capsys, d)
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"error: {tmp_path / 'fleet.yaml'}: {key}: ") and expected in err[0], err


def test_budgets_are_held_against_the_servers_declared_max_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pg-us allows 100 less 10 reserved: two starter tenants (40 each) fit, a third does not, and a server
    fleet.yaml declares is refused over budget by validate (strict or not) and synth alike, exit 2, nothing
    written."""
    us: dict[str, Any] = {"cluster": {"name": "us-1"}, "database": {"server": "pg-us"}}
    d = make_fleet(tmp_path, TWO_CLUSTERS, minimal("a1", "starter", **us), minimal("a2", "starter", **us))
    assert validate(capsys, d, "--strict")[0] == 0
    (d / "a3.yaml").write_text(yaml.safe_dump(minimal("a3", "starter", **us)))
    for flags in ((), ("--strict",)):
        rc, err = validate(capsys, d, *flags)
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(
            f"error: {d / 'a3.yaml'}: database.connectionBudget: the environments on server 'pg-us'"
        )
        assert f"above its max_connections 100 ({tmp_path / 'fleet.yaml'}) less 10 reserved" in err[0]
    out = tmp_path / "dist"
    proc = synth(d, out)
    assert proc.returncode == 2, proc.stderr
    assert "a3.yaml: database.connectionBudget: the environments on server 'pg-us'" in proc.stderr
    assert not out.exists()


def test_the_rules_refuse_environments_made_in_code(tmp_path: Path) -> None:
    """validate_fleet checks references too (for environments that did not come through the loader)."""
    eu: dict[str, Any] = {"cluster": {"name": "eu-1"}, "database": {"server": "pg-eu"}}
    d = make_fleet(tmp_path, TWO_CLUSTERS, minimal("acme", **eu), minimal("beta", **eu))
    acme, beta = load_environments(d)
    stray = beta.model_copy(update={"cluster": beta.cluster.model_copy(update={"name": "mars"})})
    sources = Sources(labels={}, status={}, fleet=read_fleet(tmp_path / "fleet.yaml", "fleet.yaml"))
    errors = validate_fleet([acme, stray], sources)
    assert [str(e) for e in errors if "unknown cluster" in str(e)] == [str(errors[0])], errors
    err = errors[0]
    assert (err.file, err.path) == ("environments/beta.yaml", "cluster.name") and "unknown cluster 'mars'" in str(err)


# --------------------------------------------------------------------------------------------------
# Fleet-wide defaults: a setting for every tenant in one place
# --------------------------------------------------------------------------------------------------


def test_an_image_tag_for_every_tenant_in_one_place(tmp_path: Path) -> None:
    fleet = {**TWO_CLUSTERS, "defaults": {"images": {"api": {"tag": "v0.0.23"}, "dashboard": {"tag": "v0.0.24"}}}}
    eu: dict[str, Any] = {"cluster": {"name": "eu-1"}, "database": {"server": "pg-eu"}}
    pinned = {"api": {"image": {"repository": "iotistic/api", "tag": "v0.0.21"}}}
    d = make_fleet(tmp_path, fleet, minimal("acme", **eu), minimal("beta", "starter", **eu, **pinned))
    acme, beta = load_environments(d)
    assert (acme.api.image.repository, acme.api.image.tag) == ("iotistic/api", "v0.0.23")
    assert acme.dashboard.image.tag == beta.dashboard.image.tag == "v0.0.24"
    assert beta.api.image.tag == "v0.0.21"  # the environment file still wins
    assert acme.ingestion.image.tag == "v0.0.22-rc.1"  # components the fleet file leaves alone keep the model's
    api = next(o for o in synth_env(acme) if o["kind"] == "Deployment" and o["metadata"]["name"] == "acme-api")
    assert container(api, "api")["image"].startswith("iotistic/api:v0.0.23")


# --------------------------------------------------------------------------------------------------
# new, explain, schema, settings reference
# --------------------------------------------------------------------------------------------------


def test_new_places_a_client_on_a_cluster_and_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_fleet(tmp_path, TWO_CLUSTERS)
    args = ["--environments", str(d), "new", "acme", "--tier", "demo"]
    assert cli.main([*args, "--cluster", "us-1", "--database-server", "pg-us"]) == 0
    text = (d / "acme.yaml").read_text()
    assert "name: us-1" in text and "server: pg-us" in text and "maxConnections" not in text
    (acme,) = load_environments(d)
    assert acme.argocd.destination_server == "https://us-1.example.com:6443"
    capsys.readouterr()
    assert cli.main([*args[:3], "beta", "--tier", "demo", "--cluster", "us-1", "--database-server", "pg-eu"]) == 2
    assert "database.server: 'pg-eu' serves cluster 'eu-1'" in capsys.readouterr().err
    assert not (d / "beta.yaml").exists()


def test_explain_names_the_cluster_and_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_fleet(tmp_path, TWO_CLUSTERS, minimal("acme", cluster={"name": "us-1"}, database={"server": "pg-us"}))
    assert cli.main(["--environments", str(d), "explain", "acme"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"cluster: us-1 ({tmp_path / 'fleet.yaml'}): Argo CD destination https://us-1.example.com")
    assert "admission policies v1beta1" in out[1]
    assert out[2] == (
        f"database server: pg-us ({tmp_path / 'fleet.yaml'}): max_connections 100, host pg-us.db.example.com:6432"
    )


def test_fleet_schema_and_reference_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema", "--fleet"]) == 0
    out = capsys.readouterr().out
    schema = json.loads(out)
    assert schema["title"] == "Iotistica fleet file" and schema["additionalProperties"] is False
    assert {"git", "argocd", "clusters", "databaseServers", "defaults"} == set(schema["properties"])
    assert (ROOT / "fleet.schema.json").read_text() == out, "run `iotistica-k8s docs`"
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text.split(FLEET_START, 1)[1].split(FLEET_END, 1)[0].strip() == fleet_reference()
    assert "| `databaseServers.<i>.maxConnections` | int |" in fleet_reference()
