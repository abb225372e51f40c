"""SIGINT and SIGTERM during a synth: the first one unwinds it, every ``finally`` cleans up.

Takes the process's signal handlers for the time of a synth (:func:`handled`); gives
:class:`Interrupted` (raised where the synth is, exit code 128+N) and :func:`held` (the signals wait
while worker processes are spawned and while a promotion renames folders).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; unwinds like KeyboardInterrupt so every ``finally`` cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGINT/SIGTERM raise :class:`Interrupted` inside the block (signal handlers live in the main
    thread: elsewhere the block changes nothing); the previous handlers come back after it."""
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, previous in handlers.items():
            signal.signal(s, previous)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block is done (the renames of a promotion take microseconds)."""
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def finish_uninterrupted() -> None:
    """Once the output is promoted the synth has succeeded: a SIGINT/SIGTERM from now on is ignored
    (also one held during the promotion), so the exit code and message never contradict the output."""
    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) is _on_signal:
            signal.signal(s, signal.SIG_IGN)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # The first signal unwinds the synth (every `finally` removes its staging); later ones are
    # ignored so that the clean-up itself is not cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)
