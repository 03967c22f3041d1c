"""What the product tells operations about itself: plain data, read from memory.

The product passes a callable returning an ``OpsState``; the metrics collector calls it
at every scrape and the watcher at every check. It must answer from the plugin's own
state (the backup service's status, the driver's store errors and mount table, the
scheduler's queue) and never call vCenter or a store: a scrape of 1,000 volumes costs
what building these objects costs.

Times are aware datetimes (UTC or not); sizes are bytes. Every field a product does not
know yet (no backup so far, no verification ever) is None and its series is left out.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import (
    ConfigError,
    FileNotFoundOnDatastore,
    MountError,
    NoDiskSpace,
    VSphereAuthError,
    VSphereTLSError,
    VSphereUnavailable,
)
from ..policy.schedule import Schedule, parse_schedule

LOCAL = "local"   # the backup target of today's tier: the volume's own backup store

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
RESULTS = (OK, FAILED, SKIPPED)


@dataclass(frozen=True)
class VolumeBackup:
    """One volume's backup status on one target.

    - ``schedule``: when its backups are made there (a ``Schedule`` or its text): the
      volume's ``Backup`` policy on the local tier, its ``BackupCopy`` schedule on an
      off-site target; ``schedule_name``: the name that schedule's runs are timed by (its
      offset in each period), when not the volume's (``timed_by``);
    - ``since``: when the volume got that policy (its creation): a volume that never had
      a successful backup is stale counted from then; None: never stale until it has one;
    - ``last_success``, ``last_duration`` (seconds), ``size`` and ``added`` (bytes the
      backup holds, and bytes it copied beyond its base): the newest committed backup;
    - ``last_result`` / ``last_error``: the last attempt (``ok``, ``failed``, ``skipped``:
      another host held the lease and did the work, not a failure);
    - ``kept``: committed backups in the catalog;
    - ``verified_at`` / ``verification_ok`` / ``verification_error``: the last
      verification of a backup (None while there has been none).
    """

    volume: str
    target: str = LOCAL
    schedule: object = "off"
    schedule_name: str = ""
    since: datetime = None
    last_success: datetime = None
    last_duration: float = None
    size: int = None
    added: int = None
    last_result: str = None
    last_error: str = ""
    kept: int = 0
    verified_at: datetime = None
    verification_ok: bool = None
    verification_error: str = ""

    def __post_init__(self):
        if self.last_result is not None and self.last_result not in RESULTS:
            raise ValueError(f"last_result {self.last_result!r} is not one of {', '.join(RESULTS)}")
        if not isinstance(self.schedule, Schedule):
            object.__setattr__(self, "schedule", parse_schedule(str(self.schedule)))

    @property
    def timed_by(self):
        """The name the schedule's runs are timed by: ``schedule_name``, else the volume's."""
        return self.schedule_name or self.volume


@dataclass(frozen=True)
class StoreStatus:
    """A volume store: ``available``, and when not, a short ``reason`` (a label value, see
    ``reason_of``) and the full ``error`` text (for notifications)."""

    store: str
    available: bool = True
    reason: str = ""
    error: str = ""


@dataclass(frozen=True)
class OpsState:
    """Everything a scrape or a check reads. ``queued``: backups due and waiting for a
    worker; ``running``: backups running now; ``mounted``: volumes mounted on this host."""

    volumes: tuple = ()
    stores: tuple = ()
    queued: int = 0
    running: int = 0
    mounted: int = 0


# --- a short reason for a label value ---------------------------------------------------------

_REASONS = (
    (VSphereTLSError, "tls"),
    (VSphereAuthError, "auth"),
    (VSphereUnavailable, "unreachable"),
    (NoDiskSpace, "no-space"),
    (FileNotFoundOnDatastore, "not-found"),
    (MountError, "mount"),
    (ConfigError, "config"),
)
REASON_LIMIT = 32


def reason_of(error):
    """A short label value for why a store is unavailable.

    An exception maps by its class (``tls``, ``auth``, ``unreachable``, ``no-space``,
    ``not-found``, ``mount``, ``config``; ``error`` otherwise); a string is slugged and
    cut to REASON_LIMIT characters, so label values stay few and short (a full message
    in a label would make a new series for every wording). "" for no error.
    """
    if error is None or error == "":
        return ""
    if isinstance(error, BaseException):
        for kind, reason in _REASONS:
            if isinstance(error, kind):
                return reason
        return "error"
    slug = re.sub(r"[^a-z0-9]+", "-", str(error).lower()).strip("-")
    return slug[:REASON_LIMIT].rstrip("-") or "error"
