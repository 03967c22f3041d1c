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
  of a name not known here asks the stores once, bounded, for a volume another host made.
- Stores are opened, retried and refreshed off the request path (``StoreWatcher``); a
  store that does not answer is unavailable with its reason, its volumes stay listed
  (Status says the listing is stale), and calls that need it refuse with the reason.
- Every call answers within Docker's limit (``jobs.CallBudgets``): slow work goes on
  as a job and the call says so.
- Calls for one name are serialized by a per-name lock; different names run in parallel.
"""

import logging
import os
import threading

from .errors import BackendError, Conflict, InUse, InvalidOption, NotFound, VolumeError, cut
from .jobs import CallBudgets, Job
from .locks import NameLocks
from .options import VOLUME_STORE, parse_options, validate_name
from .registry import Volume, VolumeRegistry
from .stores.base import StoredVolume, docker_metadata
from .storewatch import OPEN_BUDGET_SECONDS, StoreWatcher
from .timefmt import rfc3339, utc_now

log = logging.getLogger(__name__)

READY_WAIT = 10.0     # seconds Get/List wait for stores never listed before, at start
LOOKUP_WAIT = 10.0    # seconds a Get waits for the stores to look up a name not known here
STORE_RETRY_WAIT = 15.0   # seconds a call waits for an unavailable store to be tried again
OPENING = "it is being opened and listed (the plugin has just started)"


class NoBackups:
    """The backup seam when no backup service is wired: every hook does nothing."""

    def check_policy(self, options):
        pass

    def store_opened(self, label):
        pass

    def started(self):
        pass

    def stop(self):
        pass

    def volume_added(self, volume):
        pass

    def before_remove(self, volume, wait=None):
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
    mount_root: the plugin's propagated mount; backups: the backup seam (NoBackups);
    registry: VolumeRegistry (persisting listings); restores: RestoreMarks; budgets:
    CallBudgets; watch: keyword arguments of the StoreWatcher (refresh, retry, ...).
    """

    def __init__(self, stores, mounts, mounter, mount_root, default_store="default",
                 backups=None, clock=utc_now, registry=None, restores=None, budgets=None,
                 open_budget=OPEN_BUDGET_SECONDS, watch=None):
        self.stores = stores
        self.default_store = default_store
        self.mounts = mounts
        self.mounter = mounter
        self.mount_root = mount_root
        self.backups = backups or NoBackups()
        self.registry = registry or VolumeRegistry()
        self.restores = restores
        self.budgets = budgets or CallBudgets()
        self.open_budget = open_budget
        self._clock = clock
        self._locks = NameLocks()
        self._listed = (None, [])       # (cache key, the List reply)
        self._opened = set()            # stores listed at least once by this process
        self._loaded = False
        self._started = threading.Event()   # start() has tried every store once
        # label -> why the store is unavailable; at start, until it is first listed
        self.store_errors = {label: OPENING for label in stores}
        self.watcher = StoreWatcher(stores, self.store_listed, self.store_failed, self.registry.begin,
                                    known=self._known_of, **(watch or {}))

    # --- start-up ------------------------------------------------------------------------
    def load(self):
        """Read what the plugin persisted (mounts, unfinished restores, the stores' last
        listings): from here Get and List answer. Quick, no store I/O; call it before
        serving Docker. Once only."""
        if self._loaded:
            return
        self._loaded = True
        self.mounts.load()
        if self.restores is not None:
            self.restores.load()
        for label in self.stores:
            for record in self.registry.load_listing(label):
                self._adopt(label, _stored(record), persist=False)

    def start(self):
        """``load``, then open every store (each in its own thread), waiting for them at
        most ``open_budget`` seconds; start backups."""
        self.load()
        self.watcher.start()
        if not self.watcher.wait_first(self.open_budget):
            log.warning("start-up goes on while some volume stores are still being opened: %s",
                        ", ".join(sorted(self.store_errors)))
        self._release_unused_mounts()
        try:
            self.backups.started()
        except Exception:  # noqa: BLE001 - the plugin serves its volumes without a scheduler rather than not at all
            log.exception("the backup scheduler could not be started")
        # Once every store answered or was tried (the leases this host's previous process
        # left are broken by then), restores that a crash cut off go on.
        self._started.set()
        for label in self.stores:
            if label not in self.store_errors:
                self._resume_restores(label)

    def stop(self):
        """Stop background work (store watching, the backup scheduler)."""
        self.watcher.stop()
        self.backups.stop()

    def _known_of(self, label):
        return {v.name: _stored(v.record()) for v in self.registry.of_store(label)}

    def store_failed(self, label, reason):
        if self.store_errors.get(label) != reason:
            log.error("volume store %s is unavailable: %s", label, reason)
        self.store_errors[label] = reason

    def store_listed(self, label, found, token):
        """Store ``label`` listed ``found``: follow it (new volumes, gone volumes, changed
        metadata) except for names changed here since the listing began (``token``)."""
        first = label not in self._opened
        self._opened.add(label)
        listed = {stored.name: stored for stored in found}
        for name in sorted(set(listed) | {v.name for v in self.registry.of_store(label)}):
            with self._locks.hold(name):
                if self.registry.changed_since(token, name):
                    continue
                self._follow(label, name, listed.get(name))
        self._drop_marks_without_volume(label)
        self.registry.listed(label, rfc3339(self._clock()))
        self.store_errors.pop(label, None)
        if first:
            log.info("volume store %s (%s): %d volume(s)", label, self.stores[label].spec.spec, len(found))
            self._restore_mounts(label)
            try:
                self.backups.store_opened(label)
            except Exception:  # noqa: BLE001 - backup housekeeping must not keep the store unavailable
                log.exception("volume store %s: backup housekeeping at start failed", label)
            if self._started.is_set():
                self._resume_restores(label)   # a store that answered late

    def sync_store(self, label, names, lookup):
        """A store that follows its own changes (``refreshes_itself``: a VCH's) lists
        ``names`` now; ``lookup(name)`` gives each one's StoredVolume (from memory)."""
        if label in self.store_errors:
            return   # not opened yet, or unavailable: the watcher lists it when it answers
        token = self.registry.begin()
        self.store_listed(label, [s for s in map(lookup, names) if s is not None], token)

    def _follow(self, label, name, stored):
        volume = self.registry.get(name)
        if stored is None:
            if volume is not None and volume.store == label and not self.mounts.count(name) \
                    and (volume.job is None or volume.job.done):
                self.registry.drop(name, persist=False)
                self.backups.volume_removed(volume)
                log.info("volume %s is gone from volume store %s", name, label)
            return
        if volume is None:
            self._adopt(label, stored, persist=False)
        elif volume.store != label:
            log.warning("volume %s exists in stores %s and %s; using the one in %s",
                        name, volume.store, label, volume.store)
        elif (volume.metadata, volume.found_problem, volume.created_at) != \
                (stored.metadata or {}, stored.problem, stored.created_at):
            self._adopt(label, stored, persist=False, keep=volume)

    def _resume_restores(self, label):
        """Restores into new volumes of store ``label`` that a crash cut off go on."""
        for volume in self.registry.of_store(label):
            with self._locks.hold(volume.name):
                if volume.incomplete and volume.options.restore_from is not None:
                    log.info("volume %s: resuming its restore from %s, cut off when the plugin stopped",
                             volume.name, volume.options.restore_from)
                    self._start_restore(volume, remove_on_failure=False)

    def _drop_marks_without_volume(self, label):
        """A restore mark of a volume the store does not have: its create never happened."""
        for name in self.restores.names() if self.restores is not None else []:
            mark = self.restores.get(name) or {}
            volume = self.registry.get(name)
            if mark.get("Store") == label and volume is None:
                self.restores.clear(name)

    def _adopt(self, label, stored, persist=True, keep=None):
        """Register the volume ``stored`` found in store ``label``; return its Volume.
        ``keep``: the Volume it replaces (its jobs carry over)."""
        given = dict((stored.metadata or {}).get("DriverOpts") or {})
        problem = stored.problem
        try:
            options = self._options_found_in(label, given)
        except InvalidOption as err:
            problem = problem or f"recorded options not usable ({err}); using defaults"
            options = parse_options({}, self.stores, default_store=label)
        volume = Volume(stored.name, label, options, stored.created_at, problem,
                        metadata=stored.metadata or {}, found_problem=stored.problem)
        if keep is not None:
            volume.job, volume.restore, volume.unclaimed_attach = keep.job, keep.restore, keep.unclaimed_attach
        mark = self.restores.get(stored.name) if self.restores is not None else None
        if mark and (volume.job is None or volume.job.done):
            volume.incomplete = (f"its restore from {mark['From']} (started {mark['Started']}) did not finish: "
                                 f"run the same docker volume create again (RestoreFrom={mark['From']}) to "
                                 "finish it, or remove the volume")
        self.registry.add(volume, persist=persist)
        if not volume.incomplete:
            self._schedule(volume)
        return volume

    def _schedule(self, volume):
        try:
            self.backups.volume_added(volume)
        except Exception as err:  # noqa: BLE001 - one volume's policy must not stop the others
            volume.problem = volume.problem or f"its backup schedule cannot be followed: {err}"
            log.error("volume %s: %s", volume.name, volume.problem)

    def _options_found_in(self, label, given):
        # The store the volume was found in is where it lives, whatever was recorded.
        given = {k: v for k, v in given.items() if k.lower() != VOLUME_STORE.lower()}
        return parse_options(given, self.stores, default_store=label)

    def _restore_mounts(self, label):
        """The store answered for the first time: mount again what containers use."""
        for name in self.mounts.names():
            volume = self.registry.get(name)
            if volume is None or volume.store != label:
                continue
            try:
                source = self.stores[label].attach(name)
                self.mounter.bind(source, self.mountpoint(name))
                log.info("volume %s: %d mount(s) restored", name, self.mounts.count(name))
            except Exception as err:  # noqa: BLE001 - one volume's failure must not stop the others
                log.error("volume %s: could not restore its mount: %s", name, err)

    def _release_unused_mounts(self):
        for name in self.mounts.names():
            if self.registry.get(name) is None and not self.store_errors:
                log.warning("mount state names volume %s, which no store has; forgetting it", name)
                self.mounts.forget(name)
        if os.path.isdir(self.mount_root):
            for entry in os.listdir(self.mount_root):
                volume = self.registry.get(entry)
                if self.mounts.count(entry) == 0 and self.mounter.is_mounted(self.mountpoint(entry)) \
                        and (volume is None or volume.store not in self.store_errors):
                    log.info("volume %s: mounted but used by no container; unmounting", entry)
                    try:
                        self._release(entry, self.budgets.deadline("unmount"))
                    except VolumeError as err:
                        log.error("volume %s: %s", entry, err)

    def _wait_ready(self):
        # Only stores never listed before (no persisted listing) are waited for.
        unlisted = [label for label in self.store_errors if self.registry.listed_at.get(label) is None]
        if unlisted and not self.watcher.wait_first(READY_WAIT):
            log.warning("answering before volume stores %s were listed", ", ".join(unlisted))

    # --- lookups (memory only) ---------------------------------------------------------------
    def mountpoint(self, name):
        return os.path.join(self.mount_root, name)

    def find(self, name):
        """The Volume called ``name``, or None."""
        return self.registry.get(name)

    def lookup(self, name):
        """The Volume called ``name``; raises NotFound."""
        volume = self.registry.get(name)
        if volume is None:
            raise NotFound(f"no volume named {cut(name)}")
        return volume

    def store(self, label, retry=True):
        """The store ``label``; raises BackendError when it is unavailable. An unavailable
        store is first tried again at once (``retry``), waiting at most STORE_RETRY_WAIT:
        the call works as soon as vCenter (or the NFS server) answers again."""
        if label in self.store_errors and retry and self.watcher.retry_now(label, STORE_RETRY_WAIT):
            return self.stores[label]
        if label in self.store_errors:
            raise BackendError(f"volume store {label} is unavailable: {self.store_errors[label]}")
        return self.stores[label]

    def volumes(self):
        """A snapshot of every known Volume (for the CLI and the backup service)."""
        return self.registry.all()

    def lock(self, name):
        """The per-name lock, for collaborators (backups) that must exclude attach and remove."""
        return self._locks.hold(name)

    def get(self, name):
        """Docker's Get: the volume with its Status, from memory (or one bounded lookup
        on the stores for a name not known here)."""
        validate_name(name)
        self._wait_ready()
        volume = self.registry.get(name) or self._look_up_elsewhere(name)
        if volume is None:
            raise NotFound(f"no volume named {name}")
        mounted = self.mounts.count(name)
        status = {
            "VolumeStore": volume.store,
            "Capacity": f"{volume.options.capacity_mb}MB",
            "Options": volume.options.describe(),
            "Mounts": mounted,
        }
        status.update(self.stores[volume.store].status(name))
        if volume.store in self.store_errors:
            status["Stale"] = {"ListedAt": self.registry.listed_at.get(volume.store),
                               "Error": f"volume store {volume.store} is unavailable: "
                                        f"{self.store_errors[volume.store]}"}
        backup = self.backups.status(name)
        if backup:
            status["Backup"] = backup
        if volume.problem:
            status["Problem"] = volume.problem
        if volume.incomplete:
            status["Restore"] = {"State": f"incomplete: {volume.incomplete}"}
        elif volume.restore is not None:
            status["Restore"] = volume.restore.describe()
        if volume.job is not None and volume.job is not volume.restore and not volume.job.done:
            status["Busy"] = volume.job.describe()
        reply = {"Name": name, "Mountpoint": self.mountpoint(name) if mounted else "", "Status": status}
        if volume.created_at:       # Docker parses it as a time: never send "" or a bad one
            reply["CreatedAt"] = volume.created_at
        return reply

    def _look_up_elsewhere(self, name):
        """A volume another host made since the stores were listed: asked of every
        available store that others share, in a job awaited at most LOOKUP_WAIT."""
        stores = [s for label, s in self.stores.items() if s.shared and label not in self.store_errors]
        if not stores:
            return None
        token = self.registry.begin()

        def look():
            for store in stores:
                stored = store.lookup(name)
                if stored is not None:
                    with self._locks.hold(name):
                        if self.registry.get(name) is None and not self.registry.changed_since(token, name):
                            log.info("volume %s was made in volume store %s by another host", name, store.label)
                            return self._adopt(store.label, stored)
                        return self.registry.get(name)
            return None

        job = Job(look, f"looking up volume {name}", self._clock).start()
        if not job.wait(LOOKUP_WAIT):
            log.warning("volume %s: looking it up on the stores goes on in the background", name)
            return None
        if job.error is not None:
            log.warning("volume %s: looking it up on the stores failed: %s", name, job.error)
        return job.result

    def list(self):
        """Docker's List: every volume, from memory."""
        self._wait_ready()
        key = (self.registry.changes, self.mounts.changes)
        cached_key, reply = self._listed
        if cached_key != key:
            mounted = set(self.mounts.names())
            reply = [{"Name": name, "Mountpoint": self.mountpoint(name) if name in mounted else ""}
                     for name in self.registry.names()]
            self._listed = (key, reply)
        return reply

    def path(self, name):
        validate_name(name)
        self._wait_ready()
        self.lookup(name)
        return self.mountpoint(name) if self.mounts.count(name) else ""

    def capabilities(self):
        scope = "global" if self.stores and all(s.shared for s in self.stores.values()) else "local"
        return {"Scope": scope}

    # --- changes -----------------------------------------------------------------------------
    def create(self, name, given):
        """Docker's Create. Everything is validated before anything is changed.

        With RestoreFrom the volume is created empty (marked as being restored), then
        filled by a restore job; Create waits for it as long as its budget allows. A
        restore still running then goes on: Mount waits for it, or says it is still
        running. A failed restore removes the new volume (it holds nothing of the
        user's); one cut off by a crash is finished by the same create again.
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
            self._check_same(existing, options, given)   # a clear refusal before anything else
        store = self.store(options.store)
        self.store(options.backup_store)
        self.backups.check_policy(options)
        job = None
        with self._locks.hold(name):
            volume = self.registry.get(name)
            if volume is not None:
                self._check_same(volume, options, given)
                if volume.incomplete:
                    job = self._start_restore(volume, remove_on_failure=False)   # cut off: finish it
                elif volume.restore is not None and not volume.restore.done:
                    job = volume.restore                                         # still running
            else:
                volume = self._create_on_store(store, name, options, given)
                if volume is None:
                    return
                if options.restore_from:
                    job = self._start_restore(volume, remove_on_failure=True)
                else:
                    self._schedule(volume)
        if job is not None and job.wait(deadline.remaining()) and job.error is not None:
            raise job.error

    def _create_on_store(self, store, name, options, given):
        """Create the volume in ``store`` and register it; None when it existed there
        already with these options (made by another host): then it is registered as is."""
        if options.restore_from and self.restores is not None:
            self.restores.mark(name, str(options.restore_from), store.label, rfc3339(self._clock()))
        try:
            store.create(name, options, docker_metadata(name, options.given))
        except Conflict:
            if self.restores is not None:
                self.restores.clear(name)
            stored = None if options.restore_from else store.lookup(name)
            if stored is None:
                raise
            self._check_same(self._adopt(store.label, stored), options, given)
            return None
        except BaseException:
            if self.restores is not None:
                self.restores.clear(name)
            raise
        volume = Volume(name, store.label, options, rfc3339(self._clock()),
                        metadata=docker_metadata(name, options.given))
        self.registry.add(volume)
        log.info("volume %s created in store %s with options %s", name, store.label, options.describe())
        return volume

    def _start_restore(self, volume, remove_on_failure):
        """Fill ``volume`` from its RestoreFrom backup in a job (started: it waits for the
        volume's lock). ``remove_on_failure``: the volume was created empty for this
        restore and goes if it fails; else (a restore cut off by a crash, resumed) it
        stays, shown incomplete with the reason."""
        volume.incomplete = ""
        volume.job = volume.restore = Job(lambda: self._fill_from_backup(volume, remove_on_failure),
                                          f"restore from {volume.options.restore_from}", self._clock)
        return volume.job.start()

    def _fill_from_backup(self, volume, remove_on_failure):
        source = volume.options.restore_from
        with self._locks.hold(volume.name):
            try:
                self.backups.restore_into(volume, source)
            except BaseException as err:
                if remove_on_failure:
                    # The volume was created empty for this restore: nothing of the user's is lost.
                    self.stores[volume.store].remove(volume.name)
                    self.registry.drop(volume.name)
                    if self.restores is not None:
                        self.restores.clear(volume.name)
                else:
                    volume.incomplete = (f"its restore from {source} failed ({cut(err, 300)}): remove the volume "
                                         f"(docker volume rm {volume.name}) and restore it again")
                raise
            if self.restores is not None:
                self.restores.clear(volume.name)
        self._schedule(volume)

    def _await_job(self, volume, deadline):
        """Wait (bounded by ``deadline``) for the volume's background job (restore,
        attach, detach); raise InUse if it is still running. Calls that change a volume
        start with this, so a job that outlived its Docker call is never run twice at once."""
        job = volume.job
        if job is None or job.done:
            return
        if not job.wait(deadline.remaining()):
            started = rfc3339(job.started)
            if job is volume.restore:
                raise InUse(f"volume {volume.name} is still being restored ({job.what}, started {started}): "
                            "try again in a moment")
            raise InUse(f"volume {volume.name} is busy: {job.what} (started {started}) is still running; "
                        "try again in a moment")

    def _bounded(self, volume, what, fn, deadline, required=True):
        """Run ``fn`` as the volume's job and wait for it until ``deadline``.

        Returns its result; raises what it raised. When it is still running: raises
        InUse if ``required``, else logs and returns None (it goes on; the next call on
        the volume waits for it through ``_await_job``).
        """
        job = volume.job = Job(fn, what, self._clock).start()
        if not job.wait(deadline.remaining()):
            if required:
                raise InUse(f"volume {volume.name} is not ready yet: {what} is still running "
                            "(vCenter answers slowly); try again in a moment")
            log.warning("volume %s: %s goes on in the background", volume.name, what)
            return None
        if job.error is not None:
            raise job.error
        return job.result

    @staticmethod
    def _check_same(existing, options, given):
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
        volume = self.lookup(name)
        self._await_job(volume, deadline)
        self._check_unmounted(name)
        self.store(volume.store)
        if not volume.incomplete:
            self.backups.before_remove(volume, wait=deadline.remaining())
        with self._locks.hold(name):
            volume = self.lookup(name)
            self._check_unmounted(name)
            store = self.store(volume.store, retry=False)
            self._bounded(volume, f"removing volume {name}", lambda: self._delete(store, volume), deadline)

    def _delete(self, store, volume):
        # A job: the Remove call holds the volume's lock while it waits; a deletion that
        # outlives the call goes on, and the next call on the volume waits for it.
        if volume.unclaimed_attach:
            store.detach(volume.name)   # an attach that outlived its Mount call left it attached
        store.remove(volume.name)
        self.registry.drop(volume.name)
        if self.restores is not None:
            self.restores.clear(volume.name)
        self.backups.volume_removed(volume)
        log.info("volume %s removed", volume.name)

    def _check_unmounted(self, name):
        count = self.mounts.count(name)
        if count:
            callers = len(self.mounts.callers(name))
            raise InUse(f"volume {name} is in use: mounted {count} time(s) by {callers} "
                        "container(s); stop and remove them first")

    def mount(self, name, caller):
        """Docker's Mount: attach and bind on the first mount; count every mount."""
        deadline = self.budgets.deadline("mount")
        validate_name(name)
        self._wait_ready()
        volume = self.lookup(name)
        self._await_job(volume, deadline)
        self._check_complete(volume)
        if not self.mounts.count(name):
            self.store(volume.store)   # it will be attached: its store must answer
        with self._locks.hold(name):
            volume = self.lookup(name)
            self._check_complete(volume)
            target = self.mountpoint(name)
            if self.mounts.count(name) == 0 or not self.mounter.is_mounted(target):
                store = self.store(volume.store, retry=False)
                try:
                    source = self._bounded(volume, f"attaching volume {name}", lambda: store.attach(name),
                                           deadline)
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

    @staticmethod
    def _check_complete(volume):
        if volume.incomplete:
            raise InUse(f"volume {volume.name} cannot be mounted: {volume.incomplete}")

    def unmount(self, name, caller):
        """Docker's Unmount: release one mount of ``caller``; the last one detaches (a
        detach slower than the call's budget finishes in the background). An Unmount by a
        caller with no mount recorded changes nothing."""
        deadline = self.budgets.deadline("unmount")
        validate_name(name)
        self._wait_ready()
        self._await_job(self.lookup(name), deadline)
        with self._locks.hold(name):
            volume = self.lookup(name)
            if not self.mounts.release(name, caller or ""):
                log.warning("volume %s: unmount by %s, which has no mount recorded; nothing to do",
                            name, cut(caller))
                return
            if self.mounts.count(name) == 0:
                self._release(name, deadline)
                self.backups.last_unmount(volume)

    def _release(self, name, deadline):
        self.mounter.unmount(self.mountpoint(name))
        volume = self.registry.get(name)
        if volume is not None:
            store = self.stores[volume.store]
            self._bounded(volume, f"detaching volume {name}", lambda: store.detach(name), deadline,
                          required=False)

    # --- description ---------------------------------------------------------------------
    def describe(self):
        """Stores and volumes, for ``vsphere-volume status`` (from snapshots: creates and
        removes may run meanwhile)."""
        volumes = sorted(self.registry.all(), key=lambda v: v.name)
        errors = dict(self.store_errors)
        stores = []
        for label, store in self.stores.items():
            entry = store.describe()
            entry["Default"] = label == self.default_store
            entry["Error"] = errors.get(label, "")
            entry["ListedAt"] = self.registry.listed_at.get(label)
            entry["Volumes"] = sum(1 for v in volumes if v.store == label)
            stores.append(entry)
        described = [{"Name": v.name, "VolumeStore": v.store, "Mounts": self.mounts.count(v.name),
                      "Capacity": f"{v.options.capacity_mb}MB", "Backup": v.options.backup.text}
                     for v in volumes]
        return {"Stores": stores, "Volumes": described, "Scope": self.capabilities()["Scope"],
                "Ready": self.watcher.wait_first(0)}   # every store tried once since start


def _stored(record):
    """The StoredVolume of a persisted listing record (``Volume.record``)."""
    return StoredVolume(record["Name"], dict(record.get("Metadata") or {}), record.get("CreatedAt") or "")
