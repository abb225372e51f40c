"""Write a chart's manifests as YAML in Python, byte for byte as cdk8s's own ``App.synth()`` does.

``App.synth()`` with ``FOLDER_PER_CHART_FILE_PER_RESOURCE`` resolves every object to JSON and then,
still in Node, turns each one into YAML with the ``yaml`` package (v2: ``lineWidth: 0``,
``version: '1.1'``) and writes ``<outdir>/<chart>/<kind>.<name>.k8s.yaml``. That YAML step was the
largest single item of a cold synth (docs/performance.md). Here the JSON comes from each chart's
``to_json()`` (synth/python_renderer.py) and the YAML is written by :func:`dump`, a port of the
parts of ``yaml``'s stringifier that plain JSON reaches (block maps and sequences, ``{}``/``[]``,
plain / quoted / literal-block strings, the YAML 1.1 resolution checks that decide quoting).

Anything outside what the port covers raises :class:`Unsupported`; that document is then written by
Node's writer instead, so output never depends on the port being complete. ``tests/test_dist.py`` and the
snapshot tests compare the result with committed output byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from synth.files import write_tree

#: cdk8s App defaults (node_modules/cdk8s/lib/app.js).
EXTENSION = ".k8s.yaml"
INDENT_STEP = "  "
#: ``yaml``'s ``doubleQuotedMinMultiLineLength`` default.
DOUBLE_QUOTED_MIN_MULTILINE = 40


class Unsupported(Exception):
    """A value this port does not reproduce exactly; Node's writer must be used."""


_DOC_MARKER = re.compile(r"^(%|---|\.\.\.)", re.M)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_PLAIN_FORBIDDEN = re.compile(r"^[\n\t ,\[\]{}#&*!|>'\"%@`]|^[?-]\Z|^[?-][ \t]|[\n:][ \t]|[ \t]\n|[\n\t ]#|[\n\t :]\Z")
_WS_END_AFTER_NL = re.compile(r"\n[\t ]+\Z")
_SPACE_AROUND_NL = re.compile(r"[ \t]\n|\n[ \t]")
_NLS = re.compile(r"\n+")
_BLOCK_END_NLS = re.compile(r"(^|(?<!\n))\n+(?!\n|\Z)")
# Plain scalars the YAML 1.1 schema would resolve to something other than a string (yaml/dist/schema).
_NON_STRING = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"^(?:~|[Nn]ull|NULL)?\Z",
            r"^(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)\Z",
            r"^(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)\Z",
            r"^[-+]?0b[0-1_]+\Z",
            r"^[-+]?0[0-7_]+\Z",
            r"^[-+]?[0-9][0-9_]*\Z",
            r"^[-+]?0x[0-9a-fA-F_]+\Z",
            r"^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)\Z",
            r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+\Z",
            r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*\Z",
            r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\Z",
            r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*\Z",
            r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:t|T|[ \t]+)([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2}(\.[0-9]+)?)"
            r"(?:[ \t]*(Z|[-+][012]?[0-9](?::[0-9]{2})?))?)?\Z",
        )
    )
)
_SIMPLE = re.compile(r"[A-Za-z/][A-Za-z0-9_./-]*\Z")  # fast path: always plain


def _json_str(value: str) -> str:
    """``JSON.stringify`` of a string (same escapes as Node for everything but lone surrogates)."""
    return json.dumps(value, ensure_ascii=False)


def _double_quoted(value: str, indent: str, implicit_key: bool) -> str:
    js = _json_str(value)
    if not indent and _DOC_MARKER.search(value):
        indent = "  "
    out = []
    start = 0
    i = 0
    n = len(js)
    while i < n:
        ch = js[i]
        if ch == " " and js[i + 1 : i + 3] == "\\n":
            out.append(js[start:i] + "\\ ")
            i += 1
            start = i
            ch = "\\"
        if ch == "\\":
            nxt = js[i + 1] if i + 1 < n else ""
            if nxt == "u":
                out.append(js[start:i])
                code = js[i + 2 : i + 6]
                special = {
                    "0000": "\\0",
                    "0007": "\\a",
                    "000b": "\\v",
                    "001b": "\\e",
                    "0085": "\\N",
                    "00a0": "\\_",
                    "2028": "\\L",
                    "2029": "\\P",
                }
                if code in special:
                    out.append(special[code])
                elif code[:2] == "00":
                    out.append("\\x" + code[2:])
                else:
                    out.append(js[i : i + 6])
                i += 5
                start = i + 1
            elif nxt == "n":
                if implicit_key or js[i + 2 : i + 3] == '"' or len(js) < DOUBLE_QUOTED_MIN_MULTILINE:
                    i += 1
                else:
                    out.append(js[start:i] + "\n\n")
                    while js[i + 2 : i + 4] == "\\n" and js[i + 4 : i + 5] != '"':
                        out.append("\n")
                        i += 2
                    out.append(indent)
                    if js[i + 2 : i + 3] == " ":
                        out.append("\\")
                    i += 1
                    start = i + 1
            else:
                i += 1
        i += 1
    return "".join(out) + js[start:] if start else js


def _single_quoted(value: str, indent: str, implicit_key: bool) -> str:
    if (implicit_key and "\n" in value) or _SPACE_AROUND_NL.search(value):
        return _double_quoted(value, indent, implicit_key)
    if not indent and _DOC_MARKER.search(value):
        indent = "  "
    body = _NLS.sub(lambda m: m.group(0) + "\n" + indent, value.replace("'", "''"))
    return "'" + body + "'"


def _quoted(value: str, indent: str, implicit_key: bool) -> str:
    has_double = '"' in value
    has_single = "'" in value
    if has_double and not has_single:
        return _single_quoted(value, indent, implicit_key)
    return _double_quoted(value, indent, implicit_key)


def _block(value: str, indent: str, force_indent: bool = False) -> str:
    if _WS_END_AFTER_NL.search(value):
        return _quoted(value, indent, False)
    if not indent:
        indent = "  " if force_indent or _DOC_MARKER.search(value) else ""
    if not value:
        return "|\n"
    end_start = len(value)
    while end_start > 0 and value[end_start - 1] in "\n\t ":
        end_start -= 1
    end = value[end_start:]
    end_nl = end.find("\n")
    if end_nl == -1:
        chomp = "-"
    elif value == end or end_nl != len(end) - 1:
        chomp = "+"
        # onChompKeep: only matters for comments and document ends, which JSON has none of
        raise Unsupported("block scalar with kept trailing newlines")
    else:
        chomp = ""
    if end:
        value = value[: -len(end)]
        if end[-1] == "\n":
            end = end[:-1]
        end = _BLOCK_END_NLS.sub(lambda m: m.group(0) + indent, end)
    start_with_space = False
    start_nl = -1
    start_end = 0
    while start_end < len(value):
        ch = value[start_end]
        if ch == " ":
            start_with_space = True
        elif ch == "\n":
            start_nl = start_end
        else:
            break
        start_end += 1
    start = value[: start_nl + 1 if start_nl < start_end else start_end]
    if start:
        value = value[len(start) :]
        start = _NLS.sub(lambda m: m.group(0) + indent, start)
    header = (("2" if indent else "1") if start_with_space else "") + chomp
    value = _NLS.sub(lambda m: m.group(0) + indent, value)
    return f"|{header}\n{indent}{start}{value}{end}"


@lru_cache(maxsize=65536)
def _string(value: str, indent: str, implicit_key: bool) -> str:
    """A string scalar (labels, names and keys repeat: memoised)."""
    if _SIMPLE.match(value) and not _resolves_otherwise(value):
        return value
    if _CONTROL.search(value):
        return _double_quoted(value, indent, implicit_key)
    if implicit_key and "\n" in value:
        return _quoted(value, indent, implicit_key)
    if _PLAIN_FORBIDDEN.search(value):
        if implicit_key or "\n" not in value:
            return _quoted(value, indent, implicit_key)
        return _block(value, indent)
    if not implicit_key and "\n" in value:
        return _block(value, indent)
    if _DOC_MARKER.search(value):
        if indent == "":
            return _block(value, indent, force_indent=True)
        if implicit_key and indent == INDENT_STEP:
            return _quoted(value, indent, implicit_key)
    text = _NLS.sub(lambda m: m.group(0) + "\n" + indent, value)
    if _resolves_otherwise(text):
        return _quoted(value, indent, implicit_key)
    return text


def _resolves_otherwise(text: str) -> bool:
    return _NON_STRING.match(text) is not None


def _scalar(value: Any, indent: str, implicit_key: bool = False) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or value.is_integer() or "e" in repr(value):
            raise Unsupported(f"float {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _string(value, indent, implicit_key)
    raise Unsupported(f"value of type {type(value).__name__}")


@lru_cache(maxsize=65536)
def _key(key: str, indent: str) -> str:
    """A mapping key with its colon (keys repeat across every manifest: memoised)."""
    k = _string(key, indent, True)
    if len(k) > 1024:
        raise Unsupported("long key")
    return k + ":"


def _node(value: Any, indent: str) -> str:
    """A value at ``indent`` (the indentation of its own lines), as yaml's stringify() returns it."""
    t = type(value)
    if t is dict:
        if not value:
            return "{}"
        lines: list[str] = []
        append = lines.append
        child = indent + INDENT_STEP
        for key, item in value.items():
            if type(key) is not str:
                raise Unsupported("non-string key")
            k = _key(key, child)
            ti = type(item)
            if ti is str:  # most values: a scalar string (never starts with a line break)
                append(f"{k} {_string(item, child, False)}")
            elif ti is int:
                append(f"{k} {item}")
            elif (ti is dict or ti is list) and item:
                append(f"{k}\n{child}{_node(item, child)}")
            else:
                v = _node(item, child)
                append(f"{k}{'' if v[:1] == chr(10) else ' '}{v}")
        return f"\n{indent}".join(lines)
    if t is list:
        if not value:
            return "[]"
        child = indent + INDENT_STEP
        return f"\n{indent}".join(["- " + _node(item, child) for item in value])
    if t is str:
        return _string(value, indent, False)
    if isinstance(value, (dict, list)):
        raise Unsupported(f"value of type {t.__name__}")
    return _scalar(value, indent)


def dump(doc: dict[str, Any]) -> str:
    """One manifest as ``Yaml.stringify`` writes it (a document that is a mapping)."""
    if not isinstance(doc, dict):
        raise Unsupported("document is not a mapping")
    return _node(doc, "") + "\n"


def file_name(obj: dict[str, Any]) -> str:
    """``<kind>.<metadata.name>`` with the characters cdk8s strips removed, plus the extension."""
    base = f"{obj.get('kind')}.{(obj.get('metadata') or {}).get('name')}"
    return re.sub(r"[^0-9a-zA-Z\-_.]", "", base) + EXTENSION


def render_files(charts: Iterable[tuple[str, list[dict[str, Any]]]]) -> dict[Path, str]:
    """``{<chart>/<file>: text}`` for every object of every chart; later objects of a name win (as in cdk8s).

    A manifest holding a value the port does not cover is written by Node's writer instead
    (``cdk8s.Yaml.stringify``, what ``Yaml.save`` writes), one round trip for that document only.
    """
    files: dict[Path, str] = {}
    for chart_name, objects in charts:
        for obj in objects:
            if obj is None:
                continue
            try:
                text = dump(obj)
            except Unsupported:
                from cdk8s import Yaml

                text = Yaml.stringify(obj)
            files[Path(chart_name) / file_name(obj)] = text
    return files


def write_files(outdir: Path, files: dict[Path, str], previous: Path | None = None) -> None:
    """Write each text as UTF-8 under ``outdir`` as new files (mode 0666 less the umask, as ``open()``
    makes files). ``previous``: the folder ``outdir`` will replace; its files with the same bytes are
    linked instead (synth/files.py)."""
    os.makedirs(outdir, exist_ok=True)
    write_tree(outdir, ((str(rel.parent), rel.name, text.encode("utf-8")) for rel, text in files.items()), previous)


def synth(charts: Iterable[tuple[str, Any]], outdir: Path, previous: Path | None = None) -> None:
    """Write ``charts`` (each with its id) into ``outdir`` as ``app.synth()`` with
    ``FOLDER_PER_CHART_FILE_PER_RESOURCE`` would: ``<chart id>/<kind>.<name>.k8s.yaml``.

    The folder of a chart is its id (cdk8s: ``Names.toDnsLabel`` of a one-component path, no chart
    dependencies). The manifests come from each chart's ``to_json()`` (constructs/api_objects.py).
    """
    write_files(outdir, render_files((name, chart.to_json()) for name, chart in charts), previous)
