"""Stage 1, load and validate the fleet: the environment files in, the validated environments out.

Takes the environments folder and the releases asked for (``--env``, none for all); gives
:class:`Fleet`: every environment validated (tiers/: the models, the presets, the rules across
environments), the ones to synthesize, and each one's file name for messages. Every environment is
validated, also with ``--env``: the shared charts describe all of them. A bad file raises
:class:`tiers.errors.ConfigError` (one line naming the file and the key; exit 2, nothing written).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tiers.errors import ConfigError

if TYPE_CHECKING:  # imported where used: the render worker starts before pydantic's models are paid for
    from tiers.models import Environment

#: A release name (a DNS label, the environment's file name); also the folders of an output folder
#: (releases, ``cluster``, ``argocd``).
RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Fleet:
    """What a synth renders: ``envs`` (those asked for) of ``all_envs`` (every environment)."""

    envs: list[Environment]
    all_envs: list[Environment]
    #: Each release's environment file as messages name it.
    labels: dict[str, str]
    #: Only some releases were asked for (``--env``): the others' folders stay as they are.
    partial: bool


def check_release_names(names: Sequence[str]) -> None:
    """``--env`` values are release names (checked before anything else is done)."""
    for name in names:
        if not RELEASE_NAME.match(name):
            raise ConfigError(
                f"--env {name}", "", "not a release name (give the file name without folder or .yaml, e.g. client-acme)"
            )


def load(env_dir: Path, releases: Sequence[str]) -> Fleet:
    """Load and validate every environment of ``env_dir``; pick ``releases`` (all when empty)."""
    from synth.signals import held

    # The models' first import initialises pydantic-core, a Rust extension: a signal's exception raised
    # inside that initialisation panics it (a traceback and exit 1, not the clean unwinding). So the
    # signals wait for the import (microseconds to ~0.2 s) and are handled right after it.
    with held():
        import tiers.models  # noqa: F401
    from tiers.fleet import load_fleet
    from tiers.loader import load_environments

    # One rule set with `validate`: tiers/fleet.py (namespaces, hosts, names, shared Argo CD settings).
    all_envs, sources = load_fleet(env_dir, base=Path.cwd())
    if releases:
        known = {e.release: e for e in all_envs}
        missing = sorted(set(releases) - set(known))
        if missing:  # the release is the file name, so a name not among them has no file
            load_environments(env_dir, missing, base=Path.cwd())  # raises "file not found"
        envs = [known[name] for name in sorted(set(releases))]
    else:
        envs = all_envs
    return Fleet(envs, all_envs, dict(sources.labels), partial=bool(releases))
