"""The plan for the CLI: :func:`plan_for` (the helm output files and dist/<release>/ in, a :class:`Plan`
out) and :func:`render_markdown` (a plan in, the Markdown report out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ops.migrate.model import (
    Plan,
    load_dist,
    load_helm_manifests,
)
from ops.migrate.plan import (
    build_plan,
)

# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def render_markdown(plan: Plan) -> str:
    lines = [
        f"# Migration plan: Helm release `{plan.release}` (namespace `{plan.namespace}`) to Argo CD",
        "",
        "**Safe as planned: the first sync alone does the cut-over.**"
        if plan.safe
        else "**Needs steps: follow them in order (exit code 1).**",
        "",
    ]
    if plan.hazards:
        lines += ["## Hazards", ""] + [f"- {h}" for h in plan.hazards] + [""]
    rec = plan.recommendation()
    if rec:
        lines += [
            "## Recommended setting",
            "",
            f"Add to `environments/{plan.release}.yaml`, `make synth ENV={plan.release}`, run migrate again:",
            "",
            "```yaml",
            yaml.safe_dump(rec, sort_keys=False).rstrip(),
            "```",
            "",
        ]
    lines += ["## Adopted in place", "", "| object | immutable change | cost |", "|---|---|---|"]
    for e in plan.adopted:
        if e.changes:
            for c in e.changes:
                fix = " (removed by `migration.selectorLabels: helm`)" if c.fixed_by_compat else ""
                lines.append(
                    f"| {e.kind}/{e.name} | `{c.field}`: `{_short(c.old)}` -> `{_short(c.new)}` | {c.cost}{fix} |"
                )
        else:
            lines.append(f"| {e.kind}/{e.name} | none | {e.note or 'rolling update / in-place apply'} |")
    lines += ["", "## Left behind (deleted after the cut-over, in this order)", ""]
    lines += [f"{i}. {e.kind}/{e.name}" + (f" — {e.note}" if e.note else "") for i, e in enumerate(plan.left_behind, 1)]
    lines += ["", "## New", ""] + [f"- {e.kind}/{e.name}" for e in plan.new]
    lines += ["", "## Data at risk", ""]
    lines += [f"- {r.kind}/{r.name}: {r.what}. **{r.action}**" for r in plan.risks] or ["- none"]
    lines += ["", "## Steps", ""]
    for i, s in enumerate(plan.steps, 1):
        target = f" `{s.target}`" if s.target else ""
        cmd = f"\n   `{s.command}`" if s.command else ""
        lines.append(f"{i}. **{s.action}**{target}: {s.why}{cmd}")
    return "\n".join(lines) + "\n"


def plan_for(release: str, namespace: str, sources: Sequence[Path], dist_dir: Path) -> Plan:
    old = load_helm_manifests(sources, namespace)
    new = load_dist(dist_dir)
    return build_plan(release, namespace, old, new)
