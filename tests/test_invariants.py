"""Invariants over every object of every shipped environment: the contract of DEVELOPERS.md and #2."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from tests.helpers import pod_labels, pod_specs

LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "iotistica.com/tier",
)
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
#: dist/cluster/ admission policies: admissionregistration.k8s.io/v1 is served from Kubernetes 1.30 (§16).
ADMISSION_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HASHED = re.compile(r"-c8[0-9a-f]{6}$|-[0-9a-f]{8}$")
#: Pods that talk to the Kubernetes API (and so mount a ServiceAccount token).
TOKEN_PODS = {"api", "stream-key-resolver", "redis-auth-generator"}  # lifecycle hook Jobs that write Secrets
#: CRD API groups that end in k8s.io all the same (Gateway API): not part of the core schemas.
CRD_GROUPS = {"gateway.networking.k8s.io"}
#: readOnlyRootFilesystem exceptions, each documented in its construct and on its workload.
RW_ROOT_EXCEPTIONS = {"nodered"}


def all_objects(manifests):
    for release, objs in manifests.items():
        for o in objs:
            yield release, o


def test_every_object_carries_the_label_set(manifests, environments) -> None:
    for release, o in all_objects(manifests):
        labels = o["metadata"].get("labels", {})
        missing = [k for k in LABELS if k not in labels]
        assert not missing, f"{release} {o['kind']}/{o['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == release
        assert labels["app.kubernetes.io/part-of"] == "iotistica"
        assert labels["app.kubernetes.io/managed-by"] == "cdk8s"
        assert labels["iotistica.com/tier"] == environments[release].tier


def fleet_namespaces(env) -> set[str]:
    """The fleet namespaces the model declares for a release (platform-facts §11): their objects live there."""
    fleets = env.fleet_namespaces
    return {env.fleet_namespace(f.name) for f in fleets.fleets} if fleets.enabled else set()


def test_every_namespaced_object_sets_its_namespace(manifests, environments) -> None:
    for release, o in all_objects(manifests):
        if o["kind"] not in CLUSTER_SCOPED:
            env = environments[release]
            namespace = o["metadata"].get("namespace")
            assert namespace == env.namespace or namespace in fleet_namespaces(env), (
                f"{o['kind']}/{o['metadata']['name']}"
            )
        else:
            assert "namespace" not in o["metadata"], f"cluster-scoped {o['kind']}/{o['metadata']['name']}"


def test_names_are_explicit_dns_labels_without_hashes(manifests, environments) -> None:
    for release, o in all_objects(manifests):
        name = o["metadata"]["name"]
        assert DNS_LABEL.match(name) and len(name) <= 63, name
        # Namespace objects are named by the model: the release namespace and its fleet namespaces.
        namespaces = {environments[release].namespace} | fleet_namespaces(environments[release])
        expected = name.startswith(f"{release}-") or name == "iotistic-api"
        expected = expected or (o["kind"] == "Namespace" and name in namespaces)
        assert expected, f"unexpected name {o['kind']}/{name}"
        assert not HASHED.search(name), f"hashed name {name}"


def test_selectors_hold_only_the_immutable_subset(manifests) -> None:
    for release, o in all_objects(manifests):
        spec = o.get("spec", {})
        selector = spec.get("selector")
        if o["kind"] == "Service":
            sel = selector or {}
        elif isinstance(selector, dict) and "matchLabels" in selector:
            sel = selector["matchLabels"]
        else:
            continue
        assert set(sel) == SELECTOR_KEYS, f"{o['kind']}/{o['metadata']['name']}: {sorted(sel)}"
        assert sel["app.kubernetes.io/instance"] == release
        if "template" in spec:
            tmpl = spec["template"]["metadata"]["labels"]
            assert all(tmpl.get(k) == v for k, v in sel.items()), "pod template must match its selector"


def test_every_workload_object_of_a_release_is_selected_by_its_service(manifests) -> None:
    for _release, objs in manifests.items():
        pods = [(o, s) for o, s in pod_specs(objs) if o["kind"] not in ("Job", "CronJob")]
        services = [o for o in objs if o["kind"] == "Service"]
        for o, _ in pods:
            labels = pod_labels(o)
            assert any(all(labels.get(k) == v for k, v in s["spec"]["selector"].items()) for s in services), o[
                "metadata"
            ]["name"]


def _containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def test_images_pinned_resources_set(manifests) -> None:
    for _release, objs in manifests.items():
        for o, spec in pod_specs(objs):
            for c in _containers(spec):
                image = c["image"]
                assert ":" in image and not image.endswith(":latest"), f"{o['metadata']['name']}: {image}"
                # Pull policy follows from pinning (tiers/models/base.py Image): a digest never changes content.
                assert c.get("imagePullPolicy") == ("IfNotPresent" if "@sha256:" in image else "Always"), image
                res = c.get("resources", {})
                assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{o['metadata']['name']}/{c['name']}"
                assert "memory" in res.get("limits", {}), f"{o['metadata']['name']}/{c['name']}"


def test_only_pods_that_talk_to_the_kubernetes_api_mount_a_token(manifests) -> None:
    for _release, objs in manifests.items():
        for o, spec in pod_specs(objs):
            component = pod_labels(o)["app.kubernetes.io/name"]
            expected = component in TOKEN_PODS
            assert spec.get("automountServiceAccountToken") is expected, f"{o['metadata']['name']}"
            assert ("serviceAccountName" in spec) is expected


def test_security_baseline(manifests) -> None:
    for _release, objs in manifests.items():
        for o, spec in pod_specs(objs):
            name = pod_labels(o)["app.kubernetes.io/name"]
            psc = spec["securityContext"]
            assert psc["runAsNonRoot"] is True and isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0
            assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
            for c in _containers(spec):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
                if name in RW_ROOT_EXCEPTIONS:
                    assert "iotistica.com/security-exception" in o["metadata"]["annotations"]
                else:
                    assert sc["readOnlyRootFilesystem"] is True, f"{o['metadata']['name']}/{c['name']}"


def test_no_secret_material(manifests) -> None:
    for release, o in all_objects(manifests):
        assert o["kind"] != "Secret", f"{release}: Secret {o['metadata']['name']} must not be in dist/"
        assert "stringData" not in o


def test_unique_kind_and_name_per_release(manifests) -> None:
    for release, objs in manifests.items():
        keys = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len(keys) == len(set(keys)), release


@pytest.mark.parametrize("release", ["client-demo", "iotistica", "iotistica-enterprise", "iotistica-starter"])
def test_strict_kubernetes_1_27_schema(manifests, release) -> None:
    checked = 0
    for o in manifests[release]:
        group = o["apiVersion"].split("/")[0]
        if group in CRD_GROUPS or ("." in group and not group.endswith("k8s.io")):
            continue  # custom resources: validated against their CRDs in tests/test_crd_schemas.py
        kubernetes_validate.validate(o, "1.27", strict=True)
        checked += 1
    assert checked >= 14


# --- dist/cluster/ (isolation): shared by every release, so instance `cluster` and no tier label ------


def test_cluster_chart_objects_are_cluster_scoped_labelled_and_valid(cluster_manifests, environments) -> None:
    assert cluster_manifests, "dist/cluster/<cluster>/ must not be empty"
    for o in cluster_manifests:
        where = f"cluster {o['kind']}/{o['metadata']['name']}"
        assert o["kind"] in CLUSTER_SCOPED | ADMISSION_KINDS and "namespace" not in o["metadata"], where
        labels = o["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") and labels.get("app.kubernetes.io/component"), where
        assert labels.get("app.kubernetes.io/part-of") == "iotistica", where
        assert labels.get("app.kubernetes.io/managed-by") == "cdk8s", where
        owner = labels.get("app.kubernetes.io/instance")
        if owner == "cluster":
            assert "iotistica.com/tier" not in labels, f"{where}: shared objects carry no tier"
        else:  # a tenant's own file in the platform folder (its Namespaces, its ClusterRoleBinding)
            assert owner in environments, where
            assert labels.get("iotistica.com/tier") == environments[owner].tier, where
        name = o["metadata"]["name"]
        assert DNS_LABEL.match(name) and len(name) <= 63 and not HASHED.search(name), where
        if o["kind"] in ADMISSION_KINDS:
            assert o["apiVersion"] == "admissionregistration.k8s.io/v1", where
            kubernetes_validate.validate(o, "1.30", strict=True)
        else:
            kubernetes_validate.validate(o, "1.27", strict=True)
    keys = [(o["kind"], o["metadata"]["name"]) for o in cluster_manifests]
    assert len(keys) == len(set(keys))
