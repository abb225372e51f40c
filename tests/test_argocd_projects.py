"""Every object of every Argo CD Application of dist/ passes its AppProject, by Argo CD's own rules.

The rules are tests/argocd_rules.py, a port of Argo CD's source checked here first against Argo CD's own
unit-test tables (pkg/apis/application/v1alpha1/types_test.go). Then:

- the Applications: the platform ones of dist/argocd/, and the tenants' as the ApplicationSet generates
  them from each ``dist/*/argocd-tenant.json`` (its Git files generator's path, its Go template with
  ``missingkey=error``); each one's project exists, permits its source and destination, and permits
  every object of its folder (``*.yaml``, not recursive: ``directory.include``);
- the negative side: a tenant's project never permits another tenant's namespace, any cluster-scoped
  kind, a Secret or an Argo CD object;
- RollingSync: every tenant Application is in exactly one step;
- a fleet on two clusters: each tenant's project, platform folder and Application point at its cluster.
"""

from __future__ import annotations

import json
import re
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_rules import Cluster, Project, filepath_match, glob_match_neg, group_of

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
Obj = dict[str, Any]
#: Argo CD names the cluster it runs in ``in-cluster``.
IN_CLUSTER = Cluster("https://kubernetes.default.svc", "in-cluster")
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "ClusterIssuer",
    "GatewayClass",
}
#: Cluster-scoped kinds a tenant must never get (issue "no cluster-scoped RBAC, admission, CRD or webhook kind").
FORBIDDEN_CLUSTER_KINDS = [
    ("", "Namespace"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("cert-manager.io", "ClusterIssuer"),
]


def docs(folder: Path) -> list[Obj]:
    return [d for f in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


# --------------------------------------------------------------------------------------------------
# The port against Argo CD's own unit tests (types_test.go)
# --------------------------------------------------------------------------------------------------

SOURCE_CASES = [  # TestAppProject_IsSourcePermitted, TestAppProject_IsNegatedSourcePermitted
    (["*"], "https://github.com/argoproj/test.git", True),
    (["https://github.com/argoproj/test.git"], "https://github.com/argoproj/test.git", True),
    (["ssh://git@GITHUB.com:argoproj/test"], "ssh://git@github.com:argoproj/test", True),
    (["https://github.com/argoproj/*"], "https://github.com/argoproj/argoproj.git", True),
    (
        ["https://github.com/test1/test.git", "https://github.com/test2/test.git"],
        "https://github.com/test2/test.git",
        True,
    ),
    (["https://github.com/argoproj/test1.git"], "https://github.com/argoproj/test2.git", False),
    (["https://github.com/argoproj/*.git"], "https://github.com/argoproj1/test2.git", False),
    (["https://github.com/argoproj/foo"], "https://github.com/argoproj/foo1", False),
    (["https://gitlab.com/group/*"], "https://gitlab.com/group/repo/owner", False),
    (["https://gitlab.com/group/*/*"], "https://gitlab.com/group/repo/owner", True),
    (["https://gitlab.com/group/*/*/*"], "https://gitlab.com/group/sub-group/repo/owner", True),
    (["https://gitlab.com/group/**"], "https://gitlab.com/group/sub-group/repo/owner", True),
    (["!https://github.com/argoproj/test.git"], "https://github.com/argoproj/test.git", False),
    (["!ssh://git@GITHUB.com:argoproj/test"], "ssh://git@github.com:argoproj/test", False),
    (["!https://github.com/argoproj/*"], "https://github.com/argoproj/argoproj.git", False),
    (
        ["https://github.com/test1/test.git", "!https://github.com/test2/test.git"],
        "https://github.com/test2/test.git",
        False,
    ),
    (["!https://github.com/argoproj/foo*"], "https://github.com/argoproj/foo1", False),
    (["!https://gitlab.com/group/*/*"], "https://gitlab.com/group/repo/owner", False),
    (["!https://gitlab.com/group/*/*/*"], "https://gitlab.com/group/sub-group/repo/owner", False),
    (["!https://gitlab.com/group/**"], "https://gitlab.com/group/sub-group/repo/owner", False),
    (["https://github.com/argoproj/test1.git", "*"], "https://github.com/argoproj/test2.git", True),
    (["!https://github.com/argoproj/*.git", "*"], "https://github.com/argoproj1/test2.git", True),
]

K = "https://kubernetes.default.svc"
DEST_CASES = [  # TestAppProject_IsDestinationPermitted, TestAppProject_IsNegatedDestinationPermitted
    ([{"server": K, "namespace": "default"}], ("", K, "default"), True),
    ([{"server": K, "namespace": "default"}], ("", K, "kube-system"), False),
    ([{"server": "https://my-cluster", "namespace": "default"}], ("", K, "default"), False),
    ([{"server": K, "namespace": "*"}], ("", K, "kube-system"), True),
    ([{"server": "https://*.default.svc", "namespace": "default"}], ("", K, "default"), True),
    ([{"server": "https://team1-*", "namespace": "default"}], ("", "https://test2-dev-cluster", "default"), False),
    ([{"server": K, "namespace": "test-*"}], ("", K, "test-foo"), True),
    ([{"server": K, "namespace": "test-*"}], ("", K, "test"), False),
    ([{"server": "*", "namespace": "*"}], ("", K, "test"), True),
    ([{"server": "", "namespace": "*", "name": "test"}], ("test", "", "test"), True),
    ([{"server": "", "namespace": "*", "name": "test2"}], ("test", "", "test"), False),
    (
        [
            {"name": "host-cluster", "server": K, "namespace": "!{kube-system,argocd}"},
            {"name": "destination-cluster-01", "server": "https://eks.example", "namespace": "*"},
        ],
        ("", "https://eks.example", "kube-system"),
        True,
    ),
    ([{"server": "!" + K, "namespace": "default"}], ("", K, "default"), False),
    ([{"server": K, "namespace": "!default"}], ("", K, "kube-system"), True),
    ([{"server": "!https://my-cluster", "namespace": "default"}], ("", K, "default"), True),
    ([{"server": "!" + K, "namespace": "*"}], ("", K, "kube-system"), False),
    ([{"server": "!https://*.default.svc", "namespace": "default"}], ("", K, "default"), False),
    ([{"server": "!https://team1-*", "namespace": "default"}], ("", "https://test2-dev-cluster", "default"), True),
    ([{"server": K, "namespace": "!test-*"}], ("", K, "test-foo"), False),
    ([{"server": K, "namespace": "!test-*"}], ("", K, "test"), True),
    ([{"server": "", "namespace": "*", "name": "!test"}], ("test", "", "test"), False),
    ([{"server": "", "namespace": "*", "name": "!test2"}], ("test", "", "test"), True),
    (
        [{"server": "*", "namespace": "kube-system"}, {"server": "*", "namespace": "!kube-system"}],
        ("", K, "kube-system"),
        False,
    ),
    ([{"server": "*", "namespace": "*"}, {"server": "*", "namespace": "!kube-system"}], ("", K, "kube-system"), False),
    ([{"server": K, "namespace": "*"}, {"server": "!" + K, "namespace": "*"}], ("", K, "kube-system"), False),
    (
        [{"server": "*", "namespace": "*"}, {"server": "!" + K, "namespace": "kube-system"}],
        ("", K, "kube-system"),
        False,
    ),
    (
        [
            {"server": "*", "namespace": "*"},
            {"server": "!" + K, "namespace": "kube-system"},
            {"server": "*", "namespace": "!kube-system"},
        ],
        ("", K, "kube-system"),
        False,
    ),
    (
        [
            {"server": "*", "namespace": "*"},
            {"server": "!" + K, "namespace": "kube-system"},
            {"server": "*", "namespace": "!kube-system"},
        ],
        ("", K, "default"),
        True,
    ),
    (
        [
            {"server": "*", "namespace": "*"},
            {"server": "!" + K, "namespace": "kube-system"},
            {"server": "*", "namespace": "!kube-system"},
        ],
        ("", "https://test-dev-cluster", "kube-system"),
        False,
    ),
    (
        [{"server": "", "namespace": "*", "name": "test"}, {"server": "", "namespace": "*", "name": "!test"}],
        ("test", "", "test"),
        False,
    ),
    (
        [{"server": "*", "namespace": "test"}, {"server": "!https://test-server", "namespace": "other"}],
        ("", "https://test-server", "test"),
        True,
    ),
    (
        [{"server": "*", "namespace": "*"}, {"server": "https://test-server", "namespace": "!other"}],
        ("", "https://other-test-server", "other"),
        True,
    ),
]


@pytest.mark.parametrize(("repos", "source", "permitted"), SOURCE_CASES)
def test_the_port_gives_argo_cds_answers_for_sources(repos: list[str], source: str, permitted: bool) -> None:
    assert Project({"sourceRepos": repos}).is_source_permitted(source) is permitted


@pytest.mark.parametrize(("destinations", "app", "permitted"), DEST_CASES)
def test_the_port_gives_argo_cds_answers_for_destinations(destinations: list[Obj], app: tuple, permitted: bool) -> None:
    name, server, namespace = app
    assert (
        Project({"destinations": destinations}).is_destination_permitted(Cluster(server, name), namespace) is permitted
    )


def test_the_port_gives_argo_cds_answers_for_kinds() -> None:
    """TestAppProject_IsGroupKindPermitted, case by case (an empty whitelist is not an absent one)."""
    p1 = Project(
        {"namespaceResourceWhitelist": [], "namespaceResourceBlacklist": [{"group": "apps", "kind": "Deployment"}]}
    )
    assert not p1.is_group_kind_name_permitted("apps", "ReplicaSet", "", True)
    assert not p1.is_group_kind_name_permitted("apps", "Deployment", "", True)
    p2 = Project(
        {
            "namespaceResourceWhitelist": [{"group": "apps", "kind": "ReplicaSet"}],
            "namespaceResourceBlacklist": [{"group": "apps", "kind": "Deployment"}],
        }
    )
    assert p2.is_group_kind_name_permitted("apps", "ReplicaSet", "", True)
    assert not p2.is_group_kind_name_permitted("apps", "Action", "", True)
    p3 = Project({"clusterResourceBlacklist": [{"group": "", "kind": "Namespace"}]})
    assert not p3.is_group_kind_name_permitted("", "Namespace", "", False)
    p4 = Project(
        {
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "clusterResourceBlacklist": [{"group": "*", "kind": "*"}],
        }
    )
    assert not p4.is_group_kind_name_permitted("", "Namespace", "", False)
    assert p4.is_group_kind_name_permitted("apps", "Action", "", True)
    p5 = Project({"clusterResourceWhitelist": [], "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}]})
    assert not p5.is_group_kind_name_permitted("", "Namespace", "", False)
    assert p5.is_group_kind_name_permitted("apps", "Action", "", True)
    p6 = Project({})
    assert not p6.is_group_kind_name_permitted("", "Namespace", "", False)
    assert p6.is_group_kind_name_permitted("apps", "Action", "", True)
    p7 = Project({"clusterResourceWhitelist": [{"group": "", "kind": "Namespace", "name": "team1-*"}]})
    assert not p7.is_group_kind_name_permitted("", "Namespace", "other-namespace", False)
    assert p7.is_group_kind_name_permitted("", "Namespace", "team1-namespace", False)


def test_glob_and_filepath_match_as_go_does() -> None:
    assert glob_match_neg("foo*", "foobar", False) and not glob_match_neg("foo*", "bar", False)
    assert glob_match_neg("!foo*", "bar", True) and not glob_match_neg("!foo*", "foobar", True)
    assert glob_match_neg("{a,b}-x", "b-x", False) and not glob_match_neg("{a,b}-x", "c-x", False)
    assert glob_match_neg("", "", False) and not glob_match_neg("", "x", False), "an empty pattern matches only ''"
    assert filepath_match("*", "Deployment") and filepath_match("", "") and not filepath_match("", "apps")
    assert not filepath_match("a*", "a/b") and filepath_match("[^x]y", "zy")


# --------------------------------------------------------------------------------------------------
# The Applications of dist/
# --------------------------------------------------------------------------------------------------


class App:
    def __init__(self, spec: Obj, name: str, cluster_name: str) -> None:
        self.spec, self.name = spec, name
        self.cluster = Cluster(spec["destination"]["server"], cluster_name)

    def objects(self, dist: Path) -> list[Obj]:
        source = self.spec["source"]
        assert source["directory"] == {"include": "*.yaml", "recurse": False}
        return docs(dist.parent / source["path"])


def _template(value: Any, params: Obj) -> Any:
    """The ApplicationSet's Go template (field references only, ``missingkey=error``)."""
    if isinstance(value, dict):
        return {k: _template(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_template(v, params) for v in value]
    if not isinstance(value, str):
        return value

    def field(m: re.Match[str]) -> str:
        node: Any = params
        for part in m.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"map has no entry for key {part!r} ({value})")  # missingkey=error
            node = node[part]
        return str(node)

    return re.sub(r"\{\{\s*\.([A-Za-z0-9_.]+)\s*\}\}", field, value)


def applications(dist: Path = DIST) -> tuple[list[App], dict[str, Project], Obj]:
    """Every Application of dist/ (the tenants' generated as the ApplicationSet does), the AppProjects by
    name, and the ApplicationSet."""
    argocd = docs(dist / "argocd")
    projects = {
        o["metadata"]["name"]: Project(o["spec"], o["metadata"]["name"]) for o in argocd if o["kind"] == "AppProject"
    }
    (appset,) = [o for o in argocd if o["kind"] == "ApplicationSet"]
    spec = appset["spec"]
    assert spec["goTemplate"] is True and spec["goTemplateOptions"] == ["missingkey=error"]
    apps: list[App] = []
    for o in argocd:
        if o["kind"] == "Application":
            path = o["spec"]["source"]["path"]
            cluster = path.split("/")[-1] if path.startswith("dist/cluster/") else "in-cluster"
            apps.append(App(o["spec"], o["metadata"]["name"], cluster))
    (generator,) = spec["generators"]
    (files,) = generator["git"]["files"]
    found = sorted(p.relative_to(dist.parent).as_posix() for p in dist.glob("*/argocd-tenant.json"))
    assert found, "no tenant file"
    for rel in found:
        assert filepath_match(files["path"], rel), rel
        record = json.loads((dist.parent / rel).read_text())
        folder = rel.rsplit("/", 1)[0]
        params = {**record, "path": {"path": folder, "basename": folder.rsplit("/", 1)[-1]}}
        made = _template(spec["template"], params)
        assert made["metadata"]["name"] == record["release"] == folder.rsplit("/", 1)[-1]
        apps.append(App(made["spec"], made["metadata"]["name"], record["cluster"]["name"]))
        apps[-1].labels = made["metadata"]["labels"]  # type: ignore[attr-defined]
    return apps, projects, appset


def namespace_of(obj: Obj, app: App) -> str:
    """The namespace Argo CD gives an object of an Application: its own, none for a cluster-scoped kind,
    else the Application's destination namespace."""
    if obj["kind"] in CLUSTER_SCOPED:
        return ""
    return obj["metadata"].get("namespace") or app.spec["destination"].get("namespace", "")


def test_every_object_of_every_application_is_permitted_by_its_project() -> None:
    apps, projects, _ = applications()
    releases = {p.parent.name for p in DIST.glob("*/argocd-tenant.json")}
    assert {a.name for a in apps} >= releases | {"iotistica-apps"}
    assert {a.name for a in apps if a.name.startswith("iotistica-cluster-")}, "a platform Application per cluster"
    checked = 0
    for app in apps:
        project = projects[app.spec["project"]]  # the project exists in dist/argocd/
        assert project.is_source_permitted(app.spec["source"]["repoURL"]), app.name
        assert project.is_destination_permitted(app.cluster, app.spec["destination"].get("namespace", "")), app.name
        objs = app.objects(DIST)
        assert objs, f"{app.name}: nothing to sync"
        for o in objs:
            ns = namespace_of(o, app)
            ok = project.is_resource_permitted(group_of(o), o["kind"], o["metadata"]["name"], ns, app.cluster)
            assert ok, f"{app.name} ({project.name}): {o['kind']}/{ns}/{o['metadata']['name']} not permitted"
            checked += 1
        if app.name in releases:
            assert project.name == app.name, "a tenant's Application uses its own project"
            assert "CreateNamespace=true" not in app.spec["syncPolicy"].get("syncOptions", [])
    assert checked > 200


def test_a_tenant_project_permits_nothing_of_another_tenant_and_nothing_cluster_wide() -> None:
    apps, projects, _ = applications()
    tenants = {a.name: a for a in apps if a.name in projects and a.name != "iotistica-platform"}
    owned = {name: {namespace_of(o, a) for o in a.objects(DIST)} for name, a in tenants.items()}
    for name, app in tenants.items():
        project = projects[name]
        for forbidden in FORBIDDEN_CLUSTER_KINDS:
            assert not project.is_group_kind_name_permitted(*forbidden, "anything", False), (name, forbidden)
        for group, kind in (("", "Secret"), ("argoproj.io", "Application"), ("argoproj.io", "AppProject")):
            assert not project.is_resource_permitted(
                group, kind, "x", app.spec["destination"]["namespace"], app.cluster
            )
        for ns in ("kube-system", "default", "argocd", "cert-manager"):
            assert not project.is_destination_permitted(app.cluster, ns), (name, ns)
    for a, b in permutations(tenants, 2):
        for ns in owned[b]:
            assert not projects[a].is_destination_permitted(tenants[a].cluster, ns), f"{a}'s project permits {b}'s {ns}"
            assert not projects[a].is_resource_permitted("apps", "Deployment", "x", ns, tenants[b].cluster)


def test_every_tenant_application_is_in_exactly_one_rolling_sync_step() -> None:
    from tiers import TIERS

    apps, _, appset = applications()
    strategy = appset["spec"]["strategy"]
    assert strategy["type"] == "RollingSync"
    steps = strategy["rollingSync"]["steps"]
    assert [s["matchExpressions"][0]["values"] for s in steps] == [[t] for t in TIERS], "tier order"
    for s in steps:
        assert isinstance(s["maxUpdate"], int) and 1 <= s["maxUpdate"] <= 10, "bounded"

    def selected(labels: dict[str, str], step: Obj) -> bool:  # progressive_sync.go: AND of expressions
        for e in step["matchExpressions"]:
            value = labels.get(e["key"])
            if e["operator"] == "In" and value not in e["values"]:
                return False
            if e["operator"] == "NotIn" and value in e["values"]:
                return False
        return True

    tenants = [a for a in apps if hasattr(a, "labels")]
    assert tenants
    for a in tenants:
        assert sum(selected(a.labels, s) for s in steps) == 1, a.name  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# Several clusters (the shared charts of a fleet, built as synth builds them)
# --------------------------------------------------------------------------------------------------


def test_tenants_on_cluster_b_get_cluster_bs_folder_application_and_destinations(environments) -> None:
    from constructs.api_objects import Root
    from constructs.shared_charts import ArgoCdChart, ClusterChart
    from tiers.models import ArgoCd
    from tiers.models import Cluster as ClusterModel
    from tiers.shared import shared_props

    b = "https://cluster-b.example:6443"
    envs = list(environments.values())
    moved = {"iotistica-starter", "iotistica-enterprise"}
    fleet = [
        e.model_copy(
            update={
                "cluster": ClusterModel(name="cluster-b"),
                "argocd": ArgoCd(destination_server=b),
            }
        )
        if e.release in moved
        else e
        for e in envs
    ]
    props = shared_props(fleet)
    assert [c.name for c in props.clusters] == ["cluster-b", "in-cluster"]
    by_cluster = {c.name: ClusterChart(Root(), props, c).to_json() for c in props.clusters}
    instances = {
        c: {o["metadata"]["labels"]["app.kubernetes.io/instance"] for o in objs} for c, objs in by_cluster.items()
    }
    assert instances["cluster-b"] == {"cluster", *moved}
    assert instances["in-cluster"] & moved == set()
    argocd = {(o["kind"], o["metadata"]["name"]): o for o in ArgoCdChart(Root(), props).to_json()}
    platform_b = argocd["Application", "iotistica-cluster-cluster-b"]["spec"]
    assert platform_b["destination"] == {"server": b} and platform_b["source"]["path"] == "dist/cluster/cluster-b"
    for release in moved:
        project = Project(argocd["AppProject", release]["spec"])
        assert project.is_destination_permitted(Cluster(b), environments[release].namespace)
        assert not project.is_destination_permitted(IN_CLUSTER, environments[release].namespace)
    platform = Project(argocd["AppProject", "iotistica-platform"]["spec"])
    assert platform.is_destination_permitted(Cluster(b), "") and platform.is_destination_permitted(IN_CLUSTER, "argocd")


def test_one_destination_for_two_clusters_or_two_for_one_is_refused(environments) -> None:
    from tiers.errors import ConfigError
    from tiers.models import ArgoCd
    from tiers.models import Cluster as ClusterModel
    from tiers.shared import shared_props

    envs = sorted(environments.values(), key=lambda e: e.release)
    two_names = [envs[0], envs[1].model_copy(update={"cluster": ClusterModel(name="other")})]
    with pytest.raises(ConfigError, match=r"cluster\.name: destination 'https://kubernetes.default.svc' is cluster"):
        shared_props(two_names)
    two_servers = [envs[0], envs[1].model_copy(update={"argocd": ArgoCd(destination_server="https://b.example")})]
    with pytest.raises(
        ConfigError, match=r"argocd\.destinationServer: cluster 'in-cluster' has one Argo CD destination"
    ):
        shared_props(two_servers)


# --------------------------------------------------------------------------------------------------
# A cluster-scoped object in a tenant folder is refused by the engine (synth and validate alike)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def namespace_in_the_release_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression that puts the release Namespace back into the release chart."""
    from constructs.isolation.release_namespace import ReleaseNamespace, ReleaseNamespaceProps
    from constructs.release_chart import ReleaseChart

    isolation = ReleaseChart._isolation

    def regressed(self: ReleaseChart) -> None:
        isolation(self)
        ReleaseNamespace(self, "Namespace", props=ReleaseNamespaceProps(release=self.rel, level="restricted"))

    monkeypatch.setattr(ReleaseChart, "_isolation", regressed)


@pytest.mark.usefixtures("namespace_in_the_release_chart")
def test_a_cluster_scoped_object_for_a_tenant_folder_is_a_config_error(tmp_path: Path, capsys) -> None:
    import cli
    from synth.render import render
    from tiers.errors import ConfigError
    from tiers.loader import load_environments

    envs = load_environments(ROOT / "environments", ["client-demo"])
    with pytest.raises(ConfigError) as err:
        render(envs, tmp_path / "out")
    assert str(err.value) == (
        "environments/client-demo.yaml: Namespace/demo: a cluster-scoped object in the tenant folder "
        "dist/client-demo/; it belongs in the platform folder dist/cluster/<cluster>/ (tenant projects "
        "permit no cluster-scoped kind)"
    )
    assert not (tmp_path / "out" / "client-demo" / "Namespace.demo.k8s.yaml").exists()
    assert cli.main(["--environments", str(ROOT / "environments"), "validate"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    # Every error of the run, one line each: one per environment (each release namespace's Namespace).
    files = sorted(f"environments/{p.name}" for p in (ROOT / "environments").glob("*.yaml"))
    assert sorted(line.split(": ")[1] for line in lines) == files, lines
    assert all("Namespace/" in line and "cluster-scoped object in the tenant folder" in line for line in lines)
