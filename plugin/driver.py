"""The volume driver: what Docker's volume calls mean, independent of HTTP and storage.

The protocol layer (``plugin.protocol``) calls these methods; stores
(``plugin.stores``) do the storage work. Here live the semantics users rely on:

- Create validates every name and option before any side effect, is idempotent for
  the same name and options (``RestoreFrom`` included; no options at all match any
  volume of that name), and refuses the same name with other options. A name that
  exists on the store but is not known here yet (made by another host) is that volume.
- Mount and Unmount are counted per caller ID; the first Mount attaches the volume and
  bind-mounts it at ``<mount root>/<name>``, the last Unmount undoes both. The counts
  survive restarts (``MountTable``) and are reconciled with what is mounted once the
  volume's store answers.
- Remove is refused while any mount is active.
- Get, List and Path answer from memory (``VolumeRegistry``, persisted per store): they
  never wait for a store or vCenter, also after a restart while vCenter is down. A Get
  of a name not known here asks the stores once, bounded (``Discovery.look_up``).
- Stores are opened, retried and refreshed off the request path (``StoreHealth``); a
  store that does not answer is unavailable with its reason, its volumes stay listed
  (Status says the listing is stale), and calls that need it refuse with the reason.
- Every call answers within Docker's limit (``jobs.CallBudgets``): slow work goes on
  as a job and the call says so.
- Calls for one name are serialized by a per-name lock; different names run in parallel.
- ``detach`` (``vsphere-volume detach``, not one of Docker's calls) frees a volume's
  disk from the VM of another Docker host that died with it attached (``stores.fencing``).
"""

import logging
import threading

from .discovery import Discovery
from .errors import Conflict, InUse, NotFound
from .backup.volumes import existing
from .jobs import CallBudgets, Job, await_job, run_job
from .locks import NameLocks
from .mounting import HostMounts
from .nobackups import NoBackups
from .options import parse_options, validate_name
from .registry import Volume, VolumeRegistry
from .restoring import Restorer
from .storehealth import StoreHealth
from .stores.base import docker_metadata
from .storewatch import OPEN_BUDGET_SECONDS
from .timefmt import rfc3339, utc_now

log = logging.getLogger(__name__)

READY_WAIT = 10.0     # seconds Get/List wait for stores never listed before, at start


class VolumeDriver:
    """Docker's volume operations over a set of stores.

    stores: {label: VolumeStore}; mount_table: MountTable; mounter: Mounter (mount(8));
    mount_root: the plugin's propagated mount; backups: the backup seam (NoBackups);
    registry: VolumeRegistry (persisting listings); marks: RestoreMarks; budgets:
    CallBudgets; watch: the StoreWatcher's intervals (refresh, retry, max_retry).
    """

    def __init__(self, stores, mount_table, mounter, mount_root, default_store="default",
                 backups=None, clock=utc_now, registry=None, marks=None, budgets=None,
                 open_budget=OPEN_BUDGET_SECONDS, watch=None):
        self.stores = stores
        self.default_store = default_store
        self.backups = backups or NoBackups()
        self.registry = registry or VolumeRegistry()
        self.budgets = budgets or CallBudgets()
        self.open_budget = open_budget
        self._clock = clock
        self._locks = NameLocks()
        self._listed = (None, [])       # (cache key, the List reply)
        self._creating = {}             # name -> the Job of a create that outlived its call
        self._loaded = False
        self._started = threading.Event()   # start() has tried every store once
        self.health = StoreHealth(stores)
        self.mounts = HostMounts(mount_table, mounter, mount_root, self.registry, stores, self.health, clock)
        self.discovery = Discovery(stores, self.registry, self.health, self._locks, marks, self.backups,
                                   mount_table, clock, self._store_opened)
        self.restorer = Restorer(stores, self.registry, self._locks, marks, self.backups,
                                 self.discovery.schedule, clock)
        self.health.watch(self.discovery.listed, self.registry.begin, self.discovery.known_of, **(watch or {}))

    # --- start-up ------------------------------------------------------------------------
    def load(self):
        """Read what the plugin persisted (mounts, unfinished restores, the stores' last
        listings): from here Get and List answer. Quick, no store I/O; call it before
        serving Docker. Once only."""
        if self._loaded:
            return
        self._loaded = True
        self.mounts.table.load()
        if self.discovery.marks is not None:
            self.discovery.marks.load()
        self.discovery.load()

    def start(self):
        """``load``, then open every store (each in its own thread), waiting for them at
        most ``open_budget`` seconds; start backups; go on with restores a crash cut off."""
        self.load()
        self.health.watcher.start()
        if not self.health.tried_all(self.open_budget):
            log.warning("start-up goes on while some volume stores are still being opened: %s",
                        ", ".join(sorted(self.health.errors)))
        self.mounts.release_unused(self.budgets)
        try:
            self.backups.started()
        except Exception:
            log.exception("the backup scheduler could not be started")
        # Once every store answered or was tried (the leases this host's previous process
        # left are broken by then), restores that a crash cut off go on.
        self._started.set()
        for label in self.stores:
            if self.health.available(label):
                self.restorer.resume(label)

    def stop(self):
        """Stop background work (store watching, the backup scheduler)."""
        self.health.watcher.stop()
        self.backups.stop()

    def _store_opened(self, label):
        """Store ``label`` was listed for the first time since start."""
        self.mounts.restore(label)
        try:
            self.backups.store_opened(label)
        except Exception:
            log.exception("volume store %s: backup housekeeping at start failed", label)
        if self._started.is_set():
            self.restorer.resume(label)   # a store that answered late

    def _wait_ready(self):
        # Only stores never listed before (no persisted listing) are waited for.
        unlisted = [label for label in self.health.errors if self.registry.listed_at.get(label) is None]
        if unlisted and not self.health.watcher.wait_first(READY_WAIT, unlisted):
            log.warning("answering before volume stores %s were listed", ", ".join(unlisted))

    # --- what the backup service asks (backup.volumes.Volumes; memory only) -------------------
    def find(self, name):
        """The Volume called ``name``, or None."""
        return self.registry.get(name)


    def store(self, label, retry=True):
        """The store ``label``; raises BackendError with the reason when it is unavailable."""
        return self.health.require(label, retry)

    def all(self):
        """A snapshot of every known Volume."""
        return self.registry.all()

    def mount_count(self, name):
        """How many times volume ``name`` is mounted now."""
        return self.mounts.count(name)

    def lock(self, name):
        """The per-name lock, for collaborators (backups) that must exclude attach and remove."""
        return self._locks.hold(name)

    # --- Docker's reads ------------------------------------------------------------------------
    def get(self, name):
        """Docker's Get: the volume with its Status, from memory (or one bounded lookup
        on the stores for a name not known here)."""
        validate_name(name)
        self._wait_ready()
        volume = self.registry.get(name) or self.discovery.look_up(name)
        if volume is None:
            raise NotFound(f"no volume named {name}")
        mounted = self.mounts.count(name)
        status = {"VolumeStore": volume.store, "Capacity": f"{volume.options.capacity_mb}MB",
                  "Options": volume.options.describe(), "Mounts": mounted,
                  **self.stores[volume.store].status(name)}
        if not self.health.available(volume.store):
            status["Stale"] = {"ListedAt": self.registry.listed_at.get(volume.store),
                               "Error": f"volume store {volume.store} is unavailable: "
                                        f"{self.health.errors.get(volume.store)}"}
        status.update({key: value for key, value in (("Backup", self.backups.status(name)),
                                                     ("Problem", volume.problem)) if value})
        if volume.incomplete:
            status["Restore"] = {"State": f"incomplete: {volume.incomplete}"}
        elif volume.restore is not None:
            status["Restore"] = volume.restore.describe()
        if volume.job is not None and volume.job is not volume.restore and not volume.job.done:
            status["Busy"] = volume.job.describe()
        reply = {"Name": name, "Mountpoint": self.mounts.mountpoint(name) if mounted else "", "Status": status}
        if volume.created_at:       # Docker parses it as a time: never send "" or a bad one
            reply["CreatedAt"] = volume.created_at
        return reply

    def list(self):
        """Docker's List: every volume, from memory."""
        self._wait_ready()
        key = (self.registry.changes, self.mounts.table.changes)
        cached_key, reply = self._listed
        if cached_key != key:
            mounted = set(self.mounts.table.names())
            reply = [{"Name": name, "Mountpoint": self.mounts.mountpoint(name) if name in mounted else ""}
                     for name in self.registry.names()]
            self._listed = (key, reply)
        return reply

    def path(self, name):
        validate_name(name)
        self._wait_ready()
        existing(self, name)
        return self.mounts.mountpoint(name) if self.mounts.count(name) else ""

    def capabilities(self):
        scope = "global" if self.stores and all(s.shared for s in self.stores.values()) else "local"
        return {"Scope": scope}

    # --- Docker's changes ----------------------------------------------------------------------
    def create(self, name, given):
        """Docker's Create. Everything is validated before anything is changed.

        With RestoreFrom the volume is created empty (marked as being restored), then
        filled by a restore job; Create waits for it as long as its budget allows. A
        restore still running then goes on: Mount waits for it, or says it is still
        running. A failed restore removes the new volume (it holds nothing of the
        user's); one cut off by a crash goes on at start, and the same create waits for it.
        """
        deadline = self.budgets.deadline("create")
        validate_name(name)
        options = parse_options(given, self.stores, self.default_store)
        self._wait_ready()
        if options.restore_from:
            # A restored volume takes the backed-up volume's Capacity and store by default.
            options = parse_options(self.backups.restore_defaults(options.restore_from, given),
                                    self.stores, self.default_store)
        existing = self.registry.get(name)
        if existing is not None:
            check_same(existing, options, given)   # a clear refusal before anything else
        store = self.store(options.store)
        self.store(options.backup_store)
        self.backups.check_policy(options)
        with self._locks.hold(name):
            volume, job = self.registry.get(name), None
            if volume is None:
                volume, made = self._create_on_store(store, name, options, deadline)
                job = volume.restore if made else None       # made here: its restore is this call's
            check_same(volume, options, given)
            if volume.incomplete:
                job = self.restorer.start(volume, remove_on_failure=False)   # cut off by a crash: finish it
            elif job is None and volume.restore is not None and not volume.restore.done:
                job = volume.restore                         # an earlier call's, still running
        if job is not None and deadline.wait(job) and job.error is not None:
            raise job.error

    def _create_on_store(self, store, name, options, deadline):
        """Create the volume in ``store`` as a job awaited until ``deadline``; return
        (its Volume, True), or (the Volume another host made there already, False),
        registered as it is. A create slower than the call goes on, and the same create
        again waits for it."""
        pending = self._creating.get(name)
        if pending is None:
            if options.restore_from:
                self.restorer.mark(name, str(options.restore_from), store.label, rfc3339(self._clock()))
            pending = self._creating[name] = Job(lambda: self._make(store, name, options),
                                                 f"creating volume {name}", self._clock).start()
        if not deadline.wait(pending):
            raise InUse(f"volume {name} is still being created (started {rfc3339(pending.started)}; vCenter "
                        f"answers slowly): run the same docker volume create again in a moment")
        if pending.error is None:
            return pending.result, True
        stored = None
        if isinstance(pending.error, Conflict) and not options.restore_from:
            stored = store.lookup(name)                      # made by another host meanwhile
        if stored is None:
            raise pending.error
        return self.discovery.adopt(store.label, stored), False

    def _make(self, store, name, options):
        """The create job: the volume in its store, registered, then filled (RestoreFrom)
        or scheduled."""
        try:
            try:
                store.create(name, options, docker_metadata(name, options.given))
            except BaseException:
                self.restorer.unmark(name)
                raise
            volume = Volume(name, store.label, options, rfc3339(self._clock()),
                            metadata=docker_metadata(name, options.given))
            self.registry.add(volume)
        finally:
            self._creating.pop(name, None)
        log.info("volume %s created in store %s with options %s", name, store.label, options.describe())
        if options.restore_from:
            self.restorer.start(volume, remove_on_failure=True)   # waits for the caller's lock
        else:
            self.discovery.schedule(volume)
        return volume

    def remove(self, name):
        """Docker's Remove: refused while mounted; deletes the volume's data and metadata.

        A volume with a backup policy gets its final backup first (``backups.before_remove``),
        taken without the volume lock so the engine can take it; the lock is then taken
        again to check nothing was mounted meanwhile before the data goes. Every wait
        shares the call's budget; the deletion itself goes on as a job when slow.
        """
        deadline = self.budgets.deadline("remove")
        validate_name(name)
        self._wait_ready()
        volume = existing(self, name)
        await_job(volume, deadline)
        self.mounts.check_unmounted(name)
        self.store(volume.store)
        if not volume.incomplete:
            self.backups.before_remove(volume, wait=deadline.remaining())
        with self._locks.hold(name):
            volume = existing(self, name)
            self.mounts.check_unmounted(name)
            store = self.store(volume.store, retry=False)
            run_job(volume, f"removing volume {name}", lambda: self._delete(store, volume), deadline, self._clock)

    def _delete(self, store, volume):
        # A job: the Remove call holds the volume's lock while it waits; a deletion that
        # outlives the call goes on, and the next call on the volume waits for it.
        if volume.unclaimed_attach:
            store.detach(volume.name)   # an attach that outlived its Mount call left it attached
        store.remove(volume.name)
        self.registry.drop(volume.name)
        self.restorer.unmark(volume.name)
        self.backups.volume_removed(volume)
        log.info("volume %s removed", volume.name)

    def mount(self, name, caller):
        """Docker's Mount: attach and bind on the first mount; count every mount."""
        deadline = self.budgets.deadline("mount")
        validate_name(name)
        self._wait_ready()
        volume = existing(self, name)
        await_job(volume, deadline)
        check_complete(volume)
        if not self.mounts.count(name):
            self.store(volume.store)   # it will be attached: its store must answer
        with self._locks.hold(name):
            volume = existing(self, name)
            check_complete(volume)
            return self.mounts.mount(volume, caller, deadline)

    def unmount(self, name, caller):
        """Docker's Unmount: release one mount of ``caller``; the last one detaches (a
        detach slower than the call's budget finishes in the background). An Unmount by a
        caller with no mount recorded changes nothing."""
        deadline = self.budgets.deadline("unmount")
        validate_name(name)
        self._wait_ready()
        await_job(existing(self, name), deadline)
        with self._locks.hold(name):
            volume = existing(self, name)
            if self.mounts.unmount(volume, caller, deadline):
                self.backups.last_unmount(volume)

    # --- fencing (not one of Docker's calls) --------------------------------------------------
    def detach(self, name, force=False, plan=False, only=None):
        """``/Volume.Detach``: free volume ``name``'s disk from the VMs that hold it.

        ``plan``: only say who holds it, ``{"Disk", "Holders"}``. Otherwise detach it
        from powered-off VMs, from running ones too with ``force`` (another Docker host
        known to be down), from the VMs named in ``only`` alone when given (those the
        operator confirmed), and from this host's VM when no container here mounts it;
        ``{"Disk", "Detached"}`` names the VMs it was detached from. Other hosts' VMs are
        released without this volume's lock: a Mount here may be waiting for just that."""
        deadline = self.budgets.deadline("detach")
        validate_name(name)
        self._wait_ready()
        if self.registry.get(name) is None:
            self.discovery.look_up(name)            # made by another host since the last listing
        volume = existing(self, name)
        store = self.store(volume.store)
        disk = store.status(name).get("Disk", "")
        if plan:
            return {"Disk": disk, "Holders": store.holders(name)}
        detached, here = store.release(name, force=force, only=only)
        if here:
            await_job(volume, deadline)
            with self._locks.hold(name):
                self.mounts.check_unmounted(name)
                run_job(existing(self, name), f"detaching volume {name}", lambda: store.detach(name), deadline,
                        self._clock)
            detached.append(here)
        log.warning("volume %s: detached by hand from %s", name, ", ".join(detached) or "no VM")
        return {"Disk": disk, "Detached": detached}

    # --- description ---------------------------------------------------------------------
    def describe(self):
        """Stores and volumes, for ``vsphere-volume status`` (from snapshots: creates and
        removes may run meanwhile)."""
        volumes = sorted(self.registry.all(), key=lambda v: v.name)
        errors = dict(self.health.errors)
        stores = [dict(store.describe(), Default=label == self.default_store, Error=errors.get(label, ""),
                       ListedAt=self.registry.listed_at.get(label),
                       Volumes=sum(1 for v in volumes if v.store == label))
                  for label, store in self.stores.items()]
        described = [{"Name": v.name, "VolumeStore": v.store, "Mounts": self.mounts.count(v.name),
                      "Capacity": f"{v.options.capacity_mb}MB", "Backup": v.options.backup.text}
                     for v in volumes]
        return {"Stores": stores, "Volumes": described, "Scope": self.capabilities()["Scope"],
                "Ready": self.health.tried_all()}   # every store tried once since start


def check_complete(volume):
    if volume.incomplete:
        raise InUse(f"volume {volume.name} cannot be mounted: {volume.incomplete}")


def check_same(existing, options, given):
    """Refuse a create of ``existing``'s name with ``options`` that are not its own."""
    name, source = existing.name, options.restore_from
    if existing.incomplete:
        if source is None or existing.options.restore_from != source:
            raise Conflict(f"volume {name} exists, but {existing.incomplete}")
        return
    if source is not None and existing.options.restore_from != source:
        raise Conflict(
            f"volume {name} already exists: RestoreFrom={source} fills a new volume and never "
            f"overwrites one. Choose another name, remove {name} first (docker volume rm {name}), "
            f"or restore {name} in place from its own backups with vsphere-volume restore {name} "
            "--backup ID --force (a safety backup of its current data is taken first)")
    if not given:
        return  # no options asked for: the volume of that name, whatever its options
    old, new = existing.options.identity(), options.identity()
    if old != new:
        differences = ", ".join(f"{k}={old[k]} (asked {new[k]})" for k in old if old[k] != new[k])
        raise Conflict(f"volume {name} already exists with other options: {differences}")
