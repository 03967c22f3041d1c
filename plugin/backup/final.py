"""The final backup: a volume with a backup policy is removed only once it committed.

``docker volume rm`` must answer within Docker's limit, and a backup may take longer.
So the final backup runs as a Job that the remove waits for only as long as its budget
allows; a remove that gives up says so, and the next remove waits for the same job
again instead of starting another. Unless the volume was mounted and unmounted since
that job started: its data may have changed, and a new final backup is taken.
"""

import threading

from ..errors import BackupError
from ..jobs import CallBudgets, Job
from ..policy.retention import FINAL
from ..policy.schedule import OFF
from ..timefmt import rfc3339

#: The most seconds a remove waits for a final backup: the budget of Docker's Remove.
DEFAULT_WAIT = CallBudgets().other


class FinalBackups:
    """The final backups of the volumes being removed.

    ``backup(volume, origin)`` takes a backup and returns its Manifest (raising
    VolumeError); ``clock()`` is the aware now; ``wait`` the most seconds a remove waits.
    """

    def __init__(self, backup, clock, wait=DEFAULT_WAIT):
        self.backup = backup
        self.clock = clock
        self.wait = wait
        self._lock = threading.Lock()
        self._jobs = {}          # volume -> the Job of its final backup, while a remove waits
        self._unmounted = {}     # volume -> when it was last unmounted by its last container

    def unmounted(self, name):
        """The last container unmounted volume ``name`` now."""
        with self._lock:
            self._unmounted[name] = self.clock()

    def before_remove(self, volume, wait=None):
        """Return once ``volume``'s final backup committed (at once for a volume without a
        policy); wait at most ``wait`` seconds (and never more than ``self.wait``), then
        refuse with a message to run the remove again. Raises BackupError."""
        if volume.options.backup.kind == OFF:
            return
        name = volume.name
        with self._lock:
            job = self._jobs.get(name)
            if job is None or (job.done and job.error) or job.started < self._unmounted.get(name, job.started):
                job = self._jobs[name] = Job(lambda earlier=job: self._run(volume, earlier),
                                             f"final backup of {name}", self.clock).start()
        if not job.wait(self.wait if wait is None else min(wait, self.wait)):
            raise BackupError(
                f"volume {name} was not removed yet: its final backup is still running (started "
                f"{rfc3339(job.started)}); run docker volume rm {name} again once "
                f"'vsphere-volume backups {name}' lists it")
        with self._lock:
            self._jobs.pop(name, None)
        if job.error is not None:
            raise BackupError(f"volume {name} was not removed: its final backup failed: {job.error}")

    def _run(self, volume, earlier):
        if earlier is not None:
            earlier.wait(None)  # it holds the lease until it ends; its data is out of date anyway
        return self.backup(volume, FINAL)
