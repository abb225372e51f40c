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


@pytest.fixture(scope="session")
def kube_api():
    """A real kube-apiserver v1.28.4 on etcd (tests/realkube.py), one per session; skips with one line naming
    the missing or damaged file where ../shared/vendor is absent."""
    from tests.realkube import mode, running_kube_apiserver, skip_reason

    if skip_reason() is not None:
        pytest.skip(mode())  # "kube-apiserver 1.28.4: skipped: <the missing or damaged file>"
    with running_kube_apiserver() as api:
        yield api


@pytest.fixture(scope="session")
def kube_dist(kube_api):
    """kube_api with every object of dist/ server-side applied (tests/realkube.py install_dist): the CRDs of
    ../shared/crds (in the form a 1.28 server takes, CRD_LIMITS_1_28), the policies as v1beta1."""
    from tests.realkube import install_dist

    return install_dist(kube_api)


def mode_lines() -> list[str]:
    """One line per real component: which ran for real, which skipped and why."""
    from tests import realkube, realpostgres
    from tests.e2e import platform_build

    return [realpostgres.mode(), realkube.mode(), platform_build.mode()]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: a release of dist/ run end to end on the real programs (tests/e2e/)")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which real components this run uses (tests/realpostgres.py, tests/realkube.py)."""
    return mode_lines()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The same lines at the end, where `-q` (this project's default) still shows them."""
    for line in mode_lines():
        terminalreporter.write_line(line)
