"""Counting round trips to vCenter, per operation, and telling an observer about them.

``RoundTrips.counting()`` opens a counting scope for the current thread (and for the
threads that run a copy of its context, see ``contextvars.copy_context``): every
round trip recorded while it is open is added to the ``collections.Counter`` it yields,
keyed by SOAP method name (``CreateVirtualDisk_Task``, ``RetrievePropertiesEx``) or
``http.GET`` / ``http.PUT`` for the datastore file interface. Scopes nest: an inner
scope's trips are also counted by the outer ones. ``total`` counts everything.

``observer`` (a ``SessionObserver``: metrics) is told every round trip, and what else
the session ``tell``s it (faults, re-logins); what it raises is logged, never a call's
failure.
"""

import contextlib
import contextvars
import logging
import threading
from collections import Counter

log = logging.getLogger(__name__)


class SessionObserver:
    """What a session tells whoever watches it; this one listens to nothing."""

    def vsphere_call(self, method):
        """One round trip: a SOAP method name, or ``http.GET`` / ``http.PUT``."""

    def vsphere_fault(self, kind):
        """A fault or connection failure of type ``kind`` (``faults.fault_name``)."""

    def relogin(self):
        """A new login replaced an expired session."""


class RoundTrips:
    def __init__(self):
        self._lock = threading.Lock()
        self._scopes = contextvars.ContextVar(f"round-trip-scopes-{id(self)}", default=())
        self.total = Counter()
        self.observer = SessionObserver()

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
        """Count one round trip called ``name`` in every open scope, and tell the observer."""
        with self._lock:
            self.total[name] += 1
            for counter in self._scopes.get():
                counter[name] += 1
        self.tell("vsphere_call", name)

    def tell(self, what, *args):
        """Call the observer's method ``what`` with ``args``."""
        try:
            getattr(self.observer, what)(*args)
        except Exception:   # an observer's bug never fails a call to vCenter
            log.exception("the vSphere session's observer failed on %s", what)
