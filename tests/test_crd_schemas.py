"""Custom resources against the openAPIV3Schema of their CRD (tests/crd-schemas/), strictly.

kubernetes-validate only knows core kinds; these objects are checked here instead. The schema of the
object's exact apiVersion is used, the version must be served, and unknown keys are rejected (the
API server would silently prune them). CEL rules are not evaluated.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.helpers import SHIPPED, Manifest, env_from, synth_env

SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
#: Kinds the edge concern emits; each must be covered by a vendored CRD and seen in the shipped environments.
EDGE_KINDS = {"HTTPRoute", "TLSRoute", "BackendTrafficPolicy", "Certificate", "ServiceMonitor", "PrometheusRule"}

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


def _strict(schema: Any) -> Any:
    """A copy where every object schema with ``properties`` rejects other keys."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> {version: (served, strict schema)}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_Loader)
        assert crd["kind"] == "CustomResourceDefinition", path.name
        spec = crd["spec"]
        versions = {}
        for v in spec["versions"]:
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            schema["properties"].pop("metadata", None)  # ObjectMeta: checked by tests/test_invariants.py
            versions[v["name"]] = (v["served"], _strict(schema))
        out[(spec["group"], spec["names"]["kind"])] = versions
    return out


def custom_resources(objs: list[Manifest]) -> list[Manifest]:
    return [o for o in objs if (o["apiVersion"].rsplit("/", 1)[0], o["kind"]) in crds()]


def validate(o: Manifest) -> None:
    group, version = o["apiVersion"].rsplit("/", 1)
    versions = crds()[(group, o["kind"])]
    assert version in versions, f"{o['kind']} has no version {version} (CRD: {sorted(versions)})"
    served, schema = versions[version]
    assert served, f"{o['apiVersion']} {o['kind']} is not served"
    body = {k: v for k, v in o.items() if k != "metadata"}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    where = f"{o['kind']}/{o['metadata']['name']}"
    assert not errors, where + "\n" + "\n".join(f"  {list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_the_vendored_crds_cover_the_edge_kinds() -> None:
    assert EDGE_KINDS <= {kind for _, kind in crds()}


@pytest.mark.parametrize("release", SHIPPED)
def test_custom_resources_of_shipped_environments_match_their_crds(manifests, release) -> None:
    objs = custom_resources(manifests[release])
    for o in objs:
        validate(o)
    seen = {o["kind"] for o in objs}
    expected = {"HTTPRoute", "TLSRoute", "BackendTrafficPolicy", "Certificate"}
    if release in ("iotistica", "iotistica-enterprise"):
        expected |= {"ServiceMonitor", "PrometheusRule"}
    assert expected <= seen, f"{release}: missing {sorted(expected - seen)}"


@pytest.mark.parametrize(
    "versions",
    [
        {
            "httpRoute": "gateway.networking.k8s.io/v1beta1",
            "tlsRoute": "gateway.networking.k8s.io/v1alpha2",
            "tcpRoute": "gateway.networking.k8s.io/v1alpha2",
        },
        {"tlsRoute": "gateway.networking.k8s.io/v1alpha3"},
        {},
    ],
)
def test_every_route_version_and_optional_route_matches_its_crd(versions) -> None:
    env = env_from(
        "client-demo",
        edge={"apiVersions": versions, "routes": {"mqtt": True, "websockets": True}},
        nodered={"enabled": True},
        monitoring={"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    )
    objs = custom_resources(synth_env(env))
    kinds = sorted(o["kind"] for o in objs)
    assert kinds.count("HTTPRoute") == 4 and "TCPRoute" in kinds and "TLSRoute" in kinds
    for o in objs:
        validate(o)


def test_the_check_itself_rejects_unknown_keys_wrong_types_and_unserved_versions(manifests) -> None:
    route = next(o for o in manifests["client-demo"] if o["kind"] == "HTTPRoute")
    bad = copy.deepcopy(route)
    bad["spec"]["rules"][0]["backendRefs"][0]["prot"] = 3002  # a typo the API server would prune
    with pytest.raises(AssertionError, match="prot"):
        validate(bad)
    bad = copy.deepcopy(route)
    bad["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    with pytest.raises(AssertionError, match="Prefix"):
        validate(bad)
    bad = copy.deepcopy(route)
    bad["apiVersion"] = "gateway.networking.k8s.io/v1alpha9"
    with pytest.raises(AssertionError, match="no version v1alpha9"):
        validate(bad)
    policy = next(o for o in manifests["client-demo"] if o["kind"] == "BackendTrafficPolicy")
    bad = copy.deepcopy(policy)
    bad["spec"]["rateLimit"]["local"]["rules"][0]["limit"]["unit"] = "minute"
    with pytest.raises(AssertionError, match="minute"):
        validate(bad)
