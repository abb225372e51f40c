"""dist/ on a real kube-apiserver v1.28.4 (tests/realkube.py): applied, admitted, and the API's guardrail enforced.

One server per session (fixture ``kube_dist``: every object of dist/ server-side applied as a cluster admin,
with the upstream CRDs of ../shared/crds). Proven here, by the server itself:

- every object of every release, dist/cluster/ and dist/argocd/ is accepted; the upstream CRDs a 1.28 server
  refuses as published are named (``CRD_LIMITS_1_28``, platform-facts §16) and installed in the form 1.28 takes;
- the admission policies of dist/cluster/ are accepted (a 1.28 server serves them as ``v1beta1`` only: the test
  applies the committed ``v1`` files with that apiVersion, and proves the ``v1beta1`` rendering of
  ``cluster.admissionPolicies`` has the same bodies), and a bare ``variables.x`` validation is refused;
- every pod template is admitted as a Pod (``dryRun=All``) under its namespace's Pod Security profile;
- the API's ServiceAccount (by impersonation) can do what the virtual-agent deployer does (platform-facts §11),
  and every escalation the guardrail exists for is denied by the server with the policy's own message, for
  tenants of the test's own (``TENANT_FLEETS``, synthesised by app.py) and every release namespace and chart
  fleet of dist/, whatever the fleet; one tenant's API cannot touch another's fleet, even under one name prefix;
- adding a tenant changes no file of dist/ but the tenant's own (the policies name no tenant);
- each hook Job's ServiceAccount has exactly the rights its script uses (tests/test_secret_jobs.py runs the
  Secret Jobs against this server with TokenRequest tokens).

What a 1.28 server cannot show stays in tests/test_admission_policies.py (a CEL library): objects the server's
own validation refuses before admission (malformed objects must fail their rule, not raise), and the v1 API.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from constructs.isolation.api_admission_policies import BASELINE_CAPABILITIES
from constructs.isolation.cluster_rbac import VIRTUAL_AGENT_MANAGER
from tests.helpers import API_FLEET, ROOT, agent_deployment, kinds
from tests.helpers import binding as _binding
from tests.realkube import (
    CRD_LIMITS_1_28,
    DistInstall,
    KubeApiServer,
    KubeError,
    as_v1beta1,
    dist_objects,
)

Obj = dict[str, Any]
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}
SYNTH_ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK8S_CHECK_UPGRADE": "false"}
SYNTH_ENV.pop("CDK8S_OUTDIR", None)

#: The guardrail's tenants on this server: none of them is a shipped environment (the policies name no tenant,
#: so the proof holds for any fleet). Each is synthesised by the real entry point, app.py (its release and chart
#: fleet Namespaces, ClusterRoleBinding, fleet RoleBinding, quota, limits), and applied as a cluster admin, as
#: Argo CD would. ``guard-a`` and ``guard-a-b`` share the name prefix ``fleet-guard-a-b-``: fleet ``b-x`` of
#: ``guard-a`` is ``fleet-guard-a-b-x``, fleet ``y`` of ``guard-a-b`` is ``fleet-guard-a-b-y``; the tenant
#: labels, not the names, say whose each is. ``guard-c`` has no fleet and gets extra rights (``overgranted``).
A_NS, AB_NS, C_NS = "guard-a", "guard-a-b", "guard-c"
TENANT_FLEETS = {A_NS: ["b-x"], AB_NS: ["y"], C_NS: []}
A_FLEET, AB_FLEET = "fleet-guard-a-b-x", "fleet-guard-a-b-y"


def sa(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:iotistic-api"


DEMO = sa(A_NS)  # the API the deployer tests run as (the name the CEL-library tests use too)
IOT = sa(AB_NS)  # another tenant's API
#: A third tenant's API, given extra rights by the test (see ``overgranted``).
STARTER = sa(C_NS)


def binding(namespace: str, subjects: list[Obj] | None = None, role: str | None = None) -> Obj:
    """The deployer's RoleBinding, for tenant guard-a's API unless ``subjects`` say otherwise."""
    subjects = subjects if subjects is not None else [{"kind": "ServiceAccount", "name": "iotistic-api",
                                                       "namespace": A_NS}]  # fmt: skip
    return _binding(namespace, subjects) if role is None else _binding(namespace, subjects, role=role)


def tenant_objects(base: Path) -> list[Obj]:
    """The guardrail's tenants synthesised by the real entry point (app.py) into ``base``: what the cluster needs
    of them, wherever synth writes it: their Namespaces, ClusterRoleBindings (the grant) and everything in their
    chart fleet namespaces."""
    envs, out = base / "environments", base / "dist"
    envs.mkdir()
    for namespace, fleets in TENANT_FLEETS.items():
        data: Obj = {"release": namespace, "namespace": namespace, "tier": "standard"}
        data["database"] = {"server": "guard-cnpg", "maxConnections": 500}  # their own server: no budget clash
        if fleets:
            data["fleetNamespaces"] = {"enabled": True, "fleets": [{"name": f, "maxAgents": 2} for f in fleets]}
        (envs / f"{namespace}.yaml").write_text(yaml.safe_dump(data))
    argv = [sys.executable, str(ROOT / "app.py"), "--environments", str(envs), "--outdir", str(out), "--no-cache"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env=SYNTH_ENV)
    assert proc.returncode == 0, proc.stderr
    objs = [d for p in sorted(out.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d and "kind" in d]
    fleet_names = {f"fleet-{n}-{f}" for n, fs in TENANT_FLEETS.items() for f in fs}
    keep = [o for o in objs if o["kind"] in ("Namespace", "ClusterRoleBinding")]
    keep += [o for o in objs if o["metadata"].get("namespace") in fleet_names]
    assert {o["metadata"]["name"] for o in keep if o["kind"] == "Namespace"} == {*TENANT_FLEETS, *fleet_names}
    return sorted(keep, key=lambda o: o["kind"] != "Namespace")


def release_namespaces() -> list[str]:
    """Every release namespace dist/ makes, whatever the fleet (the shipped environments or any other)."""
    docs = [d for p in sorted((ROOT / "dist").rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    names = sorted(
        d["metadata"]["name"]
        for d in docs
        if d.get("kind") == "Namespace" and d["metadata"].get("labels", {}).get("iotistica.com/release-namespace")
    )
    assert names, "dist/ has release Namespaces"
    return names


@pytest.fixture(scope="module")
def cluster(kube_api: KubeApiServer, kube_dist: DistInstall, tmp_path_factory: pytest.TempPathFactory) -> KubeApiServer:
    """The server with dist/ and the guardrail's tenants applied, once each policy is in force: the admission
    plugin compiles a new policy from its informer a moment after it is created, so each is probed with a request
    it refuses."""
    for obj in tenant_objects(tmp_path_factory.mktemp("tenants")):
        kube_api.apply(obj)
    probes = {
        "iotistic-api-namespaces": (ns("kube-escalate"), DEMO),
        "iotistic-api-fleet-scope": (quota("kube-system"), DEMO),
        "iotistic-api-rolebindings": (
            binding(AB_FLEET, [{"kind": "ServiceAccount", "name": "x", "namespace": AB_NS}]),
            IOT,
        ),
        "iotistic-api-workloads": (agent_deployment(AB_FLEET, hostNetwork=True), IOT),
    }
    deadline = time.monotonic() + 30
    for policy, (obj, user) in probes.items():
        while True:
            try:
                kube_api.create(obj, as_user=user, dry_run=True)
                message = "allowed"
            except KubeError as exc:
                message = exc.message
            if f"ValidatingAdmissionPolicy '{policy}'" in message:
                break
            assert time.monotonic() < deadline, f"{policy} not in force after 30 s: {message}"
            time.sleep(0.2)
    return kube_api


# --------------------------------------------------------------------------------------------------
# Objects as the deployer writes them (platform-facts §11)
# --------------------------------------------------------------------------------------------------


def ns(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def api_fleet_ns(name: str = API_FLEET, **extra: str) -> Obj:
    """A namespace as the API's createFleetNamespace makes it."""
    labels = {
        "app.kubernetes.io/managed-by": "iotistic-api",
        "iotistica.com/fleet-uuid": "1a2b3c4d-0000-4000-8000-000000000001",
        "iotistica.com/fleet-name": "line-3",
        "iotistica.com/fleet-type": "virtual",
        "iotistica.com/customer-id": "cust-42",
    }
    return ns(name, {**labels, **extra})


def quota(namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "fleet-quota", "namespace": namespace},
        "spec": {"hard": {"pods": "4", "requests.cpu": "1400m", "limits.memory": "2560Mi"}},
    }


def escape(**pod: Any) -> Obj:
    """An agent Deployment with a pod-level change, under a name of its own (refused ones are dry runs)."""
    dep = agent_deployment(**pod)
    dep["metadata"]["name"] = f"escape-{uuid.uuid4().hex[:8]}"
    return dep


def labels_patch(**labels: str | None) -> Obj:
    """A JSON merge patch of namespace labels (None removes); keys as pod_security__enforce etc."""
    out: dict[str, str | None] = {}
    for k, v in labels.items():
        key = k.replace("pod_security__", "pod-security.kubernetes.io/").replace("_", "-")
        out[key] = v
    return {"metadata": {"labels": out}}


# --------------------------------------------------------------------------------------------------
# Calls: as the API's ServiceAccount (impersonated), dry-run for the refused ones
# --------------------------------------------------------------------------------------------------


def create(api: KubeApiServer, obj: Obj, user: str | None = DEMO, dry_run: bool = False) -> Obj:
    return api.create(obj, as_user=user, dry_run=dry_run)


def patch_ns(api: KubeApiServer, name: str, patch: Obj, user: str | None = DEMO, dry_run: bool = False) -> Obj:
    query = {"dryRun": "All"} if dry_run else None
    return api.request(
        "PATCH",
        f"/api/v1/namespaces/{name}",
        patch,
        content_type="application/merge-patch+json",
        as_user=user,
        query=query,
    )[1]


def refused(call, *args: Any, **kwargs: Any) -> KubeError:
    with pytest.raises(KubeError) as err:
        call(*args, **kwargs)
    return err.value


def assert_policy_denies(rule: str, call, *args: Any, **kwargs: Any) -> None:
    """The server refuses with 403 and the message of policy rule ``<policy>/<rule>`` (the policy's own text)."""
    exc = refused(call, *args, **kwargs)
    policy = rule.split("/")[0]
    assert exc.status == 403, exc
    assert f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {rule}:" in exc.message, (
        exc.message
    )


# --------------------------------------------------------------------------------------------------
# dist/ is accepted
# --------------------------------------------------------------------------------------------------


def test_upstream_crds_a_1_28_server_refuses_are_named(kube_dist: DistInstall) -> None:
    """platform-facts §16 on this server: exactly these CRDs are refused as published, each for its named
    reason; the form the test server gets instead (CRD_LIMITS_1_28) is accepted. dist/ is not changed."""
    assert set(kube_dist.crd_refusals) == set(CRD_LIMITS_1_28)
    for name, (_, message) in CRD_LIMITS_1_28.items():
        assert message in kube_dist.crd_refusals[name], (name, kube_dist.crd_refusals[name][:300])
    assert kube_dist.crd_failures == {}
    assert not [rel for rel, o in dist_objects() if o["kind"] == "SecurityPolicy"], "that CRD is not installed"


def test_every_dist_object_is_server_side_applied(kube_dist: DistInstall) -> None:
    every = [rel for rel, _ in dist_objects()]
    assert kube_dist.failures == {}
    assert sorted(kube_dist.applied) == sorted(every)
    releases = {p.stem for p in (ROOT / "environments").glob("*.yaml")}  # every environment, however many
    assert {rel.split("/")[0] for rel in every} == {"argocd", "cluster", *releases}


def test_applied_objects_read_back_as_written(cluster: KubeApiServer) -> None:
    """Server-side apply kept every field dist/ sets on a sample of kinds (no field silently dropped)."""
    for rel, obj in dist_objects():
        if obj["kind"] not in {"Deployment", "NetworkPolicy", "TLSRoute", "Certificate", "Application", "ClusterRole"}:
            continue
        live = cluster.get(as_v1beta1(obj))
        assert live is not None, rel
        for key in obj:
            if key in ("apiVersion", "kind", "metadata", "status"):
                continue
            assert _diff(obj[key], live[key], key) is None, (rel, _diff(obj[key], live[key], key))
        assert _diff(obj["metadata"].get("labels", {}), live["metadata"].get("labels", {}), "labels") is None, rel


def _diff(want: Any, have: Any, at: str) -> str | None:
    """None when ``have`` holds everything ``want`` sets (the server may add defaults), else where it differs."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return at
        for k, v in want.items():
            if k not in have:
                return f"{at}.{k} missing"
            found = _diff(v, have[k], f"{at}.{k}")
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return f"{at}: {len(want)} items, {have!r:.200}"
        return next(
            (d for i, (w, h) in enumerate(zip(want, have, strict=True)) if (d := _diff(w, h, f"{at}[{i}]"))), None
        )
    if want == have or (_quantity(want) is not None and _quantity(want) == _quantity(have)):
        return None  # the server writes quantities in canonical form (1000m -> 1)
    return f"{at}: {want!r} != {have!r}"


_SUFFIXES = {
    "m": "0.001",
    "": "1",
    "k": "1e3",
    "M": "1e6",
    "G": "1e9",
    "Ki": "1024",
    "Mi": "1048576",
    "Gi": "1073741824",
}


def _quantity(value: Any) -> Decimal | None:
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?", value) if isinstance(value, str) else None
    return Decimal(match[1]) * Decimal(_SUFFIXES[match[2] or ""]) if match else None


def test_policies_are_the_committed_v1_bodies_served_as_v1beta1(cluster: KubeApiServer, environments) -> None:
    """1.28 serves admissionregistration v1beta1 only. The committed v1 files were applied with that apiVersion;
    the v1beta1 rendering (cluster.admissionPolicies: v1beta1) has the same bodies, so it is what was proven."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ClusterChart
    from tiers.models import Cluster
    from tiers.shared import shared_props

    committed = [o for rel, o in dist_objects() if "Admission" in o["kind"]]
    assert len(committed) == 8 and {o["apiVersion"] for o in committed} == {"admissionregistration.k8s.io/v1"}
    envs = [e.model_copy(update={"cluster": Cluster(admission_policies="v1beta1")}) for e in environments.values()]
    beta = [o for o in ClusterChart(Root(), shared_props(envs)).to_json() if "Admission" in o["kind"]]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(as_v1beta1, committed), key=key) == sorted(beta, key=key)
    for obj in committed:
        live = cluster.get(as_v1beta1(obj))
        assert live is not None and _diff(obj["spec"], live["spec"], "spec") is None, obj["metadata"]["name"]


def test_a_bare_variable_validation_is_refused_by_1_28(cluster: KubeApiServer) -> None:
    """Why no validation is a bare ``variables.x`` (platform-facts §17): 1.28 refuses the whole policy."""
    path = ROOT / "dist" / "cluster" / "in-cluster" / "ValidatingAdmissionPolicy.iotistic-api-fleet-scope.k8s.yaml"
    policy = as_v1beta1(yaml.safe_load(path.read_text()))
    policy["metadata"] = {"name": "bare-variable-probe"}
    (rule,) = policy["spec"]["validations"]
    assert rule["expression"] == "variables.namespaceIsFleet == true"
    create(cluster, policy, user=None, dry_run=True)
    rule["expression"] = "variables.namespaceIsFleet"
    exc = refused(create, cluster, policy, user=None, dry_run=True)
    assert exc.status == 422 and 'Invalid value: "variables.namespaceIsFleet": must evaluate to bool' in exc.message


# --------------------------------------------------------------------------------------------------
# Every pod template is admitted under its namespace's Pod Security profile
# --------------------------------------------------------------------------------------------------


def pod_of(obj: Obj) -> Obj:
    """The Pod a workload's controller would create. For a StatefulSet that includes what its controller adds:
    a persistentVolumeClaim volume per volumeClaimTemplate (claim ``<template>-<name>-0``)."""
    template = obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"]["template"]
    spec = copy.deepcopy(template["spec"])
    for claim in obj["spec"].get("volumeClaimTemplates", []) if obj["kind"] == "StatefulSet" else []:
        name = claim["metadata"]["name"]
        pvc = {"claimName": f"{name}-{obj['metadata']['name']}-0"}
        spec.setdefault("volumes", []).append({"name": name, "persistentVolumeClaim": pvc})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{obj['metadata']['name']}-dryrun",
            "namespace": obj["metadata"]["namespace"],
            "labels": template.get("metadata", {}).get("labels", {}),
        },
        "spec": spec,
    }


def test_every_pod_template_is_admitted_as_a_pod(cluster: KubeApiServer) -> None:
    """PodSecurity only warns for workloads (platform-facts §16): a Pod is what it enforces on, so each template
    is created as a Pod with dryRun=All (ServiceAccount, PodSecurity and every other admission run)."""
    workloads = [(rel, o) for rel, o in dist_objects() if o["kind"] in WORKLOADS]
    assert len(workloads) >= 30
    refusals = {}
    for rel, obj in workloads:
        try:
            create(cluster, pod_of(obj), user=None, dry_run=True)
        except KubeError as exc:
            refusals[rel] = exc.message
    assert refusals == {}
    namespaces = {o["metadata"]["namespace"] for _, o in workloads}
    for name in namespaces:
        live = cluster.get(ns(name))
        assert live is not None and live["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"


def test_pod_security_is_enforced_on_this_server(cluster: KubeApiServer) -> None:
    """The control: a template made non-compliant is refused by PodSecurity in the same namespace."""
    obj = next(o for _, o in dist_objects() if o["kind"] == "Deployment")
    pod = pod_of(obj)
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    exc = refused(create, cluster, pod, user=None, dry_run=True)
    assert exc.status == 403 and 'violates PodSecurity "restricted:latest"' in exc.message


# --------------------------------------------------------------------------------------------------
# The deployer's requests (platform-facts §11), as the API's ServiceAccount
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(cluster: KubeApiServer) -> str:
    """The deployer's createFleetNamespace, then an agent's objects in it, all as the demo API: the real
    requests succeed (RBAC of dist/cluster/ and the release, and the policies, allow them)."""
    status, _ = cluster.request("GET", f"/api/v1/namespaces/{API_FLEET}", as_user=DEMO, check=False)
    assert status == 404  # readNamespace: get is granted; the namespace does not exist yet
    create(cluster, api_fleet_ns())
    create(cluster, quota(API_FLEET))
    create(cluster, binding(API_FLEET))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dev-1-prov-key", "namespace": API_FLEET},
        "stringData": {"key": "x"},
    }
    create(cluster, secret)
    create(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "dev-1-data", "namespace": API_FLEET},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    create(cluster, agent_deployment())
    return API_FLEET


def test_deployer_does_what_the_api_does(cluster: KubeApiServer, fleet: str) -> None:
    base = f"/api/v1/namespaces/{fleet}"
    for method, path in [
        ("GET", f"{base}/resourcequotas"),  # listNamespacedResourceQuota
        ("GET", f"{base}/events"),  # listNamespacedEvent
        ("GET", f"{base}/pods"),  # listNamespacedPod
        ("GET", f"{base}/secrets/dev-1-prov-key"),  # readNamespacedSecret
        ("GET", f"/apis/apps/v1/namespaces/{fleet}/deployments/dev-1"),  # readNamespacedDeployment
    ]:
        assert cluster.request(method, path, as_user=DEMO)[0] == 200, path
    cluster.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{fleet}/deployments/dev-1",
        {"spec": {"replicas": 0}},
        content_type="application/merge-patch+json",
        as_user=DEMO,
    )  # patchNamespacedDeployment (stop)
    secret = cluster.request("GET", f"{base}/secrets/dev-1-prov-key", as_user=DEMO)[1]
    cluster.request("PUT", f"{base}/secrets/dev-1-prov-key", secret, as_user=DEMO)  # replaceNamespacedSecret
    dep = cluster.request("GET", f"/apis/apps/v1/namespaces/{fleet}/deployments/dev-1", as_user=DEMO)[1]
    cluster.request("PUT", f"/apis/apps/v1/namespaces/{fleet}/deployments/dev-1", dep, as_user=DEMO)
    status, _ = cluster.request("DELETE", f"{base}/pods/dev-1-abc", as_user=DEMO, check=False)
    assert status == 404, "deleteNamespacedPod is authorised (the pod does not exist on a server without nodes)"
    for path in (  # the agent's removal: deleteNamespacedDeployment, -Secret, -PersistentVolumeClaim
        f"/apis/apps/v1/namespaces/{fleet}/deployments/dev-1",
        f"{base}/secrets/dev-1-prov-key",
        f"{base}/persistentvolumeclaims/dev-1-data",
    ):
        cluster.request("DELETE", path, as_user=DEMO, query={"dryRun": "All"})
    # a fleet namespace may be made stricter, and soft-deleted (deleteFleetNamespace)
    patch_ns(cluster, fleet, labels_patch(pod_security__enforce="restricted", pod_security__warn="restricted"))
    patch_ns(
        cluster,
        fleet,
        {
            "metadata": {
                "labels": {
                    "iotistica.com/termination-requested": "true",
                    "iotistica.com/deletion-timestamp": "1767225600000",
                    "iotistica.com/delete-after-ttl": "604800",
                }
            }
        },
        dry_run=True,
    )


AGENT_NS_LABELS = {"app.kubernetes.io/managed-by": "iotistic-api", "iotistica.com/namespace-type": "virtual-agents"}


def test_deployer_without_a_fleet_gets_its_namespace_but_no_rights_in_it(cluster: KubeApiServer) -> None:
    """deployAgent without a fleet uses VIRTUAL_AGENT_NAMESPACE (default virtual-agents): ensureNamespace
    creates it (allowed), then the agent's Secret is refused by RBAC: dist/ binds the fleet role only in fleet
    namespaces and the guardrail allows RoleBindings nowhere else. Recorded in docs/kubernetes-versions.md."""
    create(cluster, ns("virtual-agents", AGENT_NS_LABELS))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dev-9-prov-key", "namespace": "virtual-agents"},
        "stringData": {"key": "x"},
    }
    exc = refused(create, cluster, secret, dry_run=True)
    assert exc.status == 403 and 'cannot create resource "secrets"' in exc.message
    assert_policy_denies(
        "iotistic-api-fleet-scope/fleet-namespace-only",
        create,
        cluster,
        {**binding("virtual-agents"), "metadata": {"name": "fleet-manager-binding", "namespace": "virtual-agents"}},
        dry_run=True,
    )
    # VIRTUAL_AGENT_NAMESPACE may also be virtual-agents-<the release namespace>: its own, never another's
    create(cluster, ns(f"virtual-agents-{A_NS}", AGENT_NS_LABELS), dry_run=True)
    for user, name in ((IOT, f"virtual-agents-{A_NS}"), (DEMO, f"virtual-agents-{AB_NS}")):
        assert_policy_denies(
            "iotistic-api-namespaces/create-fleet-or-agent-namespace",
            create,
            cluster,
            ns(name, AGENT_NS_LABELS),
            user=user,
            dry_run=True,
        )


def test_the_deployers_own_soft_delete_label_is_refused_by_any_server(cluster: KubeApiServer, fleet: str) -> None:
    """deleteFleetNamespace labels deletion-timestamp with an ISO time (platform-facts §11); a label value may
    not hold ':', so Kubernetes' own validation refuses the patch (not the guardrail): recorded in
    docs/kubernetes-versions.md."""
    exc = refused(
        patch_ns,
        cluster,
        fleet,
        {"metadata": {"labels": {"iotistica.com/deletion-timestamp": "2026-12-07T13:00:00.000Z"}}},
        dry_run=True,
    )
    assert exc.status == 422 and 'metadata.labels: Invalid value: "2026-12-07T13:00:00.000Z"' in exc.message


def chart_fleets(api: KubeApiServer) -> dict[str, str]:
    """Every chart-provisioned fleet namespace on the server (dist/'s and the test tenants'), by its tenant label."""
    items = api.request("GET", "/api/v1/namespaces", query={"labelSelector": "iotistica.com/fleet-namespace=true"})[1]
    return {i["metadata"]["name"]: i["metadata"]["labels"]["iotistica.com/tenant"] for i in items["items"]}


def own_binding(namespace: str, tenant: str, name: str = "probe") -> Obj:
    rb = binding(namespace, [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": tenant}])
    return {**rb, "metadata": {"name": name, "namespace": namespace}}


def test_chart_provisioned_fleet_namespace_is_its_releases_only(cluster: KubeApiServer) -> None:
    """Every chart-provisioned fleet namespace (dist/'s, whatever the fleet, and the test tenants'): its own
    release's API may bind and soft-delete there, another tenant's API may not."""
    fleets = chart_fleets(cluster)
    assert {A_FLEET: A_NS, AB_FLEET: AB_NS}.items() <= fleets.items()
    soft_delete = labels_patch(**{"iotistica.com/termination-requested": "true"})
    for fleet_ns, tenant in sorted(fleets.items()):
        create(cluster, own_binding(fleet_ns, tenant), user=sa(tenant), dry_run=True)
        patch_ns(cluster, fleet_ns, soft_delete, user=sa(tenant), dry_run=True)
        other = C_NS if tenant != C_NS else A_NS
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only",
            create,
            cluster,
            own_binding(fleet_ns, other),
            user=sa(other),
            dry_run=True,
        )
        assert_policy_denies(
            "iotistic-api-namespaces/update-fleet-namespace-only",
            patch_ns,
            cluster,
            fleet_ns,
            soft_delete,
            user=sa(other),
            dry_run=True,
        )


def test_a_tenants_api_cannot_touch_another_tenants_fleet(cluster: KubeApiServer) -> None:
    """guard-a and guard-a-b share the name prefix fleet-guard-a-b-; the tenant labels decide. Each API, in the
    other's fleet namespace: no RoleBinding or quota (the guardrail), no relabelling (the guardrail), no
    workload, Secret or pod (RBAC: dist/ binds the fleet role to the owner only, and the guardrail lets no
    other API bind itself there). In its own, the same requests pass."""
    for me, mine, theirs, them in ((A_NS, A_FLEET, AB_FLEET, AB_NS), (AB_NS, AB_FLEET, A_FLEET, A_NS)):
        user = sa(me)
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only",
            create,
            cluster,
            own_binding(theirs, me),
            user=user,
            dry_run=True,
        )
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only", create, cluster, quota(theirs), user=user, dry_run=True
        )
        for patch in (
            labels_patch(**{"iotistica.com/termination-requested": "true"}),
            labels_patch(**{"iotistica.com/tenant": me, "iotistica.com/customer-id": me}),  # "it is mine now"
        ):
            assert_policy_denies(
                "iotistic-api-namespaces/update-fleet-namespace-only",
                patch_ns,
                cluster,
                theirs,
                patch,
                user=user,
                dry_run=True,
            )
        # the other tenant's release namespace: no binding, no relabelling
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only",
            create,
            cluster,
            own_binding(them, me),
            user=user,
            dry_run=True,
        )
        assert_policy_denies(
            "iotistic-api-namespaces/update-fleet-namespace-only",
            patch_ns,
            cluster,
            them,
            labels_patch(pod_security__enforce="baseline"),
            user=user,
            dry_run=True,
        )
        dep = agent_deployment(theirs)
        exc = refused(create, cluster, dep, user=user, dry_run=True)
        assert exc.status == 403 and 'cannot create resource "deployments"' in exc.message
        path = f"/api/v1/namespaces/{theirs}/secrets"
        exc = refused(cluster.request, "GET", path, as_user=user)
        assert exc.status == 403 and 'cannot list resource "secrets"' in exc.message
        # and in its own fleet, the deployer's requests pass
        create(cluster, own_binding(mine, me), user=user, dry_run=True)
        create(cluster, quota(mine), user=user, dry_run=True)
        create(cluster, agent_deployment(mine), user=user, dry_run=True)
        patch_ns(cluster, mine, labels_patch(**{"iotistica.com/termination-requested": "true"}), user=user,
                 dry_run=True)  # fmt: skip


def test_an_api_made_fleet_labelled_with_its_tenant_is_that_tenants_only(cluster: KubeApiServer) -> None:
    """A fleet-<8 hex> namespace that carries iotistica.com/tenant is its tenant's: another API may not bind or
    write quotas there, nor change it; no API may create one naming another tenant, or label its own."""
    name = "fleet-7e7e7e7e"
    create(cluster, api_fleet_ns(name, **{"iotistica.com/tenant": AB_NS}), user=IOT)
    create(cluster, own_binding(name, AB_NS), user=IOT, dry_run=True)
    assert_policy_denies(
        "iotistic-api-fleet-scope/fleet-namespace-only", create, cluster, own_binding(name, A_NS), dry_run=True
    )
    assert_policy_denies("iotistic-api-fleet-scope/fleet-namespace-only", create, cluster, quota(name), dry_run=True)
    assert_policy_denies(
        "iotistic-api-namespaces/update-fleet-namespace-only",
        patch_ns,
        cluster,
        name,
        labels_patch(**{"iotistica.com/termination-requested": "true"}),
        dry_run=True,
    )
    assert_policy_denies(
        "iotistic-api-namespaces/fleet-identity-unchanged",
        patch_ns,
        cluster,
        name,
        labels_patch(**{"iotistica.com/tenant": None}),
        user=IOT,
        dry_run=True,
    )
    assert_policy_denies(
        "iotistic-api-namespaces/create-fleet-or-agent-namespace",
        create,
        cluster,
        api_fleet_ns("fleet-7f7f7f7f", **{"iotistica.com/tenant": AB_NS}),
        dry_run=True,
    )


# --------------------------------------------------------------------------------------------------
# Each escalation is denied by the server, with the policy's message
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def others(cluster: KubeApiServer) -> None:
    """Namespaces that are not the API's: another product's fleet-*, and a plain one."""
    cluster.apply(ns("fleet-default"))


def not_its_fleets() -> list[str]:
    """Namespaces that are no fleet of guard-a's API: the cluster's, another product's fleet-*, every release
    namespace (its own included) and another tenant's chart fleet."""
    return sorted({"kube-system", "fleet-default", *release_namespaces(), *TENANT_FLEETS, AB_FLEET})


def test_bind_fleet_manager_outside_its_fleets_is_denied(cluster: KubeApiServer, fleet: str, others) -> None:
    for namespace in not_its_fleets():
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only",
            create,
            cluster,
            {**binding(namespace), "metadata": {"name": "escalate", "namespace": namespace}},
            dry_run=True,
        )


def test_create_any_namespace_is_denied(cluster: KubeApiServer, others) -> None:
    for obj in (
        ns("kube-escalate"),
        ns("fleet-default2"),  # fleet-* but not labelled as the API labels its own
        ns("fleet-9a9b9c9d", {"app.kubernetes.io/managed-by": "someone"}),
        ns("fleet-not-hex-x", {"app.kubernetes.io/managed-by": "iotistic-api"}),
        # claiming another release's fleet-namespace selector labels (its NetworkPolicies would admit it)
        api_fleet_ns("fleet-5e5e5e5e", **{"iotistica.com/fleet-namespace": "true", "iotistica.com/customer-id": AB_NS}),
        ns("virtual-agents", {"iotistica.com/fleet-namespace": "true"}),
        ns(f"{AB_FLEET}2"),
        # an API-made fleet claiming another tenant, or a release namespace
        api_fleet_ns("fleet-6d6d6d6d", **{"iotistica.com/tenant": AB_NS}),
        api_fleet_ns("fleet-6e6e6e6e", **{"iotistica.com/release-namespace": "true"}),
        # chart-provisioned fleet namespaces come from dist/ only: not even its own prefix and labels, nor the
        # other tenant's prefix (fleet-guard-a-b-… is guard-a-b's name space, and guard-a's own)
        ns(
            f"fleet-{A_NS}-new",
            {"iotistica.com/fleet-namespace": "true", "iotistica.com/customer-id": A_NS, "iotistica.com/tenant": A_NS},
        ),  # fmt: skip
        ns(
            f"fleet-{AB_NS}-new",
            {"iotistica.com/fleet-namespace": "true", "iotistica.com/customer-id": A_NS, "iotistica.com/tenant": A_NS},
        ),  # fmt: skip
        # a release namespace of its own making
        ns("guard-new", {"iotistica.com/release-namespace": "true", "iotistica.com/tenant": "guard-new"}),
        ns(f"virtual-agents-{AB_NS}", AGENT_NS_LABELS),
    ):
        assert_policy_denies(
            "iotistic-api-namespaces/create-fleet-or-agent-namespace", create, cluster, obj, dry_run=True
        )


def test_relabel_pod_security_is_denied(cluster: KubeApiServer, fleet: str) -> None:
    assert_policy_denies(
        "iotistic-api-namespaces/update-fleet-namespace-only",
        patch_ns,
        cluster,
        A_NS,
        labels_patch(pod_security__enforce="privileged"),
        dry_run=True,
    )
    assert_policy_denies(
        "iotistic-api-namespaces/update-fleet-namespace-only",
        patch_ns,
        cluster,
        "kube-system",
        labels_patch(pod_security__enforce="privileged"),
        dry_run=True,
    )
    # the fleet namespace is restricted (enforce, warn) since test_deployer_does_what_the_api_does
    patch_ns(cluster, fleet, labels_patch(pod_security__enforce="restricted", pod_security__warn="restricted"))
    cases = {
        "iotistic-api-namespaces/pod-security-floor": [
            labels_patch(pod_security__enforce="privileged"),
            labels_patch(pod_security__audit="privileged"),
        ],
        "iotistic-api-namespaces/pod-security-not-weaker": [
            labels_patch(pod_security__enforce="baseline"),
            labels_patch(pod_security__enforce=None),
            labels_patch(pod_security__warn=None),
        ],
        "iotistic-api-namespaces/pod-security-version": [labels_patch(pod_security__enforce_version="v1.0")],
        "iotistic-api-namespaces/pod-security-keys": [labels_patch(pod_security__exempt="true")],
        "iotistic-api-namespaces/fleet-identity-unchanged": [
            labels_patch(**{"iotistica.com/customer-id": "other"}),
            labels_patch(**{"iotistica.com/tenant": A_NS}),  # its own tenant label: only dist/ sets one
        ],
        # no longer a fleet namespace of the API afterwards: the first rule that fails is the update rule
        "iotistic-api-namespaces/update-fleet-namespace-only": [
            {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}},
            labels_patch(**{"iotistica.com/fleet-namespace": "true"}),
            labels_patch(**{"iotistica.com/tenant": AB_NS}),  # another tenant's
            labels_patch(**{"iotistica.com/release-namespace": "true"}),
        ],
    }
    for rule, patches in cases.items():
        for p in patches:
            assert_policy_denies(rule, patch_ns, cluster, fleet, p, dry_run=True)
    # an unknown level: PodSecurity's own namespace validation refuses it before the policy is asked
    exc = refused(patch_ns, cluster, fleet, labels_patch(pod_security__enforce="bogus"), dry_run=True)
    assert (
        exc.status == 422 and 'Invalid value: "bogus": must be one of privileged, baseline, restricted' in exc.message
    )
    assert_policy_denies(
        "iotistic-api-namespaces/pod-security-floor",
        create,
        cluster,
        api_fleet_ns("fleet-2b2b2b2b", **{"pod-security.kubernetes.io/enforce": "privileged"}),
        dry_run=True,
    )


def test_a_foreign_namespace_cannot_be_made_a_fleet(cluster: KubeApiServer, others) -> None:
    assert_policy_denies(
        "iotistic-api-namespaces/update-fleet-namespace-only",
        patch_ns,
        cluster,
        "fleet-default",
        {"metadata": {"labels": {"app.kubernetes.io/managed-by": "iotistic-api"}}},
        dry_run=True,
    )


@pytest.fixture(scope="module")
def empty_role(cluster: KubeApiServer) -> str:
    """A ClusterRole with no rules: binding it is no RBAC escalation, so only the policy can refuse it."""
    name = "iotistica-test-empty"
    cluster.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}})
    return name


def test_rolebinding_subjects_and_role_ref(cluster: KubeApiServer, fleet: str, empty_role: str) -> None:
    other = [{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]
    for subjects in (
        other,
        [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": A_NS}, *other],
        [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": AB_NS}],  # another tenant's API
        [{"kind": "User", "name": DEMO, "apiGroup": "rbac.authorization.k8s.io"}],
        [{"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"}],
    ):
        rb = binding(fleet, subjects)
        rb["metadata"]["name"] = "escalate"
        assert_policy_denies("iotistic-api-rolebindings/subjects", create, cluster, rb, dry_run=True)
    rb = binding(fleet, role=empty_role)
    rb["metadata"]["name"] = "escalate"
    assert_policy_denies("iotistic-api-rolebindings/role-ref", create, cluster, rb, dry_run=True)
    # cluster-admin: RBAC's own escalation check refuses it first (the API holds neither its rights nor bind)
    rb = binding(fleet, role="cluster-admin")
    rb["metadata"]["name"] = "escalate"
    exc = refused(create, cluster, rb, dry_run=True)
    assert exc.status == 403 and "is attempting to grant RBAC permissions not currently held" in exc.message


def test_quota_outside_fleet_namespaces_is_denied(cluster: KubeApiServer, others) -> None:
    for namespace in not_its_fleets():
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only", create, cluster, quota(namespace), dry_run=True
        )


@pytest.mark.parametrize(
    ("pod", "rule"),
    [
        ({"hostNetwork": True}, "host-namespaces"),
        ({"hostPID": True}, "host-namespaces"),
        ({"hostIPC": True}, "host-namespaces"),
        ({"volumes": [{"name": "data", "hostPath": {"path": "/"}}]}, "host-path"),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "seccomp"),
    ],
)
def test_workload_pod_escapes_are_denied(cluster: KubeApiServer, fleet: str, pod: Obj, rule: str) -> None:
    assert_policy_denies(f"iotistic-api-workloads/{rule}", create, cluster, escape(**pod), dry_run=True)


@pytest.mark.parametrize(
    ("security", "rule"),
    [
        ({"privileged": True}, "privileged"),
        ({"capabilities": {"add": ["SYS_ADMIN"]}}, "capabilities"),
        # proc-mount: 1.28 drops securityContext.procMount before admission (feature gate ProcMountType, alpha),
        # so only tests/test_admission_policies.py can show that rule
        ({"seccompProfile": {"type": "Unconfined"}}, "seccomp"),
    ],
)
def test_workload_container_escapes_are_denied(cluster: KubeApiServer, fleet: str, security: Obj, rule: str) -> None:
    for where in ("containers", "initContainers"):
        dep = escape()
        spec = dep["spec"]["template"]["spec"]
        c = {**copy.deepcopy(spec["containers"][0]), "name": "x", "securityContext": security}
        spec[where] = [*spec.get(where, []), c]
        assert_policy_denies(f"iotistic-api-workloads/{rule}", create, cluster, dep, dry_run=True)


def test_workload_host_ports_denied_and_baseline_capabilities_allowed(cluster: KubeApiServer, fleet: str) -> None:
    dep = escape()
    dep["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    assert_policy_denies("iotistic-api-workloads/host-ports", create, cluster, dep, dry_run=True)
    dep = escape()
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": list(BASELINE_CAPABILITIES), "drop": ["ALL"]}
    }
    create(cluster, dep, dry_run=True)


@pytest.fixture(scope="module")
def overgranted(cluster: KubeApiServer) -> str:
    """The starter release's API with rights dist/ never grants (namespace delete; quota and RoleBinding
    update/delete), as a cluster admin might add by mistake: the policies still refuse what they cover."""
    extra = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "iotistica-test-overgrant"},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["delete", "update"]},
            {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["update", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["update"]},
        ],
    }
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "iotistica-test-overgrant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "iotistica-test-overgrant"},
        "subjects": [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": C_NS}],
    }
    cluster.apply(extra)
    cluster.apply(crb)
    cluster.apply(quota("kube-system"))
    return STARTER


def test_namespace_delete_is_denied_by_rbac_and_by_the_policy(cluster: KubeApiServer, fleet: str, overgranted) -> None:
    for name in (fleet, A_NS, "kube-system"):
        exc = refused(cluster.request, "DELETE", f"/api/v1/namespaces/{name}", as_user=DEMO, query={"dryRun": "All"})
        assert exc.status == 403 and 'cannot delete resource "namespaces"' in exc.message  # RBAC: never granted
    exc = refused(cluster.request, "DELETE", "/api/v1/namespaces/kube-system", as_user=overgranted)
    assert exc.status == 403 and "this namespace may not be deleted" in exc.message  # NamespaceLifecycle, first
    for name in (fleet, A_NS, AB_NS, AB_FLEET, *release_namespaces()):
        assert_policy_denies(
            "iotistic-api-namespaces/no-delete",
            cluster.request,
            "DELETE",
            f"/api/v1/namespaces/{name}",
            as_user=overgranted,
            query={"dryRun": "All"},
        )


def test_quota_update_and_delete_outside_fleets_are_denied(cluster: KubeApiServer, overgranted) -> None:
    path = "/api/v1/namespaces/kube-system/resourcequotas/fleet-quota"
    live = cluster.request("GET", path)[1]
    for method, body in (("PUT", live), ("DELETE", None)):
        assert_policy_denies(
            "iotistic-api-fleet-scope/fleet-namespace-only",
            cluster.request,
            method,
            path,
            body,
            as_user=overgranted,
            query={"dryRun": "All"},
        )


# --------------------------------------------------------------------------------------------------
# A tenant added changes no shared file
# --------------------------------------------------------------------------------------------------


def test_adding_a_tenant_changes_only_its_own_files(tmp_path: Path) -> None:
    """A copy of the project grows one tenant with the grant and a chart fleet (README: Adding a client), and
    `make synth` runs there: every file of dist/ that existed is byte-identical (dist/cluster/ with its
    admission policies included), and every new file is the tenant's own (its path names it). Two branches
    that each add a tenant therefore touch disjoint files."""
    from tests.test_fleet_copy import ENV, checkout_copy, run

    project = tmp_path / "project"
    project.mkdir()
    checkout_copy(project)
    py = str(project / ".venv" / "bin" / "python")
    name = "guard-new"
    proc = run(project, py, "cli.py", "new", name, "--tier", "standard")
    assert proc.returncode == 0, proc.stderr
    path = project / "environments" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data["fleetNamespaces"] = {
        "enabled": True,
        "virtualAgentManager": True,
        "fleets": [{"name": "line-1", "maxAgents": 2}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    make = ["make", "-s", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o", ".venv-tools/.stamp", "synth"]
    proc = subprocess.run(make, cwd=project, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    before = {p.relative_to(ROOT / "dist"): p.read_bytes() for p in (ROOT / "dist").rglob("*") if p.is_file()}
    after = {p.relative_to(project / "dist"): p.read_bytes() for p in (project / "dist").rglob("*") if p.is_file()}
    assert any(str(p).startswith("cluster/") and "ValidatingAdmissionPolicy" in str(p) for p in before)
    changed = sorted(str(p) for p in before if after.get(p) != before[p])
    assert changed == [], changed
    new = sorted(str(p) for p in set(after) - set(before))
    assert new and all(name in p for p in new), new
    assert any(f"Namespace.fleet-{name}-line-1." in p for p in new), new  # its fleet namespace is its own file


# --------------------------------------------------------------------------------------------------
# Nobody else is evaluated
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lookalike(cluster: KubeApiServer) -> str:
    """Another ServiceAccount in demo with the API's own cluster-wide role: RBAC lets it, and the policies'
    matchConditions name only the releases' iotistic-api accounts, so nothing stops it (it is the admin's grant)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "iotistic-api-x", "namespace": A_NS}}
    crb = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "iotistica-test-lookalike"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": VIRTUAL_AGENT_MANAGER},
        "subjects": [{"kind": "ServiceAccount", "name": "iotistic-api-x", "namespace": A_NS}],
    }
    cluster.apply(account)
    cluster.apply(crb)
    return f"system:serviceaccount:{A_NS}:iotistic-api-x"


def test_other_users_are_never_matched(cluster: KubeApiServer, lookalike: str) -> None:
    """What the policies refuse the API, the admin (system:masters) and the lookalike account may do: the
    policies evaluate only the releases' iotistic-api accounts."""
    for user in (None, lookalike):
        create(cluster, ns("kube-escalate"), user=user, dry_run=True)
        create(cluster, {**quota("kube-system"), "metadata": {"name": "q2", "namespace": "kube-system"}},
               user=user, dry_run=True)  # fmt: skip
        rb = binding("kube-system", [{"kind": "ServiceAccount", "name": "iotistic-api-x", "namespace": A_NS}])
        create(cluster, rb, user=user, dry_run=True)
        patch_ns(cluster, A_NS, labels_patch(pod_security__enforce="baseline"), user=user, dry_run=True)
        assert_policy_denies(
            "iotistic-api-namespaces/update-fleet-namespace-only",
            patch_ns,
            cluster,
            A_NS,
            labels_patch(pod_security__enforce="baseline"),
            dry_run=True,
        )


def test_every_granted_release_api_is_matched(cluster: KubeApiServer, environments) -> None:
    for env in environments.values():
        user = f"system:serviceaccount:{env.namespace}:iotistic-api"
        assert_policy_denies(
            "iotistic-api-namespaces/create-fleet-or-agent-namespace",
            create,
            cluster,
            ns("kube-escalate"),
            user=user,
            dry_run=True,
        )


# --------------------------------------------------------------------------------------------------
# Each hook Job's ServiceAccount can do exactly what its script does
# --------------------------------------------------------------------------------------------------

#: (verb, resource name or "*") on Secrets that each script's calls need (constructs/scripts/secret_jobs.py):
#: the generator reads its Secret and creates it; the resolver reads the license, patches or creates its env.
SCRIPT_RIGHTS = {
    "redis-auth-generator": lambda r, ns: {("get", f"{r}-redis-auth"), ("create", "*")},
    "stream-key-resolver": lambda r, ns: {
        ("get", f"api-license-credentials-{ns}"),
        ("patch", f"{r}-ingestion-runtime-env"),
        ("create", "*"),
    },
}


def rights(api: KubeApiServer, namespace: str, user: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, name or '*') the user may use in the namespace (SelfSubjectRulesReview),
    without what every authenticated user may do (the discovery and self-review rules)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    status = api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", review, as_user=user)[1]
    out = set()
    for rule in status["status"]["resourceRules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or ["*"]:
                        out.add((group, resource, verb, name))
    return {r for r in out if r[0] != "authorization.k8s.io" and r[0] != "authentication.k8s.io"}


def test_hook_job_service_accounts_have_exactly_their_scripts_rights(cluster: KubeApiServer, manifests) -> None:
    checked = 0
    for release, objs in manifests.items():
        for job in kinds(objs, "Job") + kinds(objs, "CronJob"):
            spec = (job["spec"]["jobTemplate"]["spec"] if job["kind"] == "CronJob" else job["spec"])["template"]["spec"]
            namespace = job["metadata"]["namespace"]
            account = spec.get("serviceAccountName", "default")
            user = f"system:serviceaccount:{namespace}:{account}"
            got = rights(cluster, namespace, user)
            script = next((k for k in SCRIPT_RIGHTS if job["metadata"]["name"].endswith(k)), None)
            if script is None:
                assert spec.get("automountServiceAccountToken") is False, job["metadata"]["name"]
                assert got == set(), (job["metadata"]["name"], got)  # no token, and nothing it could do with one
            else:
                assert spec.get("automountServiceAccountToken") is True
                want = {("", "secrets", v, n) for v, n in SCRIPT_RIGHTS[script](release, namespace)}
                assert got == want, (job["metadata"]["name"], got)
                # and nothing in any other namespace
                assert rights(cluster, "kube-system", user) == set()
            checked += 1
    assert checked >= 15


def test_tokens_come_from_the_token_request_api(cluster: KubeApiServer) -> None:
    job = next(
        o for _, o in dist_objects() if o["kind"] == "Job" and o["metadata"]["name"].endswith("-redis-auth-generator")
    )
    account, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    secret = account.removesuffix("-generator")  # <release>-redis-auth
    token = cluster.token(namespace, account)
    # Absent whatever ran before on this session's server (tests/test_secret_jobs.py's Jobs create it).
    cluster.delete({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": namespace}})
    status, _ = cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{secret}", token=token, check=False)
    assert status == 404  # authorised (get by name), absent
    status, body = cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets", token=token, check=False)
    assert status == 403 and "cannot list resource" in body["message"]
