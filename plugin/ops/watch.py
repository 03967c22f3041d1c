"""Looks at the state now and then, and hands what to notify to delivery."""

import logging
import threading

from .conditions import current_conditions
from .periodic import Periodic

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60   # seconds between two looks when nothing pokes the watcher


class Watcher:
    """``check()`` reads ``state()``, finds its conditions at ``clock()``, lets the
    ``notifier`` decide and passes each Notification to ``deliver``. ``poke()`` checks
    again at once (a backup just finished); otherwise every ``interval`` seconds, on a
    thread of its own (``start``/``stop``)."""

    def __init__(self, state, notifier, deliver, deadlines, clock, interval=CHECK_INTERVAL):
        self.state = state
        self.notifier = notifier
        self.deliver = deliver
        self.deadlines = deadlines
        self.clock = clock
        self._periodic = Periodic(self.check, interval, "ops-watcher")
        self._lock = threading.Lock()   # the notifier's bookkeeping is one caller's at a time

    def check(self):
        """Look once; return the Notifications handed to ``deliver``."""
        with self._lock:
            conditions = current_conditions(self.state(), self.clock(), self.deadlines)
            notifications = self.notifier.update(conditions)
        for notification in notifications:
            log.info("notifying %s about %s", notification.event, notification.subject)
            self.deliver(notification)
        return notifications

    def poke(self):
        self._periodic.poke()

    def start(self):
        self._periodic.start()
        return self

    def stop(self):
        self._periodic.stop()
