"""The release every end-to-end scenario of a test module runs on (docs/e2e.md).

A test module of this folder names its release by tier (``RELEASE = release_of_tier("demo")``) and collects the
scenarios (``from tests.e2e.scenarios import *``). Its release starts once, from an empty database, and is
synced once (scenario 1's first sync): the scenarios that only look come first, the faults (scenario 5) last.
Releases run with pod addresses (tests/e2e/podnet.py), so that the API's two replicas of scenario 6 each have
one, and so that the two test modules run side by side in pytest-xdist's two workers (``make e2e``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import platform_build
from tests.e2e.release import Release, probe_budget, running_release, two_api_replicas


@pytest.fixture(scope="session")
def built() -> Iterator[platform_build.Built]:
    """The platform's programs, built in the background: a release starts its API server and database while
    the build runs (or is found in the cache), and its kubelet waits for it. A build still running when the
    session ends (a failure, Ctrl-C) is ended with it."""
    b = platform_build.build_in_background()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def synced(request: pytest.FixtureRequest, built: platform_build.Built) -> Iterator[tuple[Release, Any]]:
    """The module's release from an empty database, synced once with the API at two replicas (scenario 6);
    yields (release, the first sync's result). ``r.synced`` holds the objects that sync applied."""
    release: str = request.module.RELEASE
    with running_release(release, built, pod_addresses=True) as r:
        r.synced = two_api_replicas(r)
        result = r.sync(wave_timeout=max(240.0, probe_budget(r)), objects=r.synced)
        yield r, result
