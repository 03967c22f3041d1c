"""The work on backups: back a volume up, restore one, delete one, prune.

Each holds the backed-up volume's lease on the target the backups are in, so no other
host backs it up, prunes it or deletes from it meanwhile; each reports to the
``StatusBoard``. The engine copies: one per kind of store (``engines``: kind ->
BackupEngine); it takes the volume's lock itself when it must keep attach and remove
out. A scheduled backup of a volume other hosts know too is made once per planned run
(``turns.ScheduledTurns``). Restores in place run under the volume lock. Volume locks are re-entrant, so a
backup taken while the lock is held (final, pre-restore) works.
"""

import logging

from ..errors import BackupError, InUse, NotFound, VolumeError
from ..options import RESTORE_FROM, VOLUME_STORE, option_value, without
from ..policy.retention import PRE_RESTORE, SCHEDULE, parse_keep, referrers
from ..stores.base import docker_metadata
from .failures import storage_errors
from .lease import BACKING_UP, LeaseHeld
from .manifest import UNCHANGED, Manifest
from .turns import AlreadyMade, ScheduledTurns
from .volumes import existing

log = logging.getLogger(__name__)


def engine_for(engines, store):
    """The engine of ``engines`` that copies volumes of ``store``; raises BackupError."""
    engine = engines.get(store.spec.kind)
    if engine is None:
        raise BackupError(f"volumes of store {store.label} ({store.spec.kind}) cannot be backed up")
    return engine


class BackupOperations:
    """Backing up, restoring, deleting and pruning the backups of ``volumes``' volumes.

    stores: {label: VolumeStore}; engines: {kind: BackupEngine}; targets: BackupTargets;
    board: StatusBoard; clock: aware now; tz: the plugin's TZ (for retention's days).
    """

    def __init__(self, volumes, stores, engines, targets, board, clock, tz="UTC"):
        self.volumes = volumes
        self.stores = stores
        self.engines = engines
        self.targets = targets
        self.board = board
        self.clock = clock
        self.tz = tz
        self.turns = ScheduledTurns(clock, tz)

    # --- backing up ----------------------------------------------------------------------
    def backup(self, volume, origin, one_per_run=True):
        """Back ``volume`` up now; return the committed Manifest. Raises VolumeError.
        ``one_per_run``: a scheduled backup follows ``turns`` (False: the work it is part
        of did, an off-site copy's run)."""
        started = self.clock()
        try:
            with storage_errors(f"{origin} backup of volume {volume.name} failed"):
                manifest = self._copy(volume, origin, started, one_per_run)
        except LeaseHeld as err:
            # Another host is backing it up: its backup does the work; not a failure.
            self.board.attempted(volume.name, started, origin, "skipped", err)
            log.info("volume %s: %s backup skipped: %s", volume.name, origin, err)
            raise
        except VolumeError as err:
            self.board.attempted(volume.name, started, origin, "failed", err)
            log.error("volume %s: %s backup failed: %s", volume.name, origin, err)
            raise
        self.board.committed(volume.name, manifest)
        log.info("volume %s: %s backup %s committed (%s, %d bytes)", volume.name, origin,
                 manifest.backup_id, manifest.method, manifest.size)
        return manifest

    def holder(self, volume):
        """The running VM other than this host's that has ``volume``'s disk ("" for none)."""
        self.volumes.store(volume.store)          # it answers (or this says why not)
        store = self.stores[volume.store]
        return engine_for(self.engines, store).attached_elsewhere(volume, store)

    def _copy(self, volume, origin, started, one_per_run):
        self.volumes.store(volume.store)          # it answers (or this says why not)
        store = self.stores[volume.store]         # the store the engines copy from
        engine = engine_for(self.engines, store)
        planned = self.turns.planned(volume, origin) if one_per_run else None   # hosts sharing it: one per run
        if planned is not None:
            self.turns.check_turn(volume, planned, self.holder(volume))
        target = self.targets.get(volume.options.backup_store)
        repository = target.repository
        with target.hold(volume.name, BACKING_UP) as held, \
                self.board.reporting(volume.name, "backup") as progress:
            repository.cleanup_incomplete(volume=volume.name)
            backups = repository.list(volume.name)
            try:
                self.turns.check_not_made(volume, planned, [(m.backup_id, m.origin, m.started) for m in backups])
            except AlreadyMade:
                self.board.found(volume.name, [target.scan(volume.name)])    # another host's backup: the newest
                raise
            previous = backups[-1] if backups else None
            staging = repository.begin(volume.name, started)
            try:
                outcome = engine.backup(volume, store, staging, previous, self.volumes.lock, progress)
                manifest = Manifest(
                    volume=volume.name, backup_id=staging.backup_id, method=outcome.method, origin=origin,
                    created=outcome.created, started=started, finished=max(self.clock(), started),
                    store=volume.store, source=outcome.source, size=outcome.size, data=outcome.data,
                    base=previous.data_backup_id if outcome.method == UNCHANGED else "",
                    source_modified=outcome.source_modified,
                    metadata=docker_metadata(volume.name, volume.options.given),
                    options=volume.options.given, extra=outcome.extra)
                held.check()
                repository.commit(manifest)
            except BaseException:
                repository.abort(staging)
                try:
                    engine.cleanup_leftovers(store)
                except VolumeError as err:
                    log.error("volume %s: cleanup after the failed backup failed: %s", volume.name, err)
                raise
            if origin == SCHEDULE:
                deleted = repository.prune(volume.name, volume.options.keep, self.clock(), self.tz,
                                           self.board.reading_ids(volume.name))
                if deleted:
                    log.info("volume %s: retention deleted backups %s", volume.name, ", ".join(deleted))
        self.board.counted(volume.name, target.scan(volume.name))
        return manifest

    # --- restoring -----------------------------------------------------------------------
    def restore(self, found, volume):
        """Copy the Found backup into ``volume`` (its lock held by the caller). The
        backed-up volume's lease is held meanwhile, so no host prunes the backup being
        read (the board's ``reading`` covers this host). Status.Backup.RestoredFrom then
        says which backup it was and why."""
        target, manifest = found.target, found.manifest
        data = target.repository.data_manifest(manifest)
        store = self.stores[volume.store]
        with self.board.reading(data.volume, data.backup_id), \
                storage_errors(f"restore of volume {volume.name} from backup {manifest.backup_id} failed"), \
                target.hold(data.volume, _restoring(manifest, volume.name)), \
                self.board.reporting(volume.name, "restore") as progress:
            engine_for(self.engines, store).restore_replace(
                data, target.repository.location(data.volume, data.backup_id), store, volume.name, progress)
        # The caller may have said why already (a restore as a new volume asks for its backup by id).
        self.board.restored(volume.name, manifest.volume, manifest.backup_id, found.why, keep_said=True)
        log.info("volume %s restored from backup %s of %s (%s)", volume.name, manifest.backup_id, manifest.volume,
                 found.why)

    def restore_as_new(self, name, target, found):
        """Create volume ``target`` from the Found backup of volume ``name``, with the
        backed-up volume's options (its store, when that still exists)."""
        manifest = found.manifest
        given = without(manifest.options, RESTORE_FROM)
        if option_value(given, VOLUME_STORE) not in self.stores:
            given = without(given, VOLUME_STORE)       # that store is gone: the default it is
        given[RESTORE_FROM] = f"{name}@{manifest.backup_id}"
        self.volumes.create(target, given)
        # Status says why this backup, not "as asked" (the create asked for it by id).
        self.board.restored(target, name, manifest.backup_id, found.why)

    def restore_in_place(self, name, found, restore=None):
        """Replace volume ``name``'s data with the Found backup; return the Manifest of
        the safety backup of its current data, taken first. Refused while mounted.
        ``restore(found, volume)``: how (default ``restore``; a copy on a backup target
        is restored its own way)."""
        with self.volumes.lock(name):
            volume = existing(self.volumes, name)
            mounted = self.volumes.mount_count(name)
            if mounted:
                raise InUse(f"volume {name} is mounted {mounted} time(s): stop its containers "
                            "before restoring it in place")
            safety = self.backup(volume, PRE_RESTORE)
            (restore or self.restore)(found, volume)
        return safety

    # --- deleting ------------------------------------------------------------------------
    def delete(self, name, backup_id):
        """Delete one backup, usable or damaged (unless others record their data in it)."""
        located = self.targets.locate(name, backup_id)
        if located is None:
            raise NotFound(f"volume {name} has no backup {backup_id}")
        target = located[0]
        with target.hold(name, f"deleting its backup {backup_id}"):
            others = referrers([m.info() for m in target.repository.list(name)], backup_id)
            if others:
                raise BackupError(f"backup {backup_id} of volume {name} holds the data of "
                                  f"{', '.join(others)} (recorded as unchanged): delete those first")
            target.repository.delete(name, backup_id)
        self.board.counted(name, target.scan(name))

    def prune(self, name, keep=None):
        """Apply ``keep`` (default: the volume's BackupKeep, the default one for a removed
        volume) in every target holding its backups; return the ids deleted."""
        volume = self.volumes.find(name)
        keep = keep or (volume.options.keep if volume else parse_keep(None))
        deleted = []
        for target, _ in self.targets.catalogs(name):
            with target.hold(name, "pruning its backups"):
                deleted += target.repository.prune(name, keep, self.clock(), self.tz, self.board.reading_ids(name))
            self.board.counted(name, target.scan(name))
        return deleted


def _restoring(manifest, target):
    """The purpose of the lease a restore holds on the backed-up volume."""
    if manifest.volume == target:
        return f"restoring its backup {manifest.backup_id} into it"
    return f"restoring its backup {manifest.backup_id} into volume {target}"
