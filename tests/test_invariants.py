"""Invariants over every object of every shipped environment: the contract of DEVELOPERS.md and #2."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from tests.helpers import pod_specs

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
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HASHED = re.compile(r"-c8[0-9a-f]{6}$|-[0-9a-f]{8}$")
#: Pods that talk to the Kubernetes API (and so mount a ServiceAccount token).
TOKEN_PODS = {"api"}
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


def test_every_namespaced_object_sets_its_namespace(manifests, environments) -> None:
    for release, o in all_objects(manifests):
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"].get("namespace") == environments[release].namespace, (
                f"{o['kind']}/{o['metadata']['name']}"
            )


def test_names_are_explicit_dns_labels_without_hashes(manifests) -> None:
    for release, o in all_objects(manifests):
        name = o["metadata"]["name"]
        assert DNS_LABEL.match(name) and len(name) <= 63, name
        assert name.startswith(f"{release}-") or name == "iotistic-api", f"unexpected name {name}"
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
        pods = [(o, s) for o, s in pod_specs(objs) if o["kind"] != "Job"]
        services = [o for o in objs if o["kind"] == "Service"]
        for o, _ in pods:
            labels = o["spec"]["template"]["metadata"]["labels"]
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
                assert c.get("imagePullPolicy") == "IfNotPresent"
                res = c.get("resources", {})
                assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{o['metadata']['name']}/{c['name']}"
                assert "memory" in res.get("limits", {}), f"{o['metadata']['name']}/{c['name']}"


def test_only_pods_that_talk_to_the_kubernetes_api_mount_a_token(manifests) -> None:
    for _release, objs in manifests.items():
        for o, spec in pod_specs(objs):
            component = o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            expected = component in TOKEN_PODS
            assert spec.get("automountServiceAccountToken") is expected, f"{o['metadata']['name']}"
            assert ("serviceAccountName" in spec) is expected


def test_security_baseline(manifests) -> None:
    for _release, objs in manifests.items():
        for o, spec in pod_specs(objs):
            name = o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
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
        if "." in o["apiVersion"].split("/")[0] and not o["apiVersion"].split("/")[0].endswith("k8s.io"):
            continue  # custom resources: validated against their CRDs elsewhere
        kubernetes_validate.validate(o, "1.27", strict=True)
        checked += 1
    assert checked >= 14
