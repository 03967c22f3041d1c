"""The plugin's link to one VCH, shared by every VCH store of the plugin.

``VchConnection`` wraps the ``VchClient`` and keeps what the plugin knows of the VCH:

- **the names it last listed**, with the time of that listing (``ListedAt``), persisted in
  ``<state folder>/vch-listing.json`` (for the same ``VCH_URL`` only), so that a plugin
  restarted while the VCH is unreachable still lists its volumes. Creates and removes made
  through this plugin update the names at once;
- **whether it answers**: the outcome of the last call (any call: a listing, a create, a
  remove). An answer with an error (``VchRefused``) counts as answering. Status shows it
  (``status``): ``Reachable``, ``ListedAt``, ``Error`` and ``Stale`` (true while the
  VCH does not answer or was never listed: what is shown may be out of date);
- **the refresher**: a daemon thread that every ``interval`` seconds lists the VCH once,
  then has every followed store re-join that listing (``VchStore.apply``) and calls the
  listener (the driver's ``sync_store``) for each. The stores read their datastore again
  only when the listing has a name no store shows and that was not already found in none
  of them, so a steady VCH costs one listing per interval. A failed listing changes
  nothing but the status: the stores keep answering from what they have.

A listing that began before a change made here must not undo it: ``registry.Touches`` numbers
the changes, and a listing's result is merged so that every name changed after the
listing began keeps the state the change gave it.
"""

import logging
import os
import threading
from datetime import datetime

from ..errors import VolumeError
from ..fsutil import atomic_write_json, read_json
from ..registry import Touches
from .client import VchError, VchRefused
from ..timefmt import rfc3339, utc_now

log = logging.getLogger(__name__)

LISTING_FILE = "vch-listing.json"
REFRESH_INTERVAL = 30.0   # seconds between background listings




class VchConnection:
    """See the module docstring. ``client``: a VchClient; ``path``: the persisted listing;
    ``clock()``: aware now; ``thread``: False to never start the refresher (tests call
    ``refresh_all`` themselves)."""

    def __init__(self, client, path, clock=utc_now, interval=REFRESH_INTERVAL, thread=True):
        self.client = client
        self.url = client.url
        self.path = path
        self.clock = clock
        self.interval = interval
        self._threaded = thread
        self._lock = threading.Lock()
        self._names = None              # {name: True} as of the last listing; None: never listed
        self._listed_at = None
        self._touches = Touches()
        self._reachable = None          # outcome of the last call; None: no call yet
        self._error = ""
        self._loaded = False
        self._stores = []
        self._listener = None
        self._unplaced = set()          # listed names in none of the stores at the last full refresh
        self._thread = None
        self._stop = threading.Event()

    # --- what the VCH has -----------------------------------------------------------------
    def load(self):
        """Read the persisted listing once, if it is of this VCH (later calls do nothing)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            try:
                saved = read_json(self.path)
            except FileNotFoundError:
                return
            except (OSError, ValueError) as err:
                log.warning("the saved listing of the VCH in %s is unreadable (%s): ignoring it", self.path, err)
                return
            if not isinstance(saved, dict) or saved.get("URL") != self.url or self._names is not None:
                return
            self._names = {str(name): True for name in saved.get("Names") or []}
            try:
                self._listed_at = datetime.fromisoformat(str(saved.get("ListedAt")).replace("Z", "+00:00"))
            except ValueError:
                self._listed_at = None

    def list_names(self):
        """List the VCH now; return the set of its volume names. Raises VchError."""
        with self._lock:
            start = self._touches.begin()
        names = self._call(self.client.list_names)
        with self._lock:
            self._names = self._touches.merge(start, dict.fromkeys(names, True), self._names or {})
            self._listed_at = self.clock()
            self._save()
            return set(self._names)

    def last_names(self):
        """The names as of the last listing (and changes made here since), or None when
        the VCH was never listed."""
        with self._lock:
            return None if self._names is None else set(self._names)

    def exists(self, name):
        return self._call(self.client.exists, name)

    def create(self, name, options):
        self._call(self.client.create, name, options)
        self._note(name, True)

    def remove(self, name):
        """Remove volume ``name`` on the VCH; False when it had no such volume."""
        removed = self._call(self.client.remove, name)
        self._note(name, False)
        return removed

    def _note(self, name, present):
        with self._lock:
            self._touches.touch(name)
            if self._names is None:
                return
            if present:
                self._names[name] = True
            else:
                self._names.pop(name, None)
            self._save()

    def _save(self):
        """Persist the listing (called under the lock); a failure is logged only."""
        listed = {"URL": self.url, "ListedAt": rfc3339(self._listed_at) if self._listed_at else "",
                  "Names": sorted(self._names or {})}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            atomic_write_json(self.path, listed)
        except OSError as err:
            log.warning("cannot save the listing of the VCH in %s: %s", self.path, err)

    # --- whether it answers -----------------------------------------------------------------
    def _call(self, method, *args):
        try:
            result = method(*args)
        except VchRefused:
            self._answered()
            raise
        except VchError as err:
            with self._lock:
                was, self._reachable, self._error = self._reachable, False, str(err)
            if was is not False:
                log.warning("%s; answering from the volumes listed at %s until it answers again", err,
                            self.status()["ListedAt"] or "(never listed)")
            raise
        self._answered()
        return result

    def _answered(self):
        with self._lock:
            was, self._reachable, self._error = self._reachable, True, ""
        if was is False:
            log.info("the VCH at %s answers again", self.url)

    def status(self):
        """What ``docker volume inspect`` shows under Status.VCH (memory only)."""
        with self._lock:
            return {
                "URL": self.url,
                "Reachable": self._reachable,
                "ListedAt": rfc3339(self._listed_at) if self._listed_at else "",
                "Stale": self._reachable is not True or self._listed_at is None,
                "Error": self._error,
            }

    # --- following the VCH in the background ------------------------------------------------
    def bind(self, listener):
        """``listener(label, names, lookup)`` is called after each store's refresh."""
        self._listener = listener

    def follow(self, store):
        """Refresh ``store`` (a VchStore that discovered its volumes) from now on; starts
        the refresher thread with the first store."""
        with self._lock:
            if store not in self._stores:
                self._stores.append(store)
            if self._thread is None and self._threaded:
                self._thread = threading.Thread(target=self._run, name="vch-refresh", daemon=True)
                self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.refresh_all()
            except Exception:
                log.exception("refreshing the volumes of the VCH at %s failed", self.url)

    def refresh_all(self):
        """One listing; each followed store re-joins it, then the listener follows the store.
        Returns False when the VCH did not answer (nothing but the status changed)."""
        with self._lock:
            stores = list(self._stores)
        starts = [(store, store.begin()) for store in stores]
        try:
            names = self.list_names()
        except VchError:
            return False
        shown_before = {name for store in stores for name in store.names()}
        rediscover = bool(names - shown_before - self._unplaced)
        placed, complete = set(), True
        for store, start in starts:
            try:
                store.apply(start, names, rediscover)
            except VolumeError as err:
                log.warning("volume store %s: its volumes could not be refreshed: %s", store.label, err)
                complete = False
                continue
            shown = store.names()
            placed.update(shown)
            if self._listener is not None:
                self._listener(store.label, shown, store.lookup)
        if rediscover and complete:
            unplaced, self._unplaced = names - placed - self._unplaced, names - placed
            if unplaced and stores:
                log.warning("the VCH at %s has volume(s) %s in none of this plugin's VCH volume stores: they are "
                            "not shown here (VOLUME_STORES should list the VCH's --volume-store entries)",
                            self.url, ", ".join(sorted(unplaced)))
        return True
