"""The demo tier's release, end to end: every scenario of docs/e2e.md on it, in this order (the faults last).

Its release starts once (the ``synced`` fixture, tests/e2e/conftest.py). The standard tier's release runs the
same scenarios in ``test_e2e_standard.py``, side by side in ``make e2e``'s two workers."""

# ruff: noqa: I001 - the order of the imports is the order the scenarios run in
from tests.e2e.release import release_of_tier
from tests.e2e.scenarios import *  # noqa: F403 - scenarios 1 to 4 and 7, and the public edge
from tests.e2e.migration_scenarios import *  # noqa: F403 - scenario 6
from tests.e2e.fault_scenarios import *  # noqa: F403 - scenario 5, last: it restarts the programs

RELEASE = release_of_tier("demo")
