"""Shared helpers for the backup unit tests: an injected clock and executors driven by hand."""

from datetime import datetime, timedelta, timezone

import pytest


class FakeClock:
    """A clock the test moves; calling it returns the current aware time."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)
        return self.now


class ManualExecutor:
    """Holds submitted runs until the test finishes them, to see what is running at once."""

    def __init__(self):
        self.pending = []

    def submit(self, fn, *args):
        self.pending.append((fn, args))

    def finish(self, count=None):
        """Run the oldest ``count`` held runs (all when None) to completion."""
        count = len(self.pending) if count is None else count
        for _ in range(count):
            fn, args = self.pending.pop(0)
            fn(*args)


class InlineExecutor:
    """Runs each submitted run at once, in the caller's thread."""

    def submit(self, fn, *args):
        fn(*args)


@pytest.fixture
def clock():
    """A FakeClock at Monday 2026-11-23 00:00 UTC."""
    return FakeClock(datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc))


@pytest.fixture
def make_clock():
    return FakeClock


@pytest.fixture
def manual_executor():
    return ManualExecutor()


@pytest.fixture
def inline_executor():
    return InlineExecutor()
