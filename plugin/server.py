"""The plugin process: read settings, assemble the driver, serve Docker's socket.

Run as ``python3 -m plugin.server`` (config.json's entrypoint). gunicorn binds the unix
socket at once (Docker waits for it) and serves the Flask app from one worker process
with threads, so mount counts and locks live in one place. Start-up discovery runs in
a background thread; calls that need it wait for it a bounded time. Operations
(metrics, notifications: ``monitoring``) start with the app and stop when the worker
exits.
"""

import logging
import os
import sys
import threading

from gunicorn.app.base import BaseApplication

from .assembly import build_monitored
from .errors import ConfigError
from .protocol import create_app
from .settings import SOCKET, from_env

log = logging.getLogger("plugin")


class BrokenDriver:
    """Serves the protocol when the settings are invalid: every change says why."""

    def __init__(self, error):
        self.error = error

    def _fail(self, *_):
        raise ConfigError(f"the plugin's settings are invalid: {self.error}")

    create = remove = mount = unmount = path = get = _fail

    def list(self):
        return []

    def capabilities(self):
        return {"Scope": "local"}

    def describe(self):
        return {"Stores": [], "Volumes": [], "Error": str(self.error), "Ready": True}


def build_app(env=None):
    """``(the WSGI app, its Monitoring or None)`` for the environment ``env``; starts
    discovery in the background."""
    try:
        settings = from_env(env)
    except ConfigError as err:
        log.error("invalid settings: %s", err)
        return create_app(BrokenDriver(err)), None
    logging.getLogger().setLevel(settings.log_level)
    log.info("starting with %s", settings.public())
    driver, monitoring = build_monitored(settings)   # Get and List answer from the persisted state at once
    threading.Thread(target=driver.start, name="discovery", daemon=True).start()
    app = create_app(driver, backup_api=driver.backups, observe=monitoring.plugin_call,
                     describe=monitoring.describe)
    return app, monitoring


class PluginServer(BaseApplication):
    def __init__(self, socket_path, threads=16):
        self.socket_path = socket_path
        self.threads = threads
        self.monitoring = None
        super().__init__()

    def load_config(self):
        self.cfg.set("bind", f"unix:{self.socket_path}")
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", self.threads)
        self.cfg.set("timeout", 0)            # long Mounts must not get the worker killed
        self.cfg.set("graceful_timeout", 10)
        self.cfg.set("accesslog", None)
        self.cfg.set("errorlog", "/dev/stdout")   # Docker logs a plugin's stderr as errors
        if "control_socket_disable" in self.cfg.settings:   # gunicorn >= 24
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("worker_exit", self.worker_exit)

    def load(self):
        app, self.monitoring = build_app()
        return app

    def worker_exit(self, server, worker):
        """In the worker, as it exits: stop operations (the last textfile written, the
        metrics port released)."""
        if self.monitoring is not None:
            self.monitoring.stop()


def main():
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    socket_path = os.environ.get("SOCKET", "").strip() or SOCKET   # bound before settings are read
    os.makedirs(os.path.dirname(socket_path), exist_ok=True)
    PluginServer(socket_path).run()


if __name__ == "__main__":
    main()
