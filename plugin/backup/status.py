"""What ``docker volume inspect`` shows of each volume's backups, kept in memory.

``StatusBoard`` is the one place this state lives, every field read and written under
one lock: backups, restores and prunes write it from their threads while Docker's Get
and ``/Backup.Progress`` read it. It holds, per volume, how many backups it has (usable
and damaged), its last backup attempt, the backup it was restored from and why, what
its running backup or restore is doing, and which of its backups restores are reading
(retention spares those).

For operations (metrics, alerts, ``vsphere-volume status``) it also keeps, per volume
and backup target, an ``ops.state.VolumeBackup`` (``backup.health``): the newest
committed backup apart from the last attempt (which may have failed since), and the
last verification. On the local tier that is what the backups above made; on an
off-site target, what the off-site copies tell (``copy_schedules``, ``copied``,
``copy_attempted``, ``copies_counted``, ``target_verified``, and ``recalled`` for what
they recorded before a restart): one definition of a volume's backup health, whichever
target holds the backups. ``changes`` counts
every change of what it holds but progress, so readers can cache what they derive.
An ``observer`` is told every backup, restore and verification that ended
(``BackupEnded``; ``restore_ended``; ``verification_ended``), outside the lock; what it
raises is logged, never the backup's failure.
"""

import logging
import threading
from contextlib import contextmanager
from dataclasses import replace

from ..timefmt import rfc3339
from ..ops.state import FAILED, LOCAL, OK, VolumeBackup
from .health import BackupEnded, NoObserver, added_bytes, with_newest, with_success

log = logging.getLogger(__name__)


class StatusBoard:
    """The backup status of every volume (see the module docstring); ``clock``: aware now;
    ``observer``: told what ended (``NoObserver``'s methods; set it with ``observe``)."""

    def __init__(self, clock, observer=None):
        self.clock = clock
        self.observer = observer or NoObserver()
        self.changes = 0         # counts changes of everything but progress
        self._health = {}        # (volume, target) -> VolumeBackup (what the board knows of it)
        self._checks = {}        # off-site target -> its last verification, as VolumeBackup fields
        self._read = set()       # stores whose catalogs were read since start
        self._lock = threading.Lock()
        self._counts = {}        # volume -> number of committed, usable backups
        self._damaged = {}       # volume -> number of committed backups with a damaged manifest
        self._restored = {}      # volume -> the backup it was restored from, and why that one
        self._last = {}          # volume -> the last backup attempt, as Status shows it
        self._progress = {}      # volume -> what its running backup or restore is doing
        self._reading = {}       # (volume, backup id) -> how many restores are reading it

    def observe(self, observer):
        """Tell ``observer`` (see ``NoObserver``) what ends from now on."""
        self.observer = observer

    def _tell(self, what, *args):
        try:
            getattr(self.observer, what)(*args)
        except Exception:   # the backup's outcome stands; the observer's bug is logged
            log.exception("the backup status observer failed on %s", what)

    def _entry(self, name, target):
        """The health of ``name`` on ``target`` (lock held): a new one carries the target's
        last verification."""
        return self._health.get((name, target)) or VolumeBackup(name, target, **self._checks.get(target, {}))

    def _update(self, name, target, **fields):
        """Set ``fields`` of the health of ``name`` on ``target`` (lock held)."""
        self._health[(name, target)] = replace(self._entry(name, target), **fields)

    # --- what a volume has ----------------------------------------------------------------
    def counted(self, name, scan):
        """Record the usable and damaged backups that ``scan`` (one target's) found."""
        with self._lock:
            self._counts[name], self._damaged[name] = len(scan.backups), len(scan.damaged)
            self.changes += 1

    def found(self, name, scans, target=LOCAL):
        """Record what ``scans`` (of every target holding backups of ``name``) found at
        start; the newest usable backup is the last backup, unless one was made since."""
        backups = [m for scan in scans for m in scan.backups]
        newest = max(backups, key=lambda m: m.created) if backups else None
        with self._lock:
            self._counts[name] = len(backups)
            self._damaged[name] = sum(len(scan.damaged) for scan in scans)
            if newest is not None and name not in self._last:
                self._last[name] = dict(newest.summary(), Result="ok")
            if newest is not None:
                key = (name, target)
                self._health[key] = with_newest(self._health.get(key) or VolumeBackup(name, target), newest)
            self.changes += 1

    def committed(self, name, manifest, target=LOCAL):
        """A backup of ``name`` was committed (to ``target``): it is the last backup, and
        the newest."""
        with self._lock:
            self._last[name] = dict(manifest.summary(), Result="ok")
            key = (name, target)
            health = with_newest(self._health.get(key) or VolumeBackup(name, target), manifest)
            self._health[key] = replace(health, last_result=OK, last_error="")
            self.changes += 1
        seconds = max(0.0, (manifest.finished - manifest.started).total_seconds())
        self._tell("backup_ended", BackupEnded(name, target, manifest.origin, OK, seconds, added_bytes(manifest)))

    def attempted(self, name, started, origin, result, error, target=LOCAL):
        """A backup of ``name`` begun at ``started`` was not made: ``result`` (failed,
        skipped) and the error that says why."""
        with self._lock:
            self._last[name] = {"Time": rfc3339(started), "Origin": origin, "Result": result, "Error": str(error)}
            self._update(name, target, last_result=result, last_error=str(error))
            self.changes += 1
        seconds = max(0.0, (self.clock() - started).total_seconds())
        self._tell("backup_ended", BackupEnded(name, target, origin, result, seconds))

    def verified(self, name, target, when, ok, error=""):
        """A backup of ``name`` on ``target`` was verified at ``when``: ``ok``, or the
        ``error`` that says what is wrong with it."""
        with self._lock:
            self._update(name, target, verified_at=when, verification_ok=bool(ok),
                         verification_error="" if ok else str(error))
            self.changes += 1
        self._tell("verification_ended", name, target, OK if ok else FAILED)

    def volumes_verified(self, target, when, problems):
        """One verification of ``target`` checked the backups of each volume in
        ``problems`` ({volume: what is wrong, "" when nothing}) at ``when``: each volume's
        last verification there; told once, as one verification."""
        with self._lock:
            for name, problem in problems.items():
                self._update(name, target, verified_at=when, verification_ok=not problem,
                             verification_error=str(problem))
            self.changes += 1
        self._tell("verification_ended", None, target, FAILED if any(problems.values()) else OK)

    # --- copies on off-site targets --------------------------------------------------------
    def copy_schedules(self, name, schedules):
        """``name`` is copied to the targets of ``schedules`` ({target: (Schedule, the name
        its runs are timed by)}) by those schedules; to its other off-site targets, by none."""
        with self._lock:
            for volume, target in list(self._health):
                if volume == name and target != LOCAL and target not in schedules:
                    self._update(name, target, schedule="off", schedule_name="")
            for target, (schedule, timed_by) in schedules.items():
                self._update(name, target, schedule=schedule, schedule_name=timed_by)
            self.changes += 1

    def copied(self, name, target, origin, when, seconds, size=None, added=None, kept=None):
        """A copy of ``name`` (its data's point in time ``when``) was made on ``target`` in
        ``seconds``: ``size`` bytes, ``added`` to the target; ``kept``: the copies there now."""
        with self._lock:
            health = with_success(self._entry(name, target), when, seconds, size, added)
            health = replace(health, last_result=OK, last_error="", kept=health.kept if kept is None else kept)
            self._health[(name, target)] = health
            self.changes += 1
        self._tell("backup_ended", BackupEnded(name, target, origin, OK, seconds, added, health.schedule))

    def copy_attempted(self, name, target, started, origin, result, error):
        """A copy of ``name`` to ``target`` begun at ``started`` was not made: ``result``
        (failed, skipped) and the error that says why."""
        with self._lock:
            self._update(name, target, last_result=result, last_error=str(error))
            schedule = self._health[(name, target)].schedule
            self.changes += 1
        seconds = max(0.0, (self.clock() - started).total_seconds())
        self._tell("backup_ended", BackupEnded(name, target, origin, result, seconds, schedule=schedule))

    def copies_counted(self, name, target, kept, newest=None):
        """``target`` holds ``kept`` copies of ``name``, the newest of the point in time
        ``newest`` (None: not known); what is known of that newest copy is kept."""
        with self._lock:
            health = self._entry(name, target)
            if newest is not None:
                health = with_success(health, newest, None, None, None)
            self._health[(name, target)] = replace(health, kept=kept)
            self.changes += 1

    def recalled(self, name, target, **fields):
        """What was recorded of the copies of ``name`` on ``target`` before a restart
        (``VolumeBackup`` fields): the health it starts from, told to nobody."""
        with self._lock:
            self._update(name, target, **fields)
            self.changes += 1

    def target_verified(self, target, when, ok, error="", tell=True):
        """All of off-site ``target`` was verified at ``when``: ``ok``, or the ``error`` that
        says what is wrong; the last verification of every volume's health there.
        ``tell``: False for one recorded before a restart."""
        check = {"verified_at": when, "verification_ok": bool(ok), "verification_error": "" if ok else str(error)}
        with self._lock:
            self._checks[target] = check
            for volume, on in list(self._health):
                if on == target:
                    self._update(volume, target, **check)
            self.changes += 1
        if tell:
            self._tell("verification_ended", None, target, OK if ok else FAILED)

    def catalog_read(self, label):
        """The backups in store ``label`` were counted (at its first answer since start):
        what the board says of the volumes backed up there is known from now on."""
        with self._lock:
            self._read.add(label)
            self.changes += 1

    def catalogs_read(self):
        """The stores whose backups were counted since start."""
        with self._lock:
            return frozenset(self._read)

    def healths(self):
        """{volume: (VolumeBackup, ...) by target: what the board knows} and {volume:
        usable backups}, of every volume, read in one step (what a metrics scrape reads)."""
        found = {}
        with self._lock:
            for (volume, _), health in sorted(self._health.items()):
                found.setdefault(volume, []).append(health)
            counts = dict(self._counts)
        return {volume: tuple(healths) for volume, healths in found.items()}, counts

    def restored(self, name, volume, backup_id, why, keep_said=False):
        """Volume ``name`` was restored from backup ``backup_id`` of ``volume``, ``why``
        that one. ``keep_said``: keep what was said already of that same backup (a
        restore asked for by id, when the caller said why it chose that id)."""
        entry = {"Volume": volume, "Backup": backup_id, "Why": why}
        with self._lock:
            said = self._restored.get(name) or {}
            if not keep_said or (said.get("Volume"), said.get("Backup")) != (volume, backup_id):
                self._restored[name] = entry

    def removed(self, name):
        """Volume ``name`` is gone: it was restored from nothing (its backups stay counted)."""
        with self._lock:
            self._restored.pop(name, None)

    # --- what runs now ---------------------------------------------------------------------
    @contextmanager
    def reporting(self, name, what):
        """A ``progress(phase, percent=None)`` reporter for the engines while ``what``
        (backup, restore) of volume ``name`` runs; cleared when it ends. The end of a
        restore is told to the observer: ok, or failed when the block raised."""
        started = rfc3339(self.clock())

        def progress(phase, percent=None):
            shown = {"Operation": what, "Started": started, "Phase": phase}
            if percent is not None:
                shown["Percent"] = percent
            with self._lock:
                self._progress[name] = shown
        progress("starting")
        result = FAILED
        try:
            yield progress
            result = OK
        finally:
            with self._lock:
                self._progress.pop(name, None)
            if what == "restore":
                self._tell("restore_ended", name, result)

    @contextmanager
    def reading(self, volume, backup_id):
        """While inside, backup ``backup_id`` of ``volume`` counts as being read."""
        key = (volume, backup_id)
        with self._lock:
            self._reading[key] = self._reading.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._reading[key] -= 1
                if not self._reading[key]:
                    del self._reading[key]

    def reading_ids(self, name):
        """The ids of the backups of volume ``name`` that restores are reading now."""
        with self._lock:
            return {backup_id for (volume, backup_id) in self._reading if volume == name}

    def progress(self, name):
        """What the running backup or restore of ``name`` is doing; {} when none runs."""
        with self._lock:
            return dict(self._progress.get(name, {}))

    # --- what docker volume inspect shows --------------------------------------------------
    def shown(self, name):
        """Backups (and DamagedBackups), RestoredFrom, Progress, LastBackup and LastError,
        as ``Status.Backup`` shows them."""
        with self._lock:
            count, damaged = self._counts.get(name, 0), self._damaged.get(name, 0)
            progress, last, restored = self._progress.get(name), self._last.get(name), self._restored.get(name)
        shown = {"Backups": count}
        if damaged:
            shown["DamagedBackups"] = damaged       # listed, with the reasons, by vsphere-volume backups
        if restored:
            shown["RestoredFrom"] = dict(restored)
        if progress is not None:
            shown["Progress"] = dict(progress)
        if last:
            shown["LastBackup"] = dict(last)
            shown["LastError"] = last.get("Error", "")
        return shown
