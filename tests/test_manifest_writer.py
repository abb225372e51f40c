"""The Python YAML writer (synth/manifest_writer.py) writes what cdk8s's Node writer writes.

The whole of dist/ is compared byte for byte by test_dist.py (a fresh synth goes through the Python
writer); here the scalars that decide quoting and block style are checked one by one against
``cdk8s.Yaml.stringify`` (the function ``App.synth()`` uses), in every position a manifest has them:
mapping value, key, sequence item, nested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synth import manifest_writer as mw

TRICKY = [
    "",
    " ",
    "plain",
    "app.kubernetes.io/name",
    "/healthz",
    "-",
    "- x",
    "-x",
    "?",
    "? x",
    ":",
    "a: b",
    "a:b",
    "a:",
    "a #b",
    "a#b",
    "#x",
    "*",
    "*.example.com",
    "&x",
    "!x",
    "|",
    ">",
    "%",
    "@x",
    "`x",
    "'quoted'",
    '"quoted"',
    "it's",
    'say "hi"',
    "both ' and \"",
    "{a}",
    "[a]",
    "a,b",
    "trailing ",
    " leading",
    "tab\tinside",
    "y",
    "Y",
    "n",
    "yes",
    "No",
    "on",
    "OFF",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "1",
    "0",
    "007",
    "0o7",
    "08",
    "0x1F",
    "0b101",
    "1_000",
    "1.5",
    ".5",
    "1.",
    "1e3",
    "1E-3",
    ".inf",
    "-.Inf",
    ".nan",
    "12:30",
    "1:20:30.5",
    "2024-01-31",
    "2024-1-3 10:20:30",
    "2024-01-31T10:20:30Z",
    "<<",
    "=",
    "500m",
    "512Mi",
    "1Gi",
    "10.0.0.0/8",
    "https://example.com:8443/x?y=1#z",
    "sum(rate(x[5m])) > 0.5",
    "line1\nline2",
    "line1\nline2\n",
    "line1\nline2\n\n",
    "\nleading newline",
    "  indented\nblock\n",
    "trailing space \nnext",
    "ends with spaces\n  ",
    "--- not a doc\nx",
    "x\n---\ny\n",
    "x\n...\n",
    "%TAG\n",
    "ctrl\x01char",
    "bell\x07",
    "nbsp\u00a0",
    "unicode é ✓",
    "a long line of text that is certainly more than forty characters\nand a second line",
    "a long double-quoted line with a trailing space before newline \nthat is long enough to fold",
    '#!/bin/sh\nset -eu\necho "$X" # comment\n',
    "key: value\nother: 'x'\n",
]


def node_yaml(docs: list[dict[str, Any]]) -> list[str]:
    from cdk8s import Yaml

    return [Yaml.stringify(doc) for doc in docs]  # one call each: a value may hold "---"


def cases() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for value in TRICKY:
        docs.append({"value": value, "nested": {"deeper": {"v": value}}, "list": [value, [value], {"k": value}]})
        docs.append({value or "empty": 1}) if "\n" not in value and value else None
    docs.append({"empty": {}, "none": [], "t": True, "f": False, "i": 42, "neg": -3, "x": 0.25})
    return docs


def test_scalars_match_node_writer() -> None:
    docs = cases()
    ours = []
    keep = []
    for doc in docs:
        try:
            ours.append(mw.dump(doc))
            keep.append(doc)
        except mw.Unsupported:
            continue
    assert len(keep) >= len(docs) - 4, "the port covers almost every case"
    theirs = node_yaml(keep)
    mismatches = [(o, t) for o, t in zip(ours, theirs, strict=True) if o != t]
    assert not mismatches, f"differs from cdk8s.Yaml.stringify (ours, node's): {mismatches[:3]}"


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(mw.Unsupported):
        mw.dump({"x": 1e21})
    with pytest.raises(mw.Unsupported):
        mw.dump({"x": "kept\n\n"})


def test_file_names_follow_cdk8s() -> None:
    assert mw.file_name({"kind": "ConfigMap", "metadata": {"name": "a-b.c"}}) == "ConfigMap.a-b.c.k8s.yaml"
    assert mw.file_name({"kind": "Role", "metadata": {"name": "x:y"}}) == "Role.xy.k8s.yaml"
    objects: list[Any] = [{"kind": "A", "metadata": {"name": "n"}, "v": 1}, None]
    files = mw.render_files([("c", objects)])
    assert list(files) == [Path("c") / "A.n.k8s.yaml"]
