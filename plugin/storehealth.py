"""Which volume stores answer, and why the others do not.

``StoreHealth`` keeps the reason of every store that is unavailable (at start, until it
is first listed: it is being opened) and owns the ``StoreWatcher`` that opens, retries
and refreshes the stores. A call gets a store through ``require``: an unavailable store
is tried again at once and waited for at most ``RETRY_WAIT`` seconds, so the call works
as soon as vCenter (or the NFS server) answers again; otherwise it is refused with the
store's reason.
"""

import logging

from .errors import BackendError
from .storewatch import StoreWatcher

log = logging.getLogger(__name__)

OPENING = "it is being opened and listed (the plugin has just started)"
RETRY_WAIT = 15.0   # seconds a call waits for an unavailable store to be tried again


class StoreHealth:
    """``stores``: {label: VolumeStore}. ``errors``: {label: why it is unavailable};
    ``causes``: {label: the exception that said so} (absent while a store is opened)."""

    def __init__(self, stores):
        self.stores = stores
        self.errors = {label: OPENING for label in stores}
        self.causes = {}
        self.watcher = None

    def watch(self, listed, begin, known, **settings):
        """Make the StoreWatcher: ``listed(label, found, token)`` follows each listing,
        ``begin()`` and ``known(label)`` as the watcher takes them; ``settings`` its
        intervals (refresh, retry, max_retry)."""
        self.watcher = StoreWatcher(self.stores, listed, self.failed, begin, known=known, **settings)

    def failed(self, label, reason, cause=None):
        """Store ``label`` did not answer (the watcher says why, and what it raised)."""
        if self.errors.get(label) != reason:
            log.error("volume store %s is unavailable: %s", label, reason)
        self.errors[label] = reason
        if cause is not None:
            self.causes[label] = cause

    def answered(self, label):
        self.errors.pop(label, None)
        self.causes.pop(label, None)

    def available(self, label):
        return label not in self.errors

    def require(self, label, retry=True):
        """The store ``label``; raises BackendError with its reason when it is
        unavailable (after trying it again at once, when ``retry``)."""
        if label in self.errors and retry and self.watcher.retry_now(label, RETRY_WAIT):
            return self.stores[label]
        reason = self.errors.get(label)
        if reason is not None:
            raise BackendError(f"volume store {label} is unavailable: {reason}")
        return self.stores[label]

    def tried_all(self, timeout=0):
        """True once every store was tried at least once since start (within ``timeout``)."""
        return self.watcher.wait_first(timeout)
