"""``iotistica-k8s new``: writes a commented environments/ENV.yaml for a tier (validated with the fleet
before it is kept); takes the argparse namespace, gives an exit code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from ops.fleet_render import (
    EXIT_CONFIG,
    EXIT_OK,
    _load,
)
from tiers.errors import ConfigError
from tiers.fleet_file import FleetFile

NEW_TEMPLATE = """\
# yaml-language-server: $schema=../environment.schema.json
# Environment {release}: tier {tier}, namespace {namespace}. Created by `iotistica-k8s new`.
# Settings layer like Helm's -f: model defaults < tiers/presets/{tier}.yaml < ../fleet.yaml (docs/fleet.md) < this file.
# The tier's numbers come from its preset alone: changing `tier:` is a one-line edit.
# Every setting is listed in docs/settings.md; `iotistica-k8s explain {release}` shows the result.
release: {release}
namespace: {namespace}
tier: {tier}

edge:
  hosts:                       # public hostnames; the dashboard's API URL, Auth0 callback and CORS derive from them
    api: api-{release}.iotistica.com
    dashboard: {release}.iotistica.com
    mqtt: mqtt-{release}.iotistica.com
{extra}
# Examples of overrides; each one can be uncommented as it stands:
{examples}"""

#: The commented examples of a new file: (top-level key, its lines). An example whose key the file already
#: has is written inside that block, so that uncommenting it never gives a duplicate key.
NEW_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("api", ("hpa: {maxReplicas: 6}       # pools are sized for HPA max: raise database.connectionBudget with it",)),
    ("monitoring", ("enabled: true",)),
    ("database", ("pooler: {enabled: true}     # PgBouncer (a CNPG Pooler) in front of the server",)),
    ("secrets", ("provider: onepassword",)),
)


def _with_examples(blocks: str) -> tuple[str, str]:
    """``blocks`` (top-level YAML blocks the file has) with the examples of their keys inside, and the others."""
    top: list[str] = []
    for key, lines in NEW_EXAMPLES:
        nested = "".join(f"  # {line}\n" for line in lines)
        head = f"\n{key}:\n"
        if head in blocks:
            end = blocks.find("\n\n", blocks.index(head) + len(head))
            end = len(blocks) if end < 0 else end + 1
            blocks = blocks[:end] + nested + blocks[end:]
        else:
            top.append(f"# {key}:\n" + "".join(f"#   {line}\n" for line in lines))
    return blocks, "".join(top)


def _preset_budget(tier: str) -> int:
    from tiers.loader import PRESETS

    preset = yaml.safe_load((PRESETS / f"{tier}.yaml").read_text()) or {}
    return int(preset.get("database", {}).get("connectionBudget", 40))


def _placement_block(args: argparse.Namespace, fleet: FleetFile, path: Path) -> str:
    """``cluster.name`` and ``database.server`` as given (fleet.yaml's defaults otherwise), and, when fleet.yaml
    declares no database server, the server's max_connections as the other environments state it."""
    out = f"\ncluster:\n  name: {args.cluster}                # a cluster of fleet.yaml\n" if args.cluster else ""
    lines = [f"  server: {args.database_server}               # a database server of fleet.yaml"]
    lines = lines if args.database_server else []
    if not fleet.fleet.database_servers:
        lines += _server_block(args.environments, path, args.tier, args.database_server)
    return out + ("\ndatabase:\n" + "\n".join(lines) + "\n" if lines else "")


def _server_block(env_dir: Path, path: Path, tier: str, server: str | None) -> list[str]:
    """The database server's max_connections as the other environments on it declare it (without a fleet
    file that declares it)."""
    from tiers.models import Database

    default = Database.model_validate({"server": server} if server else {})
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
            return []
        return [
            f"  # The server {default.server} must allow at least the tier's connection budget plus "
            f"{RESERVED_CONNECTIONS} reserved:",
            "  # write its real max_connections here (or declare the server in fleet.yaml).",
            f"  maxConnections: {need}",
        ]
    if same[0].database.max_connections == default.max_connections:
        return []
    first = same[0]
    return [
        f"  # The server {default.server}'s max_connections, as environments/{first.release}.yaml declares it",
        "  # (every environment on one server declares the same; fleet.yaml can declare it once).",
        f"  maxConnections: {first.database.max_connections}",
    ]


def cmd_new(args: argparse.Namespace) -> int:
    from tiers.fleet import Sources, fleet_capacity, validate_fleet
    from tiers.loader import load_environment, load_fleet_file

    path = args.environments / f"{args.env_name}.yaml"
    if path.exists() and not args.force:
        print(f"error: {path}: already exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_CONFIG
    from pydantic import TypeAdapter, ValidationError

    from tiers.models import DnsLabel, ReleaseName

    args.cluster, args.database_server = getattr(args, "cluster", None), getattr(args, "database_server", None)
    for key, value, kind in (
        ("release", args.env_name, ReleaseName),
        ("namespace", args.namespace, DnsLabel),
        ("cluster.name", args.cluster, DnsLabel),
        ("database.server", args.database_server, DnsLabel),
    ):
        try:
            if value is not None:
                TypeAdapter(kind).validate_python(value)
        except ValidationError as exc:
            raise ConfigError(str(path), key, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    # Only what the operator chose: the tier's numbers stay in its preset, so `tier:` can change alone.
    fleet = load_fleet_file(args.environments)
    extra, examples = _with_examples(_placement_block(args, fleet, path))
    text = NEW_TEMPLATE.format(
        release=args.env_name, namespace=args.namespace or args.env_name, tier=args.tier, extra=extra, examples=examples
    )
    args.environments.mkdir(parents=True, exist_ok=True)
    # Validate under the final file name (the release must match it), alone and with the fleet's rules,
    # before anything is written there.
    with tempfile.TemporaryDirectory(dir=args.environments) as tmp:
        draft = Path(tmp) / path.name
        draft.write_text(text)
        new_env = load_environment(draft, str(path), fleet=fleet)
        others = (
            [e for e in _load(args.environments, []) if e.release != new_env.release]
            if any(args.environments.glob("*.yaml"))
            else []
        )
        labels = {e.release: f"{args.environments / e.release}.yaml" for e in others} | {new_env.release: str(path)}
        status = {e.release: "unchanged" for e in others} | {new_env.release: "new"}
        sources = Sources(labels=labels, status=status, fleet=fleet)
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
