"""Keeps the plugin's view of its stores current, off Docker's request path.

``StoreWatcher`` runs one daemon thread per volume store:

- at start it opens the store and lists its volumes (``open_all`` waits for every store
  at most ``open_budget`` seconds: a store that answers later is picked up when it does);
- a store that cannot be opened or listed (vCenter unreachable, a wrong URL, an NFS
  server down, a corrupt file, any exception) is reported with its reason and tried
  again every ``retry`` seconds, doubling up to ``max_retry``, until it answers: it is
  picked up again without a restart. A call that needs it (Mount, Create, Remove) has
  it tried at once (``retry_now``), so the user's command works as soon as it answers;
- a shared store (a datastore, an NFS export: other hosts create and remove volumes
  there) is listed again every ``refresh`` seconds, so volumes made elsewhere appear.

What a listing means is the listener's (the driver's ``store_listed`` and
``store_failed``); the watcher only decides when to list. A failure of one store never
touches the others.
"""

import logging
import threading
import time

from .errors import cut

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
RETRY_SECONDS = 15.0
MAX_RETRY_SECONDS = 120.0
OPEN_BUDGET_SECONDS = 60.0


def describe_failure(err):
    """A one-line reason for a store's failure, whatever was raised."""
    text = cut(str(err).strip() or type(err).__name__, 400)
    if isinstance(err, Exception) and not type(err).__module__.startswith("plugin"):
        return f"{type(err).__name__}: {text}"
    return text


class StoreWatcher:
    """See the module docstring.

    ``stores``: {label: VolumeStore}; ``listed(label, found, token)`` is told every
    listing (``found``: the store's StoredVolumes, ``token``: ``begin()`` taken before
    the listing started); ``failed(label, reason, error)`` every failure; ``begin()`` returns
    the token of a listing that starts now; ``known(label)`` what is known of the
    store's volumes already ({name: StoredVolume}, for the store to reuse).
    """

    def __init__(self, stores, listed, failed, begin, known=lambda label: {},
                 refresh=REFRESH_SECONDS, retry=RETRY_SECONDS, max_retry=MAX_RETRY_SECONDS):
        self.stores = stores
        self._listed = listed
        self._failed = failed
        self._begin = begin
        self._known = known
        self.refresh = refresh
        self.retry = retry
        self.max_retry = max_retry
        self._opened = set()
        self._listed_once = set()
        self._first = {label: threading.Event() for label in stores}
        self._locks = {label: threading.Lock() for label in stores}
        self._wake = {label: threading.Event() for label in stores}
        self._attempts = {label: 0 for label in stores}      # attempts ended, per store
        self._answered = {label: False for label in stores}  # how the last one ended
        self._ended = threading.Condition()
        self._stop = threading.Event()
        self._threads = []

    # --- one attempt -------------------------------------------------------------------------
    def attempt(self, label):
        """Open store ``label`` if it is not open yet and list it; True when it answered."""
        store = self.stores[label]
        with self._locks[label]:
            try:
                try:
                    if label not in self._opened:
                        store.open()
                        self._opened.add(label)
                    token = self._begin()
                    if label in self._listed_once:
                        found = store.refresh(self._known(label))
                    else:
                        found = store.discover(known=self._known(label))
                        self._listed_once.add(label)
                except Exception as err:  # noqa: BLE001 - whatever one store raises is that store's failure
                    self._failed(label, describe_failure(err), err)
                    return self._ended_with(label, False)
                self._listed(label, found, token)
                return self._ended_with(label, True)
            finally:
                self._first[label].set()

    def _ended_with(self, label, answered):
        with self._ended:
            self._attempts[label] += 1
            self._answered[label] = answered
            self._ended.notify_all()
        return answered

    def retry_now(self, label, timeout):
        """Have the store's thread try store ``label`` again now (a call needs it) and
        wait at most ``timeout`` seconds for that attempt; True when the store answered."""
        with self._ended:
            before = self._attempts[label]
        self._wake[label].set()
        end = time.monotonic() + timeout
        with self._ended:
            while self._attempts[label] == before:
                left = end - time.monotonic()
                if left <= 0 or not self._ended.wait(left):
                    return False
            return self._answered[label]

    # --- the threads ---------------------------------------------------------------------------
    def start(self):
        for label in self.stores:
            thread = threading.Thread(target=self._run, args=(label,), name=f"store-{label}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def wait_first(self, timeout, labels=None):
        """Wait until every store (of ``labels``) was tried once, at most ``timeout``
        seconds; True when all were."""
        end = time.monotonic() + timeout
        events = [self._first[label] for label in (self._first if labels is None else labels)]
        return all(event.wait(max(0.0, end - time.monotonic())) for event in events)

    def stop(self):
        self._stop.set()
        for wake in self._wake.values():
            wake.set()

    def _run(self, label):
        delay = self.retry
        store = self.stores[label]
        while not self._stop.is_set():
            self._wake[label].clear()
            if self.attempt(label):
                delay = self.retry
                follow = store.shared and not store.refreshes_itself and self.refresh
                wait = self.refresh if follow else None   # None: until a call asks (retry_now)
            else:
                wait, delay = delay, min(delay * 2, self.max_retry)
            self._wake[label].wait(wait)
