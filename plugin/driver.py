"""The volume driver: what Docker's volume calls mean, independent of HTTP and storage.

The protocol layer (``plugin.protocol``) calls these methods; stores
(``plugin.stores``) do the storage work. Here live the semantics users rely on:

- Create validates every name and option before any side effect, is idempotent for
  the same name and options, and refuses the same name with other options.
- Mount and Unmount are counted per caller ID; the first Mount attaches the volume and
  bind-mounts it at ``<mount root>/<name>``, the last Unmount undoes both. The counts
  survive restarts (``MountTable``) and are reconciled at start with what is mounted.
- Remove is refused while any mount is active.
- Get, List and Path answer from memory: they never wait for a store or vCenter.
- Calls for one name are serialized by a per-name lock; different names run in parallel.
"""

import datetime
import logging
import os
import threading
from dataclasses import dataclass

from .errors import BackendError, Conflict, InUse, InvalidOption, NotFound, VolumeError
from .jobs import DOCKER_CALL_BUDGET, Job
from .locks import NameLocks
from .options import VOLUME_STORE, parse_options, validate_name
from .stores.base import docker_metadata

log = logging.getLogger(__name__)

READY_WAIT = 10.0  # seconds a call waits for start-up discovery before answering anyway


@dataclass
class Volume:
    """A volume the plugin knows: where it lives and its validated options."""

    name: str
    store: str
    options: object      # options.VolumeOptions
    created_at: str = ""
    problem: str = ""    # why its recorded options could not be used, if so
    job: object = None       # jobs.Job of its last slow step: restore (RestoreFrom), attach, detach
    restore: object = None   # the Job that filled it from a backup (RestoreFrom), for Status
    unclaimed_attach: bool = False   # an attach outlived its Mount call; nobody mounted it since


class NoBackups:
    """The backup seam when no backup service is wired: every hook does nothing."""

    def check_policy(self, options):
        pass

    def started(self):
        pass

    def stop(self):
        pass

    def volume_added(self, volume):
        pass

    def before_remove(self, volume):
        pass

    def volume_removed(self, volume):
        pass

    def last_unmount(self, volume):
        pass

    def check_restorable(self, ref):
        raise BackendError("restoring from a backup is not available in this plugin build")

    def restore_defaults(self, ref, given):
        self.check_restorable(ref)

    def restore_into(self, volume, ref):
        self.check_restorable(ref)

    def status(self, name):
        return {}


class VolumeDriver:
    """Docker's volume operations over a set of stores.

    stores: {label: VolumeStore}; mounts: MountTable; mounter: mounts.Mounter;
    mount_root: the plugin's propagated mount; backups: the backup seam (NoBackups).
    """

    def __init__(self, stores, mounts, mounter, mount_root, default_store="default",
                 backups=None, clock=None):
        self.stores = stores
        self.default_store = default_store
        self.mounts = mounts
        self.mounter = mounter
        self.mount_root = mount_root
        self.backups = backups or NoBackups()
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._locks = NameLocks()
        self._volumes = {}              # name -> Volume; written only by _register/_unregister
        self._changes = 0               # counts registry writes: List's cache key with mounts.changes
        self._listed = (None, [])       # (cache key, the List reply)
        self._registry_lock = threading.Lock()
        self.store_errors = {}          # label -> why the store is unavailable
        self.ready = threading.Event()

    # --- start-up ------------------------------------------------------------------------
    def start(self):
        """Open every store, discover its volumes, reconcile mounts. Sets ``ready``."""
        try:
            self.mounts.load()
            for label, store in self.stores.items():
                try:
                    store.open()
                    found = store.discover()
                except VolumeError as err:
                    self.store_errors[label] = str(err)
                    log.error("volume store %s is unavailable: %s", label, err)
                    continue
                for stored in found:
                    self._register_discovered(store, stored)
                log.info("volume store %s (%s): %d volume(s)", label, store.spec.spec, len(found))
            self._reconcile_mounts()
        finally:
            self.ready.set()
        self.backups.started()

    def stop(self):
        """Stop background work (the backup scheduler)."""
        self.backups.stop()

    def _register_discovered(self, store, stored):
        if stored.name in self._volumes:
            log.warning("volume %s exists in stores %s and %s; using the one in %s",
                        stored.name, self._volumes[stored.name].store, store.label,
                        self._volumes[stored.name].store)
            return
        given = dict((stored.metadata or {}).get("DriverOpts") or {})
        problem = stored.problem
        try:
            options = self._options_found_in(store.label, given)
        except InvalidOption as err:
            problem = problem or f"recorded options not usable ({err}); using defaults"
            options = parse_options({}, self.stores, default_store=store.label)
        volume = Volume(stored.name, store.label, options, stored.created_at, problem)
        self._register(volume)
        self.backups.volume_added(volume)

    def sync_store(self, label, names, lookup):
        """Follow a store whose volumes also change outside this plugin (a VCH's): after
        its background refresh, register the volumes it lists that are not known yet and
        forget its volumes it no longer lists (kept while mounted here, until unmounted).

        ``names``: every name the store lists now; ``lookup(name)`` -> StoredVolume or
        None is asked again under the name's lock, so that a create or remove of this
        plugin that ran meanwhile wins. Ignored until start-up discovery is done and for
        an unavailable store: the next refresh brings the changes.
        """
        if not self.ready.is_set() or label in self.store_errors:
            return
        store = self.stores[label]
        listed = set(names)
        mine = {v.name for v in self.volumes() if v.store == label}
        for name in sorted((listed - set(self._volumes)) | (mine - listed)):
            with self._locks.hold(name):
                stored, volume = lookup(name), self._volumes.get(name)
                if stored is not None and volume is None:
                    self._register_discovered(store, stored)
                    log.info("volume %s appeared in volume store %s", name, label)
                elif stored is None and volume is not None and volume.store == label \
                        and not self.mounts.count(name):
                    self._unregister(name)
                    self.backups.volume_removed(volume)
                    log.info("volume %s is gone from volume store %s", name, label)

    def _options_found_in(self, label, given):
        # The store the volume was found in is where it lives, whatever was recorded.
        given = {k: v for k, v in given.items() if k.lower() != VOLUME_STORE.lower()}
        options = parse_options(given, self.stores, default_store=label)
        return options

    def _reconcile_mounts(self):
        for name in self.mounts.names():
            volume = self._volumes.get(name)
            if volume is None:
                log.warning("mount state names volume %s, which no store has; forgetting it", name)
                self.mounts.forget(name)
                continue
            try:
                source = self.stores[volume.store].attach(name)
                self.mounter.bind(source, self.mountpoint(name))
                log.info("volume %s: %d mount(s) restored", name, self.mounts.count(name))
            except VolumeError as err:
                log.error("volume %s: could not restore its mount: %s", name, err)
        if os.path.isdir(self.mount_root):
            for entry in os.listdir(self.mount_root):
                target = self.mountpoint(entry)
                if self.mounts.count(entry) == 0 and self.mounter.is_mounted(target):
                    log.info("volume %s: mounted but used by no container; unmounting", entry)
                    self._release(entry)

    def _wait_ready(self):
        if not self.ready.wait(READY_WAIT):
            log.warning("answering before start-up discovery finished")

    def _register(self, volume):
        with self._registry_lock:
            self._volumes[volume.name] = volume
            self._changes += 1

    def _unregister(self, name):
        with self._registry_lock:
            self._volumes.pop(name, None)
            self._changes += 1

    # --- lookups (memory only) ---------------------------------------------------------------
    def mountpoint(self, name):
        return os.path.join(self.mount_root, name)

    def _volume(self, name):
        volume = self._volumes.get(name)
        if volume is None:
            raise NotFound(f"no volume named {name}")
        return volume

    def find(self, name):
        """The Volume called ``name``, or None."""
        return self._volumes.get(name)

    def store(self, label):
        """The store ``label``; raises BackendError when it is unavailable."""
        return self._store_for(label)

    def _store_for(self, label):
        if label in self.store_errors:
            raise BackendError(f"volume store {label} is unavailable: {self.store_errors[label]}")
        return self.stores[label]

    def get(self, name):
        """Docker's Get: the volume with its Status, from memory."""
        self._wait_ready()
        volume = self._volume(name)
        mounted = self.mounts.count(name)
        status = {
            "VolumeStore": volume.store,
            "Capacity": f"{volume.options.capacity_mb}MB",
            "Options": volume.options.describe(),
            "Mounts": mounted,
        }
        status.update(self.stores[volume.store].status(name))
        backup = self.backups.status(name)
        if backup:
            status["Backup"] = backup
        if volume.problem:
            status["Problem"] = volume.problem
        if volume.restore is not None:
            status["Restore"] = volume.restore.describe()
        if volume.job is not None and volume.job is not volume.restore and not volume.job.done:
            status["Busy"] = volume.job.describe()
        return {
            "Name": name,
            "Mountpoint": self.mountpoint(name) if mounted else "",
            "CreatedAt": volume.created_at,
            "Status": status,
        }

    def list(self):
        """Docker's List: every volume, from memory."""
        self._wait_ready()
        key = (self._changes, self.mounts.changes)
        cached_key, reply = self._listed
        if cached_key != key:
            mounted = set(self.mounts.names())
            reply = [{"Name": name, "Mountpoint": self.mountpoint(name) if name in mounted else ""}
                     for name in list(self._volumes)]
            self._listed = (key, reply)
        return reply

    def path(self, name):
        self._wait_ready()
        self._volume(name)
        return self.mountpoint(name) if self.mounts.count(name) else ""

    def capabilities(self):
        scope = "global" if self.stores and all(s.shared for s in self.stores.values()) else "local"
        return {"Scope": scope}

    def volumes(self):
        """A snapshot of every known Volume (for the CLI and the backup service)."""
        return list(self._volumes.values())

    def lookup(self, name):
        """The Volume called ``name``; raises NotFound."""
        return self._volume(name)

    def lock(self, name):
        """The per-name lock, for collaborators (backups) that must exclude attach and remove."""
        return self._locks.hold(name)

    # --- changes -----------------------------------------------------------------------------
    def create(self, name, given):
        """Docker's Create. Everything is validated before anything is changed.

        With RestoreFrom the volume is created empty, then filled by a restore job; Create
        waits for it a bounded time (``jobs.DOCKER_CALL_BUDGET``). A restore still running
        then goes on: Mount waits for it, or says it is still running. A failed restore
        removes the new volume (it holds nothing of the user's).
        """
        validate_name(name)
        options = parse_options(given, self.stores, self.default_store)
        self._wait_ready()
        if options.restore_from:
            # A restored volume takes the backed-up volume's Capacity and store by default.
            options = parse_options(self.backups.restore_defaults(options.restore_from, given),
                                    self.stores, self.default_store)
        store = self._store_for(options.store)
        self._store_for(options.backup_store)
        self.backups.check_policy(options)
        with self._locks.hold(name):
            existing = self._volumes.get(name)
            if existing is not None:
                self._check_same(existing, options)
                return
            store.create(name, options, docker_metadata(name, options.given))
            now = self._clock().isoformat(timespec="seconds")
            volume = Volume(name, store.label, options, now)
            if options.restore_from:
                volume.job = volume.restore = Job(lambda: self._fill_from_backup(volume),
                                                  f"restore from {options.restore_from}", self._clock)
            self._register(volume)
            log.info("volume %s created in store %s with options %s", name, store.label, options.describe())
        if volume.job is None:
            self.backups.volume_added(volume)
            return
        volume.job.start()
        if volume.job.wait(DOCKER_CALL_BUDGET) and volume.job.error is not None:
            raise volume.job.error

    def _fill_from_backup(self, volume):
        with self._locks.hold(volume.name):
            try:
                self.backups.restore_into(volume, volume.options.restore_from)
            except BaseException:
                # The volume was created empty for this restore: nothing of the user's is lost.
                self.stores[volume.store].remove(volume.name)
                self._unregister(volume.name)
                raise
        self.backups.volume_added(volume)

    def _await_job(self, volume):
        """Wait (bounded) for the volume's background job (restore, attach, detach);
        raise InUse if it is still running. Calls that change a volume start with this,
        so a job that outlived its Docker call is never run twice at once."""
        job = volume.job
        if job is None or job.done:
            return
        if not job.wait(DOCKER_CALL_BUDGET):
            started = job.started.isoformat(timespec="seconds")
            if job.what.startswith("restore"):
                raise InUse(f"volume {volume.name} is still being restored ({job.what}, started {started}): "
                            "try again in a moment")
            raise InUse(f"volume {volume.name} is busy: {job.what} (started {started}) is still running; "
                        "try again in a moment")

    def _bounded(self, volume, what, fn, required=True):
        """Run ``fn`` as the volume's job and wait for it at most DOCKER_CALL_BUDGET.

        Returns its result; raises what it raised. When it is still running: raises
        InUse if ``required``, else logs and returns None (it goes on; the next call on
        the volume waits for it through ``_await_job``).
        """
        job = volume.job = Job(fn, what, self._clock).start()
        if not job.wait(DOCKER_CALL_BUDGET):
            if required:
                raise InUse(f"volume {volume.name} is not ready yet: {what} is still running "
                            "(vCenter answers slowly); try again in a moment")
            log.warning("volume %s: %s goes on in the background", volume.name, what)
            return None
        if job.error is not None:
            raise job.error
        return job.result

    @staticmethod
    def _check_same(existing, options):
        old, new = existing.options.identity(), options.identity()
        if old != new:
            differences = ", ".join(f"{k}={old[k]} (asked {new[k]})" for k in old if old[k] != new[k])
            raise Conflict(f"volume {existing.name} already exists with other options: {differences}")

    def remove(self, name):
        """Docker's Remove: refused while mounted; deletes the volume's data and metadata.

        A volume with a backup policy gets its final backup first (``backups.before_remove``,
        bounded by ``jobs.DOCKER_CALL_BUDGET``), taken without the volume lock so the
        engine can take it; the lock is then taken again to check nothing was mounted
        meanwhile before the data goes.
        """
        validate_name(name)
        self._wait_ready()
        volume = self._volume(name)
        self._await_job(volume)
        self._check_unmounted(name)
        self.backups.before_remove(volume)
        with self._locks.hold(name):
            volume = self._volume(name)
            self._check_unmounted(name)
            store = self._store_for(volume.store)
            if volume.unclaimed_attach:
                store.detach(name)   # an attach that outlived its Mount call left it attached
            store.remove(name)
            self._unregister(name)
            self.backups.volume_removed(volume)
            log.info("volume %s removed", name)

    def _check_unmounted(self, name):
        count = self.mounts.count(name)
        if count:
            callers = len(self.mounts.callers(name))
            raise InUse(f"volume {name} is in use: mounted {count} time(s) by {callers} "
                        "container(s); stop and remove them first")

    def mount(self, name, caller):
        """Docker's Mount: attach and bind on the first mount; count every mount."""
        self._wait_ready()
        self._await_job(self._volume(name))
        with self._locks.hold(name):
            volume = self._volume(name)
            target = self.mountpoint(name)
            if self.mounts.count(name) == 0 or not self.mounter.is_mounted(target):
                store = self._store_for(volume.store)
                try:
                    source = self._bounded(volume, f"attaching volume {name}", lambda: store.attach(name))
                except InUse:
                    volume.unclaimed_attach = True   # it goes on: remove must detach it
                    raise
                volume.unclaimed_attach = False
                try:
                    self.mounter.bind(source, target)
                except BaseException:
                    if self.mounts.count(name) == 0:
                        store.detach(name)
                    raise
            self.mounts.add(name, caller or "")
            return target

    def unmount(self, name, caller):
        """Docker's Unmount: release one mount of ``caller``; the last one detaches (a
        detach slower than DOCKER_CALL_BUDGET finishes in the background)."""
        self._wait_ready()
        self._await_job(self._volume(name))
        with self._locks.hold(name):
            volume = self._volume(name)
            if not self.mounts.release(name, caller or ""):
                log.warning("volume %s: unmount by %s, which has no mount recorded", name, caller)
            if self.mounts.count(name) == 0:
                self._release(name)
                self.backups.last_unmount(volume)

    def _release(self, name):
        self.mounter.unmount(self.mountpoint(name))
        volume = self._volumes.get(name)
        if volume is not None:
            store = self.stores[volume.store]
            self._bounded(volume, f"detaching volume {name}", lambda: store.detach(name), required=False)

    # --- description ---------------------------------------------------------------------
    def describe(self):
        """Stores and volumes, for ``vsphere-volume status``."""
        stores = []
        for label, store in self.stores.items():
            entry = store.describe()
            entry["Default"] = label == self.default_store
            entry["Error"] = self.store_errors.get(label, "")
            entry["Volumes"] = sum(1 for v in self._volumes.values() if v.store == label)
            stores.append(entry)
        volumes = [{"Name": v.name, "VolumeStore": v.store, "Mounts": self.mounts.count(v.name),
                    "Capacity": f"{v.options.capacity_mb}MB", "Backup": v.options.backup.text}
                   for v in sorted(self._volumes.values(), key=lambda v: v.name)]
        return {"Stores": stores, "Volumes": volumes, "Scope": self.capabilities()["Scope"],
                "Ready": self.ready.is_set()}
