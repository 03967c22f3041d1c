"""Backup ids: readable, unique, and sorted by the time they were taken.

An id is the UTC second the backup started, ``20261123T020000Z``; when several backups
of one volume fall in the same second the later ones get a suffix, ``-1``, ``-2``, ...
(up to ``-9999``). Ids match ``ID_RE`` whole (``fullmatch``: ASCII digits, no trailing
newline); ``RestoreFrom`` checks its ids with ``is_backup_id`` too.

Plain string order is wrong once a suffix reaches two digits (``-10`` < ``-9``): sort
with ``sort_key``. Uniqueness within a volume is finally guaranteed by the repository,
which creates the backup folder atomically and moves on to the next suffix when it
exists already (``candidates``).
"""

import re
from datetime import UTC, datetime

from ..errors import InvalidOption

ID_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z(-[0-9]{1,4})?")   # whole ids only: always fullmatch

MAX_SUFFIX = 9999
_FORMAT = "%Y%m%dT%H%M%SZ"


def is_backup_id(text):
    """True when ``text`` has the shape of a backup id."""
    return isinstance(text, str) and ID_RE.fullmatch(text) is not None


def check_id(backup_id):
    """Return ``backup_id``, or raise InvalidOption saying what an id looks like."""
    if not is_backup_id(backup_id):
        raise InvalidOption(
            f"{backup_id!r} is not a backup id: ids look like 20261123T020000Z, "
            "with -1, -2, ... when several backups fall in the same second")
    return backup_id


def base_id(when):
    """The suffix-less id for an aware datetime (converted to UTC, fractions dropped)."""
    if when.tzinfo is None:
        raise ValueError("backup ids need an aware datetime (with a time zone)")
    return when.astimezone(UTC).strftime(_FORMAT)


def candidates(when):
    """Every id that a backup started at ``when`` may get, in order of preference."""
    base = base_id(when)
    yield base
    for suffix in range(1, MAX_SUFFIX + 1):
        yield f"{base}-{suffix}"


def split_id(backup_id):
    """``(base, suffix)``: ``("20261123T020000Z", 2)`` for ``20261123T020000Z-2``."""
    base, _, suffix = check_id(backup_id).partition("-")
    return base, int(suffix) if suffix else 0


def sort_key(backup_id):
    """Key that sorts ids by time, then by suffix (``-9`` before ``-10``)."""
    return split_id(backup_id)


def id_time(backup_id):
    """The UTC second a backup id stands for, as an aware datetime.

    Raises InvalidOption for a malformed id or an impossible date (``20261340T...``).
    """
    base, _ = split_id(backup_id)
    try:
        return datetime.strptime(base, _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidOption(f"{backup_id!r} is not a backup id: {base} is not a valid date and time") from None
