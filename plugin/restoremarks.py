"""Restores into new volumes (``RestoreFrom``) that have not finished, persisted.

A volume created ``RestoreFrom`` a backup is listed at once (Docker's Create answers
while a long restore goes on), so a crash of the plugin mid-restore would leave a listed
volume with part of the data or none. The mark is written before the volume is created
and dropped once the restore is complete: after a restart a marked volume is shown as
incomplete (Status, and Mount refuses with the reason), and the same create again
finishes the restore. ``<state dir>/restores.json``: ``{name: {"From", "Store", "Started"}}``.
"""

import logging
import os
import threading

from .errors import BackendError
from .fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)


class RestoreMarks:
    """The marks, kept in memory and written atomically on every change. Thread-safe."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._marks = {}

    def load(self):
        try:
            data = read_json(self.path)
            self._marks = {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
        except FileNotFoundError:
            self._marks = {}
        except (OSError, ValueError, AttributeError) as err:
            log.error("the record of unfinished restores %s is unreadable (%s): volumes being "
                      "restored when the plugin stopped are shown as complete", self.path, err)
            self._marks = {}

    def get(self, name):
        """The mark of ``name`` ({"From", "Store", "Started"}) or None."""
        with self._lock:
            mark = self._marks.get(name)
            return dict(mark) if mark else None

    def names(self):
        with self._lock:
            return list(self._marks)

    def mark(self, name, source, store, started):
        """Record that ``name`` is being restored from ``source`` (``volume@backup``);
        raises BackendError when it cannot be recorded (nothing is created then)."""
        with self._lock:
            self._marks[name] = {"From": source, "Store": store, "Started": started}
            try:
                self._save()
            except OSError as err:
                del self._marks[name]
                raise BackendError(f"volume {name} was not created: the plugin cannot record its restore "
                                   f"in {self.path} ({err.strerror or err})") from None

    def clear(self, name):
        with self._lock:
            if self._marks.pop(name, None) is not None:
                self._save()

    def _save(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        atomic_write_json(self.path, self._marks)
