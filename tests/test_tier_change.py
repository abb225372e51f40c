"""A tier is one line: a file `new` wrote changes tier by its `tier:` line alone, and every commented
example of a scaffold can be uncommented as it stands; `validate --strict` holds for each.

One fleet in a temporary folder holds the cases (one file each), so one `validate --strict` run checks them
all and names the file of any that fails. Its database server declares room for all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import cli
from tiers import TIERS
from tiers.capacity import capacity
from tiers.fleet import Sources, validate_fleet
from tiers.loader import load_environment

#: A commented example: ``# key: ...`` (or ``  # key: ...`` inside a block), a camelCase settings key.
EXAMPLE_START = re.compile(r"^(\s*)# ([a-z][A-Za-z0-9]*:(?: .*)?)$")
COMMENT = re.compile(r"^(\s*)# (.*)$")
#: What `new` writes: the operator's choices (release, namespace, tier, hosts) and the database server's
#: max_connections as the fleet declares it; never a tier's numbers.
WRITTEN_KEYS = {"release", "namespace", "tier", "edge", "database"}


def examples(text: str) -> list[tuple[int, int]]:
    """(first, end) line ranges of the commented examples: a key line and its more indented continuation."""
    lines = text.splitlines()
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        start = EXAMPLE_START.match(lines[i])
        if not start:
            i += 1
            continue
        column, first = len(start.group(1)), i
        i += 1
        while i < len(lines):
            more = COMMENT.match(lines[i])
            if not more or len(more.group(1)) != column or not more.group(2).startswith(" "):
                break
            i += 1
        found.append((first, i))
    return found


def uncomment(text: str, span: tuple[int, int]) -> str:
    lines = text.splitlines()
    for n in range(*span):
        lines[n] = re.sub(r"^(\s*)# ", r"\1", lines[n], count=1)
    return "\n".join(lines) + "\n"


def new(fleet: Path, name: str, tier: str) -> Path:
    assert cli.main(["--environments", str(fleet), "new", name, "--tier", tier]) == 0
    return fleet / f"{name}.yaml"


def settings(path: Path) -> object:
    """The file's settings with its name replaced: files that differ only in name compare equal."""
    return yaml.safe_load(path.read_text().replace(path.stem, "NAME"))


ANCHOR = "release: anchor\nnamespace: anchor\ntier: demo\ndatabase:\n  maxConnections: 5000\n"


def test_a_tier_is_one_line_and_every_example_uncomments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two fleets; each declares its database server's max_connections once (anchor.yaml), room for every case.
    pairs, fleet = tmp_path / "pairs", tmp_path / "environments"
    for folder in (pairs, fleet):
        folder.mkdir()
        (folder / "anchor.yaml").write_text(ANCHOR)
    # Every pair (old, tier): `new --tier old`, then the tier line alone changed to `tier`. Each such file holds
    # the same settings as every other file changed to `tier` (comments aside), so one of them per tier, a
    # changed one, is validated below for all four.
    for old in TIERS:
        for tier in TIERS:
            path = new(pairs, f"{old}-to-{tier}", old)
            text = path.read_text()
            assert set(yaml.safe_load(text)) <= WRITTEN_KEYS, f"new --tier {old} wrote more than the operator chose"
            assert text.count(f"\ntier: {old}\n") == 1
            path.write_text(text.replace(f"\ntier: {old}\n", f"\ntier: {tier}\n"))
    cases = 0
    for i, tier in enumerate(TIERS):
        changed = [settings(pairs / f"{old}-to-{tier}.yaml") for old in TIERS]
        assert all(c == changed[0] for c in changed), f"files changed to {tier} differ: {changed}"
        old = TIERS[i - 1]  # another tier than its own
        (fleet / f"{old}-to-{tier}.yaml").write_text((pairs / f"{old}-to-{tier}.yaml").read_text())
        cases += 1
    # Every commented example of every tier's scaffold, uncommented alone, one file each.
    for tier in TIERS:
        spans = examples(new(fleet, f"ex-{tier}-0", tier).read_text())
        assert len(spans) >= 4, f"new --tier {tier}: expected its commented examples, found {spans}"
        for i, span in enumerate(spans):
            path = fleet / f"ex-{tier}-0.yaml" if i == 0 else new(fleet, f"ex-{tier}-{i}", tier)
            text = path.read_text()
            assert examples(text) == spans  # the same scaffold, another name
            edited = uncomment(text, span)
            assert yaml.safe_load(edited) != yaml.safe_load(text), (tier, i, edited)
            path.write_text(edited)
            cases += 1
    capsys.readouterr()
    rc = cli.main(["--environments", str(fleet), "validate", "--strict"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, ""), err
    assert out.strip().splitlines()[-1] == f"ok: {cases + 1} environment(s) valid"


def test_every_example_of_a_scaffold_alone_on_its_server_uncomments(tmp_path: Path) -> None:
    """Alone on its database server, `new` writes a database block only where the tier's budget needs one."""
    for tier in TIERS:
        path = new(tmp_path / tier, "solo", tier)
        text = path.read_text()
        spans = examples(text)
        assert len(spans) >= 4, text
        for span in spans:
            path.write_text(uncomment(text, span))
            env = load_environment(path, f"environments/{path.name}")  # no duplicate key, a valid model
            assert capacity(env).findings == [], (tier, span)
            assert validate_fleet([env], Sources.of([env], path.parent)) == []


def test_the_example_parser_finds_nested_and_top_level_examples() -> None:
    text = (
        "release: a\n# Prose: not an example\ndatabase:\n  maxConnections: 500\n  # pooler: {enabled: true}  # why\n"
        "\n# Examples:\n# api:\n#   hpa: {maxReplicas: 6}\n# monitoring:\n#   enabled: true\n"
    )
    spans = examples(text)
    assert spans == [(4, 5), (7, 9), (9, 11)]
    assert "  pooler: {enabled: true}  # why\n" in uncomment(text, spans[0])
    assert yaml.safe_load(uncomment(text, spans[1]))["api"] == {"hpa": {"maxReplicas": 6}}
