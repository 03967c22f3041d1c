"""The ``BackupCopy`` and ``BackupCopyKeep`` volume options: off-site copies of a volume.

- ``BackupCopy=TARGET@SCHEDULE[;TARGET@SCHEDULE...]``: copy the volume to the restic
  target labelled TARGET (declared in ``BACKUP_TARGETS``) on SCHEDULE, in the ``Backup``
  grammar (``hourly``, ``daily``, ``weekly``, ``monthly``, ``daily@HH:MM``,
  ``on-unmount``, or a 5-field cron expression), beside and independent of the local
  tier's ``Backup``. ``off`` is refused: leave the option out. The schedule is what
  follows the first ``@`` (``offsite@daily@02:30``); targets are separated by ``;``
  (cron expressions have commas and blanks of their own).
- ``BackupCopyKeep=KEEP`` (every copy) or ``TARGET:KEEP[;TARGET:KEEP...]``: the
  retention of the copies on a target, in the ``BackupKeep`` grammar (``7``, or
  ``daily=7,weekly=4,monthly=12``); restic's ``forget`` applies it. Default: the volume's
  ``BackupKeep`` (itself 7 by default).

``parse_copies`` validates both before anything happens and raises InvalidOption saying
what was wrong and what is accepted.
"""

from dataclasses import dataclass

from ..errors import InvalidOption, shown
from ..policy.retention import Retention, parse_keep
from ..policy.schedule import ACCEPTED as SCHEDULES
from ..policy.schedule import OFF, Schedule, parse_schedule

BACKUP_COPY, BACKUP_COPY_KEEP = "BackupCopy", "BackupCopyKeep"
COPY_ACCEPTED = ("TARGET@SCHEDULE, such as offsite@daily or offsite@daily@02:30, several "
                 "separated by ';'")
KEEP_ACCEPTED = ("a BackupKeep value for every copy (7, daily=7,weekly=4) or TARGET:KEEP "
                 "per target, separated by ';'")


@dataclass(frozen=True)
class CopyPolicy:
    """One off-site copy of a volume: where, when, how many kept."""

    target: str
    schedule: Schedule
    keep: Retention

    @property
    def text(self):
        return f"{self.target}@{self.schedule.text}"


def parse_copies(copy_value, keep_value, targets, default_keep=None):
    """Validate ``BackupCopy`` and ``BackupCopyKeep`` (either may be None: not given).

    ``targets``: a ``targetspec.Targets``; a copy must name one of its available restic
    targets (an unavailable one is refused with its reason, the local tier is refused).
    ``default_keep``: the volume's ``BackupKeep`` (a Retention), for copies without their
    own. Returns a tuple of CopyPolicy, in the order given (empty when no copy).
    """
    if copy_value is None:
        if keep_value is not None:
            raise InvalidOption(f"{BACKUP_COPY_KEEP}={shown(keep_value)} needs {BACKUP_COPY}: it "
                                "says how many off-site copies are kept, and none is asked for")
        return ()
    copies = _copies(str(copy_value), targets)
    keeps = _keeps(keep_value, [label for label, _ in copies],
                   default_keep if default_keep is not None else parse_keep(None))
    return tuple(CopyPolicy(label, schedule, keeps[label]) for label, schedule in copies)


def _copies(value, targets):
    copies = []
    items = [item.strip() for item in value.split(";")]
    if not any(items):
        raise InvalidOption(f"{BACKUP_COPY}={shown(value)} names no copy: use {COPY_ACCEPTED}")
    for item in items:
        label, sep, when = item.partition("@")
        label = label.strip()
        if not sep or not label or not when.strip():
            raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: {shown(item)} is not valid; use "
                                f"{COPY_ACCEPTED}")
        _check_target(value, label, targets)
        if label in (known for known, _ in copies):
            raise InvalidOption(f"{BACKUP_COPY}={shown(value)} names target {label} twice")
        try:
            schedule = parse_schedule(when)
        except InvalidOption:
            raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: {shown(when)} is not a schedule: "
                                f"use {SCHEDULES}") from None
        if schedule.kind == OFF:
            raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: a copy cannot be off; leave "
                                f"{BACKUP_COPY} out (or the target out of it) instead")
        copies.append((label, schedule))
    return copies


def _check_target(value, label, targets):
    target = targets.get(label)
    if target is not None and target.is_restic:
        return
    offsite = ", ".join(t.label for t in targets.available if t.is_restic) or "none configured"
    if target is not None:
        raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: {label} is the local tier, which "
                            f"Backup and BackupStore schedule; off-site targets: {offsite}")
    reason = targets.reason(label)
    if reason:
        raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: backup target {label} is unavailable: {reason}")
    raise InvalidOption(f"{BACKUP_COPY}={shown(value)}: no backup target is labelled {shown(label)} "
                        f"(off-site targets: {offsite})")


def _keep(option_value, text):
    try:
        return parse_keep(text)
    except InvalidOption as err:
        raise InvalidOption(f"{BACKUP_COPY_KEEP}={shown(option_value)}: "
                            f"{str(err).replace('BackupKeep=', 'keep ')}") from None


def _keeps(value, labels, default):
    keeps = dict.fromkeys(labels, default)
    if value is None:
        return keeps
    text = str(value).strip()
    if ":" not in text:
        return dict.fromkeys(labels, _keep(value, text))
    given = set()
    for item in (part.strip() for part in text.split(";")):
        label, sep, keep = item.partition(":")
        label = label.strip()
        if not sep or not label:
            raise InvalidOption(f"{BACKUP_COPY_KEEP}={shown(value)}: {shown(item)} is not valid; "
                                f"use {KEEP_ACCEPTED}")
        if label not in keeps:
            raise InvalidOption(f"{BACKUP_COPY_KEEP}={shown(value)}: {label} is not a target of "
                                f"{BACKUP_COPY} ({', '.join(labels)})")
        if label in given:
            raise InvalidOption(f"{BACKUP_COPY_KEEP}={shown(value)} names target {label} twice")
        given.add(label)
        keeps[label] = _keep(value, keep.strip())
    return keeps
