"""A function run on its own thread every ``interval`` seconds, or at once when poked."""

import logging
import threading

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``fn()`` every ``interval`` seconds on a daemon thread named ``name``.

    ``poke()`` runs it again as soon as the current run (if any) ends; an exception is
    logged and the next run happens all the same. ``stop()`` ends the thread after the
    run in progress.
    """

    def __init__(self, fn, interval, name):
        self.fn = fn
        self.interval = interval
        self.name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def poke(self):
        self._wake.set()

    def _loop(self):
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.fn()
            except Exception:   # never let the thread die; the next run may succeed
                log.exception("%s failed", self.name)
            self._wake.wait(self.interval)

    def stop(self, timeout=10):
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
