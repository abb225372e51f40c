"""``iotistica-k8s schema`` and ``docs``: the environment JSON Schema from the models, and the generated
docs (docs/settings.md, environment.schema.json, docs/topology/) regenerated or checked for staleness.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ops.fleet_render import (
    EXIT_FAILED,
    EXIT_OK,
    ROOT,
)


def environment_schema() -> dict[str, Any]:
    from tiers.models import Environment

    schema = Environment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Iotistica environment"
    return schema


def fleet_schema() -> dict[str, Any]:
    """The JSON Schema of fleet.yaml (tiers/models/fleet.py)."""
    from tiers.models import FleetSettings

    schema = FleetSettings.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Iotistica fleet file"
    return schema


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(fleet_schema_text() if getattr(args, "fleet", False) else schema_text())
    return EXIT_OK


SCHEMA_FILE = ROOT / "environment.schema.json"
FLEET_SCHEMA_FILE = ROOT / "fleet.schema.json"
#: The generated settings reference (tiers/reference.py), between its markers.
SETTINGS_PAGE = ROOT / "docs" / "settings.md"


def schema_text() -> str:
    return json.dumps(environment_schema(), indent=2, sort_keys=True) + "\n"


def fleet_schema_text() -> str:
    return json.dumps(fleet_schema(), indent=2, sort_keys=True) + "\n"


def cmd_docs(args: argparse.Namespace) -> int:
    """Regenerate docs/settings.md (the settings reference), environment.schema.json, fleet.schema.json, the
    topology pages (or check)."""
    from tiers.reference import update_reference

    stale = []
    if not update_reference(SETTINGS_PAGE, check=args.check):
        stale.append("docs/settings.md (settings reference)")
    from ops.graph import topology_docs

    stale += topology_docs(ROOT / "dist", ROOT / "docs" / "topology", check=args.check)
    for path, text in ((SCHEMA_FILE, schema_text()), (FLEET_SCHEMA_FILE, fleet_schema_text())):
        current = path.read_text() if path.exists() else ""
        if current != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print(f"error: stale: {', '.join(stale)}; run `iotistica-k8s docs`", file=sys.stderr)
        return EXIT_FAILED
    print("docs: " + (f"updated {', '.join(stale)}" if stale else "current"))
    return EXIT_OK
