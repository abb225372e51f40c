"""Which environments a command acts on: release names, a label-style selector (``-l tier=standard``), or all.

A selector is ``KEY=VALUE`` (also ``KEY==VALUE`` and ``KEY!=VALUE``), several joined by commas or given as
several ``-l`` options; every term must hold (as ``kubectl -l`` and ``helmfile -l``). The keys are fields of the
environment file, a small documented set (docs/operations.md):

- ``release``, ``namespace``, ``tier``;
- ``cluster``: the cluster an environment is deployed to (``cluster.name`` of the file where the model has it;
  ``in-cluster``, Argo CD's name for the cluster it runs in, otherwise).

An unknown key, a term without ``=`` and a selector that matches no environment are errors (exit 2) naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tiers.errors import ConfigError

if TYPE_CHECKING:
    from tiers.models import Environment

#: The cluster of an environment whose model has no cluster name: Argo CD's name for its own cluster.
IN_CLUSTER = "in-cluster"


def _cluster(env: Environment) -> str:
    cluster = getattr(env, "cluster", None)
    name = getattr(cluster, "name", None)
    return str(name) if name else IN_CLUSTER


KEYS: dict[str, Callable[[Environment], str]] = {
    "release": lambda e: e.release,
    "namespace": lambda e: e.namespace,
    "tier": lambda e: str(e.tier),
    "cluster": _cluster,
}


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    equal: bool

    def matches(self, env: Environment) -> bool:
        return (KEYS[self.key](env) == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.key}{'=' if self.equal else '!='}{self.value}"


def parse_selector(texts: Sequence[str]) -> list[Term]:
    """The terms of every ``-l`` given; a malformed term or an unknown key is a ConfigError naming it."""
    terms: list[Term] = []
    for text in texts:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            equal = "!=" not in part
            key, sep, value = part.partition("!=" if not equal else "==" if "==" in part else "=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise ConfigError("-l", part, "a selector term is KEY=VALUE or KEY!=VALUE")
            if key not in KEYS:
                import difflib

                near = difflib.get_close_matches(key, list(KEYS), n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ConfigError("-l", part, f"unknown key {key!r}; {hint}the keys are {', '.join(KEYS)}")
            terms.append(Term(key, value, equal))
    return terms


def add_selector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-l",
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only the environments matching (keys: " + ", ".join(KEYS) + "; KEY!=VALUE; comma = and)",
    )


def select(envs: Sequence[Environment], names: Sequence[str], selector: Sequence[str]) -> list[Environment]:
    """The environments named (all when none) that match every selector term.

    ``envs`` is the whole fleet, loaded; a name without an environment, or a selector matching none of the named
    environments, is a ConfigError naming it and the known releases.
    """
    terms = parse_selector(selector)
    known = {e.release: e for e in envs}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(unknown[0], "", f"no such release; the releases are {listing(known)}")
    chosen = [e for e in envs if (not names or e.release in names) and all(t.matches(e) for t in terms)]
    if terms and not chosen:
        text = ",".join(str(t) for t in terms)
        raise ConfigError("-l", text, f"matches no environment (the releases are {listing(known)})")
    return chosen


def listing(names: Iterable[str], most: int = 20) -> str:
    """Sorted names, comma separated, the first ``most`` of them and how many more."""
    ordered = sorted(names)
    head = ", ".join(ordered[:most])
    return head + (f" and {len(ordered) - most} more" if len(ordered) > most else "")
