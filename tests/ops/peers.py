"""Real peers for the operations tests, started on loopback and stopped after: a
Prometheus server (Debian's) and an HTTP receiver of notifications."""

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

DEADLINE = 30   # seconds any awaited condition gets


def wait_for(predicate, what, timeout=DEADLINE):
    """Poll ``predicate`` until it returns something true; fail saying ``what`` after
    ``timeout`` seconds. Returns what the predicate returned."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """An HTTP server recording every request: (method, path, headers, body bytes).

    ``statuses``: the status of each request in turn (then 200 for the rest).
    """

    def __init__(self, statuses=()):
        self.requests = []
        self.statuses = list(statuses)
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._changed:
                    receiver.requests.append((self.command, self.path, dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_count(self, count, timeout=DEADLINE):
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, in {timeout} s")
            return list(self.requests)

    def json_bodies(self):
        return [json.loads(body) for _, _, _, body in self.requests]

    def form_bodies(self):
        return [dict(urllib.parse.parse_qsl(body.decode())) for _, _, _, body in self.requests]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Prometheus:
    """Debian's Prometheus server on a free loopback port, with the scrape config and
    rule files given; its HTTP API through ``query`` and ``alerts``."""

    def __init__(self, work, targets, rule_files=(), interval="1s"):
        self.binary = shutil.which("prometheus")
        assert self.binary, "Debian's prometheus package is not installed (scripts/install-deps installs it)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = work / "prometheus.yml"
        config.write_text(json.dumps({   # JSON is YAML
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "vsphere-volume", "static_configs": [{"targets": targets}]}],
        }))
        self.log = work / "prometheus.log"
        with open(self.log, "w") as log:   # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self._ready, "Prometheus to be ready")

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def _api(self, path, **params):
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expression):
        """[(labels, value)] of an instant query."""
        return [(item["metric"], float(item["value"][1])) for item in self._api("query", query=expression)["result"]]

    def alerts(self):
        return self._api("alerts")["alerts"]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
