"""The plugin's clock and its one way of writing a time.

``utc_now()`` is the aware current time, the default clock every part injects;
``rfc3339(when)`` writes an aware time as Docker and the plugin's Status show times:
RFC 3339 in UTC to the second, ``2026-11-23T02:00:00Z``.
"""

from datetime import datetime, timezone


def utc_now():
    """The aware current time in UTC."""
    return datetime.now(timezone.utc)


def rfc3339(when):
    """``when`` (an aware datetime) as ``YYYY-MM-DDTHH:MM:SSZ``; None stays None."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
