"""Waiting for an event in a test instead of sleeping a fixed time (a loaded machine is slow, not wrong)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0, step_s: float = 0.02) -> bool:
    """Poll `predicate` every `step_s` until it is true (True) or `timeout_s` passed (False)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return False


@contextmanager
def hangup_as_in_a_terminal() -> Iterator[None]:
    """Children started inside get SIGHUP's default action, as from a terminal or an ssh session. Under `nohup`
    (or a CI runner that ignores SIGHUP) the ignored disposition would be inherited, and edgebench rightly keeps
    an ignored SIGHUP ignored; a test of what SIGHUP does must not depend on how pytest was started."""
    old = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old)
