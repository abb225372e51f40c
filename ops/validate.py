"""``iotistica-k8s validate``: the environments in (argparse namespace), problems reported and an exit code out.

Checks models, fleet rules, schema, policy and capacity in memory; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.fleet_render import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    _containers,
    _load,
    identity_clashes,
    policy_problems,
    render,
    render_shared,
)


def cmd_validate(args: argparse.Namespace) -> int:
    """The synth's rules (models, fleet, shared charts), then policy, schema and capacity; errors on stderr."""
    from constructs.isolation.api_admission_policies import unguarded_warning
    from synth.render import check_tenant_objects
    from tiers.capacity import capacity
    from tiers.errors import ConfigError
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
    try:  # as synth refuses it (synth/render.py): tenant folders hold namespaced objects only
        for env in all_envs:
            check_tenant_objects(sources.label(env.release), env.release, rendered[env.release])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
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
