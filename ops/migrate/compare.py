"""Comparing a live object with its dist/ counterpart: manifests in, the immutable fields that change
(:func:`immutable_changes`, with their cost), selectors, claims, Secrets read and spool settings out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ops.migrate.model import (
    COMPONENT,
    HELM_CHART_NAME,
    INSTANCE,
    NAME,
    Change,
    Manifest,
)

# --------------------------------------------------------------------------------------------------
# Comparing objects
# --------------------------------------------------------------------------------------------------


def _get(obj: Manifest, *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def match_labels(obj: Manifest) -> dict[str, str] | None:
    """What an object selects pods by (Service spec.selector, others spec.selector.matchLabels)."""
    if obj["kind"] == "Service":
        sel = _get(obj, "spec", "selector")
        return dict(sel) if sel else None
    if obj["kind"] == "NetworkPolicy":
        sel = _get(obj, "spec", "podSelector", "matchLabels")
        return dict(sel) if sel else None
    sel = _get(obj, "spec", "selector", "matchLabels")
    return dict(sel) if isinstance(sel, dict) and sel else None


def pod_labels(obj: Manifest) -> dict[str, str]:
    return dict(_get(obj, "spec", "template", "metadata", "labels") or {})


def helm_selector(release: str, component: str) -> dict[str, str]:
    return {NAME: HELM_CHART_NAME, INSTANCE: release, COMPONENT: component}


def component_of(obj: Manifest) -> str | None:
    sel = match_labels(obj) or {}
    return sel.get(COMPONENT) or pod_labels(obj).get(COMPONENT) or _get(obj, "metadata", "labels", COMPONENT)


def _selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def _is_hook(obj: Manifest) -> bool:
    annotations = _get(obj, "metadata", "annotations") or {}
    return "argocd.argoproj.io/hook" in annotations and "BeforeHookCreation" in annotations.get(
        "argocd.argoproj.io/hook-delete-policy", ""
    )


def _storage(spec: Manifest | None) -> str | None:
    return _get(spec or {}, "resources", "requests", "storage")


def immutable_changes(old: Manifest, new: Manifest, release: str) -> list[Change]:
    kind = old["kind"]
    out: list[Change] = []
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        o, n = _get(old, "spec", "selector"), _get(new, "spec", "selector")
        if o != n:
            comp = component_of(old)
            compat = comp is not None and (o or {}).get("matchLabels") == helm_selector(release, comp)
            out.append(
                Change(
                    "spec.selector",
                    o,
                    n,
                    f"immutable: the sync fails ('field is immutable'); with Replace=true the {kind} is deleted "
                    "and created again, and all its pods stop at once (downtime)",
                    fixed_by_compat=compat,
                )
            )
    if kind == "StatefulSet":
        for path, cost in (
            (("spec", "serviceName"), "immutable: the StatefulSet must be recreated; pod DNS names change"),
            (
                ("spec", "podManagementPolicy"),
                "immutable: the StatefulSet must be recreated (delete with --cascade=orphan keeps the pods)",
            ),
            (
                ("spec", "volumeClaimTemplates"),
                "immutable: the StatefulSet must be recreated; existing claims are reused only where the "
                "template and StatefulSet names are unchanged, never resized",
            ),
        ):
            o, n = _get(old, *path), _get(new, *path)
            if path[-1] == "podManagementPolicy":
                o, n = o or "OrderedReady", n or "OrderedReady"
            if o != n:
                out.append(Change(".".join(path), o, n, cost))
    if kind == "Service":
        o_ip, n_ip = _get(old, "spec", "clusterIP"), _get(new, "spec", "clusterIP")
        if (o_ip == "None") != (n_ip == "None"):
            out.append(
                Change(
                    "spec.clusterIP",
                    o_ip or "(assigned)",
                    n_ip or "(assigned)",
                    "immutable: headless and ClusterIP cannot be switched in place. The apply leaves the live "
                    "value (dist/ does not set it); only deleting the Service (Replace=true) changes it: its name "
                    "stays, its address changes, open connections drop",
                )
            )
        o_t, n_t = _get(old, "spec", "type") or "ClusterIP", _get(new, "spec", "type") or "ClusterIP"
        if o_t != n_t:
            out.append(
                Change(
                    "spec.type",
                    o_t,
                    n_t,
                    "the Service's external address or node ports are released: clients outside the cluster "
                    "that used them lose access",
                )
            )
    if kind == "Job":
        o, n = _get(old, "spec", "template"), _get(new, "spec", "template")
        if o != n and not _is_hook(new):
            out.append(
                Change(
                    "spec.template",
                    "(old pod template)",
                    "(new pod template)",
                    "immutable: the sync fails; delete the finished Job first (or make it a hook with "
                    "BeforeHookCreation)",
                )
            )
    if kind == "PersistentVolumeClaim":
        o_spec, n_spec = _get(old, "spec") or {}, _get(new, "spec") or {}
        for f in ("accessModes", "storageClassName", "volumeMode", "selector", "volumeName"):
            if f in n_spec and o_spec.get(f) != n_spec.get(f):
                out.append(
                    Change(
                        f"spec.{f}",
                        o_spec.get(f),
                        n_spec.get(f),
                        "immutable: the claim would have to be deleted and recreated, which deletes its data",
                    )
                )
        if _storage(o_spec) != _storage(n_spec):
            out.append(
                Change(
                    "spec.resources.requests.storage",
                    _storage(o_spec),
                    _storage(n_spec),
                    "a claim can only grow, and only where its StorageClass allows expansion; shrinking is refused",
                )
            )
    return out


def secret_refs(objs: Iterable[Manifest]) -> set[str]:
    """Names of Secrets the objects read (env, envFrom, volumes, certificates, 1Password items)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("secretKeyRef", "secretRef") and isinstance(v, dict) and isinstance(v.get("name"), str):
                    names.add(v["name"])
                elif k == "secret" and isinstance(v, dict) and isinstance(v.get("secretName"), str):
                    names.add(v["secretName"])
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for obj in objs:
        walk(obj.get("spec"))
        if obj["kind"] == "Certificate" and isinstance(_get(obj, "spec", "secretName"), str):
            names.add(obj["spec"]["secretName"])
        if obj["kind"] == "OnePasswordItem":
            names.add(obj["metadata"]["name"])
    return names


def _env(obj: Manifest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in _get(obj, "spec", "template", "spec", "containers") or []:
        for e in c.get("env") or []:
            out[e.get("name")] = e.get("value")
    return out


def _claims(obj: Manifest) -> list[str]:
    vols = _get(obj, "spec", "template", "spec", "volumes") or []
    return [v["persistentVolumeClaim"]["claimName"] for v in vols if v.get("persistentVolumeClaim")]


def _sts_claims(obj: Manifest) -> list[str]:
    replicas = _get(obj, "spec", "replicas")
    replicas = 1 if replicas is None else int(replicas)
    return [
        f"{t['metadata']['name']}-{obj['metadata']['name']}-{i}"
        for t in _get(obj, "spec", "volumeClaimTemplates") or []
        for i in range(replicas)
    ]
