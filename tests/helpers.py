"""Helpers shared by the tests: synthesize an environment in memory, pick objects and fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from constructs.isolation.cluster_rbac import FLEET_NAMESPACE_MANAGER
from tiers.loader import PRESETS, ConfigError, deep_merge, load_environment
from tiers.models import Environment

ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / "environments"
SHIPPED = ("client-demo", "iotistica", "iotistica-enterprise", "iotistica-starter")

Manifest = dict[str, Any]

#: A minimal valid environment for config tests.
BASE = {"release": "acme", "namespace": "acme", "tier": "standard"}


def write(tmp_path: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(tmp_path: Path, data: dict[str, Any] | str, name: str = "acme") -> str:
    """The one-line ConfigError an environment file produces (as `environments/<name>.yaml`)."""
    with pytest.raises(ConfigError) as exc:
        load_environment(write(tmp_path, name, data), f"environments/{name}.yaml")
    return str(exc.value)


def synth_env(env: Environment) -> list[Manifest]:
    """Synthesize one environment in memory and return its objects as plain dicts: its folder's, then its
    own files of its cluster's platform folder (its Namespaces, its ClusterRoleBinding)."""
    from constructs.api_objects import Root
    from constructs.release_chart import ReleaseChart

    chart = ReleaseChart(Root(), env)
    return list(chart.to_json()) + tenant_cluster_objects(env)


def tenant_cluster_objects(env: Environment) -> list[Manifest]:
    """The environment's own objects of dist/cluster/<cluster>/ (constructs/shared_charts.py)."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ClusterChart
    from tiers.shared import shared_props

    objs = ClusterChart(Root(), shared_props([env])).to_json()
    return [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/instance") == env.release]


def env_from(release: str = "client-demo", **overrides: Any) -> Environment:
    """A shipped environment with deep-merged overrides (keys as in YAML, camelCase), laid over its tier
    preset and the fleet file's layer (fleet.yaml: its cluster and database server), as the loader does."""
    from tiers.fleet_file import fleet_layer, fleet_path
    from tiers.loader import read_fleet

    data = yaml.safe_load((ENV_DIR / f"{release}.yaml").read_text())
    preset = yaml.safe_load((PRESETS / f"{data['tier']}.yaml").read_text())
    layer = fleet_layer(read_fleet(fleet_path(ENV_DIR)), data, f"environments/{release}.yaml")
    return Environment.model_validate(deep_merge(deep_merge(deep_merge(preset, layer), data), overrides))


def by(objs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kinds(objs: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o["kind"] == kind]


def container(obj: Manifest, name: str | None = None) -> Manifest:
    containers = obj["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def env_map(c: Manifest) -> dict[str, Any]:
    """A container's env as {name: value or valueFrom}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def pod_template(obj: Manifest) -> Manifest:
    """The pod template of a workload object (a CronJob's through its jobTemplate)."""
    spec = obj["spec"]["jobTemplate"]["spec"] if obj.get("kind") == "CronJob" else obj["spec"]
    return spec["template"]


def pod_labels(obj: Manifest) -> dict[str, str]:
    """The pod template labels of a workload object."""
    return pod_template(obj)["metadata"]["labels"]


def pod_specs(objs: list[Manifest]) -> list[tuple[Manifest, Manifest]]:
    """(object, pod spec) for every object that runs pods."""
    out = []
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            out.append((o, o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            out.append((o, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


#: A namespace the API itself made (platform-facts §11: fleet-<first 8 hex of the fleet uuid>).
API_FLEET = "fleet-1a2b3c4d"


def agent_deployment(namespace: str = API_FLEET, **pod: Any) -> dict[str, Any]:
    """An agent Deployment as the deployer writes it (platform-facts §11): pod-level security only."""
    container = {
        "name": "agent",
        "image": "docker.io/iotistic/agent:latest",
        "env": [{"name": "AGENT_UUID", "value": "x"}],
        "volumeMounts": [{"name": "data", "mountPath": "/app/data"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    }
    spec = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "hostNetwork": False,
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "dev-1-data"}}],
        **pod,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "dev-1", "namespace": namespace, "labels": {"app": "dev-1"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "dev-1"}},
            "template": {"metadata": {"labels": {"app": "dev-1"}}, "spec": spec},
        },
    }


def binding(
    namespace: str,
    subjects: list[dict[str, Any]] | None = None,
    role: str = FLEET_NAMESPACE_MANAGER,
    kind: str = "ClusterRole",
) -> dict[str, Any]:
    """A RoleBinding as the deployer writes it in a fleet namespace (platform-facts §11), for the API of `demo`."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "fleet-manager-binding", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects
        if subjects is not None
        else [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": "demo"}],
    }
