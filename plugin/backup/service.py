"""The backup service: every backup, restore and prune goes through here.

It joins the pieces: the driver's volumes and locks, one engine per kind of store
(``engine``), one catalog (``repository``) and one set of leases (``lease``) per backup
store, retention, and the scheduler. It serves two callers:

- the driver, through hooks: a volume was added or removed, is about to be removed
  (final backup), was unmounted for the last time (``Backup=on-unmount``), is being
  created ``RestoreFrom`` a backup;
- the ``/Backup.*`` endpoints and the ``vsphere-volume`` command: back up now, list,
  restore (as a new volume, or in place with ``force``), delete, prune.

Locking: a backup holds the volume's lease on its backup store (so no other host backs
it up or prunes it meanwhile); the engine takes the driver's volume lock itself when it
must keep attach and remove out. Restores run under the volume lock. Volume locks are
re-entrant, so a backup taken while the driver holds the lock (final, pre-restore)
works.

Nothing here runs on Docker's request path except the final backup of ``docker volume
rm`` (the volume must not go before its data is safe) and the restore of ``RestoreFrom``.
"""

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta
from typing import NamedTuple

from ..errors import BackupError, InUse, InvalidOption, NotFound, VolumeError
from ..jobs import CallBudgets, Job
from ..options import CAPACITY, RESTORE_FROM, VOLUME_STORE, canonical_keys, validate_name
from ..policy import ids
from ..policy.retention import FINAL, MANUAL, PRE_RESTORE, SCHEDULE, parse_keep, referrers
from ..policy.schedule import OFF, ON_UNMOUNT
from ..stores.base import docker_metadata
from ..timefmt import rfc3339, utc_now
from .failures import storage_errors
from .lease import BACKING_UP, LeaseHeld
from .manifest import UNCHANGED, Manifest
from .scheduler import BackupScheduler

log = logging.getLogger(__name__)

# An incomplete backup older than this is dead, whichever host started it.
_DAY = timedelta(days=1)


class BackupService:
    """Backups of the driver's volumes.

    stores: {label: VolumeStore}; engines: list of BackupEngine (one per kind of store);
    repositories / leases: {label: BackupRepository / Leases} for every store that can
    hold backups; state_store: where the scheduler keeps its plan; clock: aware now.
    Call ``bind(driver)`` before use.
    """

    def __init__(self, stores, engines, repositories, leases, state_store=None, clock=utc_now,
                 tz="UTC", concurrency=2, executor=None, scheduler_thread=True):
        self.stores = stores
        self.engines = {kind: engine for engine in engines for kind in engine.kinds}
        self.repositories = repositories
        self.leases = leases
        self.clock = clock
        self.tz = tz
        self.scheduler = BackupScheduler(clock, self._scheduled_backup, concurrency, state_store, tz,
                                         executor=executor)
        self.scheduler_thread = scheduler_thread  # False: tests call scheduler.tick() themselves
        self.driver = None
        # One lock for the shared state below: backups, restores and prunes write it from
        # their threads while Docker's Get and /Backup.Progress read it.
        self._guard = threading.Lock()
        self._counts = {}        # volume -> number of committed, usable backups
        self._damaged = {}       # volume -> number of committed backups with a damaged manifest
        self._restored = {}      # volume -> the backup it was restored from, and why that one
        self._last = {}          # volume -> the last backup attempt, as Status shows it
        self._reading = {}       # (volume, backup id) -> how many restores are reading it
        self._final = {}         # volume -> the Job of its final backup, while a remove waits
        self._unmounted = {}     # volume -> when it was last unmounted by its last container
        self.final_wait = CallBudgets().other
        self._progress = {}      # volume -> what its running backup or restore is doing

    def bind(self, driver):
        self.driver = driver

    # --- where things are ----------------------------------------------------------------
    def _engine(self, store):
        engine = self.engines.get(store.spec.kind)
        if engine is None:
            raise BackupError(f"volumes of store {store.label} ({store.spec.kind}) cannot be backed up")
        return engine

    def _repository(self, label):
        repository = self.repositories.get(label)
        if repository is None:
            raise BackupError(f"volume store {label} cannot hold backups now (it is unavailable)")
        return repository

    def _catalogs(self, volume_name):
        """[(label, repository, Scan)] of the stores that hold backups of ``volume_name``,
        usable or damaged. A live volume's own backup store comes first; removed volumes
        are searched in all."""
        order = list(self.repositories)
        volume = self.driver.find(volume_name)
        if volume is not None and volume.options.backup_store in order:
            order.remove(volume.options.backup_store)
            order.insert(0, volume.options.backup_store)
        found = ((label, self.repositories[label], self.repositories[label].scan(volume_name)) for label in order)
        return [(label, repository, scan) for label, repository, scan in found if scan]

    def _find(self, volume_name, ref):
        """The Found backup ``ref`` (an id or ``latest``) of a volume, to restore from.

        A damaged backup is never restored: asked for by id, it is refused with its
        reason; ``latest`` is the newest usable backup, and ``why`` names the damaged
        ones that are newer (and their reasons)."""
        catalogs = self._catalogs(volume_name)
        if not catalogs:
            raise NotFound(f"volume {volume_name} has no backups")
        if ref == "latest":
            return _latest(volume_name, catalogs)
        for label, repository, scan in catalogs:
            manifest = scan.usable(ref)
            if manifest is not None:
                return Found(label, repository, manifest, f"backup {ref}, as asked")
            damaged = scan.broken(ref)
            if damaged is not None:
                raise BackupError(f"backup {ref} of volume {volume_name} is {damaged.state}: {damaged.reason}; "
                                  f"it cannot be restored (vsphere-volume delete {volume_name} {ref} deletes it)")
        raise NotFound(f"volume {volume_name} has no backup {ref} "
                       f"(see: vsphere-volume backups {volume_name})")

    # --- driver hooks -----------------------------------------------------------------------
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

    def volume_added(self, volume):
        self.scheduler.set(volume.name, volume.options.backup)

    def volume_removed(self, volume):
        self.scheduler.remove(volume.name)
        self._set(self._restored, volume.name, None)

    def before_remove(self, volume, wait=None):
        """A volume with a backup policy is removed only once its final backup committed.

        The final backup runs as a Job; this waits for it at most ``wait`` seconds
        (default ``final_wait``: Docker's Remove must answer) and otherwise refuses with a message to run the
        remove again. A later remove uses the same job, unless the volume was mounted and
        unmounted since it started (its data may have changed): then it starts another.
        """
        if volume.options.backup.kind == OFF:
            return
        name = volume.name
        with self._guard:
            job = self._final.get(name)
            if job is None or (job.done and job.error) or job.started < self._unmounted.get(name, job.started):
                job = self._final[name] = Job(lambda earlier=job: self._final_backup(volume, earlier),
                                              f"final backup of {name}", self.clock).start()
        if not job.wait(self.final_wait if wait is None else min(wait, self.final_wait)):
            raise BackupError(
                f"volume {name} was not removed yet: its final backup is still running (started "
                f"{rfc3339(job.started)}); run docker volume rm {name} again once "
                f"'vsphere-volume backups {name}' lists it")
        with self._guard:
            self._final.pop(name, None)
        if job.error is not None:
            raise BackupError(f"volume {name} was not removed: its final backup failed: {job.error}")

    def _final_backup(self, volume, earlier):
        if earlier is not None:
            earlier.wait(None)  # it holds the lease until it ends; its data is out of date anyway
        return self.backup(volume, FINAL)

    def last_unmount(self, volume):
        with self._guard:
            self._unmounted[volume.name] = self.clock()
        if volume.options.backup.kind == ON_UNMOUNT:
            self.scheduler.request(volume.name)

    def check_restorable(self, ref):
        self._find(ref.volume, ref.backup)

    def restore_defaults(self, ref, given):
        """``given`` completed with the backed-up volume's Capacity and store, when absent."""
        manifest = self._find(ref.volume, ref.backup).manifest
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
        """Fill the new, empty ``volume`` from backup ``ref`` (driver holds its lock)."""
        self._restore(self._find(ref.volume, ref.backup), volume)

    def _restore(self, found, volume):
        """Copy the Found backup into ``volume``. The backed-up volume's lease is held
        meanwhile, so no host prunes the backup being read (``_reading`` covers this host).
        Status.Backup.RestoredFrom then says which backup it was and why."""
        label, repository, manifest = found.label, found.repository, found.manifest
        data = repository.data_manifest(manifest)
        store = self.stores[volume.store]
        key = (data.volume, data.backup_id)
        with self._guard:
            self._reading[key] = self._reading.get(key, 0) + 1
        try:
            with storage_errors(f"restore of volume {volume.name} from backup {manifest.backup_id} failed"), \
                    self.leases[label].hold(data.volume, _restoring(manifest, volume.name)), \
                    self._reporting(volume.name, "restore") as progress:
                self._engine(store).restore_replace(
                    data, repository.location(data.volume, data.backup_id), store, volume.name, progress)
        finally:
            with self._guard:
                self._reading[key] -= 1
                if not self._reading[key]:
                    del self._reading[key]
        with self._guard:
            # api_restore may have said why already (it asks for the backup it chose by id).
            said = self._restored.get(volume.name) or {}
            if (said.get("Volume"), said.get("Backup")) != (manifest.volume, manifest.backup_id):
                self._restored[volume.name] = {"Volume": manifest.volume, "Backup": manifest.backup_id,
                                               "Why": found.why}
        log.info("volume %s restored from backup %s of %s (%s)", volume.name, manifest.backup_id, manifest.volume,
                 found.why)

    def _reading_ids(self, volume_name):
        with self._guard:
            return {backup_id for (name, backup_id) in self._reading if name == volume_name}

    def status(self, name):
        """Backup status for ``docker volume inspect``: memory only."""
        # The scheduler knows its own runs only; the last backup of any origin is ours.
        scheduled = self.scheduler.status(name)
        shown = {key: scheduled[key] for key in ("Policy", "NextRun", "Running", "ScheduleError") if key in scheduled}
        with self._guard:
            count, damaged = self._counts.get(name, 0), self._damaged.get(name, 0)
            progress, last, restored = self._progress.get(name), self._last.get(name), self._restored.get(name)
        shown["Backups"] = count
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

    # --- start ---------------------------------------------------------------------------
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
            if label in self.repositories:
                # Another host may be copying right now: only what is a day old is dead.
                self.repositories[label].cleanup_incomplete(before=now.replace(microsecond=0) - _DAY)
        except VolumeError as err:
            log.error("volume store %s: could not clean up after an interrupted backup: %s", label, err)
        if label in self.leases:
            try:
                self.leases[label].break_left_by_this_host()   # our previous process died holding them
            except VolumeError as err:
                log.error("volume store %s: could not release this host's old backup leases: %s", label, err)
        for volume in self.driver.volumes():
            if volume.store == label or volume.options.backup_store == label:
                self._refresh(volume.name)

    def started(self):
        """After the stores were first tried: start the scheduler."""
        self.scheduler.forget_others()
        if self.scheduler_thread:
            self.scheduler.start()

    def stop(self):
        if self.scheduler_thread:
            self.scheduler.stop()

    def _refresh(self, name):
        try:
            scans = [scan for _, _, scan in self._catalogs(name)]
        except VolumeError as err:
            log.warning("volume %s: cannot count its backups: %s", name, err)
            return
        backups = [m for scan in scans for m in scan.backups]
        newest = max(backups, key=lambda m: m.created) if backups else None
        with self._guard:
            self._counts[name] = len(backups)
            self._damaged[name] = sum(len(scan.damaged) for scan in scans)
            if newest is not None and name not in self._last:
                self._last[name] = dict(newest.summary(), Result="ok")

    # --- backing up ----------------------------------------------------------------------
    def _scheduled_backup(self, name):
        volume = self.driver.find(name)
        if volume is None:
            return None
        return self.backup(volume, SCHEDULE).backup_id

    def backup(self, volume, origin):
        """Back ``volume`` up now; return the committed Manifest. Raises VolumeError."""
        started = self.clock()
        try:
            with storage_errors(f"{origin} backup of volume {volume.name} failed"):
                manifest = self._backup(volume, origin, started)
        except LeaseHeld as err:
            # Another host is backing it up: its backup does the work; not a failure.
            self._set(self._last, volume.name, {"Time": rfc3339(started), "Origin": origin, "Result": "skipped",
                                                "Error": str(err)})
            log.info("volume %s: %s backup skipped: %s", volume.name, origin, err)
            raise
        except VolumeError as err:
            self._set(self._last, volume.name, {"Time": rfc3339(started), "Origin": origin, "Result": "failed",
                                                "Error": str(err)})
            log.error("volume %s: %s backup failed: %s", volume.name, origin, err)
            raise
        self._set(self._last, volume.name, dict(manifest.summary(), Result="ok"))
        log.info("volume %s: %s backup %s committed (%s, %d bytes)", volume.name, origin,
                 manifest.backup_id, manifest.method, manifest.size)
        return manifest

    def _backup(self, volume, origin, started):
        store = self.driver.store(volume.store)
        engine = self._engine(store)
        label = volume.options.backup_store
        repository = self._repository(label)
        with self.leases[label].hold(volume.name, BACKING_UP) as held, \
                self._reporting(volume.name, "backup") as progress:
            repository.cleanup_incomplete(volume=volume.name)
            previous = repository.latest(volume.name)
            staging = repository.begin(volume.name, started)
            try:
                outcome = engine.backup(volume, store, staging, previous, self.driver.lock, progress)
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
                                           self._reading_ids(volume.name))
                if deleted:
                    log.info("volume %s: retention deleted backups %s", volume.name, ", ".join(deleted))
        self._count(volume.name, repository.scan(volume.name))
        return manifest

    def _count(self, name, scan):
        """Record how many usable and damaged backups ``scan`` (one repository's) found."""
        with self._guard:
            self._counts[name], self._damaged[name] = len(scan.backups), len(scan.damaged)

    def _set(self, table, name, value):
        """``table[name] = value`` for the shared tables (None: delete), under the guard."""
        with self._guard:
            if value is None:
                table.pop(name, None)
            else:
                table[name] = value

    @contextmanager
    def _reporting(self, name, what):
        """A ``progress(phase, percent=None)`` reporter for the engines while ``what`` runs."""
        started = rfc3339(self.clock())

        def progress(phase, percent=None):
            shown = {"Operation": what, "Started": started, "Phase": phase}
            if percent is not None:
                shown["Percent"] = percent
            self._set(self._progress, name, shown)
        progress("starting")
        try:
            yield progress
        finally:
            self._set(self._progress, name, None)

    # --- the /Backup.* API ---------------------------------------------------------------------
    def api_progress(self, name):
        """What the running backup or restore of ``name`` is doing; {} when none runs."""
        validate_name(name)
        with self._guard:
            return dict(self._progress.get(name, {}))

    # Every /Backup.* call checks the names it was given before it looks anything up.

    def api_create(self, name):
        return self.backup(self.driver.lookup(validate_name(name)), MANUAL).summary()

    def api_list(self, name):
        """Every backup of ``name``, oldest first: the usable ones (State ok) and the
        damaged ones (State damaged or unreadable, with the Problem)."""
        validate_name(name)
        scans = [scan for _, _, scan in self._catalogs(name)]
        if not scans and self.driver.find(name) is None:
            raise NotFound(f"no volume named {name} and no backups of one")
        usable = [(m.backup_id, dict(m.summary(), State="ok")) for scan in scans for m in scan.backups]
        damaged = [(d.backup_id, d.summary()) for scan in scans for d in scan.damaged]
        # By id: the time each began (a damaged one has no other time left).
        return [shown for _, shown in sorted(usable + damaged, key=lambda entry: ids.sort_key(entry[0]))]

    def api_restore(self, name, backup="latest", target="", force=False):
        """Restore backup ``backup`` of volume ``name``.

        As a new volume when ``target`` is another name (it gets the backed-up volume's
        options); in place when ``target`` is empty or ``name``: that needs ``force``,
        is refused while the volume is mounted, and first backs up the current data.
        """
        validate_name(name)
        if target:
            validate_name(target)
        if backup != "latest":
            ids.check_id(backup)
        found = self._find(name, backup)
        manifest = found.manifest
        target = target or name
        if target != name or self.driver.find(name) is None:
            given = {k: v for k, v in manifest.options.items() if k.lower() != RESTORE_FROM.lower()}
            given = {k: v for k, v in given.items() if k.lower() != VOLUME_STORE.lower()
                     or v in self.stores}
            given[RESTORE_FROM] = f"{name}@{manifest.backup_id}"
            self.driver.create(target, given)
            # Status says why this backup, not "as asked" (the create asked for it by id).
            self._set(self._restored, target, {"Volume": name, "Backup": manifest.backup_id, "Why": found.why})
            return {"Volume": target, "Backup": manifest.backup_id, "Why": found.why}
        if not force:
            raise InUse(f"restoring volume {name} in place replaces its data: add --force "
                        "(a backup of the current data is taken first), or restore --as a new volume")
        with self.driver.lock(name):
            volume = self.driver.lookup(name)
            mounted = self.driver.mounts.count(name)
            if mounted:
                raise InUse(f"volume {name} is mounted {mounted} time(s): stop its containers "
                            "before restoring it in place")
            safety = self.backup(volume, PRE_RESTORE)
            self._restore(found, volume)
        return {"Volume": name, "Backup": manifest.backup_id, "Why": found.why, "SafetyBackup": safety.backup_id}

    def api_delete(self, name, backup_id):
        """Delete one backup, usable or damaged (unless others record their data in it)."""
        validate_name(name)
        ids.check_id(backup_id)
        label, repository = self._owner_of(name, backup_id)
        with self.leases[label].hold(name, f"deleting its backup {backup_id}"):
            others = referrers([m.info() for m in repository.list(name)], backup_id)
            if others:
                raise BackupError(f"backup {backup_id} of volume {name} holds the data of "
                                  f"{', '.join(others)} (recorded as unchanged): delete those first")
            repository.delete(name, backup_id)
        self._count(name, repository.scan(name))

    def _owner_of(self, name, backup_id):
        for label, repository, scan in self._catalogs(name):
            if scan.usable(backup_id) or scan.broken(backup_id):
                return label, repository
        raise NotFound(f"volume {name} has no backup {backup_id}")

    def api_prune(self, name):
        validate_name(name)
        volume = self.driver.find(name)
        keep = volume.options.keep if volume else parse_keep(None)
        deleted = []
        for label, repository, _ in self._catalogs(name):
            with self.leases[label].hold(name, "pruning its backups"):
                deleted += repository.prune(name, keep, self.clock(), self.tz, self._reading_ids(name))
            self._count(name, repository.scan(name))
        return deleted


class Found(NamedTuple):
    """A backup chosen to restore from: where it is, its manifest, and why this one."""

    label: str
    repository: object
    manifest: object
    why: str


def _latest(volume_name, catalogs):
    """The Found newest usable backup in ``catalogs`` (see ``BackupService._find``)."""
    usable = [(label, repository, m) for label, repository, scan in catalogs for m in scan.backups]
    damaged = sorted((d for _, _, scan in catalogs for d in scan.damaged), key=lambda d: ids.sort_key(d.backup_id))
    if not usable:
        raise BackupError(f"volume {volume_name} has no usable backup: {_reasons(damaged)}")
    label, repository, manifest = max(usable, key=lambda found: found[2].created)
    newer = [d for d in damaged if ids.sort_key(d.backup_id) > ids.sort_key(manifest.backup_id)]
    if newer:
        return Found(label, repository, manifest, f"latest usable backup {manifest.backup_id}; {_reasons(newer)}")
    return Found(label, repository, manifest, f"latest backup {manifest.backup_id}")


def _reasons(damaged):
    return "; ".join(f"{d.backup_id} is {d.state}: {d.reason}" for d in damaged)


def _restoring(manifest, target):
    """The purpose of the lease a restore holds on the backed-up volume."""
    if manifest.volume == target:
        return f"restoring its backup {manifest.backup_id} into it"
    return f"restoring its backup {manifest.backup_id} into volume {target}"

