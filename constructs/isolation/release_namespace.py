"""ReleaseNamespace: the release's own Namespace object, with Pod Security Admission labels.

- ``dist/cluster/<cluster>/Namespace.<namespace>.k8s.yaml`` (the cluster's platform folder, synced by the
  platform Application before the tenant's) carries the full label set and
  ``pod-security.kubernetes.io/{enforce,audit,warn}`` (``podSecurity.level``, default ``restricted``:
  every pod of the release meets it, tests/test_network_and_rbac.py proves it).
- The tenant labels the API's admission guardrail keys on (constructs/isolation/api_admission_policies.py,
  docs/guardrail.md): ``iotistica.com/tenant: <release namespace>`` (the tenant that owns the namespace;
  chart-provisioned fleet namespaces carry it too) and ``iotistica.com/release-namespace: "true"`` (a
  release namespace: no API may create, change or delete it). Only dist/ sets them; the guardrail refuses
  an API request that adds, changes or removes them.
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
#: The release namespace that owns a namespace (its own, or one of its chart-provisioned fleets').
TENANT_LABEL = "iotistica.com/tenant"
#: Marks a release namespace (value ``"true"``): never a fleet namespace, never the API's to touch.
RELEASE_NAMESPACE_LABEL = "iotistica.com/release-namespace"
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
        tenant = {TENANT_LABEL: rel.namespace, RELEASE_NAMESPACE_LABEL: "true"}
        labels = rel.labels("iotistica", "namespace", {**pss_labels(props.level, props.level, props.level), **tenant})
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
