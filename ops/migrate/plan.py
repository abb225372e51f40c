"""Building the plan: the Helm release's objects and dist/'s in, a :class:`Plan` out (adopted, left
behind in a safe delete order, new, data at risk) with its ordered steps.
"""

from __future__ import annotations

from ops.migrate.compare import (
    _claims,
    _env,
    _get,
    _is_hook,
    _selects,
    _sts_claims,
    component_of,
    helm_selector,
    immutable_changes,
    match_labels,
    pod_labels,
    secret_refs,
)
from ops.migrate.model import (
    DELETE_ORDER,
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
    ref,
)

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
