"""The plugin's clock and its two ways of writing a time.

``utc_now()`` is the aware current time, the default clock every part injects;
``rfc3339(when)`` writes an aware time as Docker and the plugin's Status show times:
RFC 3339 in UTC to the second, ``2026-11-23T02:00:00Z``. ``rfc3339_exact(when)`` is the
same with the fraction of a second when there is one (``2026-11-23T02:00:00.250000Z``):
for times that are recorded and read back (a backup's manifest, the scheduler's plan)
and shown as recorded.
"""

from datetime import UTC, datetime


def utc_now():
    """The aware current time in UTC."""
    return datetime.now(UTC)


def rfc3339(when):
    """``when`` (an aware datetime) as ``YYYY-MM-DDTHH:MM:SSZ``; None stays None."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_exact(when):
    """``when`` (an aware datetime) as ``rfc3339`` does, with its microseconds when not 0;
    None stays None. Raises ValueError for a naive time (its zone would be a guess)."""
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("times written exactly must be aware datetimes")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
