"""Waiting on a condition with a generous deadline, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, what, poll: float = 0.2) -> T:
    """Call ``probe`` until it returns something true, and return that; AssertionError
    with ``what`` (a text, or a callable giving an account of the state at that moment)
    after ``timeout`` seconds: a hang guard, never a measured figure."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what() if callable(what) else what}")
        time.sleep(poll)
