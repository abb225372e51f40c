"""``iotistica-k8s validate``: the environments in (argparse namespace), problems reported and an exit code out.

Checks models, fleet rules, schema, policy and capacity in memory; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ops.fleet_render import (
    EXIT_FAILED,
    EXIT_OK,
    _load,
    identity_clashes,
    render_shared,
)
from ops.selection import select
from tiers.errors import raise_all


def cmd_validate(args: argparse.Namespace) -> int:
    """The synth's rules (models, fleet, shared charts), then policy, schema and capacity; errors on stderr
    (``--json``: every finding as JSON on stdout instead)."""
    from constructs.isolation.api_admission_policies import unguarded_warning
    from synth.render import check_tenant_objects
    from tiers.capacity import capacity
    from tiers.errors import ConfigError
    from tiers.fleet import Sources, fleet_capacity, validate_fleet
    from tiers.images import LOCK_LABEL, unpinned

    findings: list[dict[str, Any]] = []

    def report(level: str, text: str, file: str | None = None, stream: Any = sys.stderr) -> None:
        findings.append({"level": level, "file": file, "text": text})
        if not args.json:
            print(f"{level}: {text}", file=stream)

    from ops.fleet_parallel import Workers, _validate_worker, validate_chunk

    with Workers(args.environments) as workers:
        all_envs = _load(args.environments, [])
        if args.env and not args.selector:
            _load(args.environments, args.env)  # a name without a file: "file not found"
        envs = select(all_envs, args.env, args.selector)
        sources = Sources.of(all_envs, args.environments, Path.cwd())
        fleet = validate_fleet(all_envs, sources)
        if fleet:
            raise_all(fleet)  # every error, one line each (cli.py; --json: as JSON)
        check = frozenset(e.release for e in envs)
        # Every environment rendered (object names are checked across the fleet), the chosen ones checked.
        collect = workers.submit(all_envs, lambda chunk: validate_chunk(chunk, check), _validate_worker, check)
        rendered: dict[str, list[Any]] = render_shared(all_envs)
        problems: dict[str, list[str]] = {}
        images: dict[str, set[str]] = {}
        for part in collect():
            for release, found, idents, used in part:
                rendered[release], problems[release], images[release] = idents, found, set(used)
        # As synth refuses it (synth/render.py): tenant folders hold namespaced objects only.
        misplaced: list[ConfigError] = []
        for env in all_envs:
            try:
                check_tenant_objects(sources.label(env.release), env.release, rendered[env.release])
            except ConfigError as err:
                misplaced.append(err)
        raise_all(misplaced)
    failed = False
    warnings = 0
    from constructs.shared_charts import cluster_folder

    # Each folder's cluster: a release's, and each platform folder dist/cluster/<cluster>/ its own.
    on = {e.release: e.cluster.name for e in all_envs} | {
        cluster_folder(e.cluster.name): e.cluster.name for e in all_envs
    }
    for folder, other, ident in identity_clashes(rendered, on):
        report("error", f"{sources.label(folder)}: {ident} is also written by dist/{other}/", sources.label(folder))
        failed = True
    for env in envs:
        label = sources.label(env.release)
        for problem in problems[env.release]:
            report("error", f"{label}: {problem}", label)
            failed = True
        unguarded = unguarded_warning(env)
        if unguarded:
            report("warning", f"{label}: {unguarded}", label, sys.stdout)
        if args.strict:  # never a failure: a digest is recorded, never made up (docs/hardening.md)
            deployed = images[env.release]
            for where, ref in unpinned(env):
                if ref not in deployed:  # a component this environment does not run
                    continue
                report(
                    "unpinned",
                    f"{label}: {where}: {ref} has no digest in {LOCK_LABEL}; it keeps its tag",
                    label,
                    sys.stdout,
                )
        for finding in capacity(env).findings:
            level = "error" if args.strict else finding.level
            report(level, f"{label}: {finding.key}: {finding.message}", label)
            failed = failed or args.strict
            warnings += 1
    for shared in fleet_capacity(all_envs, sources):
        level = "error" if args.strict else "warning"
        report(level, str(shared), getattr(shared, "file", None))
        failed = failed or args.strict
        warnings += 1
    summary = f"ok: {len(envs)} environment(s) valid" + (f", {warnings} capacity warning(s)" if warnings else "")
    if args.json:
        print(json.dumps({"ok": not failed, "environments": [e.release for e in envs], "findings": findings}, indent=2))
    elif not failed:
        print(summary)
    return EXIT_FAILED if failed else EXIT_OK
