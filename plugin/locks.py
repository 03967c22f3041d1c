"""Per-name locks: calls for one volume are serialized, different volumes run in parallel.

The locks are re-entrant: a thread holding a volume's lock (removing it) may take it again
(the final backup of that volume).
"""

import threading
from contextlib import contextmanager


class NameLocks:
    """A lock per name, created on first use and dropped when nobody holds or waits for it."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}  # name -> [lock, users]

    def users(self, name):
        """How many callers hold or wait for ``name``'s lock now."""
        with self._guard:
            entry = self._locks.get(name)
            return entry[1] if entry else 0

    @contextmanager
    def hold(self, name):
        with self._guard:
            entry = self._locks.setdefault(name, [threading.RLock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[name]


class SharedLock:
    """Shared and exclusive holds of one thing: any number of ``shared()`` holders at once,
    or one ``exclusive()`` holder alone. A waiting exclusive hold goes before new shared
    ones (it is never starved by a stream of them). Not re-entrant."""

    def __init__(self):
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0     # exclusive holds waiting

    @contextmanager
    def shared(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextmanager
    def exclusive(self):
        with self._changed:
            self._waiting += 1
            try:
                self._changed.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()
