"""Waiting in tests: on a condition, with a deadline, never a bare sleep."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 30.0, every: float = 0.02):
    """The first truthy value of predicate(), polled until `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout:g} s")


def holds_for(predicate, seconds: float, every: float = 0.02) -> bool:
    """True when predicate() stays truthy for `seconds`; False the moment it does not
    (for "nothing happens meanwhile": a failure shows at once, not after the wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(every)
    return bool(predicate())
