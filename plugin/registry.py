"""The volumes the plugin knows: what Get, List and Path answer from, without any I/O
on vCenter or a store.

``VolumeRegistry`` holds one ``Volume`` per name and the last known listing of every
store, persisted (``StoreListings``: ``<state dir>/listings/<label>.json``, written
atomically on every change), so that a plugin restarted while vCenter or an NFS server
does not answer still lists and shows the volumes it had.

Every registration and removal is numbered (``Touches``): a store listing that began
before a change made here must not undo it (``changed_since``).
"""

import logging
import os
import threading
from dataclasses import dataclass, field

from .errors import cut
from .fsutil import atomic_write_json, read_json, remove_temp_files

log = logging.getLogger(__name__)


@dataclass
class Volume:
    """A volume the plugin knows: where it lives and its validated options."""

    name: str
    store: str
    options: object      # options.VolumeOptions
    created_at: str = ""
    problem: str = ""    # what is wrong with it, for Status (its store's word, or its options')
    found_problem: str = ""   # what its store said was wrong when it was last listed
    metadata: dict = field(default_factory=dict)   # its DockerMetaData as the store holds it
    job: object = None       # jobs.Job of its last slow step: restore (RestoreFrom), attach, detach
    restore: object = None   # the Job that filled it from a backup (RestoreFrom), for Status
    incomplete: str = ""     # why it must not be used yet: a restore that did not finish
    unclaimed_attach: bool = False   # an attach outlived its Mount call; nobody mounted it since

    def record(self):
        """What the store listing keeps of it (``StoreListings``)."""
        return {"Name": self.name, "Metadata": self.metadata, "CreatedAt": self.created_at}


class Touches:
    """Names changed here, numbered, so that a listing begun before a change does not
    undo it. Not thread-safe: its owner calls it under its own lock. It keeps one number
    per name ever changed here (the latest), so listings may overlap in any order."""

    def __init__(self):
        self._seq = 0
        self._at = {}

    def begin(self):
        """The token of a listing that begins now."""
        return self._seq

    def touch(self, name):
        self._seq += 1
        self._at[name] = self._seq

    def since(self, start, name):
        """True when ``name`` was changed after the listing of token ``start`` began."""
        return self._at.get(name, 0) > start

    def merge(self, start, listed, current):
        """``listed`` (a dict from a listing begun at token ``start``) with every name
        touched since then as it is in ``current`` (present with its value, or absent)."""
        merged = dict(listed)
        for name, at in self._at.items():
            if at <= start:
                continue
            if name in current:
                merged[name] = current[name]
            else:
                merged.pop(name, None)
        return merged


class StoreListings:
    """The last known listing of each store, one JSON file per store label."""

    def __init__(self, folder):
        self.folder = folder
        remove_temp_files(folder)   # built at start: what interrupted writes left

    def _path(self, label):
        return os.path.join(self.folder, f"{label}.json")

    def load(self, label):
        """(listed at, [record]) as last saved; (None, []) when never saved or unreadable."""
        try:
            data = read_json(self._path(label))
            records = [r for r in data.get("Volumes", []) if isinstance(r, dict) and r.get("Name")]
            return data.get("ListedAt") or None, records
        except FileNotFoundError:
            return None, []
        except (OSError, ValueError, AttributeError) as err:
            log.error("the last listing of volume store %s (%s) is unreadable: %s", label,
                      self._path(label), cut(err))
            return None, []

    def save(self, label, listed_at, records):
        try:
            os.makedirs(self.folder, exist_ok=True)
            atomic_write_json(self._path(label), {"ListedAt": listed_at, "Volumes": records})
        except OSError as err:
            log.error("cannot save the listing of volume store %s: %s", label, err)


class VolumeRegistry:
    """``{name: Volume}`` with the stores' listings persisted. Thread-safe.

    ``listings``: a StoreListings (None: nothing persisted). ``listed_at[label]`` is when
    store ``label`` was last listed (from the store itself, or as persisted).
    """

    def __init__(self, listings=None):
        self._listings = listings
        self._volumes = {}
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._touches = Touches()
        self.listed_at = {}
        self.changes = 0          # counts writes: List's cache key (with the mount table's)

    # --- reads ---------------------------------------------------------------------------
    def get(self, name):
        """The Volume called ``name``, or None."""
        return self._volumes.get(name)

    def all(self):
        """A snapshot of every Volume."""
        with self._lock:
            return list(self._volumes.values())

    def names(self):
        with self._lock:
            return list(self._volumes)

    def of_store(self, label):
        with self._lock:
            return [v for v in self._volumes.values() if v.store == label]

    # --- writes ----------------------------------------------------------------------------
    def add(self, volume, persist=True):
        """Register ``volume`` (replacing one of that name). ``persist`` False: the caller
        changes many at once and persists them with ``listed``."""
        with self._lock:
            self._volumes[volume.name] = volume
            self._touches.touch(volume.name)
            self.changes += 1
        if persist:
            self._persist(volume.store)

    def drop(self, name, persist=True):
        """Forget ``name``; return its Volume (None when unknown)."""
        with self._lock:
            volume = self._volumes.pop(name, None)
            self._touches.touch(name)
            self.changes += 1
        if volume is not None and persist:
            self._persist(volume.store)
        return volume

    def begin(self):
        """The token of a store listing that begins now (``changed_since``)."""
        with self._lock:
            return self._touches.begin()

    def changed_since(self, token, name):
        with self._lock:
            return self._touches.since(token, name)

    # --- the persisted listings ----------------------------------------------------------------
    def load_listing(self, label):
        """[record] of store ``label`` as last persisted; sets ``listed_at[label]``."""
        if self._listings is None:
            return []
        listed_at, records = self._listings.load(label)
        self.listed_at[label] = listed_at
        return records

    def listed(self, label, when):
        """Store ``label`` was just listed from the store itself (at ``when``, RFC 3339)."""
        self.listed_at[label] = when
        self._persist(label)

    def _persist(self, label):
        if self._listings is None:
            return
        with self._save_lock:   # the newest state is the one saved last
            with self._lock:
                records = [v.record() for v in self._volumes.values() if v.store == label]
            self._listings.save(label, self.listed_at.get(label), records)
