"""The health of a volume's backups, for operations: what metrics, alerts and
``vsphere-volume status`` read of them, and what the ``StatusBoard`` tells its observer.

The board keeps, per volume and backup target, an ``ops.state.VolumeBackup`` with what
it knows: the newest committed backup kept apart from the last attempt (a backup may
have failed since the newest good one), and the last verification; the policy, its
start and the count of backups kept are the reader's to fill in. ``BackupEnded`` is a
backup that ended; ``backup_kind`` says what metrics call it; ``added_bytes`` what it
copied. The target of the backups in a volume store's catalog is ``ops.state.LOCAL``;
off-site targets are named by their own labels: there the health is of the volume's
copies, its schedule the copy's (``BackupCopy``), set by the off-site copies.
"""

from dataclasses import dataclass, replace

from ..policy.retention import FINAL, MANUAL, PRE_RESTORE, SCHEDULE
from ..policy.schedule import ON_UNMOUNT
from .manifest import DIRECT_CLONE, SNAPSHOT_CLONE, UNCHANGED

#: The kind of a backup, as metrics count it, by the origin its manifest records.
KINDS = {SCHEDULE: "scheduled", MANUAL: "manual", FINAL: "final", PRE_RESTORE: "pre-restore"}


def backup_kind(origin, schedule):
    """The kind of a backup of ``origin`` of a volume whose ``Backup`` policy is
    ``schedule`` (a ``Schedule``, or None for a removed volume): scheduled, manual,
    final, pre-restore, or on-unmount: the scheduler runs an ``on-unmount`` volume's
    backups only when its last container unmounted it, with the origin ``schedule``
    (retention treats them as scheduled ones)."""
    if origin == SCHEDULE and schedule is not None and schedule.kind == ON_UNMOUNT:
        return "on-unmount"
    return KINDS.get(origin, origin)


def added_bytes(manifest):
    """Bytes ``manifest``'s backup copied beyond its base: none for an unchanged disk or
    folder, the whole disk for a clone, what the folder copy did not hard-link; None
    when not known (a backup an older plugin wrote)."""
    if manifest.method == UNCHANGED:
        return 0
    if manifest.method in (SNAPSHOT_CLONE, DIRECT_CLONE):
        return manifest.size
    added = (manifest.extra or {}).get("added")
    return added if isinstance(added, int) else None


def with_newest(health, manifest):
    """``health`` with ``manifest``'s backup as its newest, unless it holds a newer one."""
    return with_success(health, manifest.created, max(0.0, (manifest.finished - manifest.started).total_seconds()),
                        manifest.size, added_bytes(manifest))


def with_success(health, when, seconds, size, added):
    """``health`` with a good backup (or copy) of the point in time ``when`` as its newest,
    unless it holds a newer one: ``seconds`` it took, the ``size`` and ``added`` bytes
    (None: not known)."""
    if health.last_success is not None and health.last_success > when:
        return health
    return replace(health, last_success=when, size=size, added=added, last_duration=seconds)


@dataclass(frozen=True)
class BackupEnded:
    """A backup of ``volume`` on ``target`` ended: ``origin`` (the manifest's), ``result``
    (ok, failed, skipped), ``seconds`` it took, ``added`` bytes it copied (None: unknown);
    ``schedule``: the schedule it was made by when not the volume's ``Backup`` (an
    off-site copy's), for ``backup_kind``."""

    volume: str
    target: str
    origin: str
    result: str
    seconds: float
    added: int = None
    schedule: object = None


class NoObserver:
    """What the board tells when nobody listens."""

    def backup_ended(self, event):
        pass

    def restore_ended(self, volume, result):
        pass

    def verification_ended(self, volume, target, result):
        pass
