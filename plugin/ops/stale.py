"""When a backup is older than its schedule allows ("stale"): a pure function.

The rule: one scheduled run after the newest successful backup may fail or be missed
(the scheduler retries it); the second one must have committed within ``grace`` of its
planned time. So a volume is stale once ``now`` is past

    next_run(next_run(last success)) + grace

with ``next_run`` of ``plugin.policy.schedule`` (the scheduler's own arithmetic: the
per-volume offset of ``daily`` and friends, cron expressions, ``TZ``, DST). For a
``daily`` volume backed up at its time that is two days and the grace after it; for a
weekday cron (``0 2 * * 1-5``) backed up on Friday it is Tuesday 02:00 plus the grace.

A volume that never had a successful backup is counted from when it got its policy
(``since``). Schedules the clock does not fire (``off``, ``on-unmount``) are never stale.
"""

import threading
from datetime import timedelta

from ..policy.schedule import next_run

DEFAULT_GRACE = timedelta(hours=1)


def backup_deadline(schedule, reference, volume, tz=None, grace=DEFAULT_GRACE):
    """The instant after which a volume whose newest good backup (or policy) dates from
    ``reference`` is stale; None when ``reference`` is None or ``schedule`` is not fired
    by the clock."""
    if reference is None or not schedule.scheduled:
        return None
    first = next_run(schedule, reference, volume, tz)
    return next_run(schedule, first, volume, tz) + grace


def is_stale(schedule, last_success, now, volume, tz=None, grace=DEFAULT_GRACE, since=None):
    """True when ``now`` is past the deadline counted from ``last_success`` (or from
    ``since`` when there was none yet)."""
    deadline = backup_deadline(schedule, last_success or since, volume, tz, grace)
    return deadline is not None and now > deadline


class DeadlineCache:
    """``backup_deadline`` per (volume, target), recomputed only when the schedule or the
    reference time changed: a scrape or check of 1,000 volumes then costs no croniter
    step unless a backup committed. Thread-safe."""

    def __init__(self, tz=None, grace=DEFAULT_GRACE):
        self.tz = tz
        self.grace = grace
        self._cached = {}
        self._lock = threading.Lock()

    def deadline(self, entry):
        """The deadline of an ``ops.state.VolumeBackup`` (None: never stale)."""
        key = (entry.volume, entry.target)
        basis = (entry.schedule, entry.timed_by, entry.last_success or entry.since)
        with self._lock:
            cached = self._cached.get(key)
        if cached is not None and cached[0] == basis:
            return cached[1]
        deadline = backup_deadline(entry.schedule, basis[2], entry.timed_by, self.tz, self.grace)
        with self._lock:
            self._cached[key] = (basis, deadline)
        return deadline

    def keep_only(self, keys):
        """Forget the volumes and targets not in ``keys`` (removed volumes)."""
        with self._lock:
            for gone in set(self._cached) - set(keys):
                del self._cached[gone]
