"""The backup service: what the driver asks of backups, and the parts that do it.

``BackupService`` is the one object the driver holds (``driver.backups``). It answers the
driver's hooks: a volume's policy is checked before it is created, a volume was added or
removed, is about to be removed (its final backup), was unmounted for the last time
(``Backup=on-unmount``), is being created ``RestoreFrom`` a backup; a store answered for
the first time since start; ``docker volume inspect`` wants its backup status. It needs
of the driver only ``volumes.Volumes`` (``bind``).

The work is done by its parts, each with one job:

- ``targets.BackupTargets``: where backups are kept, and which target holds which;
- ``operations.BackupOperations``: backing up, restoring, deleting, pruning;
- ``status.StatusBoard``: the backup status of every volume, in memory, under one lock;
- ``final.FinalBackups``: the final backup a remove waits for;
- ``housekeeping.StartupCleanup``: what a store needs when it first answers;
- ``scheduler.BackupScheduler``: running each volume's backups at its times;
- ``api.BackupApi``: the ``/Backup.*`` calls (``api``; the service answers them too);
- ``copies``: the off-site copies (``copyhooks``: what it is asked, and when), which
  also answer a ``RestoreFrom`` and the calls that name a backup target.

Nothing here runs on Docker's request path except the final backup of ``docker volume
rm`` (the volume must not go before its data is safe) and the restore of ``RestoreFrom``.
"""

from ..errors import BackendError, InvalidOption, InvalidRequest
from ..options import CAPACITY, VOLUME_STORE, canonical_keys
from ..policy.retention import SCHEDULE
from ..policy.schedule import OFF, ON_UNMOUNT
from ..timefmt import utc_now
from .api import BackupApi
from .copyhooks import NoCopies
from .final import DEFAULT_WAIT, FinalBackups
from .housekeeping import StartupCleanup
from .operations import BackupOperations
from .scheduler import BackupScheduler
from .status import StatusBoard
from .targets import BackupTarget, BackupTargets


class BackupService:
    """Backups of the driver's volumes.

    stores: {label: VolumeStore}; engines: list of BackupEngine (one per kind of store);
    repositories / leases: {label: BackupRepository / Leases} for every store that can
    hold backups (the same labels); state_store: where the scheduler keeps its plan;
    clock: aware now; final_wait: the most seconds a remove waits for a final backup;
    copies: the off-site copies (``copyhooks``; default none). Call ``bind(volumes)`` before use.
    """

    def __init__(self, stores, engines, repositories, leases, state_store=None, clock=utc_now,
                 tz="UTC", concurrency=2, executor=None, scheduler_thread=True, final_wait=DEFAULT_WAIT,
                 copies=None):
        self.stores = stores
        self.engines = {kind: engine for engine in engines for kind in engine.kinds}
        self._targets = {label: BackupTarget(label, repository, leases[label])
                         for label, repository in repositories.items()}
        self.clock = clock
        self.tz = tz
        self.board = StatusBoard(clock)
        self.scheduler = BackupScheduler(clock, self._scheduled_backup, concurrency, state_store, tz,
                                         executor=executor)
        self.scheduler_thread = scheduler_thread  # False: tests call scheduler.tick() themselves
        self.final_wait = final_wait
        self.copies = copies or NoCopies()
        # The parts that need the driver's volumes are made by bind().
        self.volumes = self.targets = self.operations = self.final = self.housekeeping = self.api = None

    def bind(self, volumes):
        """Serve the volumes of ``volumes`` (a ``volumes.Volumes``: the driver's)."""
        self.volumes = volumes
        self.targets = BackupTargets(self._targets, volumes)
        self.operations = BackupOperations(volumes, self.stores, self.engines, self.targets, self.board,
                                           self.clock, self.tz)
        self.final = FinalBackups(self.operations.backup, self.clock, self.final_wait)
        self.housekeeping = StartupCleanup(self.stores, self.engines, self.targets, volumes, self.board, self.clock)
        self.api = BackupApi(self.operations, self.targets, volumes, self.board)
        self.copies.bind(volumes, self)

    # --- creating and restoring volumes ----------------------------------------------------
    def check_policy(self, options):
        """Refuse a backup policy this plugin cannot carry out for these options: no
        engine for the volume's kind of store, or a BackupStore of another family."""
        store, target = self.stores[options.store], self.stores[options.backup_store]
        engine = self.engines.get(store.spec.kind)
        if engine is None:
            if options.backup.kind != OFF:
                raise InvalidOption(f"Backup={options.backup.text!r}: volumes of store {store.label} "
                                    f"({store.spec.kind}) cannot be backed up by this plugin now")
            return
        if self.engines.get(target.spec.kind) is not engine:
            raise InvalidOption(
                f"BackupStore={options.backup_store!r} is a {target.spec.kind} store: backups of "
                f"{store.spec.kind} volumes go to a store of the same family ({', '.join(sorted(engine.kinds))})")
        self.copies.check_policy(options)

    def check_restorable(self, ref):
        ref = self.copies.resolve(ref)
        if ref.target:
            self.copies.find(ref)
            return
        self.targets.find(ref.volume, ref.backup)

    def restore_defaults(self, ref, given):
        """``given`` completed with the backed-up volume's Capacity and store, when absent."""
        ref = self.copies.resolve(ref)
        if ref.target:
            return self.copies.restore_defaults(ref, given)
        manifest = self.targets.find(ref.volume, ref.backup).manifest
        keys = canonical_keys(given)
        completed = dict(given)
        recorded = {canonical: manifest.options[key]
                    for canonical, key in canonical_keys(manifest.options).items()}
        for option in (CAPACITY, VOLUME_STORE):
            if option in keys or option not in recorded:
                continue
            if option == VOLUME_STORE and recorded[option] not in self.stores:
                continue  # that store is gone: the default store it is
            completed[option] = recorded[option]
        return completed

    def restore_into(self, volume, ref):
        """Fill the new, empty ``volume`` from backup ``ref`` (the driver holds its lock)."""
        ref = self.copies.resolve(ref)
        if ref.target:
            self.copies.restore_into(volume, ref)
            return
        self.operations.restore(self.targets.find(ref.volume, ref.backup), volume)

    # --- volumes come and go ---------------------------------------------------------------
    def volume_added(self, volume):
        self.scheduler.set(volume.name, volume.options.backup)
        self.copies.volume_added(volume)

    def before_remove(self, volume, wait=None):
        """Return once ``volume``'s final backup committed, waiting at most ``wait``
        seconds (see ``FinalBackups``); raises BackupError otherwise."""
        self.final.before_remove(volume, wait)

    def volume_removed(self, volume):
        self.scheduler.remove(volume.name)
        self.board.removed(volume.name)
        self.copies.volume_removed(volume)

    def last_unmount(self, volume):
        self.final.unmounted(volume.name)
        if volume.options.backup.kind == ON_UNMOUNT:
            self.scheduler.request(volume.name)
        self.copies.last_unmount(volume)

    def _scheduled_backup(self, name):
        volume = self.volumes.find(name)
        if volume is None:
            return None
        return self.operations.backup(volume, SCHEDULE).backup_id

    # --- start and stop --------------------------------------------------------------------
    def store_opened(self, label):
        """Store ``label`` answered for the first time since start (``StartupCleanup``)."""
        self.housekeeping.store_opened(label)
        self.copies.store_opened(label)

    def started(self):
        """After the stores were first tried: start the scheduler."""
        self.scheduler.forget_others()
        if self.scheduler_thread:
            self.scheduler.start()
        self.copies.started()

    def stop(self):
        self.copies.stop()      # first: it runs on the scheduler's executor
        if self.scheduler_thread:
            self.scheduler.stop()

    # --- what docker volume inspect shows --------------------------------------------------
    def status(self, name):
        """Backup status for ``docker volume inspect``: memory only."""
        # The scheduler knows its own runs only; the last backup of any origin is the board's.
        scheduled = self.scheduler.status(name)
        shown = {key: scheduled[key] for key in ("Policy", "NextRun", "Running", "ScheduleError") if key in scheduled}
        return {**shown, **self.board.shown(name), **self.copies.status(name)}

    # --- the /Backup.* calls (BackupApi's; protocol.create_app is given this service) ------
    def api_create(self, name):
        return self.api.api_create(name)

    def api_list(self, name, backup_target=""):
        if backup_target:
            return self._copy_api().api_list(name, backup_target)
        return self.api.api_list(name)

    def api_restore(self, name, backup="latest", target="", force=False, backup_target="", path=""):
        if backup_target:
            return self._copy_api().api_restore(name, backup, target, force, backup_target, path)
        if path:
            raise InvalidRequest("restoring one path of a backup needs the backup target it is on (--target offsite)")
        return self.api.api_restore(name, backup, target, force)

    def api_delete(self, name, backup_id):
        return self.api.api_delete(name, backup_id)

    def api_prune(self, name):
        return self.api.api_prune(name)

    def api_progress(self, name):
        shown = self.api.api_progress(name)
        copies = self.copies.api.api_progress(name) if self.copies.api else {}
        return {**shown, "Copies": copies} if copies else shown

    # --- the calls that name a backup target (the off-site copies') ------------------------
    def api_targets(self):
        return self._copy_api().api_targets()

    def api_copy(self, name, backup_target=""):
        return self._copy_api().api_copy(name, backup_target)

    def api_verify(self, backup_target, read=""):
        return self._copy_api().api_verify(backup_target, read)

    def _copy_api(self):
        if self.copies.api is None:
            raise BackendError("this plugin build has no backup targets")
        return self.copies.api
