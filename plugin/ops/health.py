"""A volume's backup health as ``vsphere-volume status`` shows it: a pure function.

``backup_health(entry, now, deadline)`` says, of one ``ops.state.VolumeBackup`` (a
volume's backups on one target: the local tier's, or its copies on an off-site target),
in one word how its backups are (``State``) and what that rests on: the schedule they
are made by, the newest good backup and its age, the last attempt's result and error,
when it becomes stale. The words, in the order they win:

- ``failed``: the last attempt failed (the error says why);
- ``verification-failed``: the last verification of a backup failed;
- ``stale``: the newest good backup is older than the schedule allows (``ops.stale``);
- ``off``: no backup policy (backups made by hand are still shown);
- ``never``: a policy, but no good backup yet, and not stale yet;
- ``ok``: otherwise.
"""

from ..policy.schedule import OFF
from ..timefmt import rfc3339
from .state import FAILED

OK = "ok"
STATES = (FAILED, "verification-failed", "stale", OFF, "never", OK)


def backup_health(entry, now, deadline):
    """The health of ``entry`` at ``now``; ``deadline``: when it becomes stale (None: never)."""
    if entry.last_result == FAILED:
        state = FAILED
    elif entry.verification_ok is False:
        state = "verification-failed"
    elif deadline is not None and now > deadline:
        state = "stale"
    elif entry.schedule.kind == OFF:
        state = OFF
    elif entry.last_success is None:
        state = "never"
    else:
        state = OK
    age = (now - entry.last_success).total_seconds() if entry.last_success is not None else None
    return {
        "Target": entry.target,
        "Schedule": entry.schedule.text,
        "State": state,
        "LastSuccess": rfc3339(entry.last_success),
        "AgeSeconds": None if age is None else max(0, int(age)),
        "LastResult": entry.last_result or "",
        "LastError": entry.last_error if entry.last_result == FAILED else "",
        "StaleAt": rfc3339(deadline),
        "Backups": entry.kept,
        "Verification": _verification(entry),
    }


def _verification(entry):
    if entry.verification_ok is None:
        return ""
    if entry.verification_ok:
        return f"passed {rfc3339(entry.verified_at)}"
    return f"failed {rfc3339(entry.verified_at)}: {entry.verification_error}"
