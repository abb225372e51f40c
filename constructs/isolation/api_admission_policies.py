"""ApiAdmissionPolicies: ValidatingAdmissionPolicies that confine the API's cluster-wide rights (dist/cluster/).

Why (platform-facts §16, "RBAC escalation rules"): ClusterRole ``iotistic-virtual-agent-manager``
(constructs/isolation/cluster_rbac.py) is bound cluster-wide, and RBAC cannot say "only namespaces named
``fleet-*``". With ``create rolebindings`` plus ``bind`` on ``iotistic-fleet-namespace-manager`` the
API's ServiceAccount could bind that role to itself in ``kube-system``; with ``create``/``patch
namespaces`` it could create any namespace or relabel one to ``pod-security...=privileged``. The old
platform closed this with Kyverno (platform-facts §11, "Kyverno policies assumed"); these policies do
it with the API server's own admission (``failurePolicy: Fail``, binding ``validationActions: [Deny]``).

No policy lists a tenant: each keys on what the request carries, so adding, changing or removing a
tenant changes no file of dist/cluster/ (tests/test_kube_admission.py synthesises a fleet with one more
tenant and compares).

Who: ``matchConditions`` match only ``system:serviceaccount:<namespace>:iotistic-api`` (the API's
hard-coded ServiceAccount, platform-facts §11) in any namespace, so no other user is ever evaluated. The
*requester's namespace* is the third field of that username (``split(':')``, which the 1.28 CEL
environment has). A release whose API holds no cluster-wide grant is evaluated too: RBAC already gives it
nothing the policies would allow elsewhere.

The tenant labels (set by dist/ only: constructs/isolation/release_namespace.py, fleet_namespace.py):
``iotistica.com/tenant=<release namespace>`` on a release namespace and its chart-provisioned fleet
namespaces, ``iotistica.com/release-namespace=true`` on a release namespace. The API may never add, change
or remove them (``fleet-identity-unchanged``), nor create a namespace that carries them other than as
below, so it cannot forge them.

A *fleet namespace of the requester* is, for a namespace object N (``object``, ``oldObject`` or
``namespaceObject``), never a release namespace (label ``iotistica.com/release-namespace``) and either
- one the API makes itself (platform-facts §11): named ``fleet-<8 hex>``, labelled
  ``app.kubernetes.io/managed-by=iotistic-api``, without ``iotistica.com/fleet-namespace``, and without
  ``iotistica.com/tenant`` or with the requester's namespace there. The deployer's own labels name no
  release (its ``customer-id`` is the platform's customer UUID), so an unlabelled one is any API's:
  docs/guardrail.md, "Limits"; or
- a chart-provisioned one of the requester's release (seed "Fleet Namespaces"), labelled
  ``iotistica.com/fleet-namespace=true``, ``iotistica.com/tenant`` and ``iotistica.com/customer-id`` both
  the requester's namespace, and named ``fleet-<that namespace>-…``. The labels decide, not the name: a
  tenant ``a`` with fleet ``b-c`` (``fleet-a-b-c``) is ``a``'s, never that of a tenant ``a-b``.
Name alone is never enough: ``fleet-default``/``fleet-local`` are other products' namespaces, and the
label pair is what the release NetworkPolicies select fleet namespaces by (constructs/isolation/fleet_namespace.py).

The policies (each message starts with ``<policy>/<rule>:``, the rule that refused the request):
- ``iotistic-api-namespaces``: CREATE only a ``fleet-<8 hex>`` namespace of the requester or its agent
  namespace (``VIRTUAL_AGENT_NAMESPACE``: ``virtual-agents`` or ``virtual-agents-<its namespace>``,
  labelled ``iotistica.com/namespace-type=virtual-agents`` as the API's ``ensureNamespace`` does, with no
  tenant label); chart-provisioned fleet namespaces come from dist/ only (so no API can take a name
  another tenant's fleet will need); UPDATE only a fleet namespace of the requester, which stays one (its
  identity labels unchanged); no DELETE (soft delete only);
  ``pod-security.kubernetes.io/*`` labels only ``baseline``/``restricted``, never weaker than before,
  versions only ``latest`` or unchanged, no unknown keys.
- ``iotistic-api-fleet-scope``: every namespaced resource the API's ClusterRole grants cluster-wide
  (ResourceQuotas, RoleBindings) only in a fleet namespace of the requester.
- ``iotistic-api-rolebindings``: ``roleRef`` only ClusterRole ``iotistic-fleet-namespace-manager``;
  ``subjects`` only the requesting ServiceAccount itself.
- ``iotistic-api-workloads``: the API's agent namespaces carry no Pod Security label (the API's code
  sets none, platform-facts §11), so its Deployments must meet the node-escape part of ``baseline``
  themselves: no host namespaces, hostPath, host ports, privileged, added capabilities beyond
  baseline's, hostProcess, unmasked /proc or unconfined seccomp.

A validation is never a bare ``variables.x``: kube-apiserver 1.28 refuses such a policy ("must evaluate to
bool", fixed in 1.29; platform-facts §17), so the whole guardrail would be missing there; ``variables.x ==
true`` is accepted by every version (tests/test_kube_admission.py applies them to a real 1.28.4 server).

Every expression is total: ``has()`` and null guards make a malformed object fail its rule (with the
rule's message) instead of raising an evaluation error. tests/test_kube_admission.py enforces them on a real
kube-apiserver 1.28.4; tests/test_admission_policies.py evaluates what 1.28 cannot show with a CEL library.
The objects are plain ``ApiObject`` s: cdk8s-plus-27's ``k8s`` module
(Kubernetes 1.27) has no admissionregistration ``v1`` policies.
"""

from __future__ import annotations

import json
from typing import Any

from cdk8s import ApiObject, ApiObjectMetadata

from constructs.api_objects import Component, JsonPatch, Scope, api_object
from constructs.isolation.cluster_rbac import CLUSTER_WIDE, FLEET_NAMESPACE_MANAGER, RBAC_GROUP, cluster_labels
from constructs.isolation.fleet_namespace import CUSTOMER_ID_LABEL, FLEET_NAMESPACE_LABEL
from constructs.isolation.release_namespace import RELEASE_NAMESPACE_LABEL, TENANT_LABEL
from tiers.models import DEFAULT_AGENT_NAMESPACE, Environment
from tiers.shared import ApiAdmissionPoliciesProps, granted

SERVICE_ACCOUNT = "iotistic-api"  # constructs/core/api_service.py SERVICE_ACCOUNT (platform-facts §11)
GROUP = "admissionregistration.k8s.io"
USER = "request.userInfo.username"
PSS = "pod-security.kubernetes.io/"
PSS_MODES = ("audit", "enforce", "warn")
PSS_KEYS = tuple(sorted([*PSS_MODES, *(f"{m}-version" for m in PSS_MODES)]))
LEVELS = {"privileged": 0, "baseline": 1, "restricted": 2}
#: Labels that make a namespace a fleet or release namespace, name its tenant, and select it in
#: NetworkPolicies: immutable for the API.
IDENTITY_LABELS = (
    "app.kubernetes.io/managed-by",
    CUSTOMER_ID_LABEL,
    FLEET_NAMESPACE_LABEL,
    RELEASE_NAMESPACE_LABEL,
    TENANT_LABEL,
)
API_MANAGED_BY = "iotistic-api"
API_FLEET_NAME = "^fleet-[0-9a-f]{8}$"
#: Who is evaluated: the API's ServiceAccount in any namespace (a DNS-1123 label).
API_USER = "^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:" + "iotistic-api" + "$"
#: The agent namespace (``VIRTUAL_AGENT_NAMESPACE``, platform-facts §11): this name, or it and ``-<namespace>``.
AGENT_NAMESPACE = DEFAULT_AGENT_NAMESPACE
AGENT_NAMESPACE_TYPE = ("iotistica.com/namespace-type", "virtual-agents")
#: Capabilities the Pod Security Standard ``baseline`` allows to add.
BASELINE_CAPABILITIES = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)

NAMESPACES = "iotistic-api-namespaces"
FLEET_SCOPE = "iotistic-api-fleet-scope"
ROLEBINDINGS = "iotistic-api-rolebindings"
WORKLOADS = "iotistic-api-workloads"


def username(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


def unguarded_warning(env: Environment) -> str | None:
    """The warning ``validate`` and ``explain`` print when the guardrail is off and the grant exists."""
    if env.cluster.admission_policies != "none" or not granted(env):
        return None
    return (
        "cluster.admissionPolicies: none: the API's ServiceAccount keeps a cluster-wide grant (create/patch "
        "namespaces, create RoleBindings and ResourceQuotas in any namespace, kube-system included) with no "
        "admission guardrail in dist/cluster/; the cluster must confine it by other means (README: The API's "
        "cluster rights and their guardrail)"
    )


# --------------------------------------------------------------------------------------------------
# CEL building blocks (strings). R is a root: object, oldObject or namespaceObject.
# --------------------------------------------------------------------------------------------------


def lit(value: Any) -> str:
    """A CEL literal (strings, lists, maps of them): JSON with single-quoted strings."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(value)


def _meta(r: str) -> str:
    return f"{r} != null && has({r}.metadata)"


def _name(r: str) -> str:
    return f"({_meta(r)} && has({r}.metadata.name) ? {r}.metadata.name : '')"


def has_label(r: str, key: str) -> str:
    """``key`` is a CEL string expression (a literal or a macro variable)."""
    return f"({_meta(r)} && has({r}.metadata.labels) && {key} in {r}.metadata.labels)"


def label(r: str, key: str) -> str:
    return f"({has_label(r, key)} ? {r}.metadata.labels[{key}] : '')"


def _is_api_fleet(r: str, name: str) -> str:
    """A ``fleet-<8 hex>`` namespace as the API's createFleetNamespace makes it, of no other tenant."""
    tenant = lit(TENANT_LABEL)
    return (
        f"({name}.matches({lit(API_FLEET_NAME)}) && {label(r, lit('app.kubernetes.io/managed-by'))} == "
        f"{lit(API_MANAGED_BY)} && !{has_label(r, lit(FLEET_NAMESPACE_LABEL))} && "
        f"(!{has_label(r, tenant)} || {label(r, tenant)} == variables.requesterNamespace))"
    )


def _is_fleet(r: str, name: str) -> str:
    """``name`` is the variable holding ``_name(r)``."""
    chart_made = (
        f"({label(r, lit(FLEET_NAMESPACE_LABEL))} == 'true' && {label(r, lit(TENANT_LABEL))} == "
        f"variables.requesterNamespace && {label(r, lit(CUSTOMER_ID_LABEL))} == variables.requesterNamespace && "
        f"{name}.startsWith('fleet-' + variables.requesterNamespace + '-'))"
    )
    return f"!{has_label(r, lit(RELEASE_NAMESPACE_LABEL))} && ({_is_api_fleet(r, name)} || {chart_made})"


def _rank(r: str, key: str) -> str:
    value = label(r, key)
    return f"({has_label(r, key)} ? ({value} in variables.levels ? variables.levels[{value}] : -1) : 0)"


#: The requester's namespace: the matchCondition guarantees ``system:serviceaccount:<ns>:iotistic-api``.
REQUESTER = ("requesterNamespace", f"{USER}.split(':')[2]")


Rule = tuple[str, str, str]  # (rule name, expression, message)
Variables = list[tuple[str, str]]


def namespace_policy() -> tuple[Variables, list[Rule]]:
    obj, old = "object", "oldObject"
    modes = lit(list(PSS_MODES))
    type_key, type_value = AGENT_NAMESPACE_TYPE
    tenant_labels = [CUSTOMER_ID_LABEL, FLEET_NAMESPACE_LABEL, RELEASE_NAMESPACE_LABEL, TENANT_LABEL]
    variables = [
        REQUESTER,
        ("levels", lit(LEVELS)),
        ("newName", _name(obj)),
        ("oldName", _name(old)),
        ("newIsFleet", _is_fleet(obj, "variables.newName")),
        ("oldIsFleet", _is_fleet(old, "variables.oldName")),
        (
            "newIsApiFleet",
            f"!{has_label(obj, lit(RELEASE_NAMESPACE_LABEL))} && {_is_api_fleet(obj, 'variables.newName')}",
        ),
        (
            "newIsAgentNamespace",
            f"(variables.newName == {lit(AGENT_NAMESPACE)} || variables.newName == {lit(AGENT_NAMESPACE + '-')} + "
            f"variables.requesterNamespace) && {label(obj, lit(type_key))} == {lit(type_value)} && "
            f"{lit(tenant_labels)}.all(k, !{has_label(obj, 'k')})",
        ),
    ]
    key = f"{lit(PSS)} + m"
    version = f"{lit(PSS)} + m + '-version'"
    rules: list[Rule] = [
        (
            "no-delete",
            "request.operation != 'DELETE'",
            "the API never deletes a namespace; it soft-deletes with the iotistica.com/termination-requested labels",
        ),
        (
            "create-fleet-or-agent-namespace",
            "request.operation != 'CREATE' || variables.newIsApiFleet || variables.newIsAgentNamespace",
            "the API may create only fleet-<8 hex> namespaces labelled app.kubernetes.io/managed-by=iotistic-api "
            "(iotistica.com/tenant, if set, its own namespace) or its agent namespace (virtual-agents or "
            "virtual-agents-<its namespace>, labelled iotistica.com/namespace-type=virtual-agents); release and "
            "chart-provisioned fleet namespaces come from dist/ only",
        ),
        (
            "update-fleet-namespace-only",
            "request.operation != 'UPDATE' || (variables.oldIsFleet && variables.newIsFleet)",
            "the API may change only its fleet namespaces (fleet-<8 hex> labelled "
            "app.kubernetes.io/managed-by=iotistic-api, or its own release's chart-provisioned ones, labelled "
            "iotistica.com/tenant=<its namespace>), never a release namespace or any other",
        ),
        (
            "fleet-identity-unchanged",
            f"request.operation != 'UPDATE' || {lit(list(IDENTITY_LABELS))}.all(k, "
            f"{has_label(old, 'k')} == {has_label(obj, 'k')} && {label(old, 'k')} == {label(obj, 'k')})",
            "the labels app.kubernetes.io/managed-by, iotistica.com/customer-id, iotistica.com/fleet-namespace, "
            "iotistica.com/release-namespace and iotistica.com/tenant of a namespace may not be added, changed or "
            "removed",
        ),
        (
            "pod-security-floor",
            f"{modes}.all(m, !{has_label(obj, key)} || {label(obj, key)} in ['baseline', 'restricted'])",
            "pod-security.kubernetes.io/{enforce,audit,warn} may only be baseline or restricted",
        ),
        (
            "pod-security-not-weaker",
            f"request.operation != 'UPDATE' || {modes}.all(m, {_rank(obj, key)} >= {_rank(old, key)})",
            "pod-security.kubernetes.io/{enforce,audit,warn} may not be lowered or removed",
        ),
        (
            "pod-security-version",
            f"{modes}.all(m, !{has_label(obj, version)} || {label(obj, version)} == 'latest' || "
            f"({has_label(old, version)} && {label(old, version)} == {label(obj, version)}))",
            "pod-security.kubernetes.io/*-version may only be set to latest or left unchanged",
        ),
        (
            "pod-security-keys",
            f"!({_meta(obj)} && has({obj}.metadata.labels)) || {obj}.metadata.labels.all(k, "
            f"!k.startsWith({lit(PSS)}) || k in {lit([PSS + k for k in PSS_KEYS])})",
            "only the pod-security.kubernetes.io labels enforce, audit, warn and their -version may be set",
        ),
    ]
    return variables, rules


def fleet_scope_policy() -> tuple[Variables, list[Rule]]:
    variables = [
        REQUESTER,
        ("namespaceName", _name("namespaceObject")),
        ("namespaceIsFleet", _is_fleet("namespaceObject", "variables.namespaceName")),
    ]
    rules: list[Rule] = [
        (
            "fleet-namespace-only",
            "variables.namespaceIsFleet == true",
            "the API may write ResourceQuotas and RoleBindings only in its fleet namespaces (fleet-<8 hex> labelled "
            "app.kubernetes.io/managed-by=iotistic-api, or its own release's chart-provisioned ones, labelled "
            "iotistica.com/tenant=<its namespace>)",
        )
    ]
    return variables, rules


def rolebinding_policy() -> tuple[Variables, list[Rule]]:
    ref = "object.roleRef"
    rules: list[Rule] = [
        (
            "role-ref",
            f"object != null && has({ref}) && has({ref}.apiGroup) && {ref}.apiGroup == {lit(RBAC_GROUP)} && "
            f"has({ref}.kind) && {ref}.kind == 'ClusterRole' && has({ref}.name) && "
            f"{ref}.name == {lit(FLEET_NAMESPACE_MANAGER)}",
            f"roleRef must be ClusterRole {FLEET_NAMESPACE_MANAGER}",
        ),
        (
            "subjects",
            "object != null && has(object.subjects) && size(object.subjects) > 0 && object.subjects.all(s, "
            f"has(s.kind) && s.kind == 'ServiceAccount' && has(s.name) && s.name == {lit(SERVICE_ACCOUNT)} && "
            f"has(s.namespace) && 'system:serviceaccount:' + s.namespace + ':' + s.name == {USER})",
            "subjects must be exactly the requesting API ServiceAccount",
        ),
    ]
    return [], rules


def workload_policy() -> tuple[Variables, list[Rule]]:
    pod = "object.spec.template.spec"
    variables = [
        (
            "hasPodSpec",
            "object != null && has(object.spec) && has(object.spec.template) && has(object.spec.template.spec)",
        ),
        (
            "containers",
            f"variables.hasPodSpec ? (has({pod}.containers) ? {pod}.containers : []) + "
            f"(has({pod}.initContainers) ? {pod}.initContainers : []) : []",
        ),
    ]
    sc = "c.securityContext"
    rules: list[Rule] = [
        ("pod-template", "variables.hasPodSpec == true", "a Deployment needs spec.template.spec"),
        (
            "host-namespaces",
            f"variables.hasPodSpec && (!has({pod}.hostNetwork) || !{pod}.hostNetwork) && "
            f"(!has({pod}.hostPID) || !{pod}.hostPID) && (!has({pod}.hostIPC) || !{pod}.hostIPC)",
            "hostNetwork, hostPID and hostIPC must be unset or false",
        ),
        (
            "host-path",
            f"variables.hasPodSpec && (!has({pod}.volumes) || {pod}.volumes.all(v, !has(v.hostPath)))",
            "hostPath volumes are not allowed",
        ),
        (
            "privileged",
            f"variables.containers.all(c, !has({sc}) || !has({sc}.privileged) || !{sc}.privileged)",
            "privileged containers are not allowed",
        ),
        (
            "capabilities",
            f"variables.containers.all(c, !has({sc}) || !has({sc}.capabilities) || !has({sc}.capabilities.add) "
            f"|| {sc}.capabilities.add.all(x, x in {lit(list(BASELINE_CAPABILITIES))}))",
            "containers may add only the capabilities the baseline Pod Security Standard allows",
        ),
        (
            "host-ports",
            "variables.containers.all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
            "host ports are not allowed",
        ),
        (
            "host-process",
            f"variables.hasPodSpec && (!has({pod}.securityContext) || !has({pod}.securityContext.windowsOptions) || "
            f"!has({pod}.securityContext.windowsOptions.hostProcess) || "
            f"!{pod}.securityContext.windowsOptions.hostProcess) && variables.containers.all(c, !has({sc}) || "
            f"!has({sc}.windowsOptions) || !has({sc}.windowsOptions.hostProcess) || !{sc}.windowsOptions.hostProcess)",
            "Windows hostProcess is not allowed",
        ),
        (
            "proc-mount",
            f"variables.containers.all(c, !has({sc}) || !has({sc}.procMount) || {sc}.procMount == 'Default')",
            "procMount must be Default",
        ),
        (
            "seccomp",
            f"variables.hasPodSpec && (!has({pod}.securityContext) || !has({pod}.securityContext.seccompProfile) || "
            f"!has({pod}.securityContext.seccompProfile.type) || "
            f"{pod}.securityContext.seccompProfile.type != 'Unconfined') && variables.containers.all(c, "
            f"!has({sc}) || !has({sc}.seccompProfile) || !has({sc}.seccompProfile.type) || "
            f"{sc}.seccompProfile.type != 'Unconfined')",
            "seccompProfile Unconfined is not allowed",
        ),
    ]
    return variables, rules


def _resource_rule(group: str, version: str, resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "apiVersions": [version], "operations": operations, "resources": resources}


def policy_specs() -> dict[str, tuple[list[dict[str, Any]], Variables, list[Rule]]]:
    """Policy name -> (matchConstraints.resourceRules, variables, validations), as plain data."""
    write = ["CREATE", "DELETE", "UPDATE"]
    scoped = sorted(CLUSTER_WIDE - {("", "namespaces")})
    groups: dict[str, list[str]] = {}
    for group, resource in scoped:
        groups.setdefault(group, []).append(resource)
    return {
        NAMESPACES: ([_resource_rule("", "v1", ["namespaces"], write)], *namespace_policy()),
        FLEET_SCOPE: (
            [_resource_rule(g, "v1", sorted(r), write) for g, r in sorted(groups.items())],
            *fleet_scope_policy(),
        ),
        ROLEBINDINGS: (
            [_resource_rule(RBAC_GROUP, "v1", ["rolebindings"], ["CREATE", "UPDATE"])],
            *rolebinding_policy(),
        ),
        WORKLOADS: ([_resource_rule("apps", "v1", ["deployments"], ["CREATE", "UPDATE"])], *workload_policy()),
    }


class ApiAdmissionPolicies(Component):
    """One ValidatingAdmissionPolicy and its Binding per guardrail. Outputs: ``names`` (sorted policy names)."""

    def __init__(self, scope: Scope, id: str, *, props: ApiAdmissionPoliciesProps) -> None:
        super().__init__(scope, id)
        api_version = f"{GROUP}/{props.api_version}"
        self.names: list[str] = []
        for name, (resource_rules, variables, rules) in policy_specs().items():
            spec: dict[str, Any] = {
                "failurePolicy": "Fail",
                "matchConditions": [
                    {"expression": f"{USER}.matches({lit(API_USER)})", "name": "iotistic-api-service-accounts"}
                ],
                "matchConstraints": {"resourceRules": resource_rules},
                "validations": [
                    {"expression": expr, "message": f"{name}/{rule}: {message}", "reason": "Forbidden"}
                    for rule, expr, message in rules
                ],
            }
            if variables:
                spec["variables"] = [{"expression": expr, "name": var} for var, expr in variables]
            policy = api_object(
                ApiObject,
                self,
                name,
                api_version=api_version,
                kind="ValidatingAdmissionPolicy",
                metadata=ApiObjectMetadata(
                    name=name,
                    labels=cluster_labels("api", "admission"),
                    annotations={"iotistica.com/source": "platform-facts §11 Kyverno policies assumed, §16"},
                ),
            )
            policy.add_json_patch(JsonPatch.add("/spec", spec))
            binding = api_object(
                ApiObject,
                self,
                f"{name}-binding",
                api_version=api_version,
                kind="ValidatingAdmissionPolicyBinding",
                metadata=ApiObjectMetadata(name=name, labels=cluster_labels("api", "admission")),
            )
            binding.add_json_patch(JsonPatch.add("/spec", {"policyName": name, "validationActions": ["Deny"]}))
            self.names.append(name)
        self.names.sort()
