"""Charts that are not one release: ``dist/cluster/<cluster>/`` and ``dist/argocd/``.

- ``ClusterChart``, one per cluster (``cluster.name``), is the platform folder ``dist/cluster/<cluster>/``
  synced by the platform Application ``iotistica-cluster-<cluster>``: every cluster-scoped object of the
  tenants on that cluster and what they share.
  - Shared: the fleet ClusterRoles and the ValidatingAdmissionPolicies that confine the API's
    cluster-wide grant.
  - Per tenant, one file per object, named after the object (so adding a tenant only adds files): its
    release Namespace, its fleet Namespaces and the API's ClusterRoleBinding
    ``<release>-virtual-agent-manager``. The same objects (labels, annotations) the release chart made
    before they moved here.
- ``ArgoCdChart`` holds the Argo CD objects (constructs/argocd_apps.py): one AppProject per tenant, the
  platform AppProject, the tenants' ApplicationSet, the platform Applications and the app-of-apps.

Both are built from the slice of *all* environments they read (tiers/shared.py ``SharedProps``), also
when ``app.py --env`` limits the release folders, so they never describe a subset.
"""

from __future__ import annotations

from constructs.api_objects import ObjectChart, Root
from tiers.shared import ClusterSlice, SharedProps, TenantClusterObjects, policies_props

CLUSTER = "cluster"
ARGOCD = "argocd"
SHARED_FOLDERS = (ARGOCD, CLUSTER)


def cluster_folder(cluster: str) -> str:
    """The platform folder of one cluster, relative to the output folder."""
    return f"{CLUSTER}/{cluster}"


def only_cluster(props: SharedProps) -> ClusterSlice:
    """The one cluster of a fleet that has one (a fleet without environments: ``in-cluster``, no tenant)."""
    if len(props.clusters) > 1:
        raise ValueError(f"the fleet has {len(props.clusters)} clusters: name the one to build")
    if props.clusters:
        return props.clusters[0]
    return ClusterSlice(
        name="in-cluster", server="https://kubernetes.default.svc", tenants=(), admission=policies_props(())
    )


class ClusterChart(ObjectChart):
    def __init__(self, scope: Root, props: SharedProps, cluster: ClusterSlice | None = None) -> None:
        cluster = cluster if cluster is not None else only_cluster(props)
        super().__init__(scope, f"{CLUSTER}-{cluster.name}", disable_resource_name_hashes=True)
        # Isolation: the API deployer's ClusterRoles (platform-facts §11; instance `cluster`, no tier label).
        from constructs.isolation.cluster_rbac import ClusterRbac

        self.rbac = ClusterRbac(self, "Rbac")
        # The guardrail of the API's cluster-wide grant (platform-facts §16): ValidatingAdmissionPolicies.
        from constructs.isolation.api_admission_policies import ApiAdmissionPolicies

        admission = cluster.admission
        self.admission = ApiAdmissionPolicies(self, "Admission", props=admission) if admission is not None else None
        for tenant in cluster.tenants:
            self._tenant(tenant)

    def _tenant(self, t: TenantClusterObjects) -> None:
        """One tenant's cluster-scoped objects (platform-facts §11: the Namespaces and the API's binding)."""
        from constructs.core.api_service import SERVICE_ACCOUNT
        from constructs.isolation.api_cluster_access import ApiClusterAccess, ApiClusterAccessProps
        from constructs.isolation.fleet_namespace import FleetNamespaceObject, FleetNamespaceObjectProps
        from constructs.isolation.release_namespace import ReleaseNamespace, ReleaseNamespaceProps
        from constructs.platform import Release

        rel = Release(release=t.release, namespace=t.namespace, tier=t.tier, helm_selectors=frozenset(t.helm_selectors))
        if t.namespace_level is not None:
            ReleaseNamespace(
                self, f"{t.release}-Namespace", props=ReleaseNamespaceProps(release=rel, level=t.namespace_level)
            )
        if t.cluster_access:
            ApiClusterAccess(
                self,
                f"{t.release}-ApiClusterAccess",
                props=ApiClusterAccessProps(release=rel, service_account=SERVICE_ACCOUNT),
            )
        for f in t.fleets:
            FleetNamespaceObject(
                self,
                f"{t.release}-Fleet-{f.fleet.name}",
                props=FleetNamespaceObjectProps(
                    release=rel, fleet=f.fleet, namespace=f.namespace, enforce=t.fleet_enforce
                ),
            )


class ArgoCdChart(ObjectChart):
    def __init__(self, scope: Root, props: SharedProps) -> None:
        super().__init__(scope, ARGOCD, disable_resource_name_hashes=True)
        # Delivery: the AppProjects, the tenants' ApplicationSet, the platform Applications, the app-of-apps.
        from constructs.argocd_apps import ArgoCdApplications

        self.applications = ArgoCdApplications(self, "Applications", props=props.argocd)
