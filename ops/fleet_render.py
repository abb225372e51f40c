"""The fleet rendered in memory, for the operator commands (cli.py): environments in, manifests out.

``render``/``render_shared`` take loaded environments and give each release's (or the shared charts')
manifests as dicts, without writing dist/; ``policy_problems`` and ``identity_clashes`` check them.
Exit codes and the project root every command uses live here too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.render import release_charts

if TYPE_CHECKING:
    from tiers.models import Environment


# The project root (this package sits at the top level, beside cli.py).
ROOT = Path(__file__).resolve().parent.parent

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
Manifest = dict[str, Any]


def render(envs: Sequence[Environment]) -> dict[str, list[Manifest]]:
    """Every environment's objects as plain dicts, built in one process, nothing written."""
    from constructs.api_objects import Root
    from synth.render import _few_collections

    with _few_collections():  # as synth renders (synth/render.py): the cyclic collector kept out of the way
        charts = release_charts(Root(tempfile.gettempdir()), envs)
        return {env.release: list(chart.to_json()) for env, chart in zip(envs, charts, strict=True)}


def render_shared(envs: Sequence[Environment]) -> dict[str, list[Manifest]]:
    """The shared charts (``cluster/<cluster>`` for each cluster, ``argocd``) of a fleet, built as synth
    builds them, by folder."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ARGOCD, ArgoCdChart, ClusterChart, cluster_folder
    from synth.render import _few_collections
    from tiers.shared import shared_props

    scope, props = Root(tempfile.gettempdir()), shared_props(envs)
    with _few_collections():
        shared = {cluster_folder(c.name): list(ClusterChart(scope, props, c).to_json()) for c in props.clusters}
        shared[ARGOCD] = list(ArgoCdChart(scope, props).to_json())
    return shared


def _load(env_dir: Path, names: Sequence[str]) -> list[Environment]:
    from tiers.fleet import check_directory
    from tiers.loader import load_environments

    check_directory(env_dir, Path.cwd())
    return load_environments(env_dir, names, base=Path.cwd())


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _containers(obj: Manifest) -> Iterable[Manifest]:
    spec = obj.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if not template:
        return []
    pod = template.get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def policy_problems(env: Environment, objs: list[Manifest]) -> list[str]:
    """The contract every object must meet (labels, namespace, pinned images, resources, no Secrets)."""
    from constructs.platform import LABEL_KEYS
    from ops.schema_check import schema_problem

    problems: list[str] = []
    # Isolation: fleet objects live in the fleet namespaces the model declares (platform-facts §11).
    fleets = env.fleet_namespaces
    namespaces = {env.namespace} | ({env.fleet_namespace(f.name) for f in fleets.fleets} if fleets.enabled else set())
    for o in objs:
        ref = f"{o['kind']}/{o['metadata'].get('name')}"
        labels = o["metadata"].get("labels", {})
        missing = [k for k in LABEL_KEYS if k not in labels]
        if missing:
            problems.append(f"{ref}: missing labels {', '.join(missing)}")
        # The CNPG Pooler lives beside its Cluster, in the database's namespace (constructs/core/db_pooler.py).
        allowed = namespaces | ({env.network.database.namespace} if o["kind"] == "Pooler" else set())
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") not in allowed:
            problems.append(f"{ref}: metadata.namespace is not {env.namespace}")
        if o["kind"] == "Secret":
            problems.append(f"{ref}: a Secret must never be written to dist/")
        for c in _containers(o):
            if ":" not in c["image"] or c["image"].endswith(":latest"):
                problems.append(f"{ref}: container {c['name']}: image {c['image']} is not pinned")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                problems.append(f"{ref}: container {c['name']}: needs cpu/memory requests and a memory limit")
        group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
        if "." not in group or group.endswith(".k8s.io") and not group.startswith("gateway."):
            problem = schema_problem(o)
            if problem is not None:
                problems.append(f"{ref}: schema (Kubernetes 1.27, strict): {problem}")
    return problems


def identity_clashes(
    rendered: dict[str, list[Manifest]], clusters: Mapping[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(folder, other folder, kind/namespace/name) of every object identity two folders of dist/ share.

    ``clusters``: the cluster of each release folder (fleet.yaml); two releases on different clusters may
    hold the same identity. A folder without a cluster (the shared ones) clashes with every folder."""
    owner: dict[tuple[str, tuple[str, str, str]], str] = {}
    anywhere: dict[tuple[str, str, str], str] = {}
    clashes = []
    for folder in sorted(rendered):
        where = (clusters or {}).get(folder, "")
        for o in rendered[folder]:
            ident = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            seen = (owner.get((where, ident)) or owner.get(("", ident))) if where else anywhere.get(ident)
            if seen is not None and seen != folder:
                clashes.append((folder, seen, "/".join(p for p in ident if p)))
            owner.setdefault((where, ident), folder)
            anywhere.setdefault(ident, folder)
    return clashes


def release_files(rendered: dict[str, list[Manifest]], envs: Sequence[Environment] = ()) -> dict[Path, str]:
    """``{<folder>/<file>: text}``: the files synth writes for these rendered folders, the same bytes
    (synth/manifest_writer.py), with each environment's REQUIRED-SECRETS.md."""
    from constructs.lifecycle.required_secrets import FILENAME
    from constructs.lifecycle.required_secrets import render as required_secrets
    from synth.manifest_writer import render_files

    files = render_files(sorted(rendered.items()))
    for env in envs:
        files[Path(env.release) / FILENAME] = required_secrets(env)
    return files
