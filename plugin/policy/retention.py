"""The ``BackupKeep`` volume option: which backups retention keeps.

- ``N`` (a positive integer): the newest N backups.
- ``daily=7,weekly=4,monthly=12`` (any of hourly, daily, weekly, monthly, yearly): the
  newest backup in each of the last 7 days, 4 ISO weeks, 12 months; a backup kept by
  any rule is kept.

Default when absent: keep 7.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from ..errors import InvalidOption
from .ids import sort_key
from .schedule import zone

BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")
DEFAULT_KEEP = 7
MAX_KEEP = 10000
ACCEPTED = ("a count such as 7, or buckets such as daily=7,weekly=4,monthly=12 "
            f"(buckets: {', '.join(BUCKETS)})")


@dataclass(frozen=True)
class Retention:
    """A parsed ``BackupKeep`` value: ``last`` newest, or per-bucket counts."""

    text: str
    last: int = 0
    buckets: dict = field(default_factory=dict)


def parse_keep(value):
    """Parse a ``BackupKeep`` option value; raise InvalidOption saying what is accepted."""
    if value is None:
        return Retention(str(DEFAULT_KEEP), last=DEFAULT_KEEP)
    text = str(value).strip()
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= MAX_KEEP:
            raise InvalidOption(f"BackupKeep={value!r}: the count must be from 1 to {MAX_KEEP}")
        return Retention(str(count), last=count)
    buckets = {}
    for part in text.split(","):
        key, sep, count = part.strip().partition("=")
        key = key.strip().lower()
        if not sep or key not in BUCKETS or not count.strip().isdigit():
            raise InvalidOption(f"BackupKeep={value!r} is not valid: use {ACCEPTED}")
        if key in buckets:
            raise InvalidOption(f"BackupKeep={value!r} names {key} twice")
        number = int(count)
        if not 1 <= number <= MAX_KEEP:
            raise InvalidOption(f"BackupKeep={value!r}: each count must be from 1 to {MAX_KEEP}")
        buckets[key] = number
    canonical = ",".join(f"{k}={buckets[k]}" for k in BUCKETS if k in buckets)
    return Retention(canonical, buckets=buckets)


# --- which backups to keep, which to prune ------------------------------------------------
#
# Origins: why a backup was made. Only SCHEDULE backups are ever pruned by retention;
# the others are deleted only when a person asks for that one backup.
#
# - SCHEDULE:    made because of the volume's Backup policy: by the clock (hourly, daily,
#                cron, the one catch-up run after downtime) or, for ``Backup=on-unmount``,
#                when the last container unmounted the volume.
# - MANUAL:      ``vsphere-volume backup NAME`` or ``/Backup.Create``.
# - PRE_RESTORE: the safety backup taken before a restore in place overwrites a volume.
# - FINAL:       the backup taken before ``docker volume rm`` deletes a volume.

SCHEDULE, MANUAL, PRE_RESTORE, FINAL = "schedule", "manual", "pre-restore", "final"
ORIGINS = (SCHEDULE, MANUAL, PRE_RESTORE, FINAL)
PRUNABLE_ORIGINS = (SCHEDULE,)


class BackupInfo(NamedTuple):
    """What retention needs to know of one committed backup.

    ``created`` is an aware datetime; ``base`` is, for a backup recorded as unchanged,
    the id of the backup that holds its data ("" otherwise).
    """

    id: str
    created: datetime
    origin: str
    base: str = ""


def _infos(backups):
    return [b if isinstance(b, BackupInfo) else BackupInfo(*b) for b in backups]


def _newest_first(backups):
    # Ties on ``created`` fall back to the id so that the result never depends on input order.
    return sorted(backups, key=lambda b: (b.created, sort_key(b.id)), reverse=True)


def _bucket(name, when):
    if name == "hourly":
        return (when.year, when.month, when.day, when.hour)
    if name == "daily":
        return (when.year, when.month, when.day)
    if name == "weekly":
        return tuple(when.isocalendar())[:2]  # ISO year and week
    if name == "monthly":
        return (when.year, when.month)
    return (when.year,)


def select_to_keep(retention, backups, now, tz=None):
    """The ids of ``backups`` that ``retention`` keeps.

    ``backups``: BackupInfo items or ``(id, created, origin[, base])`` tuples; the policy
    applies to all of them as given (``prunable`` passes only the prunable ones).

    - ``last=N``: the newest N.
    - buckets: for each rule ``daily=7`` etc., the newest backup of each of the 7 most
      recent days *that have a backup*, as restic's ``--keep-daily`` (hours, days, ISO
      weeks, months and years of ``tz``). Not the last 7 calendar days: when backups
      stopped for a while, the history they left is kept rather than aged out by the
      calendar. A backup kept by any rule is kept.

    Backups created after ``now`` (a host whose clock ran ahead) are always kept.
    """
    tz = zone(tz)
    items = _newest_first(_infos(backups))
    keep = {b.id for b in items if b.created > now}
    if retention.last:
        keep.update(b.id for b in items[:retention.last])
    for name, count in retention.buckets.items():
        seen = []
        for backup in items:
            bucket = _bucket(name, backup.created.astimezone(tz))
            if seen and seen[-1] == bucket:
                continue  # an older backup of a bucket already represented
            if len(seen) == count:
                break
            seen.append(bucket)
            keep.add(backup.id)
    return keep


def prunable(retention, backups, now, tz=None, reading=()):
    """The ids retention may delete now, after the safety rules.

    A backup is pruned only when all of these hold:

    - its origin is in PRUNABLE_ORIGINS (SCHEDULE);
    - the policy, applied to the volume's SCHEDULE backups only, does not keep it (so
      manual, pre-restore and final backups never push scheduled ones out);
    - it is not the newest backup of the volume (of any origin);
    - it is not in ``reading`` (ids a restore is reading right now);
    - no backup that stays is recorded as unchanged with its data in this one (``base``).

    Returns a set of ids; the caller deletes them (and should re-list before it does
    when a restore may have started meanwhile).
    """
    items = _infos(backups)
    if not items:
        return set()
    scheduled = [b for b in items if b.origin in PRUNABLE_ORIGINS]
    keep = select_to_keep(retention, scheduled, now, tz)
    keep.add(_newest_first(items)[0].id)
    keep.update(reading)
    candidates = {b.id for b in scheduled} - keep
    # Bases of the backups that stay must stay too. A base is never itself recorded as
    # unchanged, so one pass is enough.
    kept_bases = {b.base for b in items if b.base and b.id not in candidates}
    return candidates - kept_bases


def referrers(backups, backup_id):
    """Ids of the backups recorded as unchanged whose data is in ``backup_id``.

    A backup with referrers cannot be deleted alone: delete them first (or with it).
    """
    return sorted((b.id for b in _infos(backups) if b.base == backup_id), key=sort_key)
