"""Delivering notifications: webhooks and apprise URLs, off the request path.

Destinations come from a file (``NOTIFY_URLS_FILE``) because their URLs carry tokens:
one URL per line, ``#`` starts a comment. ``http://`` and ``https://`` URLs are
webhooks: a POST of ``Notification.body()`` as JSON (TLS verified). Any other scheme is
an apprise URL (``slack://``, ``mailto://``, ``tgram://``, ``json://``, ...), sent by
the apprise library with the notification's title and text.

A URL is never logged nor shown: messages name a destination by its line in the file
and what of it is no secret (``webhook on line 2 (https://hooks.example.com/…)``,
``apprise on line 3 (slack://…)``), and any part of the URL that shows up in an error
text is cut out. apprise's own log (its debug lines name the full URL) is kept out of
the plugin's log.

``Delivery`` holds a bounded queue and one worker thread: ``submit`` never blocks (a
full queue drops the notification, logged and counted); each destination gets
``attempts`` tries with a doubling pause between them.
"""

import logging
import queue
import threading
import urllib.parse
from dataclasses import dataclass, field

from ..errors import ConfigError, shown
from ..redact import Redactor

log = logging.getLogger(__name__)

WEBHOOK, APPRISE = "webhook", "apprise"
WEBHOOK_TIMEOUT = 10      # seconds for one POST
SENT, FAILED, DROPPED = "sent", "failed", "dropped"


@dataclass(frozen=True)
class Destination:
    kind: str
    url: str = field(repr=False)
    line: int = 0

    def __str__(self):
        return f"{self.kind} on line {self.line} ({redact(self.url)})"

    __repr__ = __str__


def redact(url):
    """What of ``url`` may be shown: scheme and host of a webhook, the scheme of the rest
    (apprise URLs carry tokens in the host part too)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/…"
    return f"{parts.scheme}://…"


def secret_pieces(url):
    """The parts of ``url`` that could be secrets (4 characters or more)."""
    parts = urllib.parse.urlsplit(url)
    pieces = {url, parts.netloc, parts.path, parts.query, parts.fragment, parts.username or "",
              parts.password or "", urllib.parse.unquote(parts.password or "")}
    if parts.path:
        pieces.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    pieces.update(parts.path.split("/"))
    pieces.update(value for _, value in urllib.parse.parse_qsl(parts.query))
    if parts.scheme not in ("http", "https"):
        pieces.add(parts.hostname or "")
    return {p for p in pieces if len(p) >= 4}


def scrub(text, url):
    """``text`` with every piece of ``url`` that could be a secret replaced by ``…``."""
    return Redactor(secret_pieces(url), mask="…")(text)


class SecretFilter(logging.Filter):
    """Scrubs the destinations' secrets from the records of the HTTP libraries' loggers:
    urllib3 logs each request's path and query at DEBUG, where a webhook keeps its token."""

    LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")

    def __init__(self, destinations):
        super().__init__()
        self.redact = Redactor({p for d in destinations for p in secret_pieces(d.url)}, mask="…")

    def filter(self, record):
        text = record.getMessage()
        cleaned = self.redact(text)
        if cleaned != text:
            record.msg, record.args = cleaned, ()
        return True

    def install(self):
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def remove(self):
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _apprise_knows(url):
    import apprise
    return apprise.Apprise.instantiate(url) is not None


def parse_destinations(text, source="NOTIFY_URLS_FILE"):
    """The Destinations of a URL file's ``text``; ConfigError naming the line (never the
    URL) for a line that is no URL, or whose scheme apprise does not know."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = urllib.parse.urlsplit(line)
        where = f"{source} line {number}"
        if not parts.scheme or "://" not in line:
            raise ConfigError(f"{where} is not a URL: use scheme://..., one URL per line "
                              "(http:// or https:// for a webhook, any apprise URL otherwise)")
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ConfigError(f"{where}: a webhook URL needs a host")
            found.append(Destination(WEBHOOK, line, number))
        elif _apprise_knows(line):
            found.append(Destination(APPRISE, line, number))
        else:
            raise ConfigError(f"{where}: apprise does not accept this URL (scheme {shown(parts.scheme)}); "
                              "see apprise's list of services for the URL format")
    return found


def read_destinations(path):
    """Destinations of the file at ``path``; ConfigError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"NOTIFY_URLS_FILE={shown(path)} cannot be read: {err.__class__.__name__}: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    return parse_destinations(text, f"NOTIFY_URLS_FILE {path}")


class DeliveryError(Exception):
    """One try of one destination failed; the message holds no part of its URL."""


def post_webhook(destination, notification):
    import requests    # loaded only when a webhook is notified: a plugin without one does not carry it
    try:
        response = requests.post(destination.url, json=notification.body(), timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as err:
        raise DeliveryError(f"{type(err).__name__}: {scrub(str(err), destination.url)}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"the webhook answered HTTP {response.status_code}")


APPRISE_TYPES = {"recovered": "success", "suppressed": "warning"}   # otherwise "failure"


class AppriseSender:
    """Sends through apprise, its log captured (and scrubbed) into the error message."""

    def __init__(self):
        import apprise
        self.apprise = apprise
        logging.getLogger("apprise").propagate = False   # its debug lines carry full URLs

    def __call__(self, destination, notification):
        sender = self.apprise.Apprise()
        sender.add(destination.url)
        with self.apprise.LogCapture(level=logging.WARNING) as captured:
            ok = sender.notify(title=notification.title(), body=notification.text(),
                               notify_type=APPRISE_TYPES.get(notification.event, "failure"))
            said = captured.getvalue()
        if not ok:
            detail = " ".join(line.split(" - ", 2)[-1] for line in said.splitlines() if line.strip())
            raise DeliveryError(f"apprise could not deliver: {scrub(detail, destination.url) or 'no detail'}")


class Delivery:
    """Sends each submitted Notification to every destination, on one worker thread.

    ``senders``: {kind: fn(destination, notification)} (default: webhooks with requests,
    apprise URLs with apprise); ``on_result(result)``: called with sent, failed or
    dropped per notification and destination (the metrics count them); ``wait(seconds)``:
    the pause between tries (injected by tests).
    """

    def __init__(self, destinations, senders=None, attempts=3, pause=2.0, queue_size=1000,
                 on_result=None, wait=None):
        self.destinations = list(destinations)
        self.senders = senders or {WEBHOOK: post_webhook, APPRISE: AppriseSender()}
        self.attempts = attempts
        self.pause = pause
        self.on_result = on_result or (lambda result: None)
        self._queue = queue.Queue(queue_size)
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self._thread = None
        self._filter = SecretFilter(self.destinations)

    def start(self):
        if self._thread is None:
            self._filter.install()
            self._thread = threading.Thread(target=self._loop, name="notifications", daemon=True)
            self._thread.start()
        return self

    def submit(self, notification):
        """Queue ``notification``; never blocks."""
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            log.warning("notification queue full: dropped %s about %s", notification.event, notification.subject)
            self.on_result(DROPPED)

    def drained(self, timeout):
        """Wait until every submitted notification was handled; True when it was."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def _loop(self):
        while True:
            notification = self._queue.get()
            try:
                if notification is None:
                    return
                for destination in self.destinations:
                    self.on_result(self._deliver(destination, notification))
            finally:
                self._queue.task_done()

    def _deliver(self, destination, notification):
        pause = self.pause
        for attempt in range(1, self.attempts + 1):
            try:
                self.senders[destination.kind](destination, notification)
                return SENT
            except DeliveryError as err:
                error = err
            except Exception as err:  # noqa: BLE001 - a bug in a sender must not kill the worker; logged
                error = DeliveryError(f"{type(err).__name__}: {scrub(str(err), destination.url)}")
            if attempt < self.attempts and not self._stopping.is_set():
                log.info("notification %s about %s to %s failed (try %d of %d): %s; trying again",
                         notification.event, notification.subject, destination, attempt, self.attempts, error)
                self._wait(pause)
                pause *= 2
        log.error("notification %s about %s to %s failed %d times, giving up: %s",
                  notification.event, notification.subject, destination, self.attempts, error)
        return FAILED

    def stop(self, timeout=10):
        self._stopping.set()
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass   # the worker sees the stop flag after its current notification
            self._thread.join(timeout)
            self._thread = None
            self._filter.remove()
