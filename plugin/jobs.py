"""Slow work run off Docker's request path, awaited for a bounded time.

moby 20.10 gives a volume plugin 2 minutes for Create and Mount and 1 minute for every
other call (Remove, Unmount, Get, List, Path, Capabilities), and no call of a managed
plugin more than the timeout it was enabled with (30 s by default); then it reports a
deadline error while the plugin goes on. A restore, a final backup, an attach or a detach can
take longer, so the driver runs such work as a ``Job`` and waits for it only as long as
the call's ``Deadline`` allows (``CallBudgets``: the whole call, every wait in it
together, well inside Docker's limit); otherwise the call answers with a clear message
while the job goes on.
"""

import logging
import threading
import time
from dataclasses import dataclass

from .errors import InUse
from .timefmt import rfc3339, utc_now

log = logging.getLogger(__name__)


#: Docker's own limit of each call (moby 20.10 volume/drivers/proxy.go): Create and
#: Mount 2 minutes, every other call 1 minute.
CALL_LIMITS = {"create": 120.0, "mount": 120.0}
OTHER_LIMIT = 60.0
#: Docker 20.10 also cuts every call of a managed plugin at the timeout the plugin was
#: enabled with (``docker plugin enable --timeout``, 30 s unless given): PLUGIN_ENABLE_TIMEOUT.
ENABLE_TIMEOUT = 30
#: The share of a call's limit its waits may take: the rest is for the work around the
#: waits and Docker's own round trip.
SHARE = 0.75


@dataclass(frozen=True)
class CallBudgets:
    """Seconds one Docker call may spend in all its waits together: ``SHARE`` of what
    Docker allows it (see ``within``; the defaults are those of Docker's default enable
    timeout)."""

    create: float = ENABLE_TIMEOUT * SHARE
    mount: float = ENABLE_TIMEOUT * SHARE
    other: float = ENABLE_TIMEOUT * SHARE    # Remove, Unmount
    monotonic: object = time.monotonic   # the clock deadlines are measured on

    @classmethod
    def within(cls, enable_timeout, monotonic=time.monotonic):
        """The budgets of a plugin Docker cuts at ``enable_timeout`` seconds (0: at the
        calls' own limits alone, as for a plugin enabled by ``docker plugin install``)."""
        def budget(limit):
            return SHARE * (min(limit, enable_timeout) if enable_timeout else limit)
        return cls(create=budget(CALL_LIMITS["create"]), mount=budget(CALL_LIMITS["mount"]),
                   other=budget(OTHER_LIMIT), monotonic=monotonic)

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

    def wait(self, job):
        """Wait for ``job`` with the time left; True when it finished."""
        return job.wait(self.remaining())


class Job:
    """``fn()`` in its own thread. ``wait(timeout)`` says whether it finished;
    ``error`` holds what it raised, ``result`` what it returned."""

    def __init__(self, fn, what, clock=None):
        self.what = what
        self.started = (clock or utc_now)()
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
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits, as it is
            self.error = err
        finally:
            self._done.set()

    def wait(self, timeout):
        return self._done.wait(timeout)

    @property
    def done(self):
        return self._done.is_set()

    def describe(self):
        state = "running" if not self.done else (f"failed: {self.error}" if self.error else "done")
        return {"What": self.what, "Started": rfc3339(self.started), "State": state}


def await_job(volume, deadline):
    """Wait (bounded by ``deadline``) for ``volume``'s background job (restore, attach,
    detach, removal); raise InUse if it is still running. Calls that change a volume start
    with this, so a job that outlived its Docker call is never run twice at once."""
    job = volume.job
    if job is None or job.done:
        return
    if not deadline.wait(job):
        started = rfc3339(job.started)
        if job is volume.restore:
            raise InUse(f"volume {volume.name} is still being restored ({job.what}, started {started}): "
                        "try again in a moment")
        raise InUse(f"volume {volume.name} is busy: {job.what} (started {started}) is still running; "
                    "try again in a moment")


def run_job(volume, what, fn, deadline, clock, required=True):
    """Run ``fn`` as ``volume``'s job and wait for it until ``deadline``.

    Returns its result; raises what it raised. When it is still running: raises InUse if
    ``required``, else logs and returns None (it goes on; the next call on the volume
    waits for it through ``await_job``).
    """
    job = volume.job = Job(fn, what, clock).start()
    if not deadline.wait(job):
        if required:
            raise InUse(f"volume {volume.name} is not ready yet: {what} is still running "
                        "(vCenter answers slowly); try again in a moment")
        log.warning("volume %s: %s goes on in the background", volume.name, what)
        return None
    if job.error is not None:
        raise job.error
    return job.result
