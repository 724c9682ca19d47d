"""Waiting for something that happens in another process (a server, a worker, a watcher)."""

import time
from collections.abc import Callable

import pytest


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 1.0):
    """Poll until `condition()` is truthy; return its value, or fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"within {timeout:.0f} s: {what}")
