"""The migration plan: what the first Argo CD sync of ``dist/<release>/`` does to a live Helm release.

Input: what ``helm get manifest RELEASE -n NS`` prints (one or more multi-document YAML streams) and
the objects of ``dist/<release>/``. Objects are compared by kind, namespace and name:

- **adopted** (same key on both sides): Argo CD applies over the live object. Each immutable field
  that changes is listed with its cost (Deployment/StatefulSet selector, StatefulSet ``serviceName``,
  ``volumeClaimTemplates`` and ``podManagementPolicy``, Service ``clusterIP``/``type``, Job template,
  PVC spec);
- **left behind** (only in the Helm release): nothing deletes them (the generated Applications track
  by annotation, docs/operations.md "Moving a live Helm release to Argo CD"), so the plan deletes them after the
  cut-over, in a safe order; Secrets and OnePasswordItems that ``dist/`` still reads are kept;
- **new** (only in ``dist/``);
- **data at risk**: PVCs dropped or renamed (StatefulSet claims included), spool volumes, Redis
  persistence, Secrets whose content must carry over.

The plan ends with ordered ``steps`` (plain data: action, object, command) that keep exactly one API
Deployment subscribed to MQTT at every moment when ``migration.selectorLabels: helm`` is set for the
workloads it recommends: a workload adopted in place rolls, and a renamed one is handed over by
deleting the old Deployment with ``--cascade=orphan`` so that the new Deployment, whose selector is
the old one, adopts the running ReplicaSet.

Secret values are never read into the plan: only names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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


# --------------------------------------------------------------------------------------------------
# Building the plan
# --------------------------------------------------------------------------------------------------


def build_plan(release: str, namespace: str, old: dict[Key, Manifest], new: dict[Key, Manifest]) -> Plan:
    plan = Plan(release=release, namespace=namespace)
    refs = secret_refs(new.values())
    kubectl = f"kubectl -n {namespace}"

    # --- adopted in place, left behind, new ----------------------------------------------------------
    for k in sorted(old.keys() & new.keys()):
        e = Entry(*k, changes=immutable_changes(old[k], new[k], release))
        if k[0] == "Job" and _is_hook(new[k]):
            e.note = "an Argo CD hook (BeforeHookCreation): the old Job is deleted before the new one runs"
        plan.adopted.append(e)
    for k in sorted(new.keys() - old.keys()):
        plan.new.append(Entry(*k))
    left = sorted(old.keys() - new.keys())

    # Renamed workloads: a left-behind workload and a new one of the same kind and component.
    new_workloads = {k: o for k, o in new.items() if k[0] in WORKLOADS}
    handover: dict[Key, Key] = {}  # old -> new
    for k in left:
        if k[0] not in WORKLOADS:
            continue
        comp = component_of(old[k])
        for nk, nobj in sorted(new_workloads.items()):
            if nk[0] == k[0] and nk[1] == k[1] and component_of(nobj) == comp and nk not in old:
                handover[k] = nk

    # --- hazards: selectors -----------------------------------------------------------------------------
    recommend: set[str] = set()
    for e in plan.adopted:
        for c in e.changes:
            if c.field == "spec.selector":
                comp = component_of(old[e.key]) or "?"
                if c.fixed_by_compat:
                    recommend.add(comp)
                    plan.hazards.append(
                        f"{ref(e.key)}: selector changes (immutable) -> recreate and downtime; "
                        f"`migration.selectorLabels: helm` keeps the old selector and makes the sync a rolling update"
                    )
                else:
                    plan.hazards.append(
                        f"{ref(e.key)}: selector changes (immutable) -> recreate and downtime; the old selector "
                        f"is not the chart's, so only a Replace=true sync (accepted downtime) changes it"
                    )
    for e in plan.adopted:
        for c in e.changes:
            if c.field != "spec.selector":
                plan.hazards.append(f"{ref(e.key)}: `{c.field}` changes: {c.cost}")
    for k, nk in handover.items():
        comp = component_of(old[k]) or "?"
        same = match_labels(old[k]) == match_labels(new[nk])
        compat = match_labels(old[k]) == helm_selector(release, comp)
        if k[0] != "Deployment":
            plan.hazards.append(
                f"{ref(k)} is renamed to {nk[0]}/{nk[2]}: a {k[0]} cannot hand its pods over; both run until "
                f"the old one is deleted"
            )
        elif comp == "ingestion":
            # The old ingestion keeps draining the old Redis stream; it must not be handed over.
            if same:
                plan.hazards.append(
                    f"{ref(k)} and {nk[0]}/{nk[2]} share a selector: leave `ingestion` out of "
                    "migration.workloads so the old one keeps draining the old Redis until deleted"
                )
        elif not same:
            what = (
                "two APIs subscribe to MQTT and every reading is written twice, or, deleting the old one first, none"
                if comp == "api"
                else "the old and the new pods run side by side until the old Deployment is deleted"
            )
            plan.hazards.append(
                f"{ref(k)} is renamed to {nk[0]}/{nk[2]}: {what}"
                + ("; `migration.selectorLabels: helm` lets the new Deployment adopt the old pods" if compat else "")
            )
            if compat:
                recommend.add(comp)
    # A selector of dist/ that also matches pods of a left-behind workload not handed over (e.g. a
    # Redis StatefulSet whose replacement is a Deployment): the Service would send traffic to both.
    for nk, nobj in sorted(new.items()):
        sel = match_labels(nobj)
        for k in left:
            if k[0] in WORKLOADS and k not in handover and k[1] == nk[1] and _selects(sel, pod_labels(old[k])):
                plan.hazards.append(
                    f"{ref(nk)} selects the pods of left-behind {ref(k)}: traffic and data split between old and "
                    f"new; leave `{component_of(old[k])}` out of migration.workloads"
                )
    for k in left:
        if k[0] in WORKLOADS and (k[0], k[1], k[2]) not in handover:
            for nk in new_workloads:
                if nk[1:] == k[1:] and nk[0] != k[0]:
                    plan.hazards.append(
                        f"{ref(k)} becomes a {nk[0]} of the same name: both run side by side until the old one is "
                        "deleted, and what it stored stays in its claims"
                    )

    # Which workloads keep the old selector: those where it removes a recreate or allows a handover,
    # and never one whose old pods must keep running beside the new ones.
    blocked = {component_of(old[k]) for k in left if k[0] in WORKLOADS and k not in handover}
    blocked |= {component_of(old[k]) for k, nk in handover.items() if component_of(old[k]) == "ingestion"}
    plan.recommend_workloads = sorted(c for c in recommend if c and c not in blocked)

    # --- data at risk --------------------------------------------------------------------------------
    kept: set[Key] = set()
    new_claims = {k[2] for k in new if k[0] == "PersistentVolumeClaim"}
    for k in left:
        obj = old[k]
        if k[0] in SECRET_KINDS and k[2] in refs:
            kept.add(k)
            if k[0] == "OnePasswordItem":
                plan.risks.append(
                    Risk(
                        *k,
                        what=f"the 1Password Operator's Secret {k[2]} is owned by this item and dist/ reads it: "
                        "deleting the item deletes the Secret",
                        action="keep it (or switch secrets.provider to onepassword: the same name is then "
                        "adopted in place)",
                    )
                )
            else:
                plan.risks.append(
                    Risk(
                        *k,
                        what=f"dist/ reads Secret {k[2]}; its content (generated by Helm) must carry over",
                        action="keep it; never run `helm uninstall` (it would delete it)",
                    )
                )
        elif k[0] == "Secret":
            plan.risks.append(
                Risk(
                    *k,
                    what="Helm-generated Secret that nothing in dist/ reads",
                    action="back it up (kubectl get -o yaml) before deleting it last",
                )
            )
        elif k[0] == "PersistentVolumeClaim":
            renamed = next((c for c in new_claims if c.endswith(k[2].removeprefix(f"{release}-iotistic-"))), None)
            users = [
                ref(w)
                for w, o in old.items()
                if w[0] in WORKLOADS and k[2] in _claims(o) and _env(o).keys() & set(SPOOL_ENV)
            ]
            what = "spool claim: readings written while the database or Redis was down" if users else "claim"
            what += f" ({'renamed to ' + renamed if renamed else 'dropped by dist/'}); deleting it deletes the data"
            plan.risks.append(
                Risk(*k, what=what, action="wait until the spool directory is empty, then delete it last")
            )
    for k, obj in sorted(old.items()):
        if k[0] == "StatefulSet" and (k in left or any(c.field != "spec.selector" for c in _changes(plan, k))):
            for claim in _sts_claims(obj):
                plan.risks.append(
                    Risk(
                        "PersistentVolumeClaim",
                        k[1],
                        claim,
                        what=f"claim of StatefulSet {k[2]} (not in `helm get manifest`); "
                        + (
                            "Redis persistence: stream entries not yet written to the database"
                            if component_of(obj) == "redis"
                            else "its data"
                        ),
                        action="after the sync nothing reads it: on the old pod, XINFO GROUPS of the ingestion "
                        "stream must show lag 0 and pending 0; otherwise copy the entries into the new Redis "
                        "(docs/operations.md runbook) before deleting the StatefulSet, then the claim",
                    )
                )
        if k[0] in WORKLOADS and k in left:
            env = _env(obj)
            for var in SPOOL_ENV:
                if str(env.get(var)).lower() == "true" and not _claims(obj):
                    plan.risks.append(
                        Risk(
                            *k,
                            what=f"{var}=true on a pod-local volume: unsent readings are lost with the pod",
                            action="wait until the spool directory is empty before deleting it",
                        )
                    )

    # --- left behind: what to delete, in which order ----------------------------------------------------
    def order(kind: str) -> int:
        return next((i for i, kinds in enumerate(DELETE_ORDER) if kind in kinds), OTHER_ORDER)

    for k in left:
        e = Entry(*k)
        if k in kept:
            e.note = "kept: dist/ reads this Secret"
        elif k in handover:
            nk = handover[k]
            adopts = (
                k[0] == "Deployment"
                and match_labels(old[k]) == match_labels(new[nk])
                and component_of(old[k]) != "ingestion"
            )
            e.note = f"{'handed over to' if adopts else 'replaced by'} {nk[0]}/{nk[2]}"
            if component_of(old[k]) == "ingestion":
                e.note += " (keeps draining the old Redis until deleted)"
        plan.left_behind.append(e)
    plan.left_behind.sort(key=lambda e: (order(e.kind), e.kind, e.namespace, e.name))

    plan.steps = _steps(plan, old, new, handover, kept, kubectl)
    return plan


def _changes(plan: Plan, k: Key) -> list[Change]:
    return next((e.changes for e in plan.adopted if e.key == k), [])


def _steps(
    plan: Plan, old: dict[Key, Manifest], new: dict[Key, Manifest], handover: dict[Key, Key], kept: set[Key], kc: str
) -> list[Step]:
    rel, ns = plan.release, plan.namespace
    steps: list[Step] = [
        Step(
            "verify",
            "",
            "argocd",
            "the Application is named like the Helm release: under label tracking it would claim and prune the "
            "Helm release's objects; it must track by annotation (Argo CD 3.x default)",
            "kubectl -n argocd get cm argocd-cm -o jsonpath='{.data.application\\.resourceTrackingMethod}'"
            "  # empty or 'annotation'",
        ),
        Step("verify", "", ns, "no `helm upgrade` may run from now on (pause the pipeline that ran it)", ""),
    ]
    # Before the sync: remove what would fight the handover (an HPA scaling a Deployment that is
    # about to be orphaned, a PDB whose selector covers the new pods too: evictions fail with two PDBs).
    pre: set[Key] = set()
    left = {e.key for e in plan.left_behind}
    for k in sorted(left):
        obj = old[k]
        if k[0] == "HorizontalPodAutoscaler":
            target = _get(obj, "spec", "scaleTargetRef", "name")
            if any(h[2] == target for h in handover):
                pre.add(k)
        if k[0] == "PodDisruptionBudget":
            sel = match_labels(obj)
            if any(_selects(sel, pod_labels(n)) for nk, n in new.items() if nk[0] in WORKLOADS):
                pre.add(k)
    for k in sorted(pre):
        steps.append(
            Step(
                "delete",
                f"{k[0]}/{k[2]}",
                k[1],
                "before the sync: it would act on the handed-over pods",
                f"kubectl -n {k[1]} delete {k[0].lower()} {k[2]}",
            )
        )
    # Renamed Deployments whose selector the new one shares: orphan the old ReplicaSet; the sync adopts it.
    for k, nk in sorted(handover.items()):
        if (
            k[0] == "Deployment"
            and match_labels(old[k]) == match_labels(new[nk])
            and component_of(old[k]) != "ingestion"
        ):
            steps.append(
                Step(
                    "orphan",
                    f"{k[0]}/{k[2]}",
                    k[1],
                    f"its ReplicaSet keeps running; {nk[0]}/{nk[2]} adopts it at the sync and rolls it",
                    f"kubectl -n {k[1]} delete deployment {k[2]} --cascade=orphan",
                )
            )
    # Adopted workloads whose selector still changes: only a recreate (accepted downtime).
    for e in plan.adopted:
        if any(c.field == "spec.selector" for c in e.changes):
            steps.append(
                Step(
                    "replace",
                    f"{e.kind}/{e.name}",
                    e.namespace,
                    "selector changes: recreated (downtime); avoid with migration.selectorLabels: helm",
                    f"kubectl -n {e.namespace} delete {e.kind.lower()} {e.name}  # then the sync creates it",
                )
            )
    steps.append(
        Step("sync", "", ns, "creates the new objects and applies over the adopted ones", f"argocd app sync {rel}")
    )
    for k in sorted(new):
        if k[0] in WORKLOADS:
            steps.append(
                Step(
                    "wait",
                    f"{k[0]}/{k[2]}",
                    k[1],
                    "rolled out and ready",
                    f"kubectl -n {k[1]} rollout status {k[0].lower()}/{k[2]} --timeout=10m",
                )
            )
    # Data first: drain, then delete in order, keeping what dist/ reads.
    for r in plan.risks:
        if r.kind == "PersistentVolumeClaim" or r.kind in WORKLOADS:
            steps.append(Step("drain", f"{r.kind}/{r.name}", r.namespace, r.what, r.action))
    for e in plan.left_behind:
        if e.key in pre or e.key in kept:
            continue
        if e.key in handover and any(s.action == "orphan" and s.target == f"{e.kind}/{e.name}" for s in steps):
            continue
        if e.kind == "Namespace":
            steps.append(Step("verify", f"{e.kind}/{e.name}", "", "delete only when nothing else lives in it", ""))
            continue
        n = f"-n {e.namespace} " if e.namespace else ""
        steps.append(
            Step(
                "delete",
                f"{e.kind}/{e.name}",
                e.namespace,
                e.note or "left behind by dist/",
                f"kubectl {n}delete {e.kind.lower()} {e.name}",
            )
        )
    for k in sorted(kept):
        steps.append(Step("keep", f"{k[0]}/{k[2]}", k[1], "dist/ reads it: never delete it", ""))
    steps.append(
        Step(
            "forget-helm",
            "",
            ns,
            "drop Helm's release record so nobody runs `helm uninstall` (it would delete adopted objects)",
            f"{kc} delete secret -l owner=helm,name={rel}",
        )
    )
    return steps


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def render_markdown(plan: Plan) -> str:
    lines = [
        f"# Migration plan: Helm release `{plan.release}` (namespace `{plan.namespace}`) to Argo CD",
        "",
        "**Safe as planned: the first sync alone does the cut-over.**"
        if plan.safe
        else "**Needs steps: follow them in order (exit code 1).**",
        "",
    ]
    if plan.hazards:
        lines += ["## Hazards", ""] + [f"- {h}" for h in plan.hazards] + [""]
    rec = plan.recommendation()
    if rec:
        lines += [
            "## Recommended setting",
            "",
            f"Add to `environments/{plan.release}.yaml`, `make synth ENV={plan.release}`, run migrate again:",
            "",
            "```yaml",
            yaml.safe_dump(rec, sort_keys=False).rstrip(),
            "```",
            "",
        ]
    lines += ["## Adopted in place", "", "| object | immutable change | cost |", "|---|---|---|"]
    for e in plan.adopted:
        if e.changes:
            for c in e.changes:
                fix = " (removed by `migration.selectorLabels: helm`)" if c.fixed_by_compat else ""
                lines.append(
                    f"| {e.kind}/{e.name} | `{c.field}`: `{_short(c.old)}` -> `{_short(c.new)}` | {c.cost}{fix} |"
                )
        else:
            lines.append(f"| {e.kind}/{e.name} | none | {e.note or 'rolling update / in-place apply'} |")
    lines += ["", "## Left behind (deleted after the cut-over, in this order)", ""]
    lines += [f"{i}. {e.kind}/{e.name}" + (f" — {e.note}" if e.note else "") for i, e in enumerate(plan.left_behind, 1)]
    lines += ["", "## New", ""] + [f"- {e.kind}/{e.name}" for e in plan.new]
    lines += ["", "## Data at risk", ""]
    lines += [f"- {r.kind}/{r.name}: {r.what}. **{r.action}**" for r in plan.risks] or ["- none"]
    lines += ["", "## Steps", ""]
    for i, s in enumerate(plan.steps, 1):
        target = f" `{s.target}`" if s.target else ""
        cmd = f"\n   `{s.command}`" if s.command else ""
        lines.append(f"{i}. **{s.action}**{target}: {s.why}{cmd}")
    return "\n".join(lines) + "\n"


def plan_for(release: str, namespace: str, sources: Sequence[Path], dist_dir: Path) -> Plan:
    old = load_helm_manifests(sources, namespace)
    new = load_dist(dist_dir)
    return build_plan(release, namespace, old, new)
