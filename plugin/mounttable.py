"""Which containers have which volumes mounted, persisted across plugin restarts.

Docker identifies each mount by the caller ``ID`` it sends with Mount and Unmount; the
same ID may mount twice, so counts are kept per ID. The table is written atomically to
``<state dir>/mounts.json`` after every change, so a plugin restart or upgrade finds it.
"""

import logging
import os
import threading

from .fsutil import atomic_write_json, read_json, remove_temp_files

log = logging.getLogger(__name__)


class MountTable:
    """``{volume: {caller_id: count}}`` with atomic persistence. Thread-safe."""

    def __init__(self, path):
        self._path = path
        self._lock = threading.Lock()
        self._mounts = {}
        self.changes = 0   # counts changes, so readers can cache what they derive

    def load(self):
        """Read the table (at start, before anything writes in its folder, whose leftover
        temporary files of interrupted writes are deleted)."""
        remove_temp_files(os.path.dirname(self._path))
        try:
            raw = read_json(self._path)
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as err:
            log.error("mount state %s is unreadable (%s); starting with no mounts recorded", self._path, err)
            raw = {}
        self._mounts = {
            name: {str(caller): int(count) for caller, count in callers.items() if int(count) > 0}
            for name, callers in raw.items() if isinstance(callers, dict)
        }
        self._mounts = {name: callers for name, callers in self._mounts.items() if callers}
        self.changes += 1

    def _save(self):
        self.changes += 1
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        atomic_write_json(self._path, self._mounts)

    def names(self):
        with self._lock:
            return list(self._mounts)

    def count(self, name):
        """Total active mounts of ``name`` over all callers."""
        return sum(self._mounts.get(name, {}).values())

    def callers(self, name):
        return dict(self._mounts.get(name, {}))

    def add(self, name, caller):
        with self._lock:
            callers = self._mounts.setdefault(name, {})
            callers[caller] = callers.get(caller, 0) + 1
            self._save()

    def release(self, name, caller):
        """Drop one mount of ``caller``; return False if it held none."""
        with self._lock:
            callers = self._mounts.get(name, {})
            if caller not in callers:
                return False
            callers[caller] -= 1
            if callers[caller] <= 0:
                del callers[caller]
            if not callers:
                self._mounts.pop(name, None)
            self._save()
            return True

    def forget(self, name):
        with self._lock:
            if self._mounts.pop(name, None) is not None:
                self._save()
