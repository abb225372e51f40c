"""Charts that are not one release: ``dist/cluster/`` and ``dist/argocd/``.

- ``ClusterChart`` holds cluster-scoped objects shared by every release (the fleet ClusterRoles and the
  ValidatingAdmissionPolicies that confine the API's cluster-wide grant).
- ``ArgoCdChart`` holds the Argo CD Applications (one per release) and the app-of-apps.

Both are built from the slice of *all* environments they read (tiers/shared.py ``SharedProps``), also
when ``app.py --env`` limits the release folders, so they never describe a subset.
"""

from __future__ import annotations

from constructs.api_objects import ObjectChart, Root
from tiers.shared import SharedProps

CLUSTER = "cluster"
ARGOCD = "argocd"
SHARED_FOLDERS = (ARGOCD, CLUSTER)


class ClusterChart(ObjectChart):
    def __init__(self, scope: Root, props: SharedProps) -> None:
        super().__init__(scope, CLUSTER, disable_resource_name_hashes=True)
        # Isolation: the API deployer's ClusterRoles (platform-facts §11; instance `cluster`, no tier label).
        from constructs.isolation.cluster_rbac import ClusterRbac

        self.rbac = ClusterRbac(self, "Rbac")
        # The guardrail of the API's cluster-wide grant (platform-facts §16): ValidatingAdmissionPolicies.
        from constructs.isolation.api_admission_policies import ApiAdmissionPolicies

        admission = props.admission
        self.admission = ApiAdmissionPolicies(self, "Admission", props=admission) if admission is not None else None


class ArgoCdChart(ObjectChart):
    def __init__(self, scope: Root, props: SharedProps) -> None:
        super().__init__(scope, ARGOCD, disable_resource_name_hashes=True)
        # Delivery: one Application per environment, dist/cluster/, and the app-of-apps.
        from constructs.argocd_apps import ArgoCdApplications

        self.applications = ArgoCdApplications(self, "Applications", props=props.argocd)
