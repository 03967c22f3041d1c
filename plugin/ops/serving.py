"""Where the series go: ``/metrics`` over HTTP, and node_exporter's textfile.

``MetricsServer`` is prometheus_client's threading HTTP server on its own daemon
thread: a scrape runs on a thread of its own and shares nothing with the plugin
socket's request threads but the GIL and the state callable (which reads memory).

``TextfileWriter`` writes the same text to ``<folder>/vsphere_volume.prom`` every
``interval`` seconds, for hosts where no port may be opened, atomically with
prometheus_client's ``write_to_textfile`` (a temp file whose name node_exporter ignores,
renamed over the old one). Not ``plugin.fsutil.atomic_write``: its temp file is made by
``mkstemp`` with mode 0600, and node_exporter (often running as ``nobody``) could not
read the file renamed from it; a metrics file needs no fsync either.
"""

import logging
import os

from prometheus_client import start_http_server, write_to_textfile

from .periodic import Periodic

log = logging.getLogger(__name__)

TEXTFILE_NAME = "vsphere_volume.prom"


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` (port 0: any free one)."""

    def __init__(self, registry, host, port):
        self.registry = registry
        self.host = host
        self.port = port
        self._httpd = self._thread = None

    def start(self):
        """Listen now; raises OSError when the address cannot be bound."""
        self._httpd, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = self._httpd.server_address[1]
        return self

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(10)
            self._httpd = self._thread = None


class TextfileWriter:
    """Writes ``registry`` to ``folder/vsphere_volume.prom`` every ``interval`` seconds.

    A failed write is logged when it first happens and when its reason changes (not
    every interval), and once more when writing works again.
    """

    def __init__(self, registry, folder, interval=30):
        self.registry = registry
        self.path = os.path.join(folder, TEXTFILE_NAME)
        self._periodic = Periodic(self.write, interval, "metrics-textfile")
        self._failing = None

    def write(self):
        """Write the file once; True when it was written."""
        try:
            write_to_textfile(self.path, self.registry)
        except OSError as err:
            reason = f"{type(err).__name__}: {err.strerror or err}"
            if reason != self._failing:
                log.error("cannot write the metrics textfile %s: %s (trying again every %s s)",
                          self.path, reason, self._periodic.interval)
            self._failing = reason
            return False
        if self._failing is not None:
            log.info("the metrics textfile %s is written again", self.path)
            self._failing = None
        return True

    def start(self):
        self._periodic.start()
        return self

    def stop(self):
        self._periodic.stop()
        self.write()   # the last state, so the file is not older than it must be
