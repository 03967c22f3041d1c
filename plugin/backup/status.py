"""What ``docker volume inspect`` shows of each volume's backups, kept in memory.

``StatusBoard`` is the one place this state lives, every field read and written under
one lock: backups, restores and prunes write it from their threads while Docker's Get
and ``/Backup.Progress`` read it. It holds, per volume, how many backups it has (usable
and damaged), its last backup attempt, the backup it was restored from and why, what
its running backup or restore is doing, and which of its backups restores are reading
(retention spares those).
"""

import threading
from contextlib import contextmanager

from ..timefmt import rfc3339


class StatusBoard:
    """The backup status of every volume (see the module docstring); ``clock``: aware now."""

    def __init__(self, clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._counts = {}        # volume -> number of committed, usable backups
        self._damaged = {}       # volume -> number of committed backups with a damaged manifest
        self._restored = {}      # volume -> the backup it was restored from, and why that one
        self._last = {}          # volume -> the last backup attempt, as Status shows it
        self._progress = {}      # volume -> what its running backup or restore is doing
        self._reading = {}       # (volume, backup id) -> how many restores are reading it

    # --- what a volume has ----------------------------------------------------------------
    def counted(self, name, scan):
        """Record the usable and damaged backups that ``scan`` (one target's) found."""
        with self._lock:
            self._counts[name], self._damaged[name] = len(scan.backups), len(scan.damaged)

    def found(self, name, scans):
        """Record what ``scans`` (of every target holding backups of ``name``) found at
        start; the newest usable backup is the last backup, unless one was made since."""
        backups = [m for scan in scans for m in scan.backups]
        newest = max(backups, key=lambda m: m.created) if backups else None
        with self._lock:
            self._counts[name] = len(backups)
            self._damaged[name] = sum(len(scan.damaged) for scan in scans)
            if newest is not None and name not in self._last:
                self._last[name] = dict(newest.summary(), Result="ok")

    def committed(self, name, manifest):
        """A backup of ``name`` was committed: it is the last backup."""
        with self._lock:
            self._last[name] = dict(manifest.summary(), Result="ok")

    def attempted(self, name, started, origin, result, error):
        """A backup of ``name`` begun at ``started`` was not made: ``result`` (failed,
        skipped) and the error that says why."""
        with self._lock:
            self._last[name] = {"Time": rfc3339(started), "Origin": origin, "Result": result, "Error": str(error)}

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
        (backup, restore) of volume ``name`` runs; cleared when it ends."""
        started = rfc3339(self.clock())

        def progress(phase, percent=None):
            shown = {"Operation": what, "Started": started, "Phase": phase}
            if percent is not None:
                shown["Percent"] = percent
            with self._lock:
                self._progress[name] = shown
        progress("starting")
        try:
            yield progress
        finally:
            with self._lock:
                self._progress.pop(name, None)

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
