"""Counting round trips to vCenter, per operation.

``RoundTrips.counting()`` opens a counting scope for the current thread (and for the
threads that run a copy of its context, see ``contextvars.copy_context``): every
round trip recorded while it is open is added to the ``collections.Counter`` it yields,
keyed by SOAP method name (``CreateVirtualDisk_Task``, ``RetrievePropertiesEx``) or
``http.GET`` / ``http.PUT`` for the datastore file interface. Scopes nest: an inner
scope's trips are also counted by the outer ones. ``total`` counts everything.
"""

import contextlib
import contextvars
import threading
from collections import Counter


class RoundTrips:
    def __init__(self):
        self._lock = threading.Lock()
        self._scopes = contextvars.ContextVar(f"round-trip-scopes-{id(self)}", default=())
        self.total = Counter()

    @contextlib.contextmanager
    def counting(self):
        """Yield a Counter of the round trips made until the block ends."""
        counter = Counter()
        token = self._scopes.set(self._scopes.get() + (counter,))
        try:
            yield counter
        finally:
            self._scopes.reset(token)

    def record(self, name):
        """Count one round trip called ``name`` in every open scope."""
        with self._lock:
            self.total[name] += 1
            for counter in self._scopes.get():
                counter[name] += 1
