"""Argo CD's AppProject permission rules, ported from Argo CD's source for the tests (not part of the product).

Ported from argoproj/argo-cd (the v3.5 line; the ApplicationSet and AppProject CRDs of ../shared/crds/argo-cd
are v3.5.1):

- ``pkg/apis/application/v1alpha1/app_project_types.go``: ``IsGroupKindNamePermitted``,
  ``IsResourcePermitted``, ``globMatch``, ``IsSourcePermitted``, ``IsDestinationPermitted`` (without
  ``permitOnlyProjectScopedClusters``, which no project here sets), ``isDestinationMatched``,
  ``isDenyPattern``;
- ``pkg/apis/application/v1alpha1/types.go``: ``isResourceInList``, ``isNamedResourceInList`` (Go's
  ``path/filepath.Match`` on kind, group and name);
- ``util/glob/glob.go``: ``Match``, which compiles the pattern with ``github.com/gobwas/glob``
  (``*`` any run of non-separators, ``**`` any run, ``?`` one non-separator, ``[...]``/``[!...]``
  classes, ``{a,b}`` alternatives, ``\\`` escapes);
- ``util/git/git.go``: ``NormalizeGitURL`` (lower case, ``.git`` trimmed, scp-like SSH URLs made
  ``ssh://``), for the https and ssh URLs these tests use.

tests/test_argocd_projects.py checks this port against Argo CD's own unit-test tables
(``types_test.go``: ``TestAppProject_IsSourcePermitted``, ``..._IsNegatedSourcePermitted``,
``..._IsDestinationPermitted``, ``..._IsNegatedDestinationPermitted``, ``..._IsGroupKindPermitted``) before
applying it to dist/.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


# --- util/glob (gobwas/glob) and path/filepath.Match ------------------------------------------------


def _class(pattern: str, i: int, negation: str) -> tuple[str, int]:
    """A ``[...]`` class starting at ``pattern[i] == '['``: (regex, index after it)."""
    j = i + 1
    negated = j < len(pattern) and pattern[j] in negation
    if negated:
        j += 1
    body = ""
    while j < len(pattern) and pattern[j] != "]":
        if pattern[j] == "\\" and j + 1 < len(pattern):
            j += 1
        c = pattern[j]
        body += "-" if c == "-" else re.escape(c)
        j += 1
    if j >= len(pattern):
        raise ValueError(f"unclosed class in {pattern!r}")
    return ("[^" if negated else "[") + body + "]", j + 1


@functools.cache
def _gobwas(pattern: str, separators: str) -> re.Pattern[str] | None:
    """gobwas/glob.Compile(pattern, separators...) as a regex; None when it does not compile."""
    not_sep = f"[^{re.escape(separators)}]" if separators else "."

    def parse(i: int, in_alt: bool) -> tuple[str, int]:
        out = ""
        while i < len(pattern):
            c = pattern[i]
            if in_alt and c in ",}":
                return out, i
            if c == "\\" and i + 1 < len(pattern):
                out += re.escape(pattern[i + 1])
                i += 2
            elif c == "*":
                if pattern.startswith("**", i):
                    out += ".*"
                    i += 2
                else:
                    out += f"{not_sep}*"
                    i += 1
            elif c == "?":
                out += not_sep
                i += 1
            elif c == "[":
                cls, i = _class(pattern, i, "!")
                out += cls
            elif c == "{":
                alts, i = [], i + 1
                while True:
                    alt, i = parse(i, True)
                    alts.append(alt)
                    if i >= len(pattern):
                        raise ValueError("unclosed {")
                    if pattern[i] == "}":
                        i += 1
                        break
                    i += 1  # ","
                out += "(?:" + "|".join(alts) + ")"
            else:
                out += re.escape(c)
                i += 1
        return out, i

    try:
        body, _ = parse(0, False)
    except ValueError:
        return None
    return re.compile(body, re.DOTALL)


def glob_match(pattern: str, text: str, separators: str = "") -> bool:
    """util/glob.Match: false when the pattern does not compile."""
    compiled = _gobwas(pattern, separators)
    return compiled is not None and compiled.fullmatch(text) is not None


@functools.cache
def _filepath(pattern: str) -> re.Pattern[str] | None:
    out, i = "", 0
    try:
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                out += re.escape(pattern[i + 1])
                i += 2
            elif c == "*":
                out += "[^/]*"
                i += 1
            elif c == "?":
                out += "[^/]"
                i += 1
            elif c == "[":
                cls, i = _class(pattern, i, "^")
                out += cls
            else:
                out += re.escape(c)
                i += 1
    except ValueError:
        return None
    return re.compile(out, re.DOTALL)


def filepath_match(pattern: str, name: str) -> bool:
    """Go's path/filepath.Match (a malformed pattern: no match, as the callers treat its error)."""
    compiled = _filepath(pattern)
    return compiled is not None and compiled.fullmatch(name) is not None


# --- app_project_types.go ------------------------------------------------------------------------


def is_deny_pattern(pattern: str) -> bool:
    return pattern.startswith("!")


def glob_match_neg(pattern: str, val: str, allow_negation: bool, separators: str = "") -> bool:
    """``globMatch``."""
    if allow_negation and is_deny_pattern(pattern):
        return not glob_match(pattern[1:], val, separators)
    if pattern == "*":
        return True
    return glob_match(pattern, val, separators)


def normalize_git_url(repo: str) -> str:
    """``util/git.NormalizeGitURL`` for https://, ssh:// and scp-like (git@host:path) URLs."""
    repo = repo.strip().lower()
    if re.match(r"^(ssh://)?([^/:]*?)@[^@]+$", repo) and not repo.startswith("ssh://"):
        repo = "ssh://" + repo.replace(":", "/", 1)
    repo = repo.removesuffix(".git")
    return repo.removeprefix("ssh://")


@dataclass(frozen=True)
class Cluster:
    server: str
    name: str = ""


class Project:
    """One AppProject's ``spec`` and the rules Argo CD applies with it."""

    def __init__(self, spec: Obj, name: str = "") -> None:
        self.spec, self.name = spec, name

    def is_source_permitted(self, repo_url: str) -> bool:
        """``IsSourcePermitted``."""
        src = normalize_git_url(repo_url)
        any_matched = False
        for repo in self.spec.get("sourceRepos") or []:
            if is_deny_pattern(repo):
                normalized = "!" + normalize_git_url(repo.removeprefix("!"))
            else:
                normalized = normalize_git_url(repo)
            matched = glob_match_neg(normalized, src, True, "/")
            if matched:
                any_matched = True
            elif is_deny_pattern(normalized):
                return False
        return any_matched

    def is_destination_permitted(self, cluster: Cluster | None, namespace: str) -> bool:
        """``IsDestinationPermitted`` (``permitOnlyProjectScopedClusters`` unset)."""
        if cluster is None:
            return False
        any_matched = False
        for item in self.spec.get("destinations") or []:
            i_name, i_server, i_ns = item.get("name", ""), item.get("server", ""), item.get("namespace", "")
            name_matched = cluster.name != "" and glob_match_neg(i_name, cluster.name, True)
            server_matched = cluster.server != "" and glob_match_neg(i_server, cluster.server, True)
            ns_matched = glob_match_neg(i_ns, namespace, True)
            matched = (server_matched or name_matched) and ns_matched
            if matched:
                any_matched = True
            elif (not name_matched and is_deny_pattern(i_name)) or (
                (not server_matched and is_deny_pattern(i_server)) and ns_matched
            ):
                return False
            elif not ns_matched and is_deny_pattern(i_ns) and server_matched:
                return False
        return any_matched

    def is_group_kind_name_permitted(self, group: str, kind: str, name: str, namespaced: bool) -> bool:
        """``IsGroupKindNamePermitted``: a ``None`` whitelist (the key absent) is Go's nil slice."""
        if namespaced:
            white = self.spec.get("namespaceResourceWhitelist")
            black = self.spec.get("namespaceResourceBlacklist")
            whitelisted = white is None or (len(white) != 0 and _in_list(group, kind, white))
            blacklisted = bool(black) and _in_list(group, kind, black or [])
            return whitelisted and not blacklisted
        white = self.spec.get("clusterResourceWhitelist")
        black = self.spec.get("clusterResourceBlacklist")
        whitelisted = bool(white) and _in_named_list(group, kind, name, white or [])
        blacklisted = bool(black) and _in_named_list(group, kind, name, black or [])
        return whitelisted and not blacklisted

    def is_resource_permitted(self, group: str, kind: str, name: str, namespace: str, cluster: Cluster) -> bool:
        """``IsResourcePermitted``: the kind, then (namespaced) the destination."""
        if not self.is_group_kind_name_permitted(group, kind, name, namespace != ""):
            return False
        if namespace != "":
            return self.is_destination_permitted(cluster, namespace)
        return True


def _in_list(group: str, kind: str, items: list[Obj]) -> bool:
    """``isResourceInList`` (types.go)."""
    return any(filepath_match(i.get("kind", ""), kind) and filepath_match(i.get("group", ""), group) for i in items)


def _in_named_list(group: str, kind: str, name: str, items: list[Obj]) -> bool:
    """``isNamedResourceInList`` (types.go)."""
    for i in items:
        if not filepath_match(i.get("kind", ""), kind) or not filepath_match(i.get("group", ""), group):
            continue
        if not i.get("name") or filepath_match(i["name"], name):
            return True
    return False


def group_of(obj: Obj) -> str:
    api = obj["apiVersion"]
    return api.rsplit("/", 1)[0] if "/" in api else ""
