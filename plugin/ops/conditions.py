"""What is wrong now: the conditions a notification is about, a pure function of the state.

A condition is active while the state shows it: a volume whose last backup attempt
failed (``backup-failed``), whose newest good backup is older than its schedule allows
(``backup-stale``, see ``ops.stale``), whose last verification failed
(``verification-failed``: of the volume's backups on the local tier, or of the whole
off-site target, which ``restic check`` verifies as one: then one condition for the
target, not one per volume copied there); a store that is unavailable
(``store-unavailable``). It ends
("recovers") when the state no longer shows it: the next backup succeeded, the store
answers again, the volume was removed.
"""

from dataclasses import dataclass

from ..errors import cut
from .state import FAILED, LOCAL
from ..timefmt import rfc3339

BACKUP_FAILED = "backup-failed"
BACKUP_STALE = "backup-stale"
VERIFICATION_FAILED = "verification-failed"
STORE_UNAVAILABLE = "store-unavailable"
CAUSES = (BACKUP_FAILED, BACKUP_STALE, VERIFICATION_FAILED, STORE_UNAVAILABLE)

ERROR_LIMIT = 500   # characters of an error text a notification carries


@dataclass(frozen=True)
class Condition:
    """``cause`` (one of CAUSES) of a ``volume`` (on ``target``), of a ``store``, or of an
    off-site ``target`` alone (its verification);
    ``error``: the text that says what is wrong (no secrets: the product's own messages)."""

    cause: str
    volume: str = None
    store: str = None
    target: str = None
    error: str = ""

    @property
    def key(self):
        """What deduplication is per: the subject and the cause, not the error's wording."""
        return (self.cause, self.volume, self.store, self.target)


def _stale(entry, deadline):
    """What a stale condition says: the newest backup (or copy, on an off-site target) and
    the policy that wanted a newer one."""
    what, policy = ("backup", f"Backup={entry.schedule.text}") if entry.target == LOCAL else \
        ("copy", f"BackupCopy={entry.target}@{entry.schedule.text}")
    newest = f"the newest {what} is from {rfc3339(entry.last_success)}" if entry.last_success \
        else f"no {what} since the policy was set ({rfc3339(entry.since)})"
    return f"{newest}; {policy} wanted a newer one by {rfc3339(deadline)}"


def current_conditions(state, now, deadlines):
    """Every active Condition of ``state`` (an ``OpsState``) at ``now``; ``deadlines`` is
    the ``ops.stale.DeadlineCache`` the metrics use too."""
    found, targets = [], {}
    for entry in state.volumes:
        about = {"volume": entry.volume, "target": entry.target}
        if entry.last_result == FAILED:
            found.append(Condition(BACKUP_FAILED, error=cut(entry.last_error, ERROR_LIMIT), **about))
        deadline = deadlines.deadline(entry)
        if deadline is not None and now > deadline:
            found.append(Condition(BACKUP_STALE, error=_stale(entry, deadline), **about))
        if entry.verification_ok is False:
            error = cut(entry.verification_error, ERROR_LIMIT)
            if entry.target == LOCAL:
                found.append(Condition(VERIFICATION_FAILED, error=error, **about))
            else:
                targets.setdefault(entry.target, Condition(VERIFICATION_FAILED, target=entry.target, error=error))
    found.extend(targets[label] for label in sorted(targets))
    for store in state.stores:
        if not store.available:
            found.append(Condition(STORE_UNAVAILABLE, store=store.store,
                                   error=cut(store.error or store.reason, ERROR_LIMIT)))
    return found
