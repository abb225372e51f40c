"""ApiClusterAccess: binds the API's ServiceAccount to ``iotistic-virtual-agent-manager`` cluster-wide.

The ClusterRole itself is shared (dist/cluster/<cluster>/, constructs/isolation/cluster_rbac.py); the binding
names this release's namespace in its subject: it is the release's own file in its cluster's platform
folder, ``dist/cluster/<cluster>/ClusterRoleBinding.{release}-virtual-agent-manager.k8s.yaml``.
It grants only the calls that cannot be scoped to a namespace the API already owns (see cluster_rbac.py);
everything the API does inside a fleet namespace comes from that namespace's RoleBinding.
"""

from __future__ import annotations

from cdk8s_plus_27 import k8s

from constructs.api_objects import Component, Scope, api_object
from constructs.isolation.cluster_rbac import RBAC_GROUP, VIRTUAL_AGENT_MANAGER
from constructs.isolation.release_namespace import cluster_scoped
from constructs.platform import Props, Release


class ApiClusterAccessProps(Props):
    release: Release
    service_account: str


class ApiClusterAccess(Component):
    """Outputs: ``name``."""

    def __init__(self, scope: Scope, id: str, *, props: ApiClusterAccessProps) -> None:
        super().__init__(scope, id)
        rel = props.release
        self.name = rel.name("virtual-agent-manager")
        cluster_scoped(
            api_object(
                k8s.KubeClusterRoleBinding,
                self,
                "Binding",
                metadata=k8s.ObjectMeta(name=self.name, labels=rel.labels("api", "api")),
                role_ref=k8s.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=VIRTUAL_AGENT_MANAGER),
                subjects=[k8s.Subject(kind="ServiceAccount", name=props.service_account, namespace=rel.namespace)],
            )
        )
