"""The one object the product holds for operations: ``Ops``.

    ops = Ops(ops_settings_from_env(env), state=snapshot, tz=settings.tz)
    ops.start()                 # after discovery; never raises for a bad setting
    ops.metrics.backup_finished("local", "scheduled", "ok", 12.5, added=4096)
    ...
    ops.stop()

``state`` is the product's callable returning an ``ops.state.OpsState`` from memory.
``ops.errors`` says which settings were refused or could not be served (a port in use)
and why, for the product's status; nothing of it carries a URL.
"""

import logging
import socket

from ..errors import ConfigError
from ..timefmt import utc_now
from .delivery import Delivery, read_destinations
from .metrics import Metrics
from .notify import Notifier
from .serving import MetricsServer, TextfileWriter
from .stale import DeadlineCache
from .watch import CHECK_INTERVAL, Watcher

log = logging.getLogger(__name__)


class Ops:
    """Metrics, their serving, and notifications, as ``settings`` (an OpsSettings) ask.

    Collaborators are injected for tests: ``clock`` (aware now), ``host`` (the name in
    notifications), ``senders`` and ``wait`` (for ``Delivery``), ``check_interval``.
    """

    def __init__(self, settings, state, tz=None, clock=utc_now, host=None, senders=None, wait=None,
                 check_interval=CHECK_INTERVAL):
        self.settings = settings
        self.errors = dict(settings.errors)
        self.deadlines = DeadlineCache(tz, settings.stale_grace)
        self.metrics = Metrics(state, self.deadlines)
        self.server = self.textfile = self.delivery = self.watcher = None
        destinations = self._destinations()
        if destinations:
            self.delivery = Delivery(destinations, senders=senders, wait=wait, on_result=self.metrics.notification)
            notifier = Notifier(clock, host=socket.gethostname() if host is None else host)
            self.watcher = Watcher(state, notifier, self.delivery.submit, self.deadlines, clock, check_interval)
            self.metrics.on_change = self.watcher.poke

    def _destinations(self):
        path = self.settings.notify_urls_file
        if not path:
            return []
        try:
            destinations = read_destinations(path)
        except ConfigError as err:
            self.errors["NOTIFY_URLS_FILE"] = f"{err}; notifications are off"
            return []
        if not destinations:
            log.warning("NOTIFY_URLS_FILE %s names no URL: notifications are off", path)
        return destinations

    def start(self):
        """Start what the settings ask for; a part that cannot start is recorded in
        ``errors`` and logged, and the others start all the same."""
        address = self.settings.metrics_address
        if address is not None:
            try:
                self.server = MetricsServer(self.metrics.render, *address).start()
                log.info("metrics at %s", self.server.url)
            except OSError as err:
                self.server = None
                self.errors["METRICS_ADDRESS"] = (
                    f"METRICS_ADDRESS={address[0]}:{address[1]}: cannot listen there: {err.strerror or err}; "
                    "metrics are not served")
        if self.settings.textfile_dir:
            self.textfile = TextfileWriter(self.metrics.registry, self.settings.textfile_dir,
                                           self.settings.textfile_interval).start()
        if self.delivery is not None:
            self.delivery.start()
            self.watcher.start()
        for key, message in sorted(self.errors.items()):
            log.error("%s: %s", key, message)
        return self

    def stop(self):
        for part in (self.watcher, self.delivery, self.textfile, self.server):
            if part is not None:
                part.stop()
