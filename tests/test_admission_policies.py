"""The API's admission guardrail (dist/cluster/ ValidatingAdmissionPolicies): what a 1.28 server cannot show.

tests/test_kube_admission.py proves the guardrail on a real kube-apiserver 1.28.4 (the deployer's requests
allowed, every escalation denied by the server with the policy's message, nobody else evaluated). Kept here,
evaluated with a CEL library: the rules a 1.28 server refuses or drops before admission (hostProcess without
hostNetwork, procMount, unknown Pod Security levels), malformed objects (a server validates before admission),
the v1 API's schema (1.30+), a custom agent namespace, and the ``cluster.admissionPolicies`` setting.

The expressions are read from the committed dist/cluster/ files (tests/test_dist.py proves they equal a
fresh synth) and run by ``common-expression-language`` (the Rust cel-interpreter, which like cel-go
raises on ``has()`` over null and uses heterogeneous equality). ``Vap`` mirrors the API server's
semantics (platform-facts §16): a policy applies when a resource rule matches the request's
group/version/resource/operation and *every* matchCondition is true; then each variable is bound and
each validation must be true, else the request is denied with that validation's message; an
evaluation error under ``failurePolicy: Fail`` is a denial too, which these tests treat as a defect.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import cel
import kubernetes_validate
import pytest
import yaml

from constructs.isolation.api_admission_policies import BASELINE_CAPABILITIES, unguarded_warning
from constructs.isolation.cluster_rbac import ROLES, VIRTUAL_AGENT_MANAGER
from constructs.shared_charts import ClusterChart
from tests.helpers import API_FLEET, BASE, agent_deployment, binding, env_from, error_of, kinds
from tiers.loader import ConfigError
from tiers.models import AdmissionPolicyVersion, Cluster, Environment

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DIR = ROOT / "dist" / "cluster" / "in-cluster"
DEMO = "system:serviceaccount:demo:iotistic-api"  # release client-demo, namespace demo
IOT = "system:serviceaccount:iotistica:iotistic-api"  # release iotistica, chart fleet fleet-iotistica-pilot
GROUPS = ["system:serviceaccounts", "system:serviceaccounts:demo", "system:authenticated"]
Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# A tiny ValidatingAdmissionPolicy evaluator (the API server's semantics)
# --------------------------------------------------------------------------------------------------


class EvalError(Exception):
    pass


def _split(value: str, separator: str) -> list[str]:
    """Kubernetes' CEL ``<string>.split(<string>)`` (cel-go's strings extension, served by 1.28: the policies'
    matchCondition and variables use it, tests/test_kube_admission.py runs them there); this library has no
    strings extension, so it gets the same function (Go's strings.Split for a non-empty separator)."""
    return value.split(separator)


def run(expression: str, context: dict[str, Any]) -> Any:
    ctx = cel.Context()
    ctx.update(context)
    ctx.add_function("split", _split)
    try:
        return cel.evaluate(expression, ctx)
    except Exception as exc:  # the engine's error types: evaluation failed
        raise EvalError(f"{expression[:80]}...: {type(exc).__name__}: {exc}") from None


@dataclass
class Decision:
    allowed: bool
    message: str | None = None
    matched: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _rule_matches(rule: Obj, resource: Obj, operation: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return (
        has(rule["apiGroups"], resource["group"])
        and has(rule["apiVersions"], resource["version"])
        and has(rule["resources"], resource["resource"])
        and has(rule["operations"], operation)
    )


class Vap:
    def __init__(self, objects: list[Obj]) -> None:
        self.policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"}
        self.bindings = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"}

    def admit(self, context: dict[str, Any], *, all_rules: bool = True) -> Decision:
        """Every bound policy in turn; the first denial wins. With all_rules, every validation is evaluated
        (to prove each expression total), not only up to the first false one."""
        req = context["request"]
        decision = Decision(allowed=True)
        for bound in self.bindings.values():
            assert bound["spec"]["validationActions"] == ["Deny"]
            policy = self.policies[bound["spec"]["policyName"]]
            spec = policy["spec"]
            assert spec["failurePolicy"] == "Fail"
            rules = spec["matchConstraints"]["resourceRules"]
            if not any(_rule_matches(r, req["resource"], req["operation"]) for r in rules):
                continue
            try:
                conditions = [run(c["expression"], context) for c in spec.get("matchConditions", [])]
            except EvalError as exc:
                decision.errors.append(str(exc))
                return Decision(False, f"matchCondition error: {exc}", decision.matched, decision.errors)
            assert all(isinstance(c, bool) for c in conditions)
            if not all(conditions):
                continue
            decision.matched.append(policy["metadata"]["name"])
            ctx = {**context, "variables": {}}
            try:
                for var in spec.get("variables", []):
                    ctx["variables"] = {**ctx["variables"], var["name"]: run(var["expression"], ctx)}
                for v in spec["validations"]:
                    ok = run(v["expression"], ctx)
                    if not isinstance(ok, bool):
                        raise EvalError(f"{v['message']}: not a bool: {ok!r}")
                    if not ok and decision.allowed:
                        decision.allowed, decision.message = False, v["message"]
                        if not all_rules:
                            return decision
            except EvalError as exc:
                decision.errors.append(str(exc))
                decision.allowed = False
                decision.message = decision.message or f"evaluation error: {exc}"
        return decision


def load(path: Path) -> list[Obj]:
    return [yaml.safe_load(p.read_text()) for p in sorted(path.glob("ValidatingAdmissionPolicy*.yaml"))]


@pytest.fixture(scope="module")
def vap() -> Vap:
    return Vap(load(CLUSTER_DIR))


# --------------------------------------------------------------------------------------------------
# Admission requests shaped as the API server sends them
# --------------------------------------------------------------------------------------------------

RESOURCES = {
    "Namespace": ("", "v1", "namespaces"),
    "ResourceQuota": ("", "v1", "resourcequotas"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "Deployment": ("apps", "v1", "deployments"),
}


def ns(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
    }


def api_fleet_ns(name: str = API_FLEET, **extra: str) -> Obj:
    """A namespace as the API's createFleetNamespace makes it (platform-facts §11)."""
    return ns(
        name,
        {
            "app.kubernetes.io/managed-by": "iotistic-api",
            "iotistica.com/fleet-uuid": "1a2b3c4d-0000-4000-8000-000000000001",
            "iotistica.com/fleet-name": "line-3",
            "iotistica.com/fleet-type": "virtual",
            "iotistica.com/customer-id": "cust-42",
            **extra,
        },
    )


#: The cluster's namespaces (the namespaceObject of namespaced requests).
CLUSTER = {
    "kube-system": ns("kube-system"),
    "demo": ns("demo", {"pod-security.kubernetes.io/enforce": "restricted"}),
    "iotistica": ns("iotistica", {"pod-security.kubernetes.io/enforce": "restricted"}),
    API_FLEET: api_fleet_ns(),
    "fleet-default": ns("fleet-default"),  # another product's namespace named fleet-*
    "virtual-agents": ns("virtual-agents", {"iotistica.com/namespace-type": "virtual-agents"}),
}


def request(
    user: str, operation: str, obj: Obj | None, old: Obj | None = None, namespace: str | None = None
) -> dict[str, Any]:
    target = obj if obj is not None else old
    assert target is not None
    group, version, resource = RESOURCES[target["kind"]]
    namespace = namespace or target["metadata"].get("namespace")
    ns_obj = None
    if target["kind"] != "Namespace":
        ns_obj = copy.deepcopy(CLUSTER.get(namespace or "", ns(namespace or "")))
    return {
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": {"group": group, "version": version, "kind": target["kind"]},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": target["metadata"].get("name", ""),
            "namespace": namespace or "",
            "operation": operation,
            "userInfo": {"username": user, "groups": GROUPS, "uid": "u-1"},
            "dryRun": False,
        },
        "object": obj,
        "oldObject": old,
        "namespaceObject": ns_obj,
        "params": None,
    }


def quota(namespace: str, name: str = "fleet-quota") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": {"pods": "4", "requests.cpu": "1400m", "limits.memory": "2560Mi"}},
    }


def relabel(obj: Obj, **labels: str | None) -> Obj:
    new = copy.deepcopy(obj)
    for k, v in labels.items():
        key = k.replace("__", "/").replace("_", "-").replace("pod-security/", "pod-security.kubernetes.io/")
        if v is None:
            new["metadata"]["labels"].pop(key, None)
        else:
            new["metadata"]["labels"][key] = v
    return new


def assert_allowed(vap: Vap, ctx: dict[str, Any]) -> Decision:
    d = vap.admit(ctx)
    assert not d.errors, d.errors
    assert d.allowed, d.message
    assert d.matched, "the request must have been checked by a policy"
    return d


def assert_denied(vap: Vap, ctx: dict[str, Any], message: str) -> None:
    d = vap.admit(ctx)
    assert not d.errors, f"an evaluation error is not a denial by a rule: {d.errors}"
    assert not d.allowed
    assert d.message is not None and d.message.startswith(message), d.message


# --------------------------------------------------------------------------------------------------
# Rules a 1.28 server cannot show (tests/test_kube_admission.py proves the others on kube-apiserver 1.28.4)
# --------------------------------------------------------------------------------------------------


def test_host_process_is_denied(vap: Vap) -> None:
    """A server's own validation allows hostProcess only with hostNetwork, which host-namespaces refuses first;
    the rule itself is shown here (pod and container level)."""
    pod = agent_deployment(securityContext={"windowsOptions": {"hostProcess": True}})
    assert_denied(vap, request(DEMO, "CREATE", pod), "iotistic-api-workloads/host-process")
    dep = agent_deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"windowsOptions": {"hostProcess": True}}
    assert_denied(vap, request(DEMO, "CREATE", dep), "iotistic-api-workloads/host-process")


def test_proc_mount_is_denied(vap: Vap) -> None:
    """1.28 drops securityContext.procMount before admission unless the ProcMountType gate is on."""
    for where in ("containers", "initContainers"):
        dep = agent_deployment()
        spec = dep["spec"]["template"]["spec"]
        c = {**copy.deepcopy(spec["containers"][0]), "name": "x", "securityContext": {"procMount": "Unmasked"}}
        spec[where] = [*spec.get(where, []), c]
        assert_denied(vap, request(DEMO, "UPDATE", dep, agent_deployment()), "iotistic-api-workloads/proc-mount")
    dep = agent_deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": list(BASELINE_CAPABILITIES), "drop": ["ALL"]}
    }
    assert_allowed(vap, request(DEMO, "CREATE", dep))


def test_unknown_pod_security_level_is_denied(vap: Vap) -> None:
    """A server's PodSecurity admission refuses an unknown level before the policy; the policy does too."""
    old = CLUSTER[API_FLEET]
    assert_denied(
        vap,
        request(DEMO, "UPDATE", relabel(old, pod_security__enforce="bogus"), old),
        "iotistic-api-namespaces/pod-security-floor",
    )


def test_no_validation_is_a_bare_variable(vap: Vap) -> None:
    """kube-apiserver 1.28 refuses a policy whose validation is only ``variables.x`` (platform-facts §17):
    checked here too, so a machine without the vendored server still catches it."""
    for name, policy in vap.policies.items():
        for v in policy["spec"]["validations"]:
            assert not re.fullmatch(r"\s*variables\.\w+\s*", v["expression"]), (name, v["expression"])


# --------------------------------------------------------------------------------------------------
# Malformed objects are denied by their rule, not by an evaluation error. A server validates an object
# before validating admission, so only an evaluator can hand the policies these.
# --------------------------------------------------------------------------------------------------


def test_malformed_objects_are_denied_not_errors(vap: Vap) -> None:
    no_labels = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": API_FLEET}}
    assert_denied(vap, request(DEMO, "CREATE", no_labels), "iotistic-api-namespaces/create-fleet-or-agent-namespace")
    assert_denied(
        vap,
        request(DEMO, "UPDATE", no_labels, CLUSTER[API_FLEET]),
        "iotistic-api-namespaces/update-fleet-namespace-only",
    )
    no_meta = {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
    assert_denied(vap, request(DEMO, "CREATE", no_meta), "iotistic-api-namespaces/create-fleet-or-agent-namespace")
    assert_denied(vap, request(DEMO, "CREATE", binding(API_FLEET, subjects=[])), "iotistic-api-rolebindings/subjects")
    rb = binding(API_FLEET)
    del rb["subjects"]
    assert_denied(vap, request(DEMO, "CREATE", rb), "iotistic-api-rolebindings/subjects")
    rb = binding(API_FLEET, subjects=[{"kind": "ServiceAccount", "name": "iotistic-api"}])  # no namespace
    assert_denied(vap, request(DEMO, "CREATE", rb), "iotistic-api-rolebindings/subjects")
    rb = binding(API_FLEET)
    del rb["roleRef"]
    assert_denied(vap, request(DEMO, "CREATE", rb), "iotistic-api-rolebindings/role-ref")
    # a namespace the server has no object for (namespaceObject null)
    ctx = request(DEMO, "CREATE", quota(API_FLEET))
    ctx["namespaceObject"] = None
    assert_denied(vap, ctx, "iotistic-api-fleet-scope/fleet-namespace-only")
    ctx = request(DEMO, "CREATE", quota(API_FLEET))
    ctx["namespaceObject"] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": API_FLEET}}
    assert_denied(vap, ctx, "iotistic-api-fleet-scope/fleet-namespace-only")
    dep = agent_deployment()
    del dep["spec"]["template"]
    assert_denied(vap, request(DEMO, "CREATE", dep), "iotistic-api-workloads/pod-template")


def test_the_evaluator_applies_vap_semantics() -> None:
    """Vap itself: a resource rule and all matchConditions gate a policy; the first false validation's
    message denies; an evaluation error denies under failurePolicy Fail."""
    policy = {
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConditions": [
                {"name": "a", "expression": "request.userInfo.username == 'u'"},
                {"name": "b", "expression": "request.operation != 'DELETE'"},
            ],
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "DELETE"],
                        "resources": ["namespaces"],
                    }
                ]
            },
            "variables": [{"name": "n", "expression": "object.metadata.name"}],
            "validations": [
                {"expression": "variables.n != 'x'", "message": "p/first"},
                {"expression": "variables.n != 'y' && variables.n != 'x'", "message": "p/second"},
                {"expression": "variables.n != 'z' || object.missing", "message": "p/third"},
            ],
        },
    }
    bound = {
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "p"},
        "spec": {"policyName": "p", "validationActions": ["Deny"]},
    }
    v = Vap([policy, bound])
    assert v.admit(request("u", "CREATE", ns("ok"))).allowed
    assert v.admit(request("u", "CREATE", ns("x"))).message == "p/first"
    assert v.admit(request("u", "CREATE", ns("y"))).message == "p/second"
    d = v.admit(request("u", "CREATE", ns("z")))
    assert not d.allowed and d.errors  # an evaluation error denies (failurePolicy Fail)
    assert v.admit(request("other", "CREATE", ns("x"))).matched == []  # a false matchCondition skips
    assert v.admit(request("u", "DELETE", None, ns("x"))).matched == []
    assert v.admit(request("u", "CREATE", quota("x"))).matched == []  # no resource rule matches
    unbound = Vap([policy])
    assert unbound.admit(request("u", "CREATE", ns("x"))).allowed  # a policy without a binding does nothing


# --------------------------------------------------------------------------------------------------
# The objects: schema, versions, the setting, and coverage of every cluster-wide grant
# --------------------------------------------------------------------------------------------------


def shared_objects(envs: list[Environment]) -> list[Obj]:
    from constructs.api_objects import Root
    from tiers.shared import shared_props

    return list(ClusterChart(Root(), shared_props(envs)).to_json())


def with_setting(envs: dict[str, Environment], value: AdmissionPolicyVersion) -> list[Environment]:
    assert value in get_args(AdmissionPolicyVersion)
    return [e.model_copy(update={"cluster": Cluster(admission_policies=value)}) for e in envs.values()]


def test_policies_validate_strictly_against_the_official_schema(environments) -> None:
    shipped = load(CLUSTER_DIR)
    assert (
        sorted(o["kind"] for o in shipped)
        == ["ValidatingAdmissionPolicy"] * 4 + ["ValidatingAdmissionPolicyBinding"] * 4
    )
    for o in shipped:
        assert o["apiVersion"] == "admissionregistration.k8s.io/v1"
        for version in ("1.30", "1.37"):
            kubernetes_validate.validate(o, version, strict=True)
    beta = [o for o in shared_objects(with_setting(environments, "v1beta1")) if "Admission" in o["kind"]]
    assert len(beta) == 8
    for o in beta:
        assert o["apiVersion"] == "admissionregistration.k8s.io/v1beta1"
        kubernetes_validate.validate(o, "1.28", strict=True)
        kubernetes_validate.validate(o, "1.29", strict=True)
    # the same policies under either version
    assert [o["spec"] for o in beta if o["kind"] == "ValidatingAdmissionPolicy"] == [
        o["spec"] for o in shared_objects(list(environments.values())) if o["kind"] == "ValidatingAdmissionPolicy"
    ]
    with pytest.raises(kubernetes_validate.ValidationError):
        bad = copy.deepcopy(shipped[0])
        bad["spec"]["validationz"] = []
        kubernetes_validate.validate(bad, "1.30", strict=True)


def test_policy_fields_that_matter(vap: Vap, environments) -> None:
    users = sorted(f"system:serviceaccount:{e.namespace}:iotistic-api" for e in environments.values())
    for name, p in vap.policies.items():
        spec = p["spec"]
        assert spec["failurePolicy"] == "Fail"
        (cond,) = spec["matchConditions"]
        assert run(cond["expression"] + " == true", {"request": {"userInfo": {"username": users[0]}}})
        for v in spec["validations"]:
            assert v["message"].startswith(f"{name}/"), v["message"]  # every message names its rule
            assert v["reason"] == "Forbidden"
        assert vap.bindings[name]["spec"] == {"policyName": name, "validationActions": ["Deny"]}
    # only the API's ServiceAccount, in any namespace, is evaluated (no list of tenants)
    match = next(iter(vap.policies.values()))["spec"]["matchConditions"][0]["expression"]
    for user, matched in [
        ("system:serviceaccount:a-b:iotistic-api", True),
        ("system:serviceaccount:tenant-not-in-this-fleet:iotistic-api", True),
        ("system:serviceaccount:demo:iotistic-api-x", False),
        ("system:serviceaccount:demo:default", False),
        ("system:serviceaccount:a:b:iotistic-api", False),
        ("iotistic-api", False),
        ("system:admin", False),
    ]:
        assert run(match, {"request": {"userInfo": {"username": user}}}) is matched, user


def test_no_policy_names_a_tenant(environments) -> None:
    """dist/cluster/'s policies hold no release, release namespace or fleet namespace of the fleet: they key on
    the request (the ServiceAccount's namespace, the target's tenant labels), so a tenant added changes none."""
    text = "\n".join(p.read_text() for p in sorted(CLUSTER_DIR.glob("ValidatingAdmissionPolicy*.yaml")))
    for env in environments.values():
        names = {env.release, env.namespace, *(env.fleet_namespace(f.name) for f in env.fleet_namespaces.fleets)}
        for name in names:
            assert f"'{name}'" not in text and f":{name}:" not in text, name


def test_setting_none_emits_nothing_and_warns(environments) -> None:
    envs = with_setting(environments, "none")
    assert not [o for o in shared_objects(envs) if "Admission" in o["kind"]]
    assert kinds(shared_objects(envs), "ClusterRole")  # the roles stay
    warning = unguarded_warning(envs[0])
    assert warning is not None and "cluster-wide" in warning
    assert unguarded_warning(next(iter(environments.values()))) is None


def test_setting_must_agree_across_environments(environments) -> None:
    envs = list(environments.values())
    mixed = [envs[0].model_copy(update={"cluster": Cluster(admission_policies="v1beta1")}), *envs[1:]]
    with pytest.raises(ConfigError) as err:
        shared_objects(mixed)
    assert err.value.path == "cluster.admissionPolicies" and "must be the same in every environment" in str(err.value)


def test_validate_and_explain_warn_when_none(tmp_path: Path, capsys) -> None:
    import cli

    src = (ROOT / "environments" / "client-demo.yaml").read_text()
    (tmp_path / "client-demo.yaml").write_text(src + "\ncluster:\n  admissionPolicies: none\n")
    for argv in (["validate"], ["explain", "client-demo"]):
        rc = cli.main(["--environments", str(tmp_path), *argv])
        out, _ = capsys.readouterr()
        assert rc == 0
        assert (
            "warning: " in out
            and "cluster.admissionPolicies: none: the API's ServiceAccount keeps a cluster-wide" in out
        )
    rc = cli.main(["validate", "client-demo"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "admissionPolicies" not in out


def test_every_cluster_wide_write_is_guarded(vap: Vap) -> None:
    """Every write the cluster-wide ClusterRole grants is matched by a policy; no wildcard or escalation verbs."""
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    op = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE", "deletecollection": "DELETE"}
    rules = [r for p in vap.policies.values() for r in p["spec"]["matchConstraints"]["resourceRules"]]
    for role in ROLES.values():
        for rule in role:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert not {"escalate", "impersonate"} & set(rule["verbs"])
            if "bind" in rule["verbs"]:
                assert rule.get("resourceNames") == ["iotistic-fleet-namespace-manager"]
    for rule in ROLES[VIRTUAL_AGENT_MANAGER]:
        for verb in set(rule["verbs"]) & writes:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    res = {"group": group, "version": "v1", "resource": resource}
                    assert any(_rule_matches(r, res, op[verb]) for r in rules), (group, resource, verb)


def test_release_grants_are_namespaced_and_minimal(manifests) -> None:
    for release, objs in manifests.items():
        for crb in kinds(objs, "ClusterRoleBinding"):
            assert crb["roleRef"]["name"] == VIRTUAL_AGENT_MANAGER, release
            assert [s["name"] for s in crb["subjects"]] == ["iotistic-api"]
        for role in kinds(objs, "Role"):
            for rule in role["rules"]:
                assert rule["resources"] == ["secrets"] and rule["apiGroups"] == [""], (release, role["metadata"])
                assert set(rule["verbs"]) <= {"get", "create", "patch"}
                assert "create" in rule["verbs"] or rule.get("resourceNames"), "reads and patches are by name"
        for rb in kinds(objs, "RoleBinding"):
            assert rb["roleRef"]["name"] in {"iotistic-fleet-namespace-manager"} | {
                r["metadata"]["name"] for r in kinds(objs, "Role")
            }


def test_agent_namespace_setting(tmp_path: Path, environments) -> None:
    """The agent namespaces the policy lets an API create: virtual-agents, or virtual-agents-<its namespace>
    (api.extraEnv.VIRTUAL_AGENT_NAMESPACE of a granted release must be one of them), labelled as the API's
    ensureNamespace labels it; never another tenant's."""
    for bad in ("kube-system", "default", "Agents", "x" * 64):
        data = {**BASE, "api": {"extraEnv": {"VIRTUAL_AGENT_NAMESPACE": bad}}}
        assert error_of(tmp_path, data).startswith(
            "environments/acme.yaml: api.extraEnv.VIRTUAL_AGENT_NAMESPACE: must be a DNS-1123 label other than"
        )
    granted = {**BASE, "fleetNamespaces": {"virtualAgentManager": True}}
    for bad in ("acme-agents", "virtual-agents-other"):
        data = {**granted, "api": {"extraEnv": {"VIRTUAL_AGENT_NAMESPACE": bad}}}
        assert error_of(tmp_path, data) == (
            "environments/acme.yaml: api.extraEnv.VIRTUAL_AGENT_NAMESPACE: must be virtual-agents or "
            "virtual-agents-acme, the agent namespaces the admission guardrail lets this release's API create "
            f"(docs/guardrail.md), got {bad!r} (line 3)"  # api: / extraEnv: / the key (keys sorted)
        )
    env = env_from("client-demo", api={"extraEnv": {"VIRTUAL_AGENT_NAMESPACE": "virtual-agents-demo"}})
    envs = [env, *(e for e in environments.values() if e.release != "client-demo")]
    objs = [o for o in shared_objects(envs) if "Admission" in o["kind"]]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    committed = [o for o in load(CLUSTER_DIR) if "Admission" in o["kind"]]
    assert sorted(objs, key=key) == sorted(committed, key=key)  # the setting changes no policy
    v = Vap(objs)
    agents = {"app.kubernetes.io/managed-by": "iotistic-api", "iotistica.com/namespace-type": "virtual-agents"}
    create_agents = "iotistic-api-namespaces/create-fleet-or-agent"
    for user, name in ((DEMO, "virtual-agents-demo"), (DEMO, "virtual-agents"), (IOT, "virtual-agents-iotistica")):
        assert_allowed(v, request(user, "CREATE", ns(name, agents)))
    assert_denied(v, request(IOT, "CREATE", ns("virtual-agents-demo", agents)), create_agents)
    assert_denied(v, request(DEMO, "CREATE", ns("virtual-agents-demo")), create_agents)  # unlabelled
    for label in ("iotistica.com/tenant", "iotistica.com/release-namespace", "iotistica.com/fleet-namespace"):
        assert_denied(v, request(DEMO, "CREATE", ns("virtual-agents-demo", {**agents, label: "demo"})), create_agents)
