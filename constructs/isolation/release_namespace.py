"""ReleaseNamespace: the release's own Namespace object, with Pod Security Admission labels.

- ``dist/cluster/<cluster>/Namespace.<namespace>.k8s.yaml`` (the cluster's platform folder, synced by the
  platform Application before the tenant's) carries the full label set and
  ``pod-security.kubernetes.io/{enforce,audit,warn}`` (``podSecurity.level``, default ``restricted``:
  every pod of the release meets it, tests/test_network_and_rbac.py proves it).
- ``Prune=false``: deleting the Argo CD Application (or this object from git) must never delete the
  namespace and everything in it.

Also the two helpers every cluster-scoped object of a release needs: :func:`pss_labels` and
:func:`cluster_scoped` (a Chart with a namespace stamps it on every object, cluster-scoped ones too).
"""

from __future__ import annotations

from typing import Literal

from cdk8s_plus_27 import k8s

from constructs.api_objects import Component, JsonPatch, KubeObject, Scope, api_object
from constructs.platform import Props, Release

PSS_PREFIX = "pod-security.kubernetes.io"
PSS_MODES = ("enforce", "audit", "warn")
ARGOCD_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
NO_PRUNE = "Prune=false"

Level = Literal["privileged", "baseline", "restricted"]


def pss_labels(enforce: Level, audit: Level = "restricted", warn: Level = "restricted") -> dict[str, str]:
    """Pod Security Admission labels of a namespace."""
    return {f"{PSS_PREFIX}/audit": audit, f"{PSS_PREFIX}/enforce": enforce, f"{PSS_PREFIX}/warn": warn}


def cluster_scoped(obj: KubeObject) -> KubeObject:
    """Drop the metadata.namespace that a namespaced Chart stamps on every object."""
    obj.add_json_patch(JsonPatch.remove("/metadata/namespace"))
    return obj


class ReleaseNamespaceProps(Props):
    release: Release
    level: Literal["baseline", "restricted"]


class ReleaseNamespace(Component):
    """Outputs: ``name``."""

    def __init__(self, scope: Scope, id: str, *, props: ReleaseNamespaceProps) -> None:
        super().__init__(scope, id)
        rel = props.release
        self.name = rel.namespace
        labels = rel.labels("iotistica", "namespace", pss_labels(props.level, props.level, props.level))
        cluster_scoped(
            api_object(
                k8s.KubeNamespace,
                self,
                "Namespace",
                metadata=k8s.ObjectMeta(
                    name=rel.namespace,
                    labels=dict(sorted(labels.items())),
                    annotations={ARGOCD_SYNC_OPTIONS: NO_PRUNE},
                ),
            )
        )
