"""The Python renderer (synth/python_renderer.py) gives exactly what cdk8s gives for every object.

Each object is built twice from the same constructs: once rendered in Python (what app.py ships), once
as its real L1 object in the jsii kernel, rendered by cdk8s's own ``toJson()``. The JSON must be equal,
key order included, for the shipped environments, the shared charts and variants that reach every
construct path (affinity patches, Node-RED, the Pooler, 1Password items, TLS/TCP routes, Helm
selectors, a StatefulSet ingestion, monitoring, fleet namespaces). The wire tables must equal a fresh
read of the installed bindings, and ``app.py --renderer cdk8s`` must write the committed dist/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cdk8s_plus_27 import k8s

from constructs.api_objects import (
    Component,
    JsonPatch,
    ObjectChart,
    Root,
    api_object,
    current_renderer,
    renderer,
)
from constructs.platform import int_or_string, quantity
from constructs.release_chart import ReleaseChart
from constructs.shared_charts import ArgoCdChart, ClusterChart
from synth.python_renderer import WIRE_TABLES, tables
from tests.helpers import SHIPPED, env_from
from tiers.models import Environment
from tiers.shared import shared_props

ROOT = Path(__file__).resolve().parent.parent

AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["iot"]}]}]
        }
    },
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    },
}

#: (release, overrides): every construct path the shipped files do not reach on their own.
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    *((name, {}) for name in SHIPPED),
    ("client-demo", {"scheduling": {"affinity": AFFINITY}}),
    (
        "client-demo",
        {
            "nodered": {"enabled": True},
            "edge": {"routes": {"mqtt": True, "websockets": True}},
            "mosquitto": {"tls": {"secretName": "mqtt-cert"}},
        },
    ),
    ("client-demo", {"secrets": {"provider": "onepassword", "redisAuth": "onepassword"}}),
    ("client-demo", {"monitoring": {"enabled": True}, "network": {"enabled": False}}),
    (
        "client-demo",
        {
            "scheduling": {
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "iot", "effect": "NoSchedule"}]
            }
        },
    ),
    ("iotistica", {"database": {"pooler": {"enabled": True}}}),
    ("iotistica", {"ingestion": {"workloadKind": "StatefulSet"}}),
    ("iotistica", {"migration": {"selectorLabels": "helm"}}),
    ("iotistica-enterprise", {"scheduling": {"affinity": AFFINITY}}),
]


def both(build: Any) -> tuple[list[Any], list[Any]]:
    """The charts ``build(app)`` makes, as JSON from the Python renderer and from cdk8s's objects."""
    out = []
    for name in ("python", "cdk8s"):
        with renderer(name):
            out.append(build(Root()).to_json())
    return out[0], out[1]


def assert_same(python: list[Any], kernel: list[Any]) -> None:
    assert len(python) == len(kernel)
    for mine, theirs in zip(python, kernel, strict=True):
        ident = f"{mine.get('kind')}/{mine['metadata']['name']}"
        # json.dumps keeps key order: the files are written in this order
        assert json.dumps(mine) == json.dumps(theirs), ident


@pytest.mark.parametrize(("release", "overrides"), VARIANTS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(VARIANTS)])
def test_every_release_object_renders_as_cdk8s_renders_it(release: str, overrides: dict[str, Any]) -> None:
    env = env_from(release, **overrides)
    python, kernel = both(lambda app: ReleaseChart(app, env))
    assert len(python) > 20
    assert_same(python, kernel)


def test_the_shared_charts_render_as_cdk8s_renders_them(environments: dict[str, Environment]) -> None:
    props = shared_props(list(environments.values()))
    for chart in (ClusterChart, ArgoCdChart):
        python, kernel = both(lambda app, c=chart: c(app, props))
        assert python, chart.__name__
        assert_same(python, kernel)


def test_the_python_renderer_is_the_default_and_asks_the_kernel_for_nothing_per_object() -> None:
    assert current_renderer() == "python"
    chart = ReleaseChart(Root(), env_from("iotistica-enterprise"))
    assert chart.objects and all(obj.kernel_object is None for obj in chart.objects)


class _Chart(ObjectChart):
    def __init__(self, app: Root, build: Any) -> None:
        super().__init__(app, "t", namespace="ns", disable_resource_name_hashes=True)
        build(self)


def test_key_order_as_javascript_iterates_objects() -> None:
    """Sorted by UTF-16 code units, and array-index keys ("9", "10") first in numeric order, as in V8."""
    data = {
        k: k for k in ("b", "10", "9", "a", "01", "-x", "Z", "é", "\U0001f600", "\uff5e", "4294967294", "4294967295")
    }

    def build(chart: ObjectChart) -> None:
        api_object(
            k8s.KubeConfigMap, chart, "Cm", metadata=k8s.ObjectMeta(name="cm", labels={"9": "x", "a": "y"}), data=data
        )

    python, kernel = both(lambda app: _Chart(app, build))
    assert_same(python, kernel)
    assert list(python[0]["data"])[:2] == ["9", "10"]


def test_json_patches_apply_as_cdk8s_applies_them() -> None:
    def build(chart: ObjectChart) -> None:
        obj = api_object(
            k8s.KubeService,
            chart,
            "Svc",
            metadata=k8s.ObjectMeta(name="svc", labels={"app.kubernetes.io/name": "x"}),
            spec=k8s.ServiceSpec(ports=[k8s.ServicePort(port=1, target_port=int_or_string("http"))], cluster_ip="None"),
        )
        obj.add_json_patch(
            JsonPatch.add("/spec/ports/0/name", "first"),
            JsonPatch.add("/spec/ports/-", {"port": 2, "targetPort": {"value": 8080}}),
            JsonPatch.add("/spec/ports/0", {"port": 0}),
            JsonPatch.replace("/spec/type", "ClusterIP"),
            JsonPatch.remove("/metadata/labels/app.kubernetes.io~1name"),
            JsonPatch.add("/spec/selector", {"b": "2", "a": "1"}),
            JsonPatch.remove("/metadata/namespace"),
        )

    python, kernel = both(lambda app: _Chart(app, build))
    assert_same(python, kernel)
    assert python[0]["spec"]["ports"][0] == {"port": 0}
    assert "namespace" not in python[0]["metadata"]


def test_metadata_merges_as_cdk8s_merges_it() -> None:
    """The chart's namespace is the default; empty maps and lists leave metadata; values keep their types."""

    def build(chart: ObjectChart) -> None:
        api_object(
            k8s.KubeServiceAccount, chart, "Sa", metadata=k8s.ObjectMeta(name="a", annotations={}, finalizers=[])
        )
        api_object(k8s.KubeServiceAccount, chart, "Other", metadata=k8s.ObjectMeta(name="b", namespace="elsewhere"))
        api_object(
            k8s.KubeLimitRange,
            chart,
            "Limits",
            metadata=k8s.ObjectMeta(name="c"),
            spec=k8s.LimitRangeSpec(
                limits=[
                    k8s.LimitRangeItem(type="Container", default={"cpu": quantity("500m"), "memory": quantity("1Gi")})
                ]
            ),
        )

    python, kernel = both(lambda app: _Chart(app, build))
    assert_same(python, kernel)
    assert python[0]["metadata"] == {"name": "a", "namespace": "ns"}
    assert python[1]["metadata"]["namespace"] == "elsewhere"
    assert python[2]["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "1Gi"}


def test_a_construct_id_is_unique_in_its_scope_and_a_file_unique_in_its_chart() -> None:
    def same_id(chart: ObjectChart) -> None:
        group = Component(chart, "Group")
        api_object(k8s.KubeServiceAccount, group, "Sa", metadata=k8s.ObjectMeta(name="a"))
        api_object(k8s.KubeServiceAccount, group, "Sa", metadata=k8s.ObjectMeta(name="b"))

    def same_file(chart: ObjectChart) -> None:
        api_object(k8s.KubeServiceAccount, Component(chart, "One"), "Sa", metadata=k8s.ObjectMeta(name="a"))
        api_object(k8s.KubeServiceAccount, Component(chart, "Two"), "Sa", metadata=k8s.ObjectMeta(name="a"))

    def nameless(chart: ObjectChart) -> None:
        api_object(k8s.KubeServiceAccount, chart, "Sa", metadata=k8s.ObjectMeta(labels={"a": "b"}))

    for build, message in (
        (same_id, "already a construct with name 'Sa' in t/Group"),
        (same_file, "a second ServiceAccount named 'a' in chart t"),
        (nameless, "without metadata.name"),
    ):
        with pytest.raises(ValueError, match=message):
            _Chart(Root(), build)


def test_the_wire_tables_are_a_fresh_read_of_the_installed_bindings() -> None:
    spec = importlib.util.spec_from_file_location("wire_tables", ROOT / "scripts" / "wire_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build(ROOT / "imports") == tables(), "imports/wire_tables.json is stale: run `make imports`"
    assert json.loads(WIRE_TABLES.read_text())["classes"]["cdk8s-plus-27.k8s.KubeService"] == {
        "apiVersion": "v1",
        "kind": "Service",
        "props": "cdk8s-plus-27.k8s.KubeServiceProps",
    }
    # jsii names are not always the Kubernetes names: the table is what maps them
    fields = {wire: name for wire, name, _, _ in tables()["structs"]["cdk8s-plus-27.k8s.ServiceSpec"]}
    assert fields["clusterIP"] == "clusterIp"


@pytest.mark.timeout(300)
def test_app_with_the_cdk8s_renderer_writes_the_committed_dist(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--renderer", "cdk8s", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    fresh = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    committed = {
        str(p.relative_to(ROOT / "dist")): p.read_bytes() for p in sorted((ROOT / "dist").rglob("*")) if p.is_file()
    }
    assert sorted(fresh) == sorted(committed)
    assert [name for name in fresh if fresh[name] != committed[name]] == []


def test_the_python_renderer_never_starts_the_kernel_and_the_cdk8s_renderer_finds_every_assembly() -> None:
    """Importing the bindings loads no assembly into the jsii kernel (app.py defers the loads): rendering
    every shipped chart in Python leaves the kernel unstarted. The first request of the cdk8s renderer
    then loads every assembly imported so far, in import order, and works (a fresh interpreter)."""
    script = """
import app
import cdk8s
from jsii._runtime import kernel
from constructs.api_objects import ObjectChart, Root, api_object, renderer
import imports.io.argoproj as argo
from tiers.loader import load_environments
from constructs.release_chart import ReleaseChart
from constructs.shared_charts import ArgoCdChart, ClusterChart
from tiers.shared import shared_props
envs = load_environments(app.ROOT / "environments")
root = Root()
objects = [o for e in envs for o in ReleaseChart(root, e).to_json()]
props = shared_props(envs)
objects += ClusterChart(root, props).to_json() + ArgoCdChart(root, props).to_json()
assert len(objects) > 200 and "_process" not in vars(kernel.provider.provider), "the kernel was started"
with renderer("cdk8s"):
    chart = ObjectChart(Root(), "c")
    api_object(argo.AppProject, chart, "P", metadata=cdk8s.ApiObjectMetadata(name="p"), spec=argo.AppProjectSpec())
    print(chart.to_json()[0]["kind"], cdk8s.Testing.synth(chart.kernel_scope)[0]["kind"])
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "AppProject AppProject"


@pytest.mark.timeout(300)
def test_a_synth_needs_no_node_at_all(tmp_path: Path) -> None:
    """``app.py`` (the Python renderer, its render worker included) writes the committed dist/ with no
    ``node`` on PATH: no jsii kernel is started. The cdk8s renderer, which needs one, fails with one line."""
    bare = tmp_path / "bin"  # a PATH without node (or anything else)
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    out = tmp_path / "dist"
    cmd = [sys.executable, str(ROOT / "app.py"), "--no-cache", "--outdir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    fresh = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    committed = {
        str(p.relative_to(ROOT / "dist")): p.read_bytes() for p in sorted((ROOT / "dist").rglob("*")) if p.is_file()
    }
    assert fresh == committed
    kernel = subprocess.run(
        [*cmd[:-1], str(tmp_path / "other"), "--renderer", "cdk8s"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert kernel.returncode == 1
    assert len(kernel.stderr.splitlines()) == 1 and "not a problem" in kernel.stderr, kernel.stderr
