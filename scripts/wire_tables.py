#!/usr/bin/env python3
"""Generate ``imports/wire_tables.json``: how each L1 binding renders itself, read from its own JavaScript.

Every L1 class of ``cdk8s_plus_27.k8s`` and of the CRD bindings in ``imports/`` renders through
generated ``toJson_<Type>(obj)`` functions: each lists the type's fields in output order, maps the
jsii name to the Kubernetes name (``clusterIp`` -> ``clusterIP``, ``xKubernetesListType`` ->
``x-kubernetes-list-type``) and converts nested values in one of a few generated shapes. This script
reads those functions, the classes' GVKs and the enums' values out of the jsii tarballs (the exact
code the jsii kernel runs) into one JSON table, which ``synth/python_renderer.py`` uses to render the
same objects in Python.

Usage: scripts/wire_tables.py IMPORTS_DIR   (writes IMPORTS_DIR/wire_tables.json; run by `make imports`)
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

#: The generated right-hand sides of a ``toJson_`` field (``F`` a ``toJson_`` function, ``X`` the field).
SHAPES = {
    "obj.X": "v",  # a plain value
    "F(obj.X)": "s",  # a struct
    "obj.X?.map(y => F(y))": "sl",  # a list of structs
    "obj.X?.map(y => y)": "l",  # a list of plain values
    "obj.X?.value": "q",  # a union value (IntOrString, Quantity): its .value
    "obj.X?.toISOString()": "date",
    "((obj.X) === undefined) ? undefined : (Object.entries(obj.X).reduce((r, i) => (i[1] === undefined) ? r : "
    "({ ...r, [i[0]]: i[1] }), {}))": "m",
    "((obj.X) === undefined) ? undefined : (Object.entries(obj.X).reduce((r, i) => (i[1] === undefined) ? r : "
    "({ ...r, [i[0]]: i[1]?.value }), {}))": "qm",
    "((obj.X) === undefined) ? undefined : (Object.entries(obj.X).reduce((r, i) => (i[1] === undefined) ? r : "
    "({ ...r, [i[0]]: F(i[1]) }), {}))": "sm",
    "((obj.X) === undefined) ? undefined : (Object.entries(obj.X).reduce((r, i) => (i[1] === undefined) ? r : "
    "({ ...r, [i[0]]: i[1]?.map(y => y) }), {}))": "lm",
    "((obj.X) === undefined) ? undefined : (Object.entries(obj.X).reduce((r, i) => (i[1] === undefined) ? r : "
    "({ ...r, [i[0]]: i[1]?.map(y => F(y)) }), {}))": "slm",
}

_FUNCTION = re.compile(r"^function toJson_(\w+)\(obj\) \{\n(.*?)\n\}\n", re.S | re.M)
_RESULT = re.compile(r"    const result = \{\n(.*?)\n    \};\n", re.S)
_FIELD = re.compile(r"^\s*'([^']+)': (.*),$")
_JSII_NAME = re.compile(r"obj\.(\w+)")
_CHILD = re.compile(r"toJson_(\w+)")
_CLASS = re.compile(r"^class (\w+) extends cdk8s_1\.ApiObject \{\n(.*?)^\}\n", re.S | re.M)
_CLASS_PROPS = re.compile(r"\.\.\.toJson_(\w+)\(resolved\)")
_GVK = re.compile(r"^(\w+)\.GVK = \{\n\s*apiVersion: '([^']+)',\n\s*kind: '([^']+)',\n\};", re.M)
_ENUM = re.compile(r"^\(function \((\w+)\) \{\n(.*?)^\}\)\(", re.S | re.M)
_ENUM_MEMBER = re.compile(r"^\s*\w+\[\"(\w+)\"\] = (\"(?:[^\"\\]|\\.)*\"|-?\d+(?:\.\d+)?);", re.M)


class ParseError(Exception):
    pass


def parse(source: str, prefix: str) -> dict[str, Any]:
    """The tables of one binding's JavaScript; ``prefix`` is its jsii namespace (``cdk8s-plus-27.k8s``)."""
    structs: dict[str, list[list[str]]] = {}
    for match in _FUNCTION.finditer(source):
        name, body = match.groups()
        result = _RESULT.search(body)
        if result is None:
            raise ParseError(f"toJson_{name}: no result object")
        fields = []
        for line in result.group(1).split("\n"):
            field = _FIELD.match(line)
            if field is None:
                raise ParseError(f"toJson_{name}: unexpected line {line.strip()!r}")
            wire, rhs = field.groups()
            jsii_name = _JSII_NAME.search(rhs)
            child = _CHILD.search(rhs)
            shape = SHAPES.get(re.sub(r"obj\.\w+", "obj.X", _CHILD.sub("F", rhs)))
            if jsii_name is None or shape is None:
                raise ParseError(f"toJson_{name}: field {wire!r} has an unknown shape: {rhs}")
            fields.append([wire, jsii_name.group(1), shape, f"{prefix}.{child.group(1)}" if child else ""])
        structs[f"{prefix}.{name}"] = fields
    gvks = {m.group(1): [m.group(2), m.group(3)] for m in _GVK.finditer(source)}
    classes: dict[str, dict[str, Any]] = {}
    for match in _CLASS.finditer(source):
        name, body = match.groups()
        props = _CLASS_PROPS.search(body)
        if name not in gvks or props is None:
            raise ParseError(f"class {name}: no GVK or no toJson_<Props>(resolved)")
        api_version, kind = gvks[name]
        classes[f"{prefix}.{name}"] = {"apiVersion": api_version, "kind": kind, "props": f"{prefix}.{props.group(1)}"}
    enums = {
        f"{prefix}.{m.group(1)}": {k: json.loads(v) for k, v in _ENUM_MEMBER.findall(m.group(2))}
        for m in _ENUM.finditer(source)
    }
    return {"structs": structs, "classes": classes, "enums": enums}


def _read_member(tgz: Path, suffix: str) -> tuple[str, str]:
    """(package name, source) of the one ``*.js`` member of ``tgz`` ending in ``suffix``."""
    with tarfile.open(tgz) as tar:
        manifest = tar.extractfile("package/package.json")
        if manifest is None:
            raise ParseError(f"{tgz.name}: no package/package.json")
        package = json.loads(manifest.read().decode("utf-8"))
        members = [m for m in tar.getmembers() if m.name.endswith(suffix)]
        if len(members) != 1:
            raise ParseError(f"{tgz.name}: expected one *{suffix}, found {[m.name for m in members]}")
        data = tar.extractfile(members[0])
        assert data is not None
        return package["name"], data.read().decode("utf-8")


def core_tarball() -> Path:
    """The cdk8s-plus-27 assembly the installed Python package loads into the kernel."""
    import importlib.util

    spec = importlib.util.find_spec("cdk8s_plus_27")
    if spec is None or spec.origin is None:
        raise ParseError("cdk8s_plus_27 is not installed (run `make setup`)")
    found = sorted((Path(spec.origin).parent / "_jsii").glob("*.jsii.tgz"))
    if len(found) != 1:
        raise ParseError(f"expected one cdk8s-plus-27 tarball, found {found}")
    return found[0]


def build(imports_dir: Path) -> dict[str, Any]:
    """Tables for the core types and every CRD binding under ``imports_dir``, merged, keys sorted."""
    _, core = _read_member(core_tarball(), "lib/imports/k8s.js")
    parts = [parse(core, "cdk8s-plus-27.k8s")]
    for tgz in sorted(imports_dir.rglob("_jsii/*.jsii.tgz")):
        # A generated binding: one JavaScript file, its jsii namespace the package name.
        name, source = _read_member(tgz, ".js")
        parts.append(parse(source, name))
    tables: dict[str, Any] = {"structs": {}, "classes": {}, "enums": {}}
    for part in parts:
        for key, table in part.items():
            tables[key].update(table)
    return {key: dict(sorted(table.items())) for key, table in tables.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    imports_dir = Path(argv[0])
    try:
        tables = build(imports_dir)
    except ParseError as exc:
        print(f"wire_tables: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(tables, separators=(",", ":"), sort_keys=False) + "\n"
    (imports_dir / "wire_tables.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
