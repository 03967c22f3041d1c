"""Where the series go: ``/metrics`` over HTTP, and node_exporter's textfile.

``MetricsServer`` serves ``Metrics.render()`` (its cached state text, see
``ops.metrics``) with prometheus_client's threading WSGI server class on a daemon thread
of its own: a scrape shares nothing with the plugin socket's request threads but the GIL
and the state callable (which reads memory). The text goes out gzipped when the scraper
accepts it (Prometheus does); any path but ``/`` and ``/metrics`` is a 404.

``TextfileWriter`` writes the same text to ``<folder>/vsphere_volume.prom`` every
``interval`` seconds, for hosts where no port may be opened, atomically with
prometheus_client's ``write_to_textfile`` (a temp file whose name node_exporter ignores,
renamed over the old one). Not ``plugin.fsutil.atomic_write``: its temp file is made by
``mkstemp`` with mode 0600, and node_exporter (often running as ``nobody``) could not
read the file renamed from it; a metrics file needs no fsync either.
"""

import gzip
import logging
import os
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import write_to_textfile
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer

from .periodic import Periodic

log = logging.getLogger(__name__)

TEXTFILE_NAME = "vsphere_volume.prom"


def metrics_app(render):
    """The WSGI app of ``/metrics``: ``render()`` bytes in Prometheus's text format."""
    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"vsphere-volume serves /metrics only\n"]
        body = render()
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)   # 3x faster than 6, 15% larger
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]
    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class MetricsServer:
    """Serves ``render()`` at ``http://host:port/metrics`` (port 0: any free one)."""

    def __init__(self, render, host, port):
        self.render = render
        self.host = host
        self.port = port
        self._httpd = self._thread = None

    def start(self):
        """Listen now; raises OSError when the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("MetricsHTTPServer", (ThreadingWSGIServer,), {"address_family": family})
        self._httpd = make_server(self.host, self.port, metrics_app(self.render), server_class, _Quiet)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.1,), name="metrics-http",
                                        daemon=True)
        self._thread.start()
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
