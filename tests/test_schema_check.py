"""The compiled schema check of ``validate`` (ops/schema_check.py) decides as kubernetes-validate does: every
object of dist/ valid for both, and broken copies of them invalid for both, with the library's message."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ops.schema_check import _check_for, schema_problem

ROOT = Path(__file__).resolve().parent.parent


def _checked(obj: dict) -> bool:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io") and not group.startswith("gateway.")


def _objects() -> list[dict]:
    """The objects ``validate`` checks: those of the release folders (dist/cluster and dist/argocd hold kinds
    the 1.27 schemas do not have, as ValidatingAdmissionPolicy v1)."""
    objs = []
    for path in sorted(ROOT.glob("dist/*/*.yaml")):
        if path.parent.name in ("cluster", "argocd"):
            continue
        objs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and _checked(d)]
    return objs


def _library_says_valid(obj: dict) -> bool:
    try:
        kubernetes_validate.validate(obj, "1.27", strict=True)
    except kubernetes_validate.ValidationError:
        return False
    return True


def test_every_object_of_dist_is_valid_for_both() -> None:
    objs = _objects()
    assert objs
    compiled = 0
    for obj in objs:
        check = _check_for(obj["apiVersion"], obj["kind"])
        if check is not None:
            compiled += 1
            assert check(obj), f"{obj['kind']}/{obj['metadata']['name']}"
        assert schema_problem(obj) is None
    assert compiled == len(objs)  # every kind dist/ holds is compiled


def _deployment() -> dict:
    path = next(p for p in sorted(ROOT.glob("dist/*/Deployment.*.yaml")))
    return yaml.safe_load(path.read_text())


BREAKS = {
    "a string for an integer": lambda d: d["spec"].__setitem__("replicas", "two"),
    "an unknown field": lambda d: d["spec"].__setitem__("replicaz", 2),
    "a required field missing": lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
    "a boolean for an integer": lambda d: d["spec"].__setitem__("revisionHistoryLimit", True),
    "an object for a list": lambda d: d["spec"]["template"]["spec"].__setitem__("containers", {}),
    "a number for a string map value": lambda d: d["metadata"]["labels"].__setitem__("x", 1),
    "a float for an integer": lambda d: d["spec"].__setitem__("replicas", 1.5),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_broken_copies_are_invalid_for_both(name: str) -> None:
    obj = copy.deepcopy(_deployment())
    BREAKS[name](obj)
    check = _check_for(obj["apiVersion"], obj["kind"])
    assert check is not None and not check(obj)
    assert not _library_says_valid(obj)
    problem = schema_problem(obj)
    assert problem is not None and ": " in problem  # the library's path and message


def test_an_integral_float_is_an_integer_for_both() -> None:
    obj = copy.deepcopy(_deployment())
    obj["spec"]["replicas"] = 2.0
    check = _check_for(obj["apiVersion"], obj["kind"])
    assert check is not None and check(obj) == _library_says_valid(obj)
