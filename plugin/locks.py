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
