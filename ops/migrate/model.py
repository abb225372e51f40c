"""The plan's vocabulary and its input: constants, manifests read from ``helm get manifest`` output and
from dist/<release>/ (keyed by kind, namespace, name), and the plan's dataclasses (:class:`Plan`,
:class:`Entry`, :class:`Change`, :class:`Risk`, :class:`Step`). Takes files, gives dicts and dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tiers.loader import ConfigError

Manifest = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name

HELM_CHART_NAME = "iotistic"  # platform-facts §12 (constructs/platform.py HELM_CHART_NAME)
NAME, INSTANCE, COMPONENT = (f"app.kubernetes.io/{k}" for k in ("name", "instance", "component"))
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
SECRET_KINDS = ("Secret", "OnePasswordItem")
#: Deleting left-behind objects: traffic first, then what scales or protects pods, the workloads, what
#: selected them, configuration, access, and last what holds data (only after it was drained).
DELETE_ORDER = (
    ("HTTPRoute", "TLSRoute", "TCPRoute", "GRPCRoute", "Ingress", "BackendTrafficPolicy", "SecurityPolicy"),
    ("ServiceMonitor", "PodMonitor", "PrometheusRule"),
    ("HorizontalPodAutoscaler", "PodDisruptionBudget"),
    ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"),
    ("Service", "NetworkPolicy"),
    ("ConfigMap", "Certificate"),
    ("RoleBinding", "Role", "ClusterRoleBinding", "ClusterRole", "ServiceAccount", "ResourceQuota", "LimitRange"),
    ("Secret", "OnePasswordItem"),
    ("PersistentVolumeClaim",),
    ("Namespace",),
)
OTHER_ORDER = 5
SPOOL_ENV = ("INGESTION_SPOOL_ENABLED", "DISK_SPOOL_ENABLED")


# --------------------------------------------------------------------------------------------------
# Reading manifests
# --------------------------------------------------------------------------------------------------


def _documents(path: Path, label: str) -> list[Manifest]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, "", f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(label, "", f"not YAML: {where}{getattr(exc, 'problem', None) or exc}") from None
    out: list[Manifest] = []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for obj in items or []:
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if not (
                isinstance(obj, dict)
                and isinstance(obj.get("kind"), str)
                and isinstance(meta, dict)
                and isinstance(meta.get("name"), str)
            ):
                raise ConfigError(label, f"document {i}", "is not a Kubernetes object (needs kind and metadata.name)")
            out.append(obj)
    return out


def load_helm_manifests(paths: Sequence[Path], namespace: str) -> dict[Key, Manifest]:
    """Every object of ``helm get manifest`` outputs, by key; a missing namespace is the release's."""
    found: dict[Key, tuple[Manifest, str]] = {}
    for path in paths:
        label = str(path)
        docs = _documents(path, label)
        if not docs:
            raise ConfigError(label, "", "holds no Kubernetes object (expected `helm get manifest` output)")
        for obj in docs:
            k = key(obj, namespace)
            if k in found:
                raise ConfigError(label, f"{k[0]}/{k[2]}", f"appears twice (also in {found[k][1]})")
            found[k] = (obj, label)
    return {k: v[0] for k, v in found.items()}


def load_dist(folder: Path) -> dict[Key, Manifest]:
    if not folder.is_dir():
        raise ConfigError(str(folder), "", "not synthesized (run `make synth ENV=<release>` first)")
    out: dict[Key, Manifest] = {}
    for path in sorted(folder.glob("*.yaml")):
        for obj in _documents(path, str(path)):
            out[key(obj, "")] = obj
    if not out:
        raise ConfigError(str(folder), "", "holds no manifests")
    return out


def key(obj: Manifest, default_namespace: str) -> Key:
    kind = obj["kind"]
    ns = "" if kind in CLUSTER_SCOPED else (obj["metadata"].get("namespace") or default_namespace)
    return (kind, ns, obj["metadata"]["name"])


def ref(k: Key) -> str:
    return f"{k[0]}/{k[2]}" + (f" (namespace {k[1]})" if k[1] else "")


# --------------------------------------------------------------------------------------------------
# Plan model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """An immutable field that differs between the live object and dist/."""

    field: str
    old: Any
    new: Any
    cost: str
    #: True when ``migration.selectorLabels: helm`` makes old and new equal.
    fixed_by_compat: bool = False


@dataclass
class Entry:
    kind: str
    namespace: str
    name: str
    note: str = ""
    changes: list[Change] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class Risk:
    kind: str
    namespace: str
    name: str
    what: str
    action: str


@dataclass(frozen=True)
class Step:
    """One operator action. ``action``: verify | delete | orphan | replace | sync | wait | drain | keep |
    forget-helm. ``target`` is ``Kind/name`` (empty for sync, verify, forget-helm)."""

    action: str
    target: str
    namespace: str
    why: str
    command: str


@dataclass
class Plan:
    release: str
    namespace: str
    adopted: list[Entry] = field(default_factory=list)
    left_behind: list[Entry] = field(default_factory=list)
    new: list[Entry] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    hazards: list[str] = field(default_factory=list)
    recommend_workloads: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """The first sync alone does the cut-over: nothing changes an immutable field, nothing is
        left behind, no data is at risk."""
        return not (self.hazards or self.left_behind or self.risks or any(e.changes for e in self.adopted))

    @property
    def exit_code(self) -> int:
        return 0 if self.safe else 1

    def to_json(self) -> dict[str, Any]:
        def entries(items: list[Entry]) -> list[dict[str, Any]]:
            return [
                {
                    "kind": e.kind,
                    "namespace": e.namespace or None,
                    "name": e.name,
                    "note": e.note,
                    **({"changes": [asdict(c) for c in e.changes]} if e.changes else {}),
                }
                for e in items
            ]

        return {
            "release": self.release,
            "namespace": self.namespace,
            "safe": self.safe,
            "hazards": self.hazards,
            "recommendation": self.recommendation(),
            "adopted": entries(self.adopted),
            "leftBehind": entries(self.left_behind),
            "new": entries(self.new),
            "dataAtRisk": [asdict(r) for r in self.risks],
            "steps": [asdict(s) for s in self.steps],
        }

    def recommendation(self) -> dict[str, Any] | None:
        if not self.recommend_workloads:
            return None
        return {"migration": {"selectorLabels": "helm", "workloads": self.recommend_workloads}}
