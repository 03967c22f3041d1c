"""The operations settings (``docker plugin set vsphere KEY=VALUE``).

- ``METRICS_ADDRESS``: ``host:port`` where ``/metrics`` is served (``[::1]:9100`` for
  IPv6, ``:9100`` for every address); empty: off.
- ``METRICS_TEXTFILE_DIR``: a folder node_exporter's textfile collector reads: the same
  series are written to ``vsphere_volume.prom`` there; empty: off.
- ``METRICS_TEXTFILE_INTERVAL``: seconds between two writes of that file (default 30, 5
  to 3600).
- ``NOTIFY_URLS_FILE``: a file the plugin sees with the notification URLs, one per line
  (URLs carry tokens: never a setting's value).
- ``BACKUP_STALE_GRACE_MINUTES``: how late the second scheduled run after the last good
  backup may commit before the volume is stale (default 60).

A bad value turns its feature off (a bad interval the textfile, a bad grace leaves the
default) with the reason in ``OpsSettings.errors`` (logged at start, for the product's
status to show); the plugin serves volumes all the same.
"""

import os
from dataclasses import dataclass, field
from datetime import timedelta

from ..errors import ConfigError, shown
from ..settingvalues import whole_number
from .stale import DEFAULT_GRACE

ADDRESS_HELP = "use host:port, such as 127.0.0.1:9100, [::1]:9100 or :9100 (every address); empty: off"


@dataclass(frozen=True)
class OpsSettings:
    metrics_address: tuple = None          # (host, port), None: off
    textfile_dir: str = ""
    textfile_interval: int = 30
    notify_urls_file: str = ""
    stale_grace: timedelta = DEFAULT_GRACE
    errors: dict = field(default_factory=dict)   # setting -> why it is off


def parse_address(text):
    """``(host, port)`` of a ``host:port`` text; None for an empty one; ConfigError otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""   # an IPv6 address without brackets
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "[]/ "):
        raise ConfigError(f"METRICS_ADDRESS={shown(text)} is not valid: {ADDRESS_HELP}")
    return (host or "0.0.0.0", int(port))  # noqa: S104 - ":port" asks for every address


def _textfile_dir(text):
    text = (text or "").strip()
    if text and not os.path.isabs(text):
        raise ConfigError(f"METRICS_TEXTFILE_DIR={shown(text)} is not valid: use an absolute folder path "
                          "(the folder node_exporter's --collector.textfile.directory names); empty: off")
    return text


def ops_settings_from_env(env):
    """OpsSettings from ``env``: every bad value is recorded in ``errors`` and its
    feature left off; nothing here raises."""
    errors, values = {}, {}
    readers = {
        "metrics_address": ("METRICS_ADDRESS", lambda: parse_address(env.get("METRICS_ADDRESS"))),
        "textfile_dir": ("METRICS_TEXTFILE_DIR", lambda: _textfile_dir(env.get("METRICS_TEXTFILE_DIR"))),
        "textfile_interval": ("METRICS_TEXTFILE_INTERVAL",
                              lambda: whole_number(env, "METRICS_TEXTFILE_INTERVAL", 30, 5, 3600)),
        "notify_urls_file": ("NOTIFY_URLS_FILE", lambda: (env.get("NOTIFY_URLS_FILE") or "").strip()),
        "stale_grace": ("BACKUP_STALE_GRACE_MINUTES", lambda: timedelta(
            minutes=whole_number(env, "BACKUP_STALE_GRACE_MINUTES", 60, 0, 7 * 24 * 60))),
    }
    for name, (key, read) in readers.items():
        try:
            values[name] = read()
        except ConfigError as err:
            errors[key] = str(err)
    if "METRICS_TEXTFILE_INTERVAL" in errors:
        values["textfile_dir"] = ""
    return OpsSettings(errors=errors, **values)
