"""Scheduled backups of a volume that several Docker hosts know: one backup per planned run.

Every host that knows a volume schedules it (a ``global`` volume: every node of a swarm),
and their schedulers fire at the same planned times (a schedule depends only on the
volume's name, its ``Backup`` option and ``TZ``). ``ScheduledTurns`` keeps that to one
backup per planned run, by the host that has the volume attached, or by any host when
none has. Decided when a scheduled run starts (the planned run it is for is
``policy.schedule.previous_run`` of now):

- **whose turn**: while a running VM other than this host's has the volume's disk
  attached, that VM's Docker host makes the run (it freezes the filesystem it mounted for
  a consistent snapshot); this host skips it (``NotOurTurn``) and looks again ``grace``
  after the planned time. Should no backup have been made by then (that host is down, or
  the VM is no Docker host of this plugin's), this host makes it from a snapshot of that VM.
- **made already**: under the volume's lease (``lease``: one host backs it up at a time),
  a scheduled backup that began at or after the planned run means the run was made, by
  another host or by this one before a crash: skipped (``AlreadyMade``), not made twice.

Both are ``LeaseHeld``: skipped, with the reason, never failed (``scheduler``); the
scheduler runs a ``NotOurTurn`` again at its ``retry_at`` (never later than the next
regular run). Backups of any other origin (manual, final, on-unmount) are never held back.

The same rules keep scheduled off-site copies (``offsite``) to one per planned run: the
planned run is that of the copy's own schedule (``BackupCopy``, timed by
``<volume>@<target>``), and "made already" reads the target's catalog under its lock
for the volume. ``what`` and ``noun`` name the work in the messages.
"""

from datetime import timedelta

from ..policy.retention import SCHEDULE
from ..policy.schedule import previous_run
from ..timefmt import rfc3339
from .lease import LeaseHeld

GRACE = timedelta(minutes=5)   # how long a host leaves a planned run to the host that has the volume


class AlreadyMade(LeaseHeld):
    """The planned run was made already (a scheduled backup began at or after it)."""


class NotOurTurn(LeaseHeld):
    """Another running VM has the volume's disk: its host makes the run; look again at ``retry_at``."""

    def __init__(self, message, retry_at):
        super().__init__(message)
        self.retry_at = retry_at


class ScheduledTurns:
    """The two rules above; ``clock``: aware now; ``tz``: the plugin's TZ; ``grace``: a timedelta."""

    def __init__(self, clock, tz="UTC", grace=GRACE):
        self.clock = clock
        self.tz = tz
        self.grace = grace

    def planned(self, volume, origin, schedule=None, timed_by=None):
        """The planned run a backup of ``origin`` starting now is for, or None (not a
        scheduled one, or a schedule not fired by the clock: ``on-unmount``).
        ``schedule``: the schedule it is made by (default the volume's ``Backup``), its runs
        timed by the name ``timed_by`` (default the volume's)."""
        if origin != SCHEDULE:
            return None
        return previous_run(schedule or volume.options.backup, self.clock(), timed_by or volume.name, self.tz)

    def check_turn(self, volume, planned, holder, what=None):
        """Raise NotOurTurn while the running VM ``holder`` (its name; "" for none other
        than this host's) has the volume and the planned run is less than ``grace`` old."""
        if planned is None or not holder:
            return
        retry_at = planned + self.grace
        if self.clock() < retry_at:
            raise NotOurTurn(
                f"{what or _backup_of(volume)} planned for {rfc3339(planned)} is made by the Docker "
                f"host of VM {holder}, which has the volume attached; this host makes it at {rfc3339(retry_at)} "
                "if none was made by then", retry_at)

    def check_not_made(self, volume, planned, made, what=None, noun="backup"):
        """Raise AlreadyMade when ``made`` ((id, origin, begun) of the volume's backups,
        read under its lease) holds a scheduled one begun at or after the planned run."""
        if planned is None:
            return
        found = [(made_id, begun) for made_id, origin, begun in made if origin == SCHEDULE and begun >= planned]
        if found:
            made_id, begun = found[-1]
            raise AlreadyMade(f"{what or _backup_of(volume)} planned for {rfc3339(planned)} was made already: "
                              f"{noun} {made_id} (begun {rfc3339(begun)})")


def _backup_of(volume):
    return f"the scheduled backup of volume {volume.name}"
