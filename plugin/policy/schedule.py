"""The ``Backup`` volume option: when a volume is backed up.

Accepted values (case-insensitive keywords):

- ``off``: never by schedule (``vsphere-volume backup`` still works).
- ``hourly``, ``daily``, ``weekly``, ``monthly``: once per period, at a time spread
  across the period by a per-volume jitter so that many volumes do not start together.
- ``daily@HH:MM``: every day at that wall-clock time in the plugin's ``TZ``.
- ``on-unmount``: when the last container unmounts the volume.
- a 5-field cron expression (minute hour day-of-month month day-of-week).
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ..errors import InvalidOption, shown

OFF, PERIODIC, CRON, ON_UNMOUNT = "off", "periodic", "cron", "on-unmount"
PERIODS = ("hourly", "daily", "weekly", "monthly")
_DAILY_AT = re.compile(r"^daily@([01]?\d|2[0-3]):([0-5]\d)$", re.IGNORECASE)

ACCEPTED = ("off, hourly, daily, weekly, monthly, daily@HH:MM, on-unmount, "
            "or a 5-field cron expression such as '30 2 * * *'")


@dataclass(frozen=True)
class Schedule:
    """A parsed ``Backup`` value.

    kind: OFF, PERIODIC (period in ``period``), CRON (expression in ``cron``, covering
    ``daily@HH:MM`` too) or ON_UNMOUNT. ``text`` is the canonical spelling.
    """

    kind: str
    text: str
    period: str = ""
    cron: str = ""

    @property
    def scheduled(self):
        """True when the scheduler fires this volume by the clock."""
        return self.kind in (PERIODIC, CRON)


def parse_schedule(value):
    """Parse a ``Backup`` option value; raise InvalidOption saying what is accepted."""
    text = (value or "").strip()
    lower = text.lower()
    if lower == OFF:
        return Schedule(OFF, OFF)
    if lower == ON_UNMOUNT:
        return Schedule(ON_UNMOUNT, ON_UNMOUNT)
    if lower in PERIODS:
        return Schedule(PERIODIC, lower, period=lower)
    match = _DAILY_AT.match(text)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        return Schedule(CRON, f"daily@{hour:02d}:{minute:02d}", cron=f"{minute} {hour} * * *")
    fields = text.split()
    if len(fields) == 5 and croniter.is_valid(" ".join(fields)):
        expression = " ".join(fields)
        if not _fires(expression):
            raise InvalidOption(
                f"Backup={shown(value)} never fires: no date matches this cron expression (such as "
                f"day 31 of February or of April); use {ACCEPTED}")
        return Schedule(CRON, expression, cron=expression)
    raise InvalidOption(f"Backup={shown(value)} is not a valid schedule: use {ACCEPTED}")


# Any date pattern of a 5-field cron expression recurs within 40 years (the calendar
# repeats every 28 years but across a century's missing leap day); croniter searches 50.
_SOME_INSTANT = datetime(2001, 1, 1)


def _fires(expression):
    """True when the cron ``expression`` matches some date (``0 0 31 2 *`` matches none)."""
    try:
        croniter(expression, _SOME_INSTANT).get_next(datetime)
    except CroniterError:
        return False
    return True


# --- when the next run is -----------------------------------------------------------------
#
# All arithmetic on wall-clock times is done on naive local datetimes, then turned into
# an aware instant by ``_localize``. That is what makes the times right across DST:
#
# - a wall time that does not exist (the hour skipped in spring) is taken with the
#   offset before the change, so ``02:30`` on that day runs at 03:30 new time;
# - a wall time that exists twice (the hour repeated in autumn) runs once, at the first.
#
# ``hourly`` is the exception: it is an hour of elapsed time, counted in UTC, so that a
# volume is backed up every 60 minutes through a DST change too.

_PERIOD_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}


def zone(tz):
    """A ``tzinfo`` for a ``TZ`` setting: a zone name (``Europe/Berlin``), a tzinfo, or None (UTC).

    Raises InvalidOption naming the value when the zone is unknown.
    """
    if tz is None or tz == "":
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOption(
            f"TZ={tz!r} is not a known time zone: use a name from the tz database, "
            "such as UTC, Europe/Berlin or America/New_York") from None


def jitter_fraction(volume_name):
    """A stable number in [0, 1) for a volume name (the same on every host and run)."""
    digest = hashlib.sha256(volume_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _localize(naive, tz):
    """The aware instant for a naive wall time in ``tz`` (see the DST notes above)."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _period_start(period, local):
    """The naive local start of the period that contains naive ``local``."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)  # monthly


def _next_period_start(period, start):
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def _period_length(period, start):
    if period == "monthly":
        return (_next_period_start(period, start) - start).total_seconds()
    return _PERIOD_SECONDS[period]


def _next_periodic(period, after, fraction, tz):
    if period == "hourly":
        hour = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        offset = timedelta(seconds=int(fraction * 3600))
        run = hour + offset
        return run if run > after else run + timedelta(hours=1)
    start = _period_start(period, after.astimezone(tz).replace(tzinfo=None))
    # The run in the period holding ``after`` may be past already; the next period's is
    # not (a period is at least 23 hours long, DST included).
    for _ in range(3):
        offset = timedelta(seconds=int(fraction * _period_length(period, start)))
        run = _localize(start + offset, tz)
        if run > after:
            return run
        start = _next_period_start(period, start)
    raise _no_run(period, after, "no run found in three periods")


def _next_cron(expression, after, tz):
    local = after.astimezone(tz).replace(tzinfo=None)
    try:
        times = croniter(expression, local)
        # A naive wall time can map to an instant at or before ``after`` next to a DST
        # change (the skipped hour); step on until it is strictly later.
        for _ in range(1000):
            run = _localize(times.get_next(datetime), tz)
            if run > after:
                return run
    except (CroniterError, ValueError, OverflowError) as err:
        raise _no_run(expression, after, err) from None
    raise _no_run(expression, after, "no matching time in 1000 steps")


def _no_run(what, after, reason):
    return InvalidOption(f"Backup={shown(what)}: no run after {after.isoformat()} can be computed ({reason})")


_LONGEST_PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1, hours=1),
                   "weekly": timedelta(days=7, hours=1), "monthly": timedelta(days=31, hours=1)}


def _previous_cron(expression, at, tz):
    # croniter steps back from a naive wall time; a minute's match at ``at`` itself counts.
    local = at.astimezone(tz).replace(tzinfo=None) + timedelta(seconds=1)
    try:
        times = croniter(expression, local)
        for _ in range(1000):
            run = _localize(times.get_prev(datetime), tz)
            if run <= at:
                return run
    except (CroniterError, ValueError, OverflowError) as err:
        raise _no_run(expression, at, err) from None
    raise _no_run(expression, at, "no matching time in 1000 steps back")


def previous_run(schedule, at, volume_name, tz=None):
    """The last time at or before ``at`` at which ``schedule`` fires for a volume, as
    ``next_run`` computes its runs: the planned run that a scheduled backup started at
    ``at`` is for. None for OFF and ON_UNMOUNT. Raises InvalidOption as ``next_run``."""
    if at.tzinfo is None:
        raise ValueError("previous_run needs an aware datetime (with a time zone)")
    if not schedule.scheduled:
        return None
    if schedule.kind == CRON:
        return _previous_cron(schedule.cron, at, zone(tz))
    # A period holds one run: the runs after a point one (longest) period back reach ``at``.
    found, run = None, next_run(schedule, at - _LONGEST_PERIOD[schedule.period], volume_name, tz)
    while run <= at:
        found, run = run, next_run(schedule, run, volume_name, tz)
    return found


def next_run(schedule, after, volume_name, tz=None):
    """The first time strictly after ``after`` at which ``schedule`` fires for a volume.

    ``after`` is an aware datetime; the result is an aware UTC datetime, or None for OFF
    and ON_UNMOUNT (they are not fired by the clock). PERIODIC runs fall at a fixed,
    per-volume offset into each period (``jitter_fraction`` of the volume name), so a
    thousand ``daily`` volumes spread over the day while each keeps its own time. Days,
    weeks (from Monday) and months are those of ``tz``; CRON expressions (``daily@HH:MM``
    included) are read in ``tz`` too.

    Raises InvalidOption (a VolumeError) when no next run can be computed, never
    anything else: ``parse_schedule`` refuses expressions that never fire, so this is
    a guard for what was stored before that check.
    """
    if after.tzinfo is None:
        raise ValueError("next_run needs an aware datetime (with a time zone)")
    if not schedule.scheduled:
        return None
    tz = zone(tz)
    if schedule.kind == PERIODIC:
        return _next_periodic(schedule.period, after, jitter_fraction(volume_name), tz)
    return _next_cron(schedule.cron, after, tz)
