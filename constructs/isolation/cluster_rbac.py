"""ClusterRbac: the ClusterRoles of the API's virtual-agent deployer, shared by every release (dist/cluster/).

The rules are exactly the calls ``api/src/services/provisioning/virtual-agent-deployer.ts`` makes
(platform-facts §11, "RBAC verbs the deployer code uses"), split by where the call happens:

- ``iotistic-fleet-namespace-manager`` (bound per fleet namespace by a RoleBinding): what the API
  does *inside* a fleet namespace: agent Secrets, claims, Deployments, events, pods.
- ``iotistic-virtual-agent-manager`` (bound cluster-wide, per release, by a ClusterRoleBinding in
  ``dist/<release>/``): calls on namespaces themselves (get, create, and patch for the soft-delete
  labels), plus the quota and RoleBinding the API creates in a namespace it has *just* created, where
  no RoleBinding grants it anything yet.

One rule is not a deployer call but what Kubernetes requires for one: creating a RoleBinding to a
ClusterRole needs either every permission of that role in the namespace (which the API lacks in a new
namespace) or ``bind`` on the role (RBAC escalation prevention). ``bind`` is granted on
``iotistic-fleet-namespace-manager`` only (``resourceNames``), so the API can hand out that role and
nothing else. The hardened roles of the old charts lacked deletes, event and quota listing, namespace
create/patch and RoleBinding create, and so broke the API.

Labels: the platform's set with ``app.kubernetes.io/instance: cluster`` and **no**
``iotistica.com/tier``: these objects serve every tier, and a tier value would be a lie.
"""

from __future__ import annotations

from cdk8s_plus_27 import k8s

from constructs.api_objects import Component, KubeObject, Scope, api_object
from constructs.platform import MANAGED_BY, PART_OF

FLEET_NAMESPACE_MANAGER = "iotistic-fleet-namespace-manager"
VIRTUAL_AGENT_MANAGER = "iotistic-virtual-agent-manager"
RBAC_GROUP = "rbac.authorization.k8s.io"
CLUSTER_INSTANCE = "cluster"

#: Every (api group, resource) the deployer calls, with its verbs (platform-facts §11).
DEPLOYER_VERBS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "namespaces"): ("create", "get", "patch"),
    ("", "resourcequotas"): ("create", "list"),
    ("", "secrets"): ("create", "delete", "get", "update"),
    ("", "persistentvolumeclaims"): ("create", "delete"),
    ("apps", "deployments"): ("create", "delete", "get", "patch", "update"),
    ("", "events"): ("list",),
    ("", "pods"): ("delete", "list"),
    (RBAC_GROUP, "rolebindings"): ("create",),
}

#: Calls that cannot rely on a RoleBinding: on namespaces, or in a namespace the API just created.
CLUSTER_WIDE: frozenset[tuple[str, str]] = frozenset(
    {("", "namespaces"), ("", "resourcequotas"), (RBAC_GROUP, "rolebindings")}
)

#: The one rule that is not a deployer call (see the module docstring): RBAC escalation prevention.
BIND_RULE = {
    "apiGroups": [RBAC_GROUP],
    "resources": ["clusterroles"],
    "verbs": ["bind"],
    "resourceNames": [FLEET_NAMESPACE_MANAGER],
}


def _rules(keys: list[tuple[str, str]]) -> list[dict[str, list[str]]]:
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(DEPLOYER_VERBS[(group, resource)])}
        for group, resource in sorted(keys)
    ]


#: ClusterRole name -> its rules, as plain data (tests compare them with the facts).
ROLES: dict[str, list[dict[str, list[str]]]] = {
    FLEET_NAMESPACE_MANAGER: _rules([k for k in DEPLOYER_VERBS if k not in CLUSTER_WIDE]),
    VIRTUAL_AGENT_MANAGER: [*_rules(sorted(CLUSTER_WIDE)), BIND_RULE],
}


def cluster_labels(app: str, component: str) -> dict[str, str]:
    """The label set of objects shared by every release: instance ``cluster``, no tier label."""
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": CLUSTER_INSTANCE,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": PART_OF,
    }


class ClusterRbac(Component):
    """The two ClusterRoles. Outputs: ``roles`` (name -> KubeClusterRole)."""

    def __init__(self, scope: Scope, id: str) -> None:
        super().__init__(scope, id)
        self.roles: dict[str, KubeObject] = {}
        for name, rules in ROLES.items():
            self.roles[name] = api_object(
                k8s.KubeClusterRole,
                self,
                name,
                metadata=k8s.ObjectMeta(
                    name=name,
                    labels=cluster_labels("api", "rbac"),
                    annotations={"iotistica.com/source": "platform-facts §11: RBAC verbs the deployer code uses"},
                ),
                rules=[
                    k8s.PolicyRule(
                        api_groups=r["apiGroups"],
                        resources=r["resources"],
                        verbs=r["verbs"],
                        resource_names=r.get("resourceNames"),
                    )
                    for r in rules
                ],
            )
