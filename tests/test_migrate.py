"""Moving a live Helm release to Argo CD: the migration plan (ops/migrate/), the compatibility setting
``migration.selectorLabels: helm``, and the `migrate` command.

The live releases are hand-written `helm get manifest` outputs in tests/fixtures/helm/ following the
old chart's conventions (platform-facts §12): `iotistica` (fullname = the release, it contains the
chart name) and `client-demo` (fullname `client-demo-iotistic`, two streams).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.migrate import HELM_CHART_NAME, Plan, build_plan, key, load_helm_manifests, render_markdown
from ops.netpol import selects
from tests.helpers import ROOT, by, env_from, error_of, kinds, synth_env

FIXTURES = ROOT / "tests" / "fixtures" / "helm"
SOURCES = {
    "iotistica": [FIXTURES / "iotistica.yaml"],
    "client-demo": [FIXTURES / "client-demo.yaml", FIXTURES / "client-demo-secrets.yaml"],
}
FULLNAME = {"iotistica": "iotistica", "client-demo": "client-demo-iotistic"}
NAME, INSTANCE, COMPONENT = (f"app.kubernetes.io/{k}" for k in ("name", "instance", "component"))
FAKE_SECRET = "ZmFrZS1oZWxtLWdlbmVyYXRlZA=="


def helm_objects(release: str) -> dict:
    return load_helm_manifests(SOURCES[release], env_from(release).namespace)


def plan_with(release: str, migration: dict[str, Any] | None = None) -> tuple[Plan, list[dict]]:
    env = env_from(release, **({"migration": migration} if migration else {}))
    objs = synth_env(env)
    return build_plan(env.release, env.namespace, helm_objects(release), {key(o, ""): o for o in objs}), objs


@pytest.fixture(scope="module")
def native() -> dict[str, Plan]:
    return {r: plan_with(r)[0] for r in SOURCES}


@pytest.fixture(scope="module")
def compat() -> dict[str, tuple[Plan, list[dict]]]:
    """Each release with the setting the native plan recommends (a temporary environment)."""
    out = {}
    for r in SOURCES:
        rec = plan_with(r)[0].recommendation()
        assert rec is not None
        out[r] = plan_with(r, rec["migration"])
    return out


# --------------------------------------------------------------------------------------------------
# The fixtures follow the old chart's conventions
# --------------------------------------------------------------------------------------------------

SHARED_NAMES = (
    "iotistic-api",
    "sql-credentials-",
    "mqtt-credentials-",
    "api-jwt-",
    "api-license-",
    "redis-credentials-",
)


@pytest.mark.parametrize("release", SOURCES)
def test_fixtures_follow_the_fullname_rule_labels_and_selectors(release) -> None:
    objs = helm_objects(release)
    fullname = FULLNAME[release]
    assert ("iotistic" in release) == (fullname == release)
    for (kind, _ns, name), o in objs.items():
        if kind in ("Namespace", "ResourceQuota") or name.startswith(SHARED_NAMES) or "fleet" in name:
            continue
        assert name.startswith(f"{fullname}-"), f"{kind}/{name}"
        labels = o["metadata"]["labels"]
        assert labels[NAME] == HELM_CHART_NAME and labels[INSTANCE] == release
        if kind in ("Deployment", "StatefulSet"):
            comp = labels[COMPONENT]
            want = {NAME: HELM_CHART_NAME, INSTANCE: release, COMPONENT: comp}
            assert o["spec"]["selector"]["matchLabels"] == want
            assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["helm.sh/chart"].startswith("iotistic-")
            assert name == f"{fullname}-{comp}"
    sts = [o for k, o in objs.items() if k[0] == "StatefulSet"]
    assert [o["metadata"]["name"] for o in sts] == [f"{fullname}-redis"]
    assert sts[0]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert (("PersistentVolumeClaim", env_from(release).namespace, f"{fullname}-ingestion-spool")) in objs
    assert any(k[0] == "OnePasswordItem" for k in objs)


# --------------------------------------------------------------------------------------------------
# The plan flags each hazard
# --------------------------------------------------------------------------------------------------


def test_same_fullname_flags_immutable_selectors_and_their_fix(native) -> None:
    plan = native["iotistica"]
    adopted = {(e.kind, e.name): e for e in plan.adopted}
    for svc in ("api", "dashboard", "ingestion", "mosquitto"):
        (change,) = adopted[("Deployment", f"iotistica-{svc}")].changes
        assert change.field == "spec.selector" and change.fixed_by_compat
        assert change.old["matchLabels"][NAME] == "iotistic" and change.new["matchLabels"][NAME] == svc
        assert "immutable" in change.cost and "downtime" in change.cost
    assert {s.target for s in plan.steps if s.action == "replace"} == {
        f"Deployment/iotistica-{s}" for s in ("api", "dashboard", "ingestion", "mosquitto")
    }
    (svc_change,) = adopted[("Service", "iotistica-redis")].changes  # the Service: headless in the old chart
    assert svc_change.field == "spec.clusterIP" and svc_change.old == "None"
    assert any("StatefulSet/iotistica-redis" in h and "becomes a Deployment" in h for h in plan.hazards)
    assert adopted[("Job", "iotistica-stream-key-resolver")].changes == []  # a BeforeHookCreation hook in dist/
    assert plan.recommend_workloads == ["api", "dashboard", "ingestion", "mosquitto"]
    assert plan.exit_code == 1


def test_renamed_release_flags_two_apis_and_the_handover(native) -> None:
    plan = native["client-demo"]
    assert [e.name for e in plan.adopted] == ["iotistic-api"]  # only the ServiceAccount keeps its name
    (api,) = [h for h in plan.hazards if "client-demo-iotistic-api" in h]
    assert "two APIs subscribe to MQTT" in api and "written twice" in api
    # Ingestion stays out: the old one must keep draining the old Redis; Redis changed kind.
    assert plan.recommend_workloads == ["api", "dashboard", "mosquitto"]
    left = [e.name for e in plan.left_behind]
    assert (
        left.index("client-demo-iotistic-api-rate-limit")
        < left.index("client-demo-iotistic-api")
        < left.index("client-demo-iotistic-redis-auth")
        < left.index("client-demo-iotistic-ingestion-spool")
    )
    assert {e.name for e in plan.new} >= {"client-demo-api", "client-demo-redis", "client-demo-ingestion"}


@pytest.mark.parametrize("release", SOURCES)
def test_data_at_risk(native, release) -> None:
    plan, fullname = native[release], FULLNAME[release]
    risks = {(r.kind, r.name): r for r in plan.risks}
    spool = risks[("PersistentVolumeClaim", f"{fullname}-ingestion-spool")]
    assert "spool" in spool.what and "empty" in spool.action
    redis = risks[("PersistentVolumeClaim", f"data-{fullname}-redis-0")]
    assert "Redis" in redis.what and "pending 0" in redis.action
    ns = env_from(release).namespace
    sql = risks[("OnePasswordItem", f"sql-credentials-{ns}")]
    assert "deletes the Secret" in sql.what
    # Kept Secrets are never deleted by a step; the one nothing reads is deleted last, after a backup.
    deleted = {s.target for s in plan.steps if s.action == "delete"}
    assert f"OnePasswordItem/sql-credentials-{ns}" not in deleted
    assert "OnePasswordItem/redis-credentials-master" in deleted
    if release == "iotistica":
        assert "carry over" in risks[("Secret", "iotistica-redis-auth")].what
        assert "Secret/iotistica-redis-auth" not in deleted
    else:
        assert "back it up" in risks[("Secret", "client-demo-iotistic-redis-auth")].action
    # Drains come before any deletion; deleting the Helm record (never helm uninstall) is last.
    actions = [s.action for s in plan.steps]
    assert max(i for i, a in enumerate(actions) if a == "drain") < min(
        i for i, a in enumerate(actions) if a == "delete" and i > actions.index("sync")
    )
    assert plan.steps[-1].action == "forget-helm" and "owner=helm" in plan.steps[-1].command
    text = render_markdown(plan) + json.dumps(plan.to_json())
    assert FAKE_SECRET not in text and "helm uninstall`" in text


def test_a_plan_with_nothing_to_do_is_safe() -> None:
    env = env_from("client-demo")
    objs = {key(o, ""): o for o in synth_env(env)}
    live = {k: o for k, o in objs.items() if k[0] in ("ConfigMap", "Service")}
    plan = build_plan(env.release, env.namespace, live, objs)
    assert plan.safe and plan.exit_code == 0 and not plan.risks


def test_immutable_fields_of_pvcs_services_and_statefulsets() -> None:
    from ops.migrate import immutable_changes

    pvc = {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "longhorn",
            "resources": {"requests": {"storage": "10Gi"}},
        },
    }
    pvc2 = json.loads(json.dumps(pvc))
    pvc2["spec"].update(storageClassName="standard", resources={"requests": {"storage": "5Gi"}})
    assert [c.field for c in immutable_changes(pvc, pvc2, "r")] == [
        "spec.storageClassName",
        "spec.resources.requests.storage",
    ]
    svc = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}}
    assert [c.field for c in immutable_changes(svc, {**svc, "spec": {"type": "ClusterIP"}}, "r")] == ["spec.type"]
    sts = {"kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"serviceName": "a", "selector": {}}}
    sts2 = {
        "kind": "StatefulSet",
        "metadata": {"name": "x"},
        "spec": {"serviceName": "b", "podManagementPolicy": "Parallel", "selector": {}},
    }
    assert [c.field for c in immutable_changes(sts, sts2, "r")] == ["spec.serviceName", "spec.podManagementPolicy"]


# --------------------------------------------------------------------------------------------------
# The compatibility setting
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SOURCES)
def test_with_the_setting_every_adopted_workload_keeps_the_old_selector(native, compat, release) -> None:
    plan, objs = compat[release]
    old = helm_objects(release)
    pairs = []
    for e in plan.adopted:
        if e.kind in ("Deployment", "StatefulSet"):
            pairs.append((old[e.key], by(objs, e.kind, e.name)))
    for s in plan.steps:
        if s.action == "orphan":  # a renamed Deployment handed over to its successor
            (kind, name) = s.target.split("/")
            successor = next(le.note.split()[-1] for le in plan.left_behind if (le.kind, le.name) == (kind, name))
            pairs.append((old[(kind, s.namespace, name)], by(objs, *successor.split("/"))))
    assert len(pairs) == len(native[release].recommend_workloads)
    for o, n in pairs:
        assert n["spec"]["selector"] == o["spec"]["selector"], n["metadata"]["name"]
        assert selects(n["spec"]["selector"], n["spec"]["template"]["metadata"]["labels"])
    assert not any("selector" in h for h in plan.hazards)
    assert not any(s.action == "replace" for s in plan.steps)


@pytest.mark.parametrize("release", SOURCES)
def test_everything_that_selects_compat_pods_still_selects_them(compat, release) -> None:
    plan, objs = compat[release]
    env = env_from(release)
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    }
    for svc in plan.recommend_workloads:
        labels = pods[f"{env.release}-{svc}"]
        assert labels[NAME] == HELM_CHART_NAME and labels[COMPONENT] == svc
        service = by(objs, "Service", f"{env.release}-{svc}")
        assert selects({"matchLabels": service["spec"]["selector"]}, labels)
        assert (
            by(objs, "NetworkPolicy", f"{env.release}-{svc}")["spec"]["podSelector"]["matchLabels"]
            == (service["spec"]["selector"])
        )
        for other, other_labels in pods.items():  # and nothing else
            if other != f"{env.release}-{svc}":
                assert not selects({"matchLabels": service["spec"]["selector"]}, other_labels)
        for pdb in kinds(objs, "PodDisruptionBudget") + kinds(objs, "ServiceMonitor"):
            sel = pdb["spec"]["selector"]
            target = service["metadata"]["labels"] if pdb["kind"] == "ServiceMonitor" else labels
            if pdb["metadata"]["name"] == f"{env.release}-{svc}":
                assert selects(sel, target)
    assert by(objs, "Deployment", f"{env.release}-api")["spec"]["template"]["metadata"]["labels"]["app"] == (
        "iotistic-api"
    )


def test_default_workloads_would_split_redis_and_the_plan_says_so() -> None:
    plan, _ = plan_with("iotistica", {"selectorLabels": "helm"})
    assert any("selects the pods of left-behind StatefulSet/iotistica-redis" in h for h in plan.hazards)


def test_the_setting_is_validated(tmp_path: Path) -> None:
    data = {"release": "acme", "namespace": "acme", "tier": "standard", "migration": {"workloads": ["api", "api"]}}
    assert "migration.workloads: must not repeat a workload, got api twice" in error_of(tmp_path, data)
    data["migration"] = {"selectorLabels": "chart"}
    assert "migration.selectorLabels" in error_of(tmp_path, data)


# --------------------------------------------------------------------------------------------------
# Applying the steps to the live objects, as plain data
# --------------------------------------------------------------------------------------------------


class Cluster:
    """Deployments and their ReplicaSets, enough to follow the API's pods through the steps."""

    def __init__(self, live: dict) -> None:
        self.deployments: dict[str, dict] = {}
        self.replicasets: list[dict] = []
        for (kind, _ns, name), o in live.items():
            if kind == "Deployment":
                self._create(name, o)

    def _create(self, name: str, obj: dict) -> None:
        self.deployments[name] = {"selector": obj["spec"]["selector"]}
        self.replicasets.append({"owner": name, "labels": obj["spec"]["template"]["metadata"]["labels"]})

    def api_groups(self) -> int:
        """Independent sets of API pods: one per owning Deployment, one per orphaned ReplicaSet."""
        owners = [(rs["owner"] or id(rs)) for rs in self.replicasets if rs["labels"].get(COMPONENT) == "api"]
        return len(set(owners))

    def apply(self, action: str, target: str, dist: list[dict]) -> list[int]:
        """Applies one step; returns the API groups at each moment it passes through."""
        kind, _, name = target.partition("/")
        if action in ("delete", "replace") and kind == "Deployment":
            self.deployments.pop(name, None)
            self.replicasets = [rs for rs in self.replicasets if rs["owner"] != name]
        elif action == "orphan":
            self.deployments.pop(name)
            for rs in self.replicasets:
                if rs["owner"] == name:
                    rs["owner"] = None
        elif action == "sync":
            for o in dist:
                if o["kind"] != "Deployment":
                    continue
                n = o["metadata"]["name"]
                if n in self.deployments:
                    if self.deployments[n]["selector"] != o["spec"]["selector"]:
                        raise AssertionError(f"sync fails: Deployment/{n} spec.selector is immutable")
                    self.replicasets.append({"owner": n, "labels": o["spec"]["template"]["metadata"]["labels"]})
                else:
                    for rs in self.replicasets:  # the Deployment controller adopts matching orphans
                        if rs["owner"] is None and selects(o["spec"]["selector"], rs["labels"]):
                            rs["owner"] = n
                    self._create(n, o)
        elif action == "wait":
            newest = {rs["owner"]: rs for rs in self.replicasets}
            self.replicasets = [rs for rs in self.replicasets if rs["owner"] is None or newest[rs["owner"]] is rs]
        return [self.api_groups()]


def moments(release: str, plan: Plan, dist: list[dict]) -> list[int]:
    cluster = Cluster(helm_objects(release))
    seen = [cluster.api_groups()]
    for step in plan.steps:
        seen += cluster.apply(step.action, step.target, dist)
    return seen


@pytest.mark.parametrize("release", SOURCES)
def test_the_steps_keep_exactly_one_api_at_every_moment(compat, release) -> None:
    plan, objs = compat[release]
    seen = moments(release, plan, objs)
    assert set(seen) == {1}, seen
    if release == "client-demo":
        assert [s.target for s in plan.steps if s.action == "orphan"] == [
            f"Deployment/client-demo-iotistic-{s}" for s in ("api", "dashboard", "mosquitto")
        ]
        before = [s.action for s in plan.steps[: [s.action for s in plan.steps].index("sync")]]
        assert "delete" in before  # the old HPA and PDB go before the handover


@pytest.mark.parametrize("release", SOURCES)
def test_without_the_setting_some_moment_has_two_apis_or_none(native, release) -> None:
    seen = moments(release, native[release], synth_env(env_from(release)))
    assert 0 in seen or 2 in seen, seen


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK8S_CHECK_UPGRADE": "false"}
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_cli_markdown_json_and_output_file(tmp_path: Path) -> None:
    md = cli(
        "migrate", "client-demo", "--from", str(SOURCES["client-demo"][0]), "--from", str(SOURCES["client-demo"][1])
    )
    assert md.returncode == 1, md.stderr
    assert md.stdout.startswith("# Migration plan: Helm release `client-demo`")
    assert "selectorLabels: helm" in md.stdout and FAKE_SECRET not in md.stdout
    out = tmp_path / "plan.json"
    js = cli("migrate", "iotistica", "--from", str(SOURCES["iotistica"][0]), "--json", "-o", str(out))
    assert js.returncode == 1 and js.stdout == ""
    data = json.loads(out.read_text())
    assert data["safe"] is False and data["recommendation"]["migration"]["workloads"][0] == "api"
    assert {s["action"] for s in data["steps"]} >= {"verify", "replace", "sync", "wait", "drain", "delete"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("kind: Deployment\nmetadata: {name: [x\n", "not YAML: line"),
        ("- a\n- b\n", "document 1: is not a Kubernetes object"),
        ("---\n# only comments\n", "holds no Kubernetes object"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "manifest.yaml"
    bad.write_text(content)
    r = cli("migrate", "iotistica", "--from", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {bad}: ") and expected in r.stderr
    missing = cli("migrate", "iotistica", "--from", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml: cannot read" in missing.stderr
    twice = cli("migrate", "iotistica", "--from", str(SOURCES["iotistica"][0]), "--from", str(SOURCES["iotistica"][0]))
    assert twice.returncode == 2 and "appears twice" in twice.stderr and "Traceback" not in twice.stderr
    nodist = cli("migrate", "iotistica", "--from", str(SOURCES["iotistica"][0]), "--dist", str(tmp_path))
    assert nodist.returncode == 2 and "not synthesized" in nodist.stderr


def test_fixture_documents_are_plain_yaml() -> None:
    for paths in SOURCES.values():
        for p in paths:
            assert all(d is None or isinstance(d, dict) for d in yaml.safe_load_all(p.read_text()))
