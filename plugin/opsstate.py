"""The driver's state as operations read it: an ``ops.state.OpsState``, from memory only.

``DriverSnapshot(driver)`` is the state callable ``ops.runtime.Ops`` takes: the metrics
call it at every scrape, the watcher at every look. It reads what the driver and its
backup service hold (the registry's volumes and their policies, the status board's
backup health and counts, the scheduler's queue, the store health, the mount table)
and never a store or vCenter. The state is built again only when one of those changed
(their change counters, the store errors, the queue), and is otherwise the same object,
so a scrape of 1,000 unchanged volumes costs a comparison of a few numbers.

What a volume's state says is known only once the catalog of its backup store was read
since start (``StatusBoard.catalogs_read``: the store answered and its backups were
counted): until then it has no series, so that a plugin just started never reports a
volume with backups as never backed up. A store being opened (just after start) has no
``store_up`` series yet; one that failed has its short reason (``ops.state.reason_of``
of the exception that said so).

A volume that never had a good backup counts as stale from its creation (``CreatedAt``),
or, when that is not known, from the start of this process. Its last attempt is the
board's; before any attempt since start, the scheduler's last run (persisted across
restarts).

Each volume has one entry per backup target: the local tier's (``LOCAL``, its ``Backup``
policy and the backups counted in its catalogs), then one per off-site target the board
knows for it (its copies there, by the schedule of its ``BackupCopy``, the copies kept
there, the target's last verification). Those are known from the start: the off-site
copies recorded them before the restart (``offsite.board``).
"""

import threading
from dataclasses import replace
from datetime import datetime

from .ops.state import LOCAL, OpsState, StoreStatus, VolumeBackup, reason_of
from .storehealth import OPENING
from .timefmt import utc_now


def _time(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


class DriverSnapshot:
    """``snapshot()`` is the ``OpsState`` of ``driver`` (a ``driver.VolumeDriver``) now;
    see the module docstring. ``clock``: aware now (the start time is taken from it)."""

    def __init__(self, driver, clock=utc_now):
        self.driver = driver
        self.started = clock()
        self._built = (None, None)      # (what it was built from, the OpsState)
        self._lock = threading.Lock()

    def __call__(self):
        driver = self.driver
        board, scheduler = self._backups()
        queued, running = scheduler.load() if scheduler is not None else (0, 0)
        errors = dict(driver.health.errors)
        key = (driver.registry.changes, board.changes if board is not None else None,
               driver.mounts.table.changes, tuple(sorted(errors.items())), queued, running)
        with self._lock:
            built_from, state = self._built
        if built_from == key:
            return state
        state = OpsState(self._volumes(board, scheduler), self._stores(errors), queued, running,
                         len(driver.mounts.table.names()))
        with self._lock:
            self._built = (key, state)
        return state

    def _backups(self):
        """The status board and scheduler of the driver's backup service (None, None without one)."""
        service = self.driver.backups
        return getattr(service, "board", None), getattr(service, "scheduler", None)

    def _volumes(self, board, scheduler):
        if board is None:
            return ()
        healths, kept = board.healths()
        read = board.catalogs_read()
        last_runs = scheduler.last_runs() if scheduler is not None else {}
        entries = []
        for volume in sorted(self.driver.registry.all(), key=lambda v: v.name):
            since = _time(volume.created_at) or self.started
            by_target = {health.target: health for health in healths.get(volume.name, ())}
            local = by_target.pop(LOCAL, None) or VolumeBackup(volume.name, LOCAL)
            if volume.options.backup_store in read:
                result, error = local.last_result, local.last_error
                if result is None:
                    result, error = last_runs.get(volume.name, (None, ""))
                entries.append(replace(local, schedule=volume.options.backup, since=since, last_result=result,
                                       last_error=error, kept=kept.get(volume.name, 0)))
            entries += [replace(health, since=since) for _, health in sorted(by_target.items())]
        return tuple(entries)

    def _stores(self, errors):
        causes = dict(self.driver.health.causes)
        stores = []
        for label in self.driver.stores:
            error = errors.get(label)
            if error is None:
                stores.append(StoreStatus(label))
            elif error != OPENING or label in causes:
                stores.append(StoreStatus(label, False, reason_of(causes.get(label)) or "error", error))
        return tuple(stores)
