"""The Kubernetes schema check of ``validate`` (strict OpenAPI schemas of 1.27, as kubernetes-validate ships them),
fast enough to run on every object of a fleet.

``kubernetes_validate.validate`` reads and parses the kind's schema and the 5 MB of shared definitions from disk
for every object, then walks the object with jsonschema: about 10 ms an object, most of ``validate``'s time at
fleet scale (docs/performance.md). Here each schema is read once and compiled into nested Python closures over
the only keywords those schemas use (``type``, ``properties``, ``additionalProperties``, ``required``, ``items``,
``enum``, ``oneOf``, ``$ref``; ``format`` and ``description`` are annotations, as in jsonschema without a format
checker). A schema with any other keyword is not compiled: kubernetes-validate checks those objects.

The closures only decide valid or not. When they say not, kubernetes-validate checks the object again and its
error (path and message) is the one reported, so the wording stays the library's; tests/test_schema_check.py
proves both agree on the shipped objects and on broken copies of them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Check = Callable[[Any], bool]

VERSION = "1.27"
_ANNOTATIONS = frozenset({"description", "format", "$schema", "$id"})
_KEYWORDS = frozenset({"type", "properties", "additionalProperties", "required", "items", "enum", "oneOf", "$ref"})


class Unsupported(Exception):
    """A schema keyword the compiled check does not implement (kubernetes-validate checks the object)."""


@functools.cache
def _schema_dir() -> Path:
    import kubernetes_validate

    return Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema" / "v1.27.0-local-strict"


@functools.cache
def _definitions() -> dict[str, Any]:
    defs: dict[str, Any] = json.loads((_schema_dir() / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    return defs


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or isinstance(value, float) and value.is_integer()
    if name == "number":
        return isinstance(value, (int, float))
    raise Unsupported(f"type {name}")


def _anything(v: Any) -> bool:
    return True


def _nothing(v: Any) -> bool:
    return False


def _of_types(names: tuple[str, ...]) -> Check:
    def check(v: Any) -> bool:
        return any(_is_type(v, n) for n in names)

    return check


def _one_of_values(values: list[Any]) -> Check:
    allowed = [(type(x) is bool, x) for x in values]  # True is not 1 (as jsonschema compares)

    def check(v: Any) -> bool:
        return (type(v) is bool, v) in allowed

    return check


def _exactly_one(options: list[Check]) -> Check:
    def check(v: Any) -> bool:
        return sum(1 for o in options if o(v)) == 1

    return check


def _each_item(each: Check) -> Check:
    def check(v: Any) -> bool:
        return not isinstance(v, list) or all(each(x) for x in v)

    return check


def _all_of(checks: tuple[Check, ...]) -> Check:
    def check(v: Any) -> bool:
        return all(c(v) for c in checks)

    return check


class _Compiler:
    def __init__(self) -> None:
        self.refs: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        name = target.rsplit("#/$defs/", 1)[-1]
        if "#/$defs/" not in target or name not in _definitions():
            raise Unsupported(f"$ref {target}")
        known = self.refs.get(name)
        if known is not None:
            return known
        cell: list[Check] = []

        def forward(v: Any) -> bool:  # a recursive definition refers to itself
            return cell[0](v)

        self.refs[name] = forward
        cell.append(self.compile(_definitions()[name]))
        self.refs[name] = cell[0]
        return cell[0]

    def compile(self, schema: Any) -> Check:
        if schema is True or schema == {}:
            return _anything
        if schema is False:
            return _nothing
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        unknown = [k for k in schema if k not in _KEYWORDS and k not in _ANNOTATIONS and not k.startswith("x-")]
        if unknown:
            raise Unsupported(", ".join(unknown))
        checks: list[Check] = []
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"]))
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            for n in names:
                _is_type(None, n)  # an unknown type name: Unsupported now, not while checking
            checks.append(_of_types(tuple(names)))
        if "enum" in schema:
            checks.append(_one_of_values(schema["enum"]))
        if "oneOf" in schema:
            checks.append(_exactly_one([self.compile(s) for s in schema["oneOf"]]))
        props = {k: self.compile(s) for k, s in (schema.get("properties") or {}).items()}
        required = tuple(schema.get("required") or ())
        extra = schema.get("additionalProperties", True)
        extra_check = None if extra is True or extra == {} else self.compile(extra)
        if props or required or extra_check is not None:

            def check_object(v: Any, props: dict[str, Check] = props, extra: Check | None = extra_check) -> bool:
                if not isinstance(v, dict):
                    return True
                for key in required:
                    if key not in v:
                        return False
                for key, item in v.items():
                    check = props.get(key)
                    if check is not None:
                        if not check(item):
                            return False
                    elif extra is not None and not extra(item):
                        return False
                return True

            checks.append(check_object)
        if "items" in schema:
            checks.append(_each_item(self.compile(schema["items"])))
        return checks[0] if len(checks) == 1 else _all_of(tuple(checks))


_COMPILER = _Compiler()
_CHECKS: dict[tuple[str, str], Check | None] = {}


def _check_for(api_version: str, kind: str) -> Check | None:
    """The compiled check of a kind, or None when kubernetes-validate has no schema for it or one we do not
    compile."""
    key = (api_version, kind)
    if key not in _CHECKS:
        group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = _schema_dir() / f"{kind.lower()}-{group}.json"
        try:
            _CHECKS[key] = _COMPILER.compile(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, Unsupported):
            _CHECKS[key] = None
    return _CHECKS[key]


def schema_problem(obj: dict[str, Any]) -> str | None:
    """``path: message`` of the object's first schema error (Kubernetes 1.27, strict), or None when it is valid."""
    check = _check_for(obj["apiVersion"], obj["kind"])
    if check is not None and check(obj):
        return None
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"{path}: {exc.message}"
    return None
