"""Moving the live fleet to Argo CD tenancy deletes nothing: a plain-data simulation of Argo CD's prune and
adoption over the commits of docs/argocd.md ("Moving a live fleet").

The commits: M0, the layout before tenancy (project ``default``, one Application per release in
dist/argocd/ with ``CreateNamespace=true``, the shared cluster-scoped objects in dist/cluster/*.yaml synced
by ``iotistica-cluster``, each release's Namespaces and ClusterRoleBinding in its folder), rebuilt here
from today's dist/ by moving those objects back; M1, M0 with scripts/argocd_migration.py ``protect``
applied; M2, today's dist/ as synth writes it; then the one manual step, deleting the emptied
``iotistica-cluster`` Application without cascade.

What is simulated, from Argo CD's source:

- tracking by annotation (``argocd.argoproj.io/tracking-id``, the 3.x default, docs/operations.md): an
  Application manages the live objects whose tracking id names it; a sync applies each object of its
  folder (``*.yaml``) and writes its own id on it (adopting an object another Application tracked);
- prune (gitops-engine ``sync_context.go``): an object the Application tracks that is no longer in its
  folder is deleted, unless the live object carries ``argocd.argoproj.io/sync-options: Prune=false``;
- deleting an Application without the ``resources-finalizer.argocd.argoproj.io`` finalizer (none here)
  leaves its objects;
- the ApplicationSet controller (applicationset_controller.go ``createOrUpdateInCluster``) creates an
  Application per tenant file, or takes over an existing one of that name: its spec, and its annotations
  replaced by the template's (the app-of-apps' tracking id goes: it no longer manages it).

Each step is synced in many orders of the controllers (the app-of-apps, the ApplicationSet, every
Application), each run until nothing changes. After every step in every order: nothing was ever deleted,
and every live object is tracked by an Application that has it in its folder (nothing orphaned); the one
exception is the emptied ``iotistica-cluster`` Application after M2, which the manual step removes. The
same simulation without M1 deletes objects: the protection is what makes the move safe.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
Obj = dict[str, Any]
Tree = dict[str, list[Obj]]  # path relative to dist/ -> objects
Key = tuple[str, str, str]  # kind, namespace, name
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
APPSET = "applicationset"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("argocd_migration", ROOT / "scripts" / "argocd_migration.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_tree(dist: Path = DIST) -> tuple[Tree, dict[str, Obj]]:
    """Today's dist/ (every *.yaml, cluster/<cluster>/ included) and its tenant files by release."""
    tree: Tree = {}
    for path in sorted([*dist.glob("*/*.yaml"), *dist.glob("cluster/*/*.yaml")]):
        tree[path.relative_to(dist).as_posix()] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    tenants = {p.parent.name: json.loads(p.read_text()) for p in dist.glob("*/argocd-tenant.json")}
    return tree, tenants


def old_layout(tree: Tree, tenants: dict[str, Obj]) -> Tree:
    """M0: today's objects in the layout before tenancy."""
    old: Tree = {}
    for rel, objs in tree.items():
        parts = rel.split("/")
        if parts[0] == "cluster":
            for o in objs:
                owner = o["metadata"]["labels"]["app.kubernetes.io/instance"]
                folder = "cluster" if owner == "cluster" else owner
                old[f"{folder}/{parts[-1]}"] = [o]
        elif parts[0] != "argocd":
            old[rel] = objs
    for release, t in tenants.items():
        old[f"argocd/Application.{release}.k8s.yaml"] = [
            application(release, "default", f"dist/{release}", t["namespace"], ["CreateNamespace=true"])
        ]
    old["argocd/Application.iotistica-cluster.k8s.yaml"] = [application("iotistica-cluster", "default", "dist/cluster")]
    (root,) = tree["argocd/Application.iotistica-apps.k8s.yaml"]
    old["argocd/Application.iotistica-apps.k8s.yaml"] = [{**root, "spec": {**root["spec"], "project": "default"}}]
    return old


def application(name: str, project: str, path: str, namespace: str | None = None, options: list | None = None) -> Obj:
    spec: Obj = {"project": project, "source": {"path": path}, "destination": {"namespace": namespace}}
    if options:
        spec["syncPolicy"] = {"syncOptions": options}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": spec,
    }


def key(o: Obj) -> Key:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


@dataclass
class Live:
    """The cluster: each object's annotations and the Application its tracking id names."""

    objects: dict[Key, Obj] = field(default_factory=dict)
    tracking: dict[Key, str | None] = field(default_factory=dict)
    deleted: list[tuple[str, Key]] = field(default_factory=list)

    def apps(self) -> dict[str, Obj]:
        return {k[2]: o for k, o in self.objects.items() if k[0] == "Application"}


class Commit:
    def __init__(self, tree: Tree, tenants: dict[str, Obj], appset: Obj | None) -> None:
        self.tree, self.tenants, self.appset = tree, tenants, appset

    def folder(self, path: str) -> list[Obj]:
        """The objects an Application of source path ``dist/<x>`` syncs (``*.yaml``, not recursive)."""
        rel = path.removeprefix("dist/")
        return [o for p, objs in self.tree.items() if p.rsplit("/", 1)[0] == rel for o in objs]


def sync_app(live: Live, name: str, commit: Commit) -> bool:
    """One automated sync of Application ``name`` at ``commit``: apply, then prune. True if anything changed."""
    app = live.apps().get(name)
    if app is None:
        return False
    desired = {key(o): o for o in commit.folder(app["spec"]["source"]["path"])}
    changed = False
    for k, o in desired.items():
        if live.objects.get(k) != o or live.tracking.get(k) != name:
            live.objects[k], live.tracking[k] = copy.deepcopy(o), name
            changed = True
    for k in [k for k, owner in live.tracking.items() if owner == name and k not in desired]:
        notes = live.objects[k]["metadata"].get("annotations") or {}
        if "Prune=false" in str(notes.get(SYNC_OPTIONS, "")).split(","):
            continue  # gitops-engine: the live object's Prune=false keeps it (shown as "requires pruning")
        del live.objects[k]
        live.tracking.pop(k)
        live.deleted.append((name, k))  # no resources finalizer anywhere: an Application's objects stay
        changed = True
    return changed


def sync_appset(live: Live, commit: Commit) -> bool:
    """The ApplicationSet controller: one Application per tenant file, created or taken over."""
    if commit.appset is None or ("ApplicationSet", "argocd", commit.appset["metadata"]["name"]) not in live.objects:
        return False
    template = commit.appset["spec"]["template"]
    changed = False
    for release, t in commit.tenants.items():
        made = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": release, "namespace": "argocd", "labels": {"iotistica.com/tier": t["tier"]}},
            "spec": {
                "project": t["project"],
                "source": {"path": f"dist/{release}"},
                "destination": {"namespace": t["namespace"]},
                "syncPolicy": {k: v for k, v in template["spec"]["syncPolicy"].items() if k == "syncOptions"},
            },
        }
        k = key(made)
        if live.objects.get(k) != made or live.tracking.get(k) is not None:
            # createOrUpdateInCluster: spec, labels and annotations replaced; the ownerReference set. The
            # app-of-apps' tracking id goes with the annotations.
            live.objects[k], live.tracking[k] = made, None
            changed = True
    return changed


def controllers(live: Live) -> list[str]:
    return sorted(live.apps()) + [APPSET]


def run_step(
    live: Live, commit: Commit, rng: random.Random | None, order: Callable[[Live], list[str]] | None = None
) -> None:
    """Every controller syncs ``commit`` in some order (random, or ``order`` of the controllers there are
    each round: the app-of-apps creates some), again and again until nothing changes."""
    for _ in range(20):
        names = order(live) if order is not None else controllers(live)
        if rng is not None:
            names = rng.sample(names, len(names))
        changed = False
        for name in names:
            changed |= sync_appset(live, commit) if name == APPSET else sync_app(live, name, commit)
        if not changed:
            return
    raise AssertionError("no fixpoint")


def orphans(live: Live, commit: Commit) -> list[Key]:
    """Live objects no Application manages with them in its folder (the ApplicationSet's own Applications
    are managed by it)."""
    apps = live.apps()
    out = []
    for k, owner in live.tracking.items():
        if owner is None and k[0] == "Application" and k[2] in commit.tenants:
            continue
        if (
            owner is None
            or owner not in apps
            or k not in {key(o) for o in commit.folder(apps[owner]["spec"]["source"]["path"])}
        ):
            out.append(k)
    return sorted(out)


def commits() -> tuple[Commit, Commit, Commit]:
    tree, tenants = read_tree()
    (appset,) = [o for o in tree["argocd/ApplicationSet.iotistica-tenants.k8s.yaml"]]
    m0 = old_layout(tree, tenants)
    m1 = _script().protect_tree(m0)
    return Commit(m0, {}, None), Commit(m1, {}, None), Commit(tree, tenants, appset)


def installed(m0: Commit) -> Live:
    """Today's cluster: M0 synced (the app-of-apps applied by hand, then every Application)."""
    live = Live()
    (root,) = m0.tree["argocd/Application.iotistica-apps.k8s.yaml"]
    live.objects[key(root)], live.tracking[key(root)] = copy.deepcopy(root), "iotistica-apps"
    run_step(live, m0, None)
    assert not live.deleted and not orphans(live, m0)
    return live


def manual_cleanup(live: Live) -> None:
    """docs/argocd.md: ``kubectl -n argocd delete application iotistica-cluster`` (no finalizer: no cascade)."""
    k = ("Application", "argocd", "iotistica-cluster")
    assert k in live.objects, "the old platform Application is kept by its Prune=false"
    del live.objects[k]
    live.tracking.pop(k)


def test_the_move_prunes_and_orphans_nothing_in_any_order() -> None:
    m0, m1, m2 = commits()
    base = installed(m0)
    rng = random.Random(20261207)
    worst = [  # the old Applications first, the new ones last; and the reverse
        lambda live: sorted(live.apps(), key=lambda n: n.startswith("iotistica-apps")) + [APPSET],
        lambda live: [APPSET, "iotistica-apps", *sorted(live.apps(), reverse=True)],
    ]
    for trial in range(30):
        live = copy.deepcopy(base)
        for commit in (m1, m2):
            order = worst[trial] if trial < len(worst) else None
            run_step(live, commit, rng if order is None else None, order)
            assert live.deleted == [], f"trial {trial}: pruned {live.deleted}"
            left = orphans(live, commit)
            if commit is m1:
                assert left == [], f"trial {trial}: orphaned after M1 {left}"
            else:
                assert left == [("Application", "argocd", "iotistica-cluster")], f"trial {trial}: {left}"
        manual_cleanup(live)
        run_step(live, m2, rng)
        assert live.deleted == [] and orphans(live, m2) == []
        # The end state is the new layout exactly: every object of today's dist/ is live, tracked by its
        # Application (tenants' by their ApplicationSet-made Application, the platform's by the platform's).
        apps = live.apps()
        assert {n for n, a in apps.items() if a["spec"]["project"] == n} == set(m2.tenants)
        every = {key(o) for objs in m2.tree.values() for o in objs}
        every |= {("Application", "argocd", r) for r in m2.tenants}
        assert set(live.objects) == every


def test_without_the_protecting_commit_the_move_deletes_objects() -> None:
    """The control: M0 straight to M2 prunes the shared cluster objects or a tenant's ClusterRoleBinding
    in an order where the old Applications sync first."""
    m0, _, m2 = commits()
    live = installed(m0)
    run_step(live, m2, None, lambda live: sorted(live.apps(), key=lambda n: n.startswith("iotistica-apps")) + [APPSET])
    kinds = {k[0] for _, k in live.deleted}
    assert "ClusterRoleBinding" in kinds and "ValidatingAdmissionPolicy" in kinds, live.deleted


def test_protect_marks_exactly_the_objects_that_change_owner() -> None:
    m0, m1, _ = commits()
    marked = {
        (rel.split("/")[0], o["kind"])
        for rel, objs in m1.tree.items()
        for o in objs
        if "Prune=false" in str((o["metadata"].get("annotations") or {}).get(SYNC_OPTIONS, ""))
    }
    folders = {rel.split("/")[0] for rel in m0.tree}
    assert ("argocd", "Application") in marked
    assert all(("cluster", o["kind"]) in marked for o in m0.folder("dist/cluster"))
    tenants = folders - {"argocd", "cluster"}
    assert {(f, "ClusterRoleBinding") for f in tenants} <= marked and {(f, "Namespace") for f in tenants} <= marked
    assert not any(k in {"Deployment", "Service", "ConfigMap"} for _, k in marked)
    (root,) = m1.tree["argocd/Application.iotistica-apps.k8s.yaml"]
    assert SYNC_OPTIONS not in (root["metadata"].get("annotations") or {}), "the app-of-apps stays prunable"
