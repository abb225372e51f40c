"""The end-to-end test's kubelet restarts a container on the kubelet's own schedule (tests/e2e/kubelet.py,
``Container.back_off``), without the platform: kuberuntime_manager.go's ``doBackOff`` over client-go's
flowcontrol.Backoff (10 s initial, 300 s maximum). The first exit restarts at once, each later one waits the
back-off from when the container finished, and a back-off untouched for twice the maximum starts over."""

from __future__ import annotations

from typing import Any

from tests.e2e.kubelet import Container


def _container() -> Container:
    none: Any = None
    return Container(pod=none, spec={"name": "c"}, program=none)


def test_the_first_exit_restarts_at_once_then_10_s_doubling_to_300_s() -> None:
    c = _container()
    t, waits = 1000.0, []
    for _ in range(8):
        c.back_off(t)
        waits.append(c.not_before - t)
        t = c.not_before + 1.0  # it runs 1 s, then exits again
    assert waits == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_an_exit_600_s_after_the_back_off_last_moved_starts_over() -> None:
    c = _container()
    c.back_off(0.0)
    c.back_off(5.0)
    assert c.not_before == 15.0
    c.back_off(15.0 + 600.0)  # ran 600 s: not yet over twice the maximum
    assert c.not_before == 615.0 + 20.0
    c.back_off(635.0 + 600.5)
    assert c.not_before == 635.0 + 600.5
    c.back_off(1300.0)
    assert c.not_before == 1310.0
