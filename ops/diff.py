"""``iotistica-k8s diff``: an object-level diff, the working change against the committed dist/, or ENV_A
against ENV_B (release and namespace normalised). Takes the argparse namespace, prints the changes and
gives exit 1 when there are any.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ops.fleet_render import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    Manifest,
    _load,
    render,
)
from synth.pipeline import synthesize

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


def _short(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def diff_objects(old: dict[str, Manifest], new: dict[str, Manifest]) -> list[str]:
    lines: list[str] = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    for k in added:
        lines.append(f"+ {k}")
    for k in removed:
        lines.append(f"- {k}")
    for k in changed:
        lines.append(f"~ {k}")
        for path, a, b in _field_changes(old[k], new[k]):
            if isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b):
                lines.append(f"    {path}: (text)")
                body = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
                lines += [f"      {line}" for line in list(body)[2:]]
            else:
                lines.append(f"    {path}: {_short(a)} -> {_short(b)}")
    lines.append(f"{len(added)} added, {len(removed)} removed, {len(changed)} changed")
    return lines


def _read_tree(path: Path) -> tuple[dict[str, dict[str, Manifest]], dict[str, str]]:
    """(objects by folder and identity, REQUIRED-SECRETS.md text by folder) of a dist/ tree."""
    from constructs.lifecycle.required_secrets import FILENAME

    tree: dict[str, dict[str, Manifest]] = {}
    texts: dict[str, str] = {}
    if not path.exists():
        return tree, texts
    for file in sorted(path.glob("*/*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and "kind" in doc:
                tree.setdefault(file.parent.name, {})[_key(doc)] = doc
    for file in sorted(path.glob(f"*/{FILENAME}")):
        texts[file.parent.name] = file.read_text()
    return tree, texts


def _committed_dist(dist: Path, into: Path) -> Path | None:
    """Extract ``dist/`` as committed at git HEAD into ``into``; None when this is not a git checkout."""
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
    from tiers.fleet import Sources, validate_fleet

    if len(args.env) == 2:
        by_name = {e.release: e for e in _load(args.environments, args.env)}
        a, b = by_name[args.env[0]], by_name[args.env[1]]
        rendered = render(list({a.release: a, b.release: b}.values()))
        print(f"--- {a.release} (tier {a.tier})\n+++ {b.release} (tier {b.tier})")
        lines = diff_objects(_normalise(rendered[a.release], a), _normalise(rendered[b.release], b))
        print("\n".join(lines))
        return EXIT_FAILED if not lines[-1].startswith("0 added, 0 removed, 0 changed") else EXIT_OK
    if args.env:
        print("error: diff takes no environment (working change against dist/) or two (A against B)", file=sys.stderr)
        return EXIT_CONFIG
    with tempfile.TemporaryDirectory() as tmp:
        base = _committed_dist(args.dist, Path(tmp) / "committed")
        if base is None:
            print(f"note: not a git checkout: comparing against {args.dist} as it is on disk", file=sys.stderr)
            base = args.dist
        committed, committed_texts = _read_tree(base)
        envs = _load(args.environments, [])
        errors = validate_fleet(envs, Sources.of(envs, args.environments, Path.cwd()))
        if errors:
            raise errors[0]
        synthesize(envs, Path(tmp) / "dist", partial=False, all_envs=envs)
        fresh, fresh_texts = _read_tree(Path(tmp) / "dist")
    any_change = False
    for folder in sorted(set(committed) | set(fresh) | set(committed_texts) | set(fresh_texts)):
        lines = diff_objects(committed.get(folder, {}), fresh.get(folder, {}))
        old_text, new_text = committed_texts.get(folder, ""), fresh_texts.get(folder, "")
        text_lines = list(
            difflib.unified_diff(
                old_text.splitlines(),
                new_text.splitlines(),
                "REQUIRED-SECRETS.md",
                "REQUIRED-SECRETS.md",
                lineterm="",
                n=0,
            )
        )
        if lines[-1].startswith("0 added, 0 removed, 0 changed") and not text_lines:
            continue
        any_change = True
        print(f"## dist/{folder}")
        print("\n".join(lines))
        if text_lines:
            print("\n".join(f"  {line}" for line in text_lines))
    if not any_change:
        print("no changes: the committed dist/ is what a synth writes")
    return EXIT_FAILED if any_change else EXIT_OK
