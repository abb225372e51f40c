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

The package, one module per concern: model (input and the plan's dataclasses), compare (object
against object), plan (build_plan and its steps), report (plan_for, render_markdown).
"""

from __future__ import annotations

from ops.migrate.compare import (
    component_of,
    helm_selector,
    immutable_changes,
    match_labels,
    pod_labels,
    secret_refs,
)
from ops.migrate.model import (
    CLUSTER_SCOPED,
    COMPONENT,
    DELETE_ORDER,
    HELM_CHART_NAME,
    INSTANCE,
    NAME,
    OTHER_ORDER,
    SECRET_KINDS,
    SPOOL_ENV,
    WORKLOADS,
    Change,
    Entry,
    Key,
    Manifest,
    Plan,
    Risk,
    Step,
    key,
    load_dist,
    load_helm_manifests,
    ref,
)
from ops.migrate.plan import (
    build_plan,
)
from ops.migrate.report import (
    plan_for,
    render_markdown,
)

__all__ = [
    "COMPONENT",
    "INSTANCE",
    "NAME",
    "CLUSTER_SCOPED",
    "Change",
    "DELETE_ORDER",
    "Entry",
    "HELM_CHART_NAME",
    "Key",
    "Manifest",
    "OTHER_ORDER",
    "Plan",
    "Risk",
    "SECRET_KINDS",
    "SPOOL_ENV",
    "Step",
    "WORKLOADS",
    "build_plan",
    "component_of",
    "helm_selector",
    "immutable_changes",
    "key",
    "load_dist",
    "load_helm_manifests",
    "match_labels",
    "plan_for",
    "pod_labels",
    "ref",
    "render_markdown",
    "secret_refs",
]
