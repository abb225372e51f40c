"""``iotistica-k8s diff``: an object-level diff, the working change against the committed dist/ (the whole fleet,
some releases, or those a selector picks), or ``--compare A B`` (release and namespace normalised). Takes the
argparse namespace, prints the changes (or ``--json``) and gives exit 1 when there are any.

Review at fleet scale (docs/operations.md): a field changed the same way on several objects is one line ("on 23
objects"); a changed value is shown whole (a line diff when long or multi-line); risky changes are marked ``!``
(a kind changed under the same name, a selector changed, a claim or PVC dropped, a Service type changed).
The fresh side is rendered in memory and compared file by file with the committed bytes: only the files that
differ are parsed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ops.fleet_render import (
    EXIT_FAILED,
    EXIT_OK,
    Manifest,
    _load,
    release_files,
    render,
    render_shared,
)
from ops.selection import select
from tiers.errors import raise_all

if TYPE_CHECKING:
    from tiers.models import Environment


def _key(o: Manifest) -> str:
    """An object's identity: kind, namespace (when namespaced) and name."""
    ns = o["metadata"].get("namespace")
    return f"{o['kind']}/{ns}/{o['metadata'].get('name')}" if ns else f"{o['kind']}/{o['metadata'].get('name')}"


#: Fields that hold an object's name or a reference to another object or namespace. Only their values are
#: normalised when two environments are compared; hosts, URLs, tiers and every other string stay as they are.
NAME_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "secretName",
        "claimName",
        "serviceName",
        "app.kubernetes.io/instance",
        "kubernetes.io/metadata.name",
        "path",  # an Argo CD Application's dist/<release>
        "serviceAccountName",
        "resourceNames",
    }
)


def _platform_names(env: Environment) -> set[str]:
    """Names of platform objects an environment points at: never normalised, even when they share a prefix."""
    from tiers.fleet import referenced_namespaces

    names = {ns for _, ns in referenced_namespaces(env)}
    names |= {
        env.edge.gateway.name,
        env.database.server,
        env.db_init.admin_secret_name,
        env.edge.certificate.issuer_name,
    }
    return names


def _rename(value: str, env: Environment, key: str = "name") -> str:
    rel, ns = env.release, env.namespace
    if value in _platform_names(env):
        return value
    if value == ns and (key in ("namespace", "kubernetes.io/metadata.name") or value != rel):
        return "{namespace}"
    if value == rel:
        return "{release}"
    if value == f"dist/{rel}":
        return "dist/{release}"
    if value.startswith(f"{rel}-"):
        return "{release}-" + value[len(rel) + 1 :]
    if value.startswith(f"fleet-{ns}-"):
        return "fleet-{namespace}-" + value[len(ns) + 7 :]
    if value.endswith(f"-{ns}"):
        return value[: -len(ns) - 1] + "-{namespace}"
    return value


def _names_object(var: Any) -> bool:
    """An environment variable whose value is an object's name (so it is normalised like a name field)."""
    return isinstance(var, str) and (var in ("RELEASE", "NAMESPACE") or var.endswith("_SECRET_NAME"))


def _normalise_names(node: Any, env: Environment) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in NAME_FIELDS and isinstance(v, str):
                out[k] = _rename(v, env, k)
            elif k in NAME_FIELDS and isinstance(v, list) and all(isinstance(x, str) for x in v):
                out[k] = [_rename(x, env, k) for x in v]
            elif k == "value" and isinstance(v, str) and _names_object(node.get("name")):
                out[k] = _rename(v, env)  # an environment variable that names an object (RELEASE, *_SECRET_NAME)
            else:
                out[k] = _normalise_names(v, env)
        return out
    if isinstance(node, list):
        return [_normalise_names(v, env) for v in node]
    return node


def _normalise(objs: list[Manifest], env: Environment) -> dict[str, Manifest]:
    """Objects keyed by identity, with the release and namespace replaced only in name and reference fields."""
    normal = [_normalise_names(o, env) for o in objs]
    return {_key(o): o for o in normal}


#: A value longer than this (as printed) is shown as a line diff rather than ``old -> new`` on one line.
LONG = 80
#: Kinds whose ``spec.selector`` is immutable once created (a change means delete and re-create).
SELECTOR_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Service"})
#: Kinds that run pods: one of them replacing another under the same name is a kind change.
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _field_changes(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        changes = []
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a:
                changes.append((sub, None, b[k]))
            elif k not in b:
                changes.append((sub, a[k], None))
            else:
                changes += _field_changes(a[k], b[k], sub)
        return changes
    if isinstance(a, list) and isinstance(b, list):
        named = all(isinstance(x, dict) and "name" in x for x in [*a, *b])
        if named and a and b:
            return _field_changes({x["name"]: x for x in a}, {x["name"]: x for x in b}, path)
        if len(a) == len(b):
            changes = []
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                changes += _field_changes(x, y, f"{path}[{i}]")
            return changes
    return [] if a == b else [(path, a, b)]


def _text(value: Any) -> str:
    """A value whole, as printed: a string as it is, anything else as JSON (keys sorted); absent as ``(absent)``."""
    if value is None:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _long_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False, width=1000)


def value_lines(path: str, a: Any, b: Any, indent: str = "    ") -> list[str]:
    """One changed field: ``path: old -> new`` with both values whole, or a unified line diff of both when
    either is long or spans lines (never cut)."""
    old, new = _text(a), _text(b)
    if len(old) + len(new) <= LONG and "\n" not in old + new:
        return [f"{indent}{path}: {old} -> {new}"]
    body = difflib.unified_diff(_long_text(a).splitlines(), _long_text(b).splitlines(), "old", "new", lineterm="", n=1)
    return [f"{indent}{path}: (line diff)"] + [f"{indent}  {line}" for line in list(body)[2:]]


@dataclass
class Change:
    """One object's difference: ``+`` added, ``-`` removed, ``~`` changed (with its field changes)."""

    folder: str
    key: str
    op: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)


@dataclass
class Risk:
    folder: str
    key: str
    reason: str


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)  # folder -> REQUIRED-SECRETS.md line diff
    risks: list[Risk] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "added": sum(c.op == "+" for c in self.changes),
            "removed": sum(c.op == "-" for c in self.changes),
            "changed": sum(c.op == "~" for c in self.changes),
        }

    @property
    def empty(self) -> bool:
        return not self.changes and not self.texts


def _kind_name(key: str) -> tuple[str, str]:
    """(kind, namespace/name) of an identity."""
    kind, _, rest = key.partition("/")
    return kind, rest


def risks_of(folder: str, old: dict[str, Manifest], new: dict[str, Manifest]) -> list[Risk]:
    """The changes Kubernetes cannot apply in place, or that lose data, between two versions of a folder."""
    risks: list[Risk] = []
    added, removed = set(new) - set(old), set(old) - set(new)
    by_name: dict[str, list[str]] = {}
    for key in added:
        kind, name = _kind_name(key)
        by_name.setdefault(name, []).append(kind)
    for key in sorted(removed):
        kind, name = _kind_name(key)
        candidates = sorted(by_name.get(name, []))
        if kind in WORKLOADS:  # a workload's PodDisruptionBudget or Service shares its name: not a replacement
            candidates = [k for k in candidates if k in WORKLOADS]
        if len(candidates) == 1:
            other = candidates[0]
            what = {
                ("Deployment", "StatefulSet"): " (a StatefulSet replaces a Deployment)",
                ("StatefulSet", "Deployment"): " (a Deployment replaces a StatefulSet)",
            }.get((kind, other), "")
            risks.append(Risk(folder, f"{other}/{name}", f"kind changed for the same name: {kind} -> {other}{what}"))
        if kind == "PersistentVolumeClaim":
            risks.append(Risk(folder, key, "PersistentVolumeClaim dropped (its data goes with it when pruned)"))
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        kind = str(a.get("kind"))
        sa, sb = a.get("spec") or {}, b.get("spec") or {}
        if kind in SELECTOR_KINDS and sa.get("selector") != sb.get("selector"):
            immutable = " (immutable: the object is deleted and re-created)" if kind != "Service" else ""
            risks.append(Risk(folder, key, f"selector changed{immutable}"))
        if kind == "Service" and sa.get("type", "ClusterIP") != sb.get("type", "ClusterIP"):
            risks.append(
                Risk(
                    folder, key, f"Service type changed: {sa.get('type', 'ClusterIP')} -> {sb.get('type', 'ClusterIP')}"
                )
            )
        if kind == "StatefulSet":
            claims_a = {c.get("metadata", {}).get("name"): c for c in sa.get("volumeClaimTemplates") or []}
            claims_b = {c.get("metadata", {}).get("name"): c for c in sb.get("volumeClaimTemplates") or []}
            for name in sorted(set(claims_a) - set(claims_b)):
                risks.append(Risk(folder, key, f"volumeClaimTemplate {name} dropped"))
            for name in sorted(set(claims_a) & set(claims_b)):
                if claims_a[name] != claims_b[name]:
                    risks.append(Risk(folder, key, f"volumeClaimTemplate {name} changed (immutable)"))
    return risks


def compare(folder: str, old: dict[str, Manifest], new: dict[str, Manifest], report: Report) -> None:
    for k in sorted(set(new) - set(old)):
        report.changes.append(Change(folder, k, "+"))
    for k in sorted(set(old) - set(new)):
        report.changes.append(Change(folder, k, "-"))
    for k in sorted(set(old) & set(new)):
        if old[k] != new[k]:
            report.changes.append(Change(folder, k, "~", _field_changes(old[k], new[k])))
    report.risks += risks_of(folder, old, new)


def diff_objects(old: dict[str, Manifest], new: dict[str, Manifest]) -> list[str]:
    """The changes between two sets of objects as lines (``--compare``), the counts last."""
    report = Report()
    compare("", old, new, report)
    lines = _object_lines(report, group=False)
    c = report.counts()
    lines.append(f"{c['added']} added, {c['removed']} removed, {c['changed']} changed")
    return lines


def _groups(report: Report) -> dict[tuple[str, str, str], tuple[Any, Any, list[Change]]]:
    """Field changes made the same way (path, old, new) on at least two objects: (old, new, the objects)."""
    seen: dict[tuple[str, str, str], tuple[Any, Any, list[Change]]] = {}
    for c in report.changes:
        for path, a, b in c.fields:
            seen.setdefault((path, _text(a), _text(b)), (a, b, []))[2].append(c)
    return {k: v for k, v in seen.items() if len(v[2]) > 1}


def _object_lines(report: Report, group: bool = True, folder_headers: bool = False) -> list[str]:
    lines: list[str] = []
    groups = _groups(report) if group else {}
    risky = {(r.folder, r.key): r.reason for r in report.risks}
    for (path, _, _), (a, b, changes) in sorted(groups.items(), key=lambda kv: kv[0]):
        folders = sorted({c.folder for c in changes})
        where = f" in {len(folders)} folders" if len(folders) > 1 else (f" in dist/{folders[0]}" if folders[0] else "")
        first = value_lines(path, a, b, indent="= ")
        lines.append(f"{first[0]} on {len(changes)} objects{where}")
        lines += first[1:]
    current = None
    for c in report.changes:
        own = [f for f in c.fields if (f[0], _text(f[1]), _text(f[2])) not in groups]
        if c.op == "~" and not own and (c.folder, c.key) not in risky:
            continue  # every change of it is on a grouped line
        if folder_headers and c.folder != current:
            current = c.folder
            lines.append(f"## dist/{c.folder}")
        mark = f"  ! {risky[(c.folder, c.key)]}" if (c.folder, c.key) in risky else ""
        lines.append(f"{c.op} {c.key}{mark}")
        for path, a, b in own:
            lines += value_lines(path, a, b)
    for r in report.risks:  # a risk on an object not listed above (a kind change: the added object's key)
        if not any(c.folder == r.folder and c.key == r.key for c in report.changes):
            lines.append(f"! dist/{r.folder}: {r.key}: {r.reason}")
    return lines


def report_json(report: Report, **extra: Any) -> str:
    def fields(c: Change) -> list[dict[str, Any]]:
        return [{"path": p, "old": a, "new": b} for p, a, b in c.fields]

    groups = _groups(report)
    out = {
        **extra,
        "summary": {**report.counts(), "folders": sorted({c.folder for c in report.changes} | set(report.texts))},
        "changes": [
            {
                "folder": c.folder,
                "object": c.key,
                "op": {"+": "added", "-": "removed", "~": "changed"}[c.op],
                **({"fields": fields(c)} if c.op == "~" else {}),
            }
            for c in report.changes
        ],
        "repeated": [
            {"path": p, "old": a, "new": b, "objects": [f"{c.folder}/{c.key}" if c.folder else c.key for c in cs]}
            for (p, _, _), (a, b, cs) in sorted(groups.items(), key=lambda kv: kv[0])
        ],
        "risks": [{"folder": r.folder, "object": r.key, "reason": r.reason} for r in report.risks],
        "texts": report.texts,
    }
    return json.dumps(out, indent=2, sort_keys=False, default=str)


def _read_files(path: Path) -> dict[Path, str]:
    """``{<folder>/<file>: text}`` of a dist/ tree: each folder's manifests and REQUIRED-SECRETS.md."""
    from constructs.lifecycle.required_secrets import FILENAME

    if not path.exists():
        return {}
    found = [*path.glob("*/*.yaml"), *path.glob("*/*/*.yaml"), *path.glob(f"*/{FILENAME}")]
    return {p.relative_to(path): p.read_text(encoding="utf-8") for p in sorted(found)}


def _objects(texts: Iterable[str]) -> dict[str, Manifest]:
    objs: dict[str, Manifest] = {}
    for text in texts:
        for doc in yaml.load_all(text, Loader=_YAML_LOADER):
            if isinstance(doc, dict) and "kind" in doc:
                objs[_key(doc)] = doc
    return objs


def diff_trees(old: dict[Path, str], new: dict[Path, str], folders: Iterable[str]) -> Report:
    """The report between two dist/ trees as files, for these folders; only files whose bytes differ are parsed."""
    from constructs.lifecycle.required_secrets import FILENAME

    report = Report()
    for folder in sorted(folders):
        names = {p for p in old if str(p.parent) == folder} | {p for p in new if str(p.parent) == folder}
        differ = sorted(p for p in names if old.get(p) != new.get(p))
        if not differ:
            continue
        manifests = [p for p in differ if p.name != FILENAME]
        compare(
            folder,
            _objects(old[p] for p in manifests if p in old),
            _objects(new[p] for p in manifests if p in new),
            report,
        )
        secrets = Path(folder) / FILENAME
        if secrets in differ:
            report.texts[folder] = list(
                difflib.unified_diff(
                    old.get(secrets, "").splitlines(),
                    new.get(secrets, "").splitlines(),
                    FILENAME,
                    FILENAME,
                    lineterm="",
                    n=0,
                )
            )
    return report


def diff_chunk(envs: Sequence[Environment], base: Path | None, committed: dict[Path, str] | None = None) -> Report:
    """The differences of these environments' folders between ``base`` (a dist/ tree on disk; or the files
    ``committed`` holds) and what a synth writes for them."""
    from ops.fleet_render import release_files, render
    from synth.render import _few_collections

    folders = [e.release for e in envs]
    with _few_collections():
        fresh = release_files(render(envs), envs)
        if committed is None:
            committed = {}
            for folder in folders:
                d = base / folder if base is not None else None
                if d is not None and d.is_dir():
                    for p in sorted(d.iterdir()):
                        if p.suffix == ".yaml" or p.name == "REQUIRED-SECRETS.md":
                            committed[Path(folder) / p.name] = p.read_text(encoding="utf-8")
        return diff_trees(committed, fresh, folders)


def _diff_worker(envs: list[dict[str, Any]], base: str | None) -> Report:
    from ops.fleet_parallel import revalidated

    return diff_chunk(revalidated(envs), Path(base) if base else None)


def print_report(report: Report) -> None:
    lines = _object_lines(report, group=True, folder_headers=True)
    for folder, text in sorted(report.texts.items()):
        lines += [f"## dist/{folder}: REQUIRED-SECRETS.md", *(f"  {line}" for line in text)]
    if report.empty:
        print("no changes: the committed dist/ is what a synth writes")
        return
    c = report.counts()
    folders = len({ch.folder for ch in report.changes} | set(report.texts))
    lines.append(
        f"{c['added']} added, {c['removed']} removed, {c['changed']} changed in {folders} folder(s)"
        + (f"; {len(report.risks)} risky (!)" if report.risks else "")
    )
    print("\n".join(lines))


def _committed_dist(dist: Path, into: Path) -> Path | None:
    """``dist/`` as committed at git HEAD: the folder itself when git sees no change in it, else extracted into
    ``into``; None when this is not a git checkout."""
    import io
    import subprocess
    import tarfile

    try:
        top = Path(
            subprocess.run(
                ["git", "-C", str(dist.parent), "rev-parse", "--show-toplevel"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
        )
        rel = dist.resolve().relative_to(top.resolve()).as_posix()
        status = subprocess.run(
            ["git", "-C", str(top), "status", "--porcelain", "--untracked-files=all", "--", rel],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        if not status.strip():  # dist/ on disk is HEAD's: read it there (no copy of thousands of files)
            return dist
        data = subprocess.run(
            ["git", "-C", str(top), "archive", "--format=tar", "HEAD", rel],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / rel


def cmd_diff(args: argparse.Namespace) -> int:
    from constructs.lifecycle.required_secrets import FILENAME
    from tiers.fleet import Sources, validate_fleet

    if args.compare:
        by_name = {e.release: e for e in _load(args.environments, args.compare)}
        a, b = by_name[args.compare[0]], by_name[args.compare[1]]
        rendered = render(list({a.release: a, b.release: b}.values()))
        report = Report()
        compare("", _normalise(rendered[a.release], a), _normalise(rendered[b.release], b), report)
        if args.json:
            print(report_json(report, compare=[a.release, b.release]))
        else:
            print(f"--- {a.release} (tier {a.tier})\n+++ {b.release} (tier {b.tier})")
            c = report.counts()
            lines = _object_lines(report)
            print("\n".join([*lines, f"{c['added']} added, {c['removed']} removed, {c['changed']} changed"]))
        return EXIT_OK if report.empty else EXIT_FAILED
    from ops.fleet_parallel import Workers

    with Workers(args.environments) as workers, tempfile.TemporaryDirectory() as tmp:
        envs = _load(args.environments, [])
        chosen = select(envs, args.env, args.selector)
        whole = not args.env and not args.selector
        errors = validate_fleet(envs, Sources.of(envs, args.environments, Path.cwd()))
        if errors:
            raise_all(errors)  # every error, one line each (cli.py; --json: as JSON)
        base = _committed_dist(args.dist, Path(tmp) / "committed")
        if base is None:
            print(f"note: not a git checkout: comparing against {args.dist} as it is on disk", file=sys.stderr)
            base = args.dist
        collect = workers.submit(chosen, lambda chunk: diff_chunk(chunk, base), _diff_worker, str(base))
        report = Report()
        if whole:  # the shared folders, and the folders of releases whose file is gone, compared here
            releases = {e.release for e in chosen}
            fresh = release_files(render_shared(envs))
            found = [*base.glob("*/*.yaml"), *base.glob("*/*/*.yaml"), *base.glob(f"*/{FILENAME}")]
            others = {str(p.parent.relative_to(base)) for p in found} - releases if base.is_dir() else set()
            committed = {
                p.relative_to(base): p.read_text(encoding="utf-8")
                for folder in sorted(others)
                for p in sorted((base / folder).iterdir())
                if p.suffix == ".yaml" or p.name == FILENAME
            }
            report = diff_trees(committed, fresh, others | {str(p.parent) for p in fresh})
        for part in collect():
            report.changes += part.changes
            report.texts.update(part.texts)
            report.risks += part.risks
    report.changes.sort(key=lambda c: c.folder)  # stable: each folder's own order kept
    report.risks.sort(key=lambda r: r.folder)
    if args.json:
        print(report_json(report, releases=[e.release for e in chosen], whole_fleet=whole))
    else:
        print_report(report)
    return EXIT_OK if report.empty else EXIT_FAILED
