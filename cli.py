"""iotistica-k8s: the operator CLI (synth, validate, images, diff, explain, graph, migrate, new, schema, docs).

Exit codes: 0 success (and, for ``diff``, no differences); 1 a check failed, ``diff`` found
differences, or an internal or environment failure (one line naming what failed, never an
environment file); 2 bad input (one line naming the file and the key path, nothing written);
``synth`` also 128+N when interrupted by signal N (see app.py).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# As a console script, this file runs from the venv: put the repo root on sys.path before anything
# imports the `constructs` library, so that our constructs/ folder merges into it.
ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import app  # noqa: E402
from synth.output import OutputError  # noqa: E402
from synth.pipeline import synthesize  # noqa: E402
from synth.render import release_charts  # noqa: E402
from synth.run import describe_failure  # noqa: E402
from tiers import TIERS  # noqa: E402
from tiers.errors import ConfigError  # noqa: E402

# The models (pydantic, ~0.4 s) are imported by the commands that use them: `synth` re-runs itself
# under `python -O` (app.py) before it pays for them.
if TYPE_CHECKING:
    from tiers.models import Environment

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
Manifest = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Rendering in memory
# --------------------------------------------------------------------------------------------------


def render(envs: Sequence[Environment]) -> dict[str, list[Manifest]]:
    """Every environment's objects as plain dicts, built in one process, nothing written."""
    from constructs.api_objects import Root

    charts = release_charts(Root(tempfile.gettempdir()), envs)
    return {env.release: list(chart.to_json()) for env, chart in zip(envs, charts, strict=True)}


def render_shared(envs: Sequence[Environment]) -> dict[str, list[Manifest]]:
    """The shared charts (dist/cluster/, dist/argocd/) of a fleet, built as synth builds them."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ARGOCD, CLUSTER, ArgoCdChart, ClusterChart
    from tiers.shared import shared_props

    scope, props = Root(tempfile.gettempdir()), shared_props(envs)
    return {CLUSTER: list(ClusterChart(scope, props).to_json()), ARGOCD: list(ArgoCdChart(scope, props).to_json())}


def _load(env_dir: Path, names: Sequence[str]) -> list[Environment]:
    from tiers.fleet import check_directory
    from tiers.loader import load_environments

    check_directory(env_dir, Path.cwd())
    return load_environments(env_dir, names, base=Path.cwd())


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _containers(obj: Manifest) -> Iterable[Manifest]:
    spec = obj.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if not template:
        return []
    pod = template.get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def policy_problems(env: Environment, objs: list[Manifest]) -> list[str]:
    """The contract every object must meet (labels, namespace, pinned images, resources, no Secrets)."""
    import kubernetes_validate

    from constructs.platform import LABEL_KEYS

    problems: list[str] = []
    # Isolation: fleet objects live in the fleet namespaces the model declares (platform-facts §11).
    fleets = env.fleet_namespaces
    namespaces = {env.namespace} | ({env.fleet_namespace(f.name) for f in fleets.fleets} if fleets.enabled else set())
    for o in objs:
        ref = f"{o['kind']}/{o['metadata'].get('name')}"
        labels = o["metadata"].get("labels", {})
        missing = [k for k in LABEL_KEYS if k not in labels]
        if missing:
            problems.append(f"{ref}: missing labels {', '.join(missing)}")
        # The CNPG Pooler lives beside its Cluster, in the database's namespace (constructs/core/db_pooler.py).
        allowed = namespaces | ({env.network.database.namespace} if o["kind"] == "Pooler" else set())
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") not in allowed:
            problems.append(f"{ref}: metadata.namespace is not {env.namespace}")
        if o["kind"] == "Secret":
            problems.append(f"{ref}: a Secret must never be written to dist/")
        for c in _containers(o):
            if ":" not in c["image"] or c["image"].endswith(":latest"):
                problems.append(f"{ref}: container {c['name']}: image {c['image']} is not pinned")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                problems.append(f"{ref}: container {c['name']}: needs cpu/memory requests and a memory limit")
        group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
        if "." not in group or group.endswith(".k8s.io") and not group.startswith("gateway."):
            try:
                kubernetes_validate.validate(o, "1.27", strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{ref}: schema (Kubernetes 1.27, strict): {path}: {exc.message}")
    return problems


def identity_clashes(rendered: dict[str, list[Manifest]]) -> list[tuple[str, str, str]]:
    """(folder, other folder, kind/namespace/name) of every object identity two folders of dist/ share."""
    owner: dict[tuple[str, str, str], str] = {}
    clashes = []
    for folder in sorted(rendered):
        for o in rendered[folder]:
            ident = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            if ident in owner and owner[ident] != folder:
                clashes.append((folder, owner[ident], "/".join(p for p in ident if p)))
            owner.setdefault(ident, folder)
    return clashes


def cmd_validate(args: argparse.Namespace) -> int:
    """The synth's rules (models, fleet, shared charts), then policy, schema and capacity; errors on stderr."""
    from constructs.isolation.api_admission_policies import unguarded_warning
    from tiers.capacity import capacity
    from tiers.fleet import Sources, fleet_capacity, validate_fleet
    from tiers.images import LOCK_LABEL, unpinned

    all_envs = _load(args.environments, [])
    if args.env:
        _load(args.environments, args.env)  # a name without a file: "file not found"
    envs = [e for e in all_envs if not args.env or e.release in args.env]
    sources = Sources.of(all_envs, args.environments, Path.cwd())
    fleet = validate_fleet(all_envs, sources)
    for err in fleet:
        print(f"error: {err}", file=sys.stderr)
    if fleet:
        return EXIT_CONFIG
    rendered = render(all_envs)
    rendered.update(render_shared(all_envs))
    failed = False
    warnings = 0
    for folder, other, ident in identity_clashes(rendered):
        print(f"error: {sources.label(folder)}: {ident} is also written by dist/{other}/", file=sys.stderr)
        failed = True
    for env in envs:
        label = sources.label(env.release)
        for problem in policy_problems(env, rendered[env.release]):
            print(f"error: {label}: {problem}", file=sys.stderr)
            failed = True
        unguarded = unguarded_warning(env)
        if unguarded:
            print(f"warning: {label}: {unguarded}")
        if args.strict:  # never a failure: a digest is recorded, never made up (docs/hardening.md)
            deployed = {c["image"] for o in rendered[env.release] for c in _containers(o)}
            for where, ref in unpinned(env):
                if ref not in deployed:  # a component this environment does not run
                    continue
                print(f"unpinned: {label}: {where}: {ref} has no digest in {LOCK_LABEL}; it keeps its tag")
        for finding in capacity(env).findings:
            level = "error" if args.strict else finding.level
            print(f"{level}: {label}: {finding.key}: {finding.message}", file=sys.stderr)
            failed = failed or args.strict
            warnings += 1
    for shared in fleet_capacity(all_envs, sources):
        level = "error" if args.strict else "warning"
        print(f"{level}: {shared}", file=sys.stderr)
        failed = failed or args.strict
        warnings += 1
    if not failed:
        print(f"ok: {len(envs)} environment(s) valid" + (f", {warnings} capacity warning(s)" if warnings else ""))
    return EXIT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------------


def _secret_refs(objs: list[Manifest]) -> list[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef"):
                if key in node and isinstance(node[key], dict) and "name" in node[key]:
                    names.add(node[key]["name"])
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                names.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objs)
    return sorted(names)


def _hosts(objs: list[Manifest]) -> list[str]:
    hosts: set[str] = set()
    for o in objs:
        hosts.update(o.get("spec", {}).get("hostnames", []) or [])
        if o["kind"] == "Certificate":
            hosts.update(o["spec"].get("dnsNames", []) or [])
    return sorted(hosts)


def cmd_explain(args: argparse.Namespace) -> int:
    from constructs.isolation.api_admission_policies import unguarded_warning
    from tiers.capacity import capacity

    (env,) = _load(args.environments, [args.env_name])
    objs = render([env])[env.release]
    print(f"{env.release}: namespace {env.namespace}, tier {env.tier}")
    print("\nworkloads:")
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        replicas = o["spec"].get("replicas", "HPA")
        for c in _containers(o):
            r = c["resources"]
            print(
                f"  {o['kind']:<11} {o['metadata']['name']:<40} replicas {replicas!s:<4} {c['image']}  "
                f"requests {r['requests']['cpu']}/{r['requests']['memory']}  limit {r['limits']['memory']}"
            )
    hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    for h in hpas:
        print(f"  HPA {h['metadata']['name']}: {h['spec']['minReplicas']}..{h['spec']['maxReplicas']}")
    hosts = _hosts(objs)
    print("\nhosts:" + ("".join(f"\n  {h}" for h in hosts) if hosts else " none"))
    from constructs.lifecycle.secrets_provider import secret_plan

    plan = {n.name: n for n in secret_plan(env)}
    made, provided = [], []
    for name in _secret_refs(objs):
        need = plan.get(name)
        if need is None or need.source in ("generated", "resolver"):
            made.append(name)
        else:
            provided.append((name, need.source))
    print("\nrequired secrets (the operator provides them; referenced by name, never in dist/):")
    for name, source in provided:
        print(f"  {name}" + ("  (from 1Password, OnePasswordItem)" if source == "onepassword" else ""))
    print("\nsecrets the cluster makes (hook Jobs, cert-manager; nothing to create):")
    for name in made:
        print(f"  {name}")
    cap = capacity(env)
    print("\ncapacity:")
    if cap.rated_rps:
        print(f"  rated readings/s         {cap.rated_rps:,}")
        buffer = f"{cap.buffer_seconds:,.0f} s (MAXLEN {cap.stream_maxlen:,} / {cap.rated_rps:,} r/s)"
        print(f"  stream buffer            {buffer}")
    else:
        print(f"  rated readings/s         not rated (demo); MAXLEN {cap.stream_maxlen:,}")
    mem = cap.redis_maxmemory_bytes / 2**20
    used = cap.stream_bytes / 2**20
    print(f"  redis memory             full stream ~{used:,.0f} MiB of {mem:,.0f} MiB maxmemory ({used / mem:.0%})")
    print(
        f"  db connections (HPA max) {cap.db_connections_max} of {cap.db_client_connections} "
        f"(API {cap.api_pods_max} pods x {cap.api_pool_size}, ingestion {cap.ingestion_pods_max} pods x "
        f"{cap.ingestion_pool_size})"
    )
    pooler = " through the pooler" if env.database.pooler.enabled else ""
    print(
        f"  db budget                {cap.db_connection_budget} server connections{pooler} on "
        f"{env.database.server} (max_connections {cap.db_max_connections})"
    )
    for f in cap.findings:
        print(f"warning: {f.key}: {f.message}")
    unguarded = unguarded_warning(env)
    if unguarded:
        print(f"warning: {unguarded}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# new, schema, synth
# --------------------------------------------------------------------------------------------------

NEW_TEMPLATE = """\
# yaml-language-server: $schema=../environment.schema.json
# Environment {release}: tier {tier}, namespace {namespace}. Created by `iotistica-k8s new`.
# Settings layer like Helm's -f: model defaults (the seed's demo values) < tiers/presets/{tier}.yaml < this file.
# Every setting is listed in docs/settings.md; `iotistica-k8s explain {release}` shows the result.
release: {release}
namespace: {namespace}
tier: {tier}

edge:
  hosts:                       # public hostnames; CORS_ORIGINS is derived from the dashboard host
    api: api-{release}.iotistica.com
    dashboard: {release}.iotistica.com
    mqtt: mqtt-{release}.iotistica.com

dashboard:
  config:                      # window.env of the dashboard's config.js
    apiUrl: https://api-{release}.iotistica.com
    auth0CallbackUrl: https://{release}.iotistica.com/auth/callback
{extra}
# Examples of overrides (uncomment to use):
# api:
#   hpa: {{maxReplicas: 6}}       # pools are sized for HPA max: raise database.connectionBudget with it
# monitoring:
#   enabled: true
# database:
#   pooler: {{enabled: true}}     # PgBouncer (a CNPG Pooler) in front of the server
# secrets:
#   provider: onepassword
"""

#: What `new` writes beyond the template, per tier: the departures from the seed the tier needs to pass
#: `validate --strict` (docs/environments.md, "Where the seed and the code disagree").
NEW_TIER_OVERRIDES = {
    "standard": """
api:
  # The seed's DB_POOL_SIZE 20 opens 4 x 20 = 80 connections at HPA max, the whole budget, leaving none for
  # ingestion: derive it from database.connectionBudget instead.
  dbPoolSize: null
""",
    "enterprise": """
api:
  # The seed's DB_POOL_SIZE 20 opens 10 x 20 = 200 connections at HPA max, above the budget of 160:
  # derive it from database.connectionBudget instead.
  dbPoolSize: null
ingestion:
  # The seed's MAXLEN 1,200,000 holds 24 s at the rated 50,000 readings/s: size the stream for 60 s.
  streamMaxlen: null
  streamBufferSeconds: 60
""",
}


def _preset_budget(tier: str) -> int:
    from tiers.loader import PRESETS

    preset = yaml.safe_load((PRESETS / f"{tier}.yaml").read_text()) or {}
    return int(preset.get("database", {}).get("connectionBudget", 40))


def _server_block(env_dir: Path, path: Path, tier: str) -> str:
    """The database server's max_connections as the other environments on it declare it."""
    from tiers.models import Database

    default = Database.model_validate({})
    try:
        others = [e for e in _load(env_dir, []) if e.release != path.stem] if any(env_dir.glob("*.yaml")) else []
    except ConfigError:
        others = []
    same = [e for e in others if e.database.server == default.server]
    if not same:
        # Alone on the server: it must hold at least the tier's budget and the reserved connections.
        from tiers.fleet import RESERVED_CONNECTIONS

        need = _preset_budget(tier) + RESERVED_CONNECTIONS
        if need <= default.max_connections:
            return ""
        return (
            f"\ndatabase:\n  # The server {default.server} must allow at least the tier's connection budget plus "
            f"{RESERVED_CONNECTIONS} reserved:\n  # write its real max_connections here.\n  maxConnections: {need}\n"
        )
    if same[0].database.max_connections == default.max_connections:
        return ""
    first = same[0]
    return (
        f"\ndatabase:\n  # The server {default.server}'s max_connections, as environments/{first.release}.yaml "
        f"declares it\n  # (every environment on one server declares the same).\n"
        f"  maxConnections: {first.database.max_connections}\n"
    )


def cmd_new(args: argparse.Namespace) -> int:
    from tiers.fleet import Sources, fleet_capacity, validate_fleet
    from tiers.loader import load_environment

    path = args.environments / f"{args.env_name}.yaml"
    if path.exists() and not args.force:
        print(f"error: {path}: already exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_CONFIG
    from pydantic import TypeAdapter, ValidationError

    from tiers.models import DnsLabel, ReleaseName

    for key, value, kind in (("release", args.env_name, ReleaseName), ("namespace", args.namespace, DnsLabel)):
        try:
            if value is not None:
                TypeAdapter(kind).validate_python(value)
        except ValidationError as exc:
            raise ConfigError(str(path), key, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    extra = NEW_TIER_OVERRIDES.get(args.tier, "")
    extra += _server_block(args.environments, path, args.tier)
    text = NEW_TEMPLATE.format(
        release=args.env_name, namespace=args.namespace or args.env_name, tier=args.tier, extra=extra
    )
    args.environments.mkdir(parents=True, exist_ok=True)
    # Validate under the final file name (the release must match it), alone and with the fleet's rules,
    # before anything is written there.
    with tempfile.TemporaryDirectory(dir=args.environments) as tmp:
        draft = Path(tmp) / path.name
        draft.write_text(text)
        new_env = load_environment(draft, str(path))
        others = (
            [e for e in _load(args.environments, []) if e.release != new_env.release]
            if any(args.environments.glob("*.yaml"))
            else []
        )
        labels = {e.release: f"{args.environments / e.release}.yaml" for e in others} | {new_env.release: str(path)}
        status = {e.release: "unchanged" for e in others} | {new_env.release: "new"}
        sources = Sources(labels=labels, status=status)
        errors = validate_fleet([*others, new_env], sources)
        if errors:
            raise errors[0]
        draft.replace(path)
    # Capacity across the fleet is a warning, as in `validate` (an error under --strict, which `make test`
    # runs): the file is written, and the line says what to change before it is committed.
    for shared in fleet_capacity([*others, new_env], sources):
        print(f"warning: {shared}", file=sys.stderr)
    print(
        f"wrote {path}; next: make synth ENV={args.env_name}, then commit this file and dist/ (README: Adding a client)"
    )
    return EXIT_OK


def environment_schema() -> dict[str, Any]:
    from tiers.models import Environment

    schema = Environment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Iotistica environment"
    return schema


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return EXIT_OK


SCHEMA_FILE = ROOT / "environment.schema.json"
#: The generated settings reference (tiers/reference.py), between its markers.
SETTINGS_PAGE = ROOT / "docs" / "settings.md"


def schema_text() -> str:
    return json.dumps(environment_schema(), indent=2, sort_keys=True) + "\n"


def cmd_docs(args: argparse.Namespace) -> int:
    """Regenerate docs/settings.md (the settings reference), environment.schema.json, the topology pages (or check)."""
    from tiers.reference import update_reference

    stale = []
    if not update_reference(SETTINGS_PAGE, check=args.check):
        stale.append("docs/settings.md (settings reference)")
    from ops.graph import topology_docs

    stale += topology_docs(ROOT / "dist", ROOT / "docs" / "topology", check=args.check)
    current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    if current != schema_text():
        stale.append(SCHEMA_FILE.name)
        if not args.check:
            SCHEMA_FILE.write_text(schema_text())
    if args.check and stale:
        print(f"error: stale: {', '.join(stale)}; run `iotistica-k8s docs`", file=sys.stderr)
        return EXIT_FAILED
    print("docs: " + (f"updated {', '.join(stale)}" if stale else "current"))
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """What the first Argo CD sync does to a live Helm release: ops/migrate.py."""
    from ops.migrate import plan_for, render_markdown

    (env,) = _load(args.environments, [args.env_name])
    plan = plan_for(env.release, env.namespace, args.sources, args.dist / env.release)
    text = json.dumps(plan.to_json(), indent=2) + "\n" if args.json else render_markdown(plan)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(args.output), "", f"cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return plan.exit_code


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw one environment from dist/ (network flows from its NetworkPolicies, or the rights view)."""
    from ops import graph

    fmt = args.format or (args.output.suffix.lstrip(".") if args.output and args.output.suffix else "svg")
    if fmt not in GRAPH_FORMATS:
        print(f"error: {args.output}: unknown format {fmt!r} (one of {', '.join(GRAPH_FORMATS)})", file=sys.stderr)
        return EXIT_CONFIG
    try:
        topology = graph.build(args.dist, args.env_name, view=args.view)
    except graph.DistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        data = graph.render(topology, fmt, dpi=args.dpi)
    except graph.GraphvizMissing as exc:
        print(f"error: graph --format {fmt}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output is None:
        sys.stdout.buffer.write(data)
        return EXIT_OK
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({fmt}, {len(topology.nodes)} nodes, {len(topology.flows)} allowed flows)")
    return EXIT_OK


GRAPH_FORMATS = ("svg", "png", "dot", "mermaid")


def fleet_images(envs: Sequence[Environment]) -> list[str]:
    """``repository:tag`` of every container image the fleet deploys (dist/ with these environments)."""
    rendered = render(envs)
    return sorted({c["image"].split("@", 1)[0] for objs in rendered.values() for o in objs for c in _containers(o)})


def cmd_images(args: argparse.Namespace) -> int:
    """List the fleet's images and their digests; with --resolve, ask each registry and record the digests."""
    from tiers import registry
    from tiers.images import LOCK, LOCK_LABEL, lock_text
    from tiers.loader import load_environments, read_lock

    lock_path = args.lock or LOCK
    label = str(args.lock) if args.lock else LOCK_LABEL
    lock = read_lock(lock_path, label)
    envs = load_environments(args.environments, base=Path.cwd(), images_lock=lock_path)
    refs = fleet_images(envs)
    if not args.resolve:
        for ref in refs:
            print(f"{ref}@{lock[ref]}" if ref in lock else f"{ref} (no digest: kept by tag)")
        return EXIT_OK
    updated, unresolved, reached = dict(lock), [], 0
    down: dict[str, str] = {}  # registry -> why it did not answer (asked once per run)
    for ref in refs:
        where = registry.locate(ref.rpartition(":")[0]).registry
        try:
            if where in down:
                raise registry.Unreachable(down[where])
            digest = registry.resolve(ref)
        except registry.Unreachable as exc:
            down[where] = str(exc)
            print(f"unreachable: {ref}: {exc}", file=sys.stderr)
            unresolved.append(ref)
            continue
        except registry.Refused as exc:
            reached += 1
            print(f"not resolved: {ref}: {exc}", file=sys.stderr)
            unresolved.append(ref)
            continue
        reached += 1
        old = lock.get(ref)
        state = "unchanged" if old == digest else ("recorded" if old is None else f"changed from {old}")
        print(f"{state}: {ref}@{digest}")
        updated[ref] = digest
    if updated != lock:
        tmp = lock_path.with_name(f".{lock_path.name}.tmp")
        tmp.write_text(lock_text(updated), encoding="utf-8")
        tmp.replace(lock_path)
    if not reached:
        print(f"error: no registry reachable: nothing recorded in {label}", file=sys.stderr)
        return EXIT_FAILED
    if unresolved:
        print(
            f"error: {len(unresolved)} of {len(refs)} image(s) not resolved; {label} records the others",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"ok: {len(refs)} image(s) resolved in {label}")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    # app.main owns the synth's exit codes, signal handling and the resolution of --outdir.
    argv = [f"--env={e}" for e in args.env] + ["--environments", str(args.environments)]
    if args.outdir:
        argv += ["--outdir", args.outdir]
    if args.from_command_line:  # as `python app.py`: under `python -O`, as fast as `make synth`
        app.run_optimized(argv)
    return app.main(argv)


# --------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iotistica-k8s",
        description="Operate Iotistica environments: synthesize, validate, diff, explain, scaffold.",
        epilog="Exit codes: 0 ok; 1 a check failed, diff found changes, or an internal failure; 2 bad input.",
    )
    p.add_argument("--environments", type=Path, default=ROOT / "environments", help="environment files folder")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write dist/ (like make synth)", description="Synthesize into dist/<release>/.")
    s.add_argument("env", nargs="*", metavar="ENV", help="only these releases (default: all)")
    s.add_argument(
        "--outdir", help="output folder (default: $CDK8S_OUTDIR or dist); relative to the project root, not the cwd"
    )
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser(
        "validate",
        help="check models, rules, schema, policy and capacity; write nothing",
        description="Validate environments without writing anything. "
        "Capacity risks are warnings, errors with --strict.",
    )
    s.add_argument("env", nargs="*", metavar="ENV", help="only these releases (default: all)")
    s.add_argument(
        "--strict", action="store_true", help="capacity warnings are errors; list the images without a digest"
    )
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser(
        "images",
        help="list the fleet's images and digests; --resolve records digests in tiers/images.lock",
        description="Every image the fleet deploys, with the digest tiers/images.lock records. --resolve asks each "
        "image's registry (OCI distribution API) and records the digest it serves; an unreachable registry is "
        "reported and nothing is made up (exit 1 when an image is left unresolved).",
    )
    s.add_argument("--resolve", action="store_true", help="ask the registries and record the digests")
    s.add_argument("--lock", type=Path, help="the images lock (default: tiers/images.lock)")
    s.set_defaults(func=cmd_images)

    s = sub.add_parser(
        "diff",
        help="object-level diff: working change vs dist/, or ENV_A vs ENV_B",
        description="With no ENV: what a synth would change in the committed dist/. With two: ENV_A against ENV_B "
        "(release and namespace normalised). Exit 1 when there are differences.",
    )
    s.add_argument("env", nargs="*", metavar="ENV")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the committed output (default: dist)")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser(
        "explain", help="what an environment deploys, and its capacity", description="Explain one environment."
    )
    s.add_argument("env_name", metavar="ENV")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser(
        "new", help="write a new environment file with comments", description="Scaffold environments/ENV.yaml."
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument("--tier", required=True, choices=TIERS)
    s.add_argument("--namespace", help="default: ENV")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser(
        "schema", help="print the JSON Schema of environment files", description="JSON Schema for editors."
    )
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser(
        "graph",
        help="draw an environment from dist/: flows its NetworkPolicies allow, or who may do what",
        description="Draw dist/ENV as Graphviz SVG/PNG/DOT or Mermaid text. Network view: hosts, routes, "
        "Services, workloads, Secrets, hook Jobs, fleet namespaces, and every connection the NetworkPolicies "
        "allow (not drawn = denied). Rights view: ServiceAccounts, their roles and bindings, admission policies.",
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    s.add_argument("--format", choices=GRAPH_FORMATS, help="default: the output's suffix, else svg")
    s.add_argument("--view", choices=("network", "rights"), default="network", help="default: network")
    s.add_argument("--dpi", type=int, help="PNG resolution (Graphviz default: 96)")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the synthesized output (default: dist)")
    s.set_defaults(func=cmd_graph)

    s = sub.add_parser(
        "docs",
        help="regenerate the settings reference (docs/settings.md), environment.schema.json, docs/topology/",
        description="Regenerate generated docs from the models; --check only reports staleness (exit 1).",
    )
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    s.set_defaults(func=cmd_docs)

    s = sub.add_parser(
        "migrate",
        help="plan the move of a live Helm release to Argo CD",
        description="Compare `helm get manifest RELEASE -n NS` output with dist/ENV/: objects adopted in place "
        "(immutable changes and their cost), left behind (safe delete order), new, and data at risk; then the "
        "steps. Exit 0 when the first sync alone is safe, 1 when it needs steps, 2 for bad input.",
    )
    s.add_argument("env_name", metavar="ENV")
    s.add_argument(
        "--from",
        dest="sources",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="output of `helm get manifest` (repeatable)",
    )
    s.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    s.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the plan here (default: stdout)")
    s.add_argument("--dist", type=Path, default=ROOT / "dist", help="the synthesized output (default: dist)")
    s.set_defaults(func=cmd_migrate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.from_command_line = argv is None  # the console script or `python cli.py`, not a caller in process
    try:
        return int(args.func(args))
    except (ConfigError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # internal or environment failure: one line, never blamed on a file
        print(f"error: {describe_failure(exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
