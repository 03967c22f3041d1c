"""Start-up housekeeping: what a volume store needs when it first answers after a start.

A plugin that was killed may have left, on a store, a backup half copied (an engine's
leftovers, a backup folder without its manifest) and leases its process held. When the
store answers for the first time since start, ``StartupCleanup.store_opened`` cleans the
leftovers, deletes the incomplete backups that are a day old (another host may be
copying a younger one right now), breaks the leases this host left, and counts the
backups of the volumes there for their Status.
"""

import logging
from datetime import timedelta

from ..errors import VolumeError

log = logging.getLogger(__name__)

# An incomplete backup older than this is dead, whichever host started it.
_DAY = timedelta(days=1)


class StartupCleanup:
    """stores: {label: VolumeStore}; engines: {kind: BackupEngine}; targets:
    BackupTargets; volumes: volumes.Volumes; board: StatusBoard; clock: aware now."""

    def __init__(self, stores, engines, targets, volumes, board, clock):
        self.stores = stores
        self.engines = engines
        self.targets = targets
        self.volumes = volumes
        self.board = board
        self.clock = clock

    def store_opened(self, label):
        """Store ``label`` answered for the first time since start: clean what an
        interrupted backup left there, break the leases this host's previous process
        left, and count the backups of its volumes."""
        store = self.stores[label]
        now = self.clock()
        try:
            engine = self.engines.get(store.spec.kind)
            if engine is not None:
                engine.cleanup_leftovers(store)
            if label in self.targets:
                # Another host may be copying right now: only what is a day old is dead.
                self.targets.get(label).repository.cleanup_incomplete(before=now.replace(microsecond=0) - _DAY)
        except VolumeError as err:
            log.error("volume store %s: could not clean up after an interrupted backup: %s", label, err)
        if label in self.targets:
            try:
                self.targets.get(label).leases.break_left_by_this_host()   # our previous process died holding them
            except VolumeError as err:
                log.error("volume store %s: could not release this host's old backup leases: %s", label, err)
        for volume in self.volumes.all():
            if volume.store == label or volume.options.backup_store == label:
                self.recount(volume.name)
        self.board.catalog_read(label)

    def recount(self, name):
        """Count the backups of volume ``name`` in every target, for its Status."""
        try:
            scans = [scan for _, scan in self.targets.catalogs(name)]
        except VolumeError as err:
            log.warning("volume %s: cannot count its backups: %s", name, err)
            return
        self.board.found(name, scans)
