"""``iotistica-k8s migrate``: the argparse namespace in, the migration plan (:mod:`ops.migrate`) written as
Markdown or JSON, and its exit code out. ops.migrate is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from ops.fleet_render import (
    _load,
)
from tiers.errors import ConfigError


def cmd_migrate(args: argparse.Namespace) -> int:
    """What the first Argo CD sync does to a live Helm release: ops/migrate/."""
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
