"""What the stores hold, followed into the plugin's registry of volumes.

``Discovery`` turns what stores list into ``registry.Volume``s: at start from the
persisted listings (``load``: Get and List answer at once), then from each listing the
``StoreWatcher`` makes (``listed``: new volumes appear, volumes gone from the store go
unless mounted here, changed metadata is taken), from a store that follows its own
changes (``sync_store``: a VCH's), and from one bounded look at the stores for a name
not known here (``look_up``: a volume another host made). A name changed by this plugin
after a listing began keeps what the change gave it (``registry.changed_since``).

A volume's options come from its DockerMetaData; the store it was found in is where it
lives. Options that cannot be used are a Problem, shown in Status, with defaults; a
volume whose restore did not finish (``restoremarks``) is shown incomplete.
"""

import logging

from .errors import InvalidOption
from .jobs import Job
from .options import VOLUME_STORE, parse_options, without
from .registry import Volume
from .stores.base import StoredVolume
from .timefmt import rfc3339

log = logging.getLogger(__name__)

LOOKUP_WAIT = 10.0    # seconds a Get waits for the stores to look up a name not known here


def stored_of(record):
    """The StoredVolume of a persisted listing record (``Volume.record``)."""
    return StoredVolume(record["Name"], dict(record.get("Metadata") or {}), record.get("CreatedAt") or "")


def incomplete_reason(mark):
    """What Status and Mount say of a volume whose restore (``mark``) did not finish."""
    return (f"its restore from {mark['From']} (started {mark['Started']}) did not finish: run the same "
            f"docker volume create again (RestoreFrom={mark['From']}) to finish it, or remove the volume")


class Discovery:
    """See the module docstring.

    ``stores``: {label: VolumeStore}; ``registry``: VolumeRegistry; ``health``:
    StoreHealth; ``locks``: the driver's NameLocks; ``marks``: RestoreMarks or None;
    ``backups``: the backup seam (schedules); ``mount_table``: MountTable (a mounted
    volume never goes); ``clock``: aware now; ``first_listed(label)``: called once per
    store, after its first listing by this process.
    """

    def __init__(self, stores, registry, health, locks, marks, backups, mount_table, clock, first_listed):
        self.stores = stores
        self.registry = registry
        self.health = health
        self.locks = locks
        self.marks = marks
        self.backups = backups
        self.mount_table = mount_table
        self.clock = clock
        self.first_listed = first_listed
        self._listed_once = set()

    # --- what is known already --------------------------------------------------------------
    def load(self):
        """Register the volumes of every store's persisted listing (no store I/O)."""
        for label in self.stores:
            for record in self.registry.load_listing(label):
                self.adopt(label, stored_of(record), persist=False)

    def known_of(self, label):
        """{name: StoredVolume} of store ``label`` as the registry knows it."""
        return {v.name: stored_of(v.record()) for v in self.registry.of_store(label)}

    # --- listings ------------------------------------------------------------------------------
    def listed(self, label, found, token):
        """Store ``label`` listed ``found`` (StoredVolumes, a listing begun at ``token``)."""
        listed = {stored.name: stored for stored in found}
        for name in sorted(set(listed) | {v.name for v in self.registry.of_store(label)}):
            with self.locks.hold(name):
                if not self.registry.changed_since(token, name):
                    self._follow(label, name, listed.get(name))
        self._drop_marks_without_volume(label)
        self.registry.listed(label, rfc3339(self.clock()))
        self.health.answered(label)
        if label not in self._listed_once:
            self._listed_once.add(label)
            log.info("volume store %s (%s): %d volume(s)", label, self.stores[label].spec.spec, len(found))
            self.first_listed(label)

    def sync_store(self, label, names, lookup):
        """A store that follows its own changes (``refreshes_itself``: a VCH's) lists
        ``names`` now; ``lookup(name)`` gives each one's StoredVolume (from memory)."""
        if not self.health.available(label):
            return   # not opened yet, or unavailable: the watcher lists it when it answers
        token = self.registry.begin()
        self.listed(label, [s for s in map(lookup, names) if s is not None], token)

    def _follow(self, label, name, stored):
        volume = self.registry.get(name)
        if stored is None:
            if volume is not None and volume.store == label and not self.mount_table.count(name) \
                    and (volume.job is None or volume.job.done):
                self.registry.drop(name, persist=False)
                self.backups.volume_removed(volume)
                log.info("volume %s is gone from volume store %s", name, label)
            return
        if volume is None:
            self.adopt(label, stored, persist=False)
        elif volume.store != label:
            log.warning("volume %s exists in stores %s and %s; using the one in %s",
                        name, volume.store, label, volume.store)
        elif (volume.metadata, volume.found_problem, volume.created_at) != \
                (stored.metadata or {}, stored.problem, stored.created_at):
            self.adopt(label, stored, persist=False, keep=volume)

    def _drop_marks_without_volume(self, label):
        """A restore mark of a volume the store does not have: its create never happened."""
        for name in self.marks.names() if self.marks is not None else []:
            if (self.marks.get(name) or {}).get("Store") == label and self.registry.get(name) is None:
                self.marks.clear(name)

    # --- one name ---------------------------------------------------------------------------
    def look_up(self, name):
        """A volume another host made since the stores were listed: asked of every
        available store that others share, in a job awaited at most LOOKUP_WAIT; its
        Volume, or None."""
        stores = [s for label, s in self.stores.items() if s.shared and self.health.available(label)]
        if not stores:
            return None
        token = self.registry.begin()

        def look():
            for store in stores:
                stored = store.lookup(name)
                if stored is None:
                    continue
                with self.locks.hold(name):
                    if self.registry.get(name) is None and not self.registry.changed_since(token, name):
                        log.info("volume %s was made in volume store %s by another host", name, store.label)
                        return self.adopt(store.label, stored)
                    return self.registry.get(name)
            return None

        job = Job(look, f"looking up volume {name}", self.clock).start()
        if not job.wait(LOOKUP_WAIT):
            log.warning("volume %s: looking it up on the stores goes on in the background", name)
            return None
        if job.error is not None:
            log.warning("volume %s: looking it up on the stores failed: %s", name, job.error)
        return job.result

    def adopt(self, label, stored, persist=True, keep=None):
        """Register the volume ``stored`` found in store ``label``; return its Volume.
        ``keep``: the Volume it replaces (its jobs carry over)."""
        # Where it was found is where it lives, whatever was recorded.
        given = without((stored.metadata or {}).get("DriverOpts"), VOLUME_STORE)
        problem = stored.problem
        try:
            options = parse_options(given, self.stores, default_store=label)
        except InvalidOption as err:
            problem = problem or f"recorded options not usable ({err}); using defaults"
            options = parse_options({}, self.stores, default_store=label)
        volume = Volume(stored.name, label, options, stored.created_at, problem,
                        metadata=stored.metadata or {}, found_problem=stored.problem)
        if keep is not None:
            volume.job, volume.restore, volume.unclaimed_attach = keep.job, keep.restore, keep.unclaimed_attach
        mark = self.marks.get(stored.name) if self.marks is not None else None
        if mark and (volume.job is None or volume.job.done):
            volume.incomplete = incomplete_reason(mark)
        self.registry.add(volume, persist=persist)
        if not volume.incomplete:
            self.schedule(volume)
        return volume

    def schedule(self, volume):
        """Tell the backups of a complete volume; a policy that cannot be followed is its Problem."""
        try:
            self.backups.volume_added(volume)
        except Exception as err:  # noqa: BLE001 - one volume's policy must not stop the others
            volume.problem = volume.problem or f"its backup schedule cannot be followed: {err}"
            log.error("volume %s: %s", volume.name, volume.problem)
