"""Filling new volumes from backups (``RestoreFrom``), off Docker's request path.

A volume created RestoreFrom a backup is listed at once (Docker's Create waits for the
restore only as long as its budget allows); its restore runs as the volume's job. It is
marked (``restoremarks.RestoreMarks``) before it is created, so a crash mid-restore never
leaves it looking whole: after a restart it is shown incomplete until its store answers,
then the restore goes on by itself (``resume``); the same create again waits for it.

A restore into a volume created empty for it removes the volume when it fails (nothing of
the user's was there); a resumed restore that fails leaves the volume visibly incomplete,
with the reason.
"""

import logging

from .errors import cut
from .jobs import Job

log = logging.getLogger(__name__)


class Restorer:
    """``stores``: {label: VolumeStore}; ``registry``: VolumeRegistry; ``locks``: the
    driver's NameLocks; ``marks``: RestoreMarks or None; ``backups``: the backup seam
    (``restore_into``); ``schedule(volume)``: what a complete volume is told to; ``clock``."""

    def __init__(self, stores, registry, locks, marks, backups, schedule, clock):
        self.stores = stores
        self.registry = registry
        self.locks = locks
        self.marks = marks
        self.backups = backups
        self.schedule = schedule
        self.clock = clock

    def mark(self, name, source, label, started):
        if self.marks is not None:
            self.marks.mark(name, source, label, started)

    def unmark(self, name):
        if self.marks is not None:
            self.marks.clear(name)

    def start(self, volume, remove_on_failure):
        """Fill ``volume`` from its RestoreFrom backup in a job (started: it waits for the
        volume's lock); return the Job."""
        volume.incomplete = ""
        volume.job = volume.restore = Job(lambda: self._fill(volume, remove_on_failure),
                                          f"restore from {volume.options.restore_from}", self.clock)
        return volume.job.start()

    def resume(self, label):
        """Restores into new volumes of store ``label`` that a crash cut off go on."""
        for volume in self.registry.of_store(label):
            with self.locks.hold(volume.name):
                if volume.incomplete and volume.options.restore_from is not None:
                    log.info("volume %s: resuming its restore from %s, cut off when the plugin stopped",
                             volume.name, volume.options.restore_from)
                    self.start(volume, remove_on_failure=False)

    def _fill(self, volume, remove_on_failure):
        source = volume.options.restore_from
        with self.locks.hold(volume.name):
            try:
                self.backups.restore_into(volume, source)
            except BaseException as err:
                if remove_on_failure:
                    # The volume was created empty for this restore: nothing of the user's is lost.
                    self.stores[volume.store].remove(volume.name)
                    self.registry.drop(volume.name)
                    self.unmark(volume.name)
                else:
                    volume.incomplete = (f"its restore from {source} failed ({cut(err, 300)}): remove the volume "
                                         f"(docker volume rm {volume.name}) and restore it again")
                raise
            self.unmark(volume.name)
        self.schedule(volume)
