"""Argo CD's part: a release of dist/ synced to the real API server in Argo CD's order.

- The platform Application first (:meth:`ArgoCD.sync_platform`): the tenant's own files of its cluster's
  platform folder ``dist/cluster/<cluster>/`` (its Namespaces, its ClusterRoleBinding: the objects there
  whose ``app.kubernetes.io/instance`` is the release), Namespaces first. The tenant's Application has no
  ``CreateNamespace``; the namespace exists when it syncs.
- Phases PreSync, Sync, PostSync; in each, waves in ascending order (annotation
  ``argocd.argoproj.io/sync-wave``, default 0); in a wave, resources by Argo CD's kind order then name,
  and the phase's hooks (``argocd.argoproj.io/hook``) with them. The next wave starts only when every
  resource of this one is healthy (a Deployment's pods ready, a Job complete) and every hook succeeded.
- Hook delete policies (``argocd.argoproj.io/hook-delete-policy``; none = ``BeforeHookCreation``):
  ``BeforeHookCreation`` deletes the previous hook object before creating it again, ``HookSucceeded`` and
  ``HookFailed`` delete it after it succeeded or failed.
- Objects whose kind the server does not serve (the add-ons' CRDs: cert-manager, Gateway API, Envoy
  Gateway, Prometheus Operator, which a 1.28 server partly refuses, platform-facts §16) are not applied;
  the result lists them and the test plays the one whose effect the platform needs (cert-manager's
  Certificate -> its TLS Secret).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kubelet import Kubelet

Obj = dict[str, Any]

# gitops-engine's sync order by kind (pkg/sync/sync_tasks.go, kindOrder).
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
]
HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"


def load(release_dir: Path) -> list[Obj]:
    """The objects Argo CD syncs: ``*.yaml`` of the release folder (``directory.include``, not recursive)."""
    out: list[Obj] = []
    for f in sorted(release_dir.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return out


def tenant(release_dir: Path) -> dict[str, Any]:
    """The tenant file of a release folder (what the ApplicationSet's Git files generator reads)."""
    return json.loads((release_dir / "argocd-tenant.json").read_text())


def platform_objects(release_dir: Path) -> list[Obj]:
    """The release's own objects in its cluster's platform folder (``dist/cluster/<cluster>/``)."""
    release = tenant(release_dir)["release"]
    folder = release_dir.parent / "cluster" / tenant(release_dir)["cluster"]["name"]
    return [o for o in load(folder) if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == release]


def _ann(obj: Obj, key: str, default: str = "") -> str:
    return str((obj.get("metadata", {}).get("annotations") or {}).get(key, default))


def _order(obj: Obj) -> tuple[int, str]:
    kind = obj["kind"]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), obj["metadata"]["name"])


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    not_served: list[str] = field(default_factory=list)
    hooks: dict[str, str] = field(default_factory=dict)  # name -> "Succeeded" / "Failed: ..."
    not_run: list[str] = field(default_factory=list)  # workloads whose image the kubelet does not run
    waves: list[tuple[str, int, float]] = field(default_factory=list)  # (phase, wave, seconds)


class SyncFailed(AssertionError):
    pass


class ArgoCD:
    def __init__(self, kube: Any, kubelet: Kubelet, namespace: str) -> None:
        self.kube = kube
        self.kubelet = kubelet
        self.namespace = namespace

    def served(self, obj: Obj) -> bool:
        key = (obj["apiVersion"], obj["kind"])
        if key not in self.kube._discovery:
            self.kube.refresh_discovery()
        return key in self.kube._discovery

    def sync_platform(self, objects: list[Obj]) -> list[str]:
        """The platform Application's sync of a tenant's cluster-scoped files (in Argo CD's kind order)."""
        applied = []
        for obj in sorted(objects, key=_order):
            self.kube.apply(obj)
            applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return applied

    def sync(self, objects: list[Obj], wave_timeout: float = 180.0) -> SyncResult:
        res = SyncResult()
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        if self.kube.get(ns) is None:
            raise SyncFailed(f"namespace {self.namespace} does not exist: the platform Application creates it first")
        tasks: dict[tuple[int, int, int], list[Obj]] = {}
        phases = {"PreSync": 0, "Sync": 1, "PostSync": 2}
        for obj in objects:
            obj.setdefault("metadata", {})
            if not self.served(obj):
                res.not_served.append(f"{obj['kind']}/{obj['metadata']['name']}")
                continue
            hook = _ann(obj, HOOK)
            phase = phases.get(hook.split(",")[0], 1) if hook else 1
            if hook and hook.split(",")[0] not in phases:
                continue  # Skip, SyncFail, PostDelete: not part of a successful sync
            wave = int(_ann(obj, WAVE, "0"))
            tasks.setdefault((phase, wave, 1 if hook else 0), []).append(obj)
        for phase, wave in sorted({(p, w) for p, w, _ in tasks}):
            t0 = time.monotonic()
            resources = sorted(tasks.get((phase, wave, 0), []), key=_order)
            hooks = sorted(tasks.get((phase, wave, 1), []), key=_order)
            for obj in resources:
                self.kube.apply(obj)
                res.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
            for obj in hooks:
                policy = _ann(obj, DELETE_POLICY, "BeforeHookCreation")
                if "BeforeHookCreation" in policy and self.kube.get(obj) is not None:
                    self.delete(obj)
                    self._wait_gone(obj)
                self.kube.apply(obj)
            self._wait_healthy(resources, hooks, res, wave_timeout)
            res.waves.append(([k for k, v in phases.items() if v == phase][0], wave, time.monotonic() - t0))
        return res

    def delete(self, obj: Obj) -> None:
        """Delete as Argo CD deletes a hook: background propagation (the default for a batch/v1 Job, orphan,
        would leave it waiting for the garbage collector's finalizer)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        status, out = self.kube.request("DELETE", self.kube.path(obj), body, check=False)
        if status not in (200, 202, 404):
            raise SyncFailed(f"DELETE {obj['kind']}/{obj['metadata']['name']}: {status} {out.get('message')}")

    def _wait_gone(self, obj: Obj, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.kube.get(obj) is not None:
            if time.monotonic() > deadline:
                raise SyncFailed(f"{obj['kind']}/{obj['metadata']['name']} not deleted within {timeout:g} s")
            time.sleep(0.2)

    def _wait_healthy(self, resources: list[Obj], hooks: list[Obj], res: SyncResult, timeout: float) -> None:
        kl = self.kubelet
        pending_hooks = {h["metadata"]["name"]: h for h in hooks}
        deployments = [o for o in resources if o["kind"] in ("Deployment", "StatefulSet")]
        for d in deployments:
            c = d["spec"]["template"]["spec"]["containers"]
            from tests.e2e.kubelet import program_for

            if all(program_for(x["image"]).skip for x in c):
                res.not_run.append(f"{d['kind']}/{d['metadata']['name']}")
        deadline = time.monotonic() + timeout
        while True:
            kl.check()
            for name in list(pending_hooks):
                obj = pending_hooks[name]
                live = self.kube.get(obj)
                st = kl.jobs.get((self.namespace, name))
                if live is None or st is None or st["uid"] != live["metadata"]["uid"] or not st["done"]:
                    continue
                policy = _ann(obj, DELETE_POLICY, "BeforeHookCreation")
                res.hooks[name] = "Succeeded" if st["done"] == "Complete" else st["done"]
                del pending_hooks[name]
                if st["done"] == "Complete" and "HookSucceeded" in policy:
                    self.delete(obj)
                if st["done"] != "Complete":
                    if "HookFailed" in policy:
                        self.delete(obj)
                    raise SyncFailed(f"hook Job {name}: {st['done']}\n{kl.report()}")
            unready = []
            for d in deployments:
                ref = f"{d['kind']}/{d['metadata']['name']}"
                if ref in res.not_run:
                    continue
                pods = kl.pods_of(ref, self.namespace)
                live = self.kube.get(d) or d  # replicas as the HPA left them
                if len(pods) != int(live["spec"].get("replicas", 1)) or not all(p.ready for p in pods):
                    unready.append(ref)
            if not pending_hooks and not unready:
                return
            if time.monotonic() > deadline:
                raise SyncFailed(
                    f"not healthy within {timeout:g} s: hooks {sorted(pending_hooks)}, workloads {unready}\n"
                    + kl.report()
                )
            time.sleep(0.2)
