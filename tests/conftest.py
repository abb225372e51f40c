"""Shared fixtures: the shipped environments, synthesized once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the repo root holds app.py, tiers/ and our half of `constructs`
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# As in a synth: the bindings' assembly loads wait until something asks the jsii kernel for something,
# so tests of the Python renderer never start it (the kernel tests start it when they need it).
import app  # noqa: E402, F401
from tests.helpers import ENV_DIR, Manifest, synth_env  # noqa: E402
from tiers.loader import load_environments  # noqa: E402
from tiers.models import Environment  # noqa: E402


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return {e.release: e for e in load_environments(ENV_DIR)}


@pytest.fixture(scope="session")
def manifests(environments: dict[str, Environment]) -> dict[str, list[Manifest]]:
    return {name: synth_env(env) for name, env in environments.items()}


@pytest.fixture(scope="session")
def cluster_manifests(environments: dict[str, Environment]) -> list[Manifest]:
    """dist/cluster/: the objects shared by every release (the deployer's ClusterRoles, platform-facts §11)."""
    from constructs.api_objects import Root
    from constructs.shared_charts import ClusterChart
    from tiers.shared import shared_props

    return list(ClusterChart(Root(), shared_props(list(environments.values()))).to_json())


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which mode the real-PostgreSQL tests run in (TimescaleDB installed and preloaded, or absent)."""
    from tests.realpostgres import mode

    return [mode()]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The same line at the end, where `-q` (this project's default) still shows it."""
    from tests.realpostgres import mode

    terminalreporter.write_line(mode())
