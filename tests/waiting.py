"""Waiting for an event in a test instead of sleeping a fixed time (a loaded machine is slow, not wrong)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0, step_s: float = 0.02) -> bool:
    """Poll `predicate` every `step_s` until it is true (True) or `timeout_s` passed (False)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return False
