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
last verification. ``changes`` counts
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
from .health import BackupEnded, NoObserver, added_bytes, with_newest

log = logging.getLogger(__name__)


class StatusBoard:
    """The backup status of every volume (see the module docstring); ``clock``: aware now;
    ``observer``: told what ended (``NoObserver``'s methods; set it with ``observe``)."""

    def __init__(self, clock, observer=None):
        self.clock = clock
        self.observer = observer or NoObserver()
        self.changes = 0         # counts changes of everything but progress
        self._health = {}        # (volume, target) -> VolumeBackup (what the board knows of it)
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

    def _update(self, name, target, **fields):
        """Set ``fields`` of the health of ``name`` on ``target`` (lock held)."""
        key = (name, target)
        self._health[key] = replace(self._health.get(key) or VolumeBackup(name, target), **fields)

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
