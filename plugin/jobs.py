"""Slow work run off Docker's request path, awaited for a bounded time.

Docker gives a volume plugin about two minutes for Create, Remove and Mount (one for the
other calls). A restore or a final backup can take longer, so the driver starts it as a
``Job``, waits at most ``DOCKER_CALL_BUDGET`` seconds, and otherwise answers with a clear
message while the job goes on.
"""

import threading
from datetime import datetime, timezone

DOCKER_CALL_BUDGET = 45.0   # seconds a Docker call may wait for a job; well inside Docker's limits


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
