"""Slow work run off Docker's request path, awaited for a bounded time.

moby 20.10 gives a volume plugin 2 minutes for Create and Mount and 1 minute for every
other call (Remove, Unmount, Get, List, Path, Capabilities); then it reports a deadline
error while the plugin goes on. A restore, a final backup, an attach or a detach can
take longer, so the driver runs such work as a ``Job`` and waits for it only as long as
the call's ``Deadline`` allows (``CallBudgets``: the whole call, every wait in it
together, well inside Docker's limit); otherwise the call answers with a clear message
while the job goes on.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class CallBudgets:
    """Seconds one Docker call may spend in all its waits together.

    Docker's limits are 120 s (Create, Mount) and 60 s (the others); the budgets leave
    the margin for the work around the waits and for Docker's own round trip.
    """

    create: float = 90.0
    mount: float = 90.0
    other: float = 40.0    # Remove, Unmount
    monotonic: object = time.monotonic   # the clock deadlines are measured on

    def deadline(self, call):
        """A new Deadline for Docker call ``call`` ("create", "mount", "remove", ...)."""
        seconds = {"create": self.create, "mount": self.mount}.get(call, self.other)
        return Deadline(seconds, self.monotonic)


class Deadline:
    """The time left of one call's budget; every wait of the call takes from it."""

    def __init__(self, seconds, monotonic=time.monotonic):
        self._monotonic = monotonic
        self._end = monotonic() + seconds

    def remaining(self):
        """Seconds left (never negative)."""
        return max(0.0, self._end - self._monotonic())


class Job:
    """``fn()`` in its own thread. ``wait(timeout)`` says whether it finished;
    ``error`` holds what it raised, ``result`` what it returned."""

    def __init__(self, fn, what, clock=None):
        self.what = what
        self.started = (clock or (lambda: datetime.now(timezone.utc)))()
        self.result = None
        self.error = None
        self._fn = fn
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=what, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        try:
            self.result = self._fn()
        except BaseException as err:  # handed to whoever waits
            self.error = err
        finally:
            self._done.set()

    def wait(self, timeout):
        return self._done.wait(timeout)

    @property
    def done(self):
        return self._done.is_set()

    def describe(self):
        state = "running" if not self.done else ("failed: %s" % self.error if self.error else "done")
        return {"What": self.what, "Started": self.started.isoformat(timespec="seconds"), "State": state}
