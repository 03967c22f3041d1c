"""Operations wired into the plugin: metrics, notifications and status over the driver.

``Monitoring.start(driver, settings, session)`` starts ``ops.runtime.Ops`` over the
driver's state (``opsstate.DriverSnapshot``) as the METRICS_* and NOTIFY_* settings ask,
and routes what happens to its metrics:

- the backup status board's observer (``backup_ended``, ``restore_ended``,
  ``verification_ended``): backups (and off-site copies) by target, kind and result, with
  duration and bytes; restores and verifications by result. Each one ended makes the
  notification watcher look at the state at once. The counters of every off-site target
  are there from the start;
- ``plugin_call``, the protocol's observer: plugin calls by endpoint and result, with
  their latency;
- the vSphere session's observer (``Metrics`` itself): round trips by method, faults by
  type, re-logins.

A setting that is bad, or anything else that keeps a part of operations from starting,
never stops the plugin: that part is off, and the reason is in the log and in
``describe()`` (``vsphere-volume status``, under ``Operations``). ``describe()`` is the
driver's ``/Plugin.Status`` with every volume's backup health added (``ops.health``).
"""

import logging

from .backup.health import backup_kind
from .ops.health import backup_health
from .ops.runtime import Ops
from .ops.settings import OpsSettings, ops_settings_from_env
from .ops.state import LOCAL
from .opsstate import DriverSnapshot
from .timefmt import utc_now

log = logging.getLogger(__name__)

NOT_KNOWN = "not known yet: its backup store has not answered since the plugin started"


class Monitoring:
    """``driver``: the VolumeDriver; ``ops``: the running ``Ops``; ``snapshot``: its state
    callable; ``clock``: aware now. Made by ``start``."""

    def __init__(self, driver, ops, snapshot, clock=utc_now):
        self.driver = driver
        self.ops = ops
        self.snapshot = snapshot
        self.clock = clock

    @classmethod
    def start(cls, driver, settings, session=None, clock=utc_now, **ops_args):
        """Start operations for ``driver`` as ``settings`` (the plugin's) ask, observing its
        backup board, and ``session`` (the vSphere session, or None); never raises for
        what operations cannot do. ``ops_args`` go to ``Ops`` (tests: host, senders, ...)."""
        snapshot = DriverSnapshot(driver, clock)
        ops = _started_ops(ops_settings_from_env(settings.env), snapshot, settings.tz, clock, ops_args)
        monitoring = cls(driver, ops, snapshot, clock)
        board = getattr(driver.backups, "board", None)
        if board is not None:
            board.observe(monitoring)
            for label in driver.backups.copies.offsite:
                ops.metrics.declare_target(label)
        if session is not None:
            session.observe(ops.metrics)
        return monitoring

    @property
    def metrics(self):
        return self.ops.metrics

    def stop(self):
        self.ops.stop()

    # --- what the backup status board tells -------------------------------------------------
    def backup_ended(self, event):
        schedule = event.schedule
        if schedule is None:
            volume = self.driver.find(event.volume)
            schedule = volume.options.backup if volume is not None else None
        kind = backup_kind(event.origin, schedule)
        self.metrics.backup_finished(event.target, kind, event.result, event.seconds, event.added)

    def restore_ended(self, volume, result):
        self.metrics.restore_finished(result)

    def verification_ended(self, volume, target, result):
        self.metrics.verification_finished(target, result)

    # --- what the protocol tells ----------------------------------------------------------------
    def plugin_call(self, endpoint, result, seconds):
        self.metrics.plugin_call(endpoint, result, seconds)

    # --- vsphere-volume status ------------------------------------------------------------------
    def describe(self):
        """The driver's status, with each volume's backup ``Health`` (one entry per target:
        the local tier's first, ``unknown`` while its backup store has not answered) and
        ``Operations``: where metrics go, how many notification destinations, and
        which settings are off and why."""
        status = self.driver.describe()
        now = self.clock()
        found = {}
        for entry in self.snapshot().volumes:
            found.setdefault(entry.volume, []).append(entry)
        for volume in status["Volumes"]:
            name, entries = volume["Name"], found.get(volume["Name"], [])
            volume["Health"] = [dict(backup_health(entry, now, self.ops.deadlines.deadline(entry)),
                                     NextRun=self._next_run(name, entry.target)) for entry in entries]
            if not any(entry.target == LOCAL for entry in entries):
                volume["Health"].insert(0, {"Target": LOCAL, "State": "unknown", "NextRun": self._next_run(name, LOCAL),
                                            "LastError": NOT_KNOWN})
        status["Operations"] = self.described()
        return status

    def _next_run(self, name, target):
        """The next scheduled backup of volume ``name`` on ``target`` (a copy off-site)."""
        service = self.driver.backups
        if target == LOCAL:
            scheduler = getattr(service, "scheduler", None)
            return scheduler.status(name).get("NextRun") if scheduler is not None else None
        return service.copies.next_run(name, target)

    def described(self):
        ops = self.ops
        return {
            "Metrics": ops.server.url if ops.server is not None else "",
            "Textfile": ops.textfile.path if ops.textfile is not None else "",
            "Notifications": len(ops.delivery.destinations) if ops.delivery is not None else 0,
            "Errors": dict(sorted(ops.errors.items())),
        }


def _started_ops(settings, snapshot, tz, clock, ops_args):
    """``Ops`` started as ``settings`` ask; if that fails in a way ``Ops`` does not handle
    itself, the metrics alone (served nowhere), with the reason in ``errors``."""
    ops = None
    try:
        ops = Ops(settings, state=snapshot, tz=tz, clock=clock, **ops_args)
        return ops.start()
    except Exception as err:   # operations must never stop the plugin: logged, and in the status
        log.exception("operations (metrics, notifications) could not start")
        if ops is not None:
            ops.stop()
        reason = f"operations could not start: {type(err).__name__}: {err}; metrics and notifications are off"
        return Ops(OpsSettings(errors={"operations": reason}), state=snapshot, tz=tz, clock=clock)
