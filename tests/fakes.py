"""Stand-ins the tests inject: clocks that move only when told, executors run by hand,
a mounter that records instead of mounting."""

import os
import threading
from contextlib import contextmanager
from datetime import timedelta

from plugin.jobs import CallBudgets


class FakeClock:
    """A clock the test moves; calling it returns the current aware time."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)
        return self.now


class SleepClock:
    """Monotonic time that passes only when the code under test sleeps: inject the clock
    itself as ``clock`` and its ``sleep``; ``sleeps`` records every pause."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
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


class FakeMounter:
    """Records bind mounts instead of making them (unit tier only)."""

    def __init__(self):
        self.mounted = {}  # target -> source
        self.fail_next_bind = None

    def is_mounted(self, target):
        return target in self.mounted

    def bind(self, source, target):
        if self.fail_next_bind:
            error, self.fail_next_bind = self.fail_next_bind, None
            raise error
        os.makedirs(target, exist_ok=True)
        self.mounted[target] = source

    def mount(self, device, target, options=(), fstype=None):
        self.mounted[target] = device

    def unmount(self, target):
        self.mounted.pop(target, None)


class GiveUpWhen:
    """Call budgets whose every wait ends once ``event`` is set (at once when it is set
    already): a test holds a slow step, lets the call go as far as that step, and the
    call then answers that it is still running. No time is measured."""

    def __init__(self, event):
        self.event = event

    def deadline(self, call):
        return self

    def remaining(self):
        return 0.0 if self.event.is_set() else 3600.0

    def wait(self, job):
        while not job.wait(0.01):
            if self.event.is_set():
                return job.done
        return True


@contextmanager
def calls_do_not_wait(driver, until=None):
    """Inside the block the waits of ``driver``'s Docker calls end once ``until`` (an
    Event, typically "the held step was entered") is set, or at once without it."""
    if until is None:
        until = threading.Event()
        until.set()
    driver.budgets = GiveUpWhen(until)
    try:
        yield
    finally:
        driver.budgets = CallBudgets()

