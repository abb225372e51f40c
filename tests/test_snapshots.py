"""syrupy snapshots per environment, on top of the targeted tests (a snapshot alone proves nothing)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("release", ["client-demo", "iotistica", "iotistica-enterprise", "iotistica-starter"])
def test_environment_snapshot(manifests, release, snapshot) -> None:
    objs = sorted(manifests[release], key=lambda o: (o["kind"], o["metadata"]["name"]))
    assert objs == snapshot
