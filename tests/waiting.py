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
