"""The stale rule: next_run(next_run(last success)) + grace, from the scheduler's own arithmetic."""

from datetime import UTC, datetime, timedelta

from plugin.ops.stale import DeadlineCache, backup_deadline, is_stale
from plugin.ops.state import VolumeBackup
from plugin.policy.schedule import next_run, parse_schedule

HOUR = timedelta(hours=1)


def at(*args):
    return datetime(*args, tzinfo=UTC)


def test_daily_at_a_time_is_stale_two_days_and_the_grace_after_a_backup_at_that_time():
    daily = parse_schedule("daily@02:00")
    last = at(2026, 11, 23, 2, 0, 5)
    assert backup_deadline(daily, last, "v") == at(2026, 11, 25, 3, 0)
    assert not is_stale(daily, last, at(2026, 11, 25, 3, 0), "v")
    assert is_stale(daily, last, at(2026, 11, 25, 3, 0, 1), "v")


def test_one_missed_run_is_not_stale_yet():
    daily = parse_schedule("daily@02:00")
    last = at(2026, 11, 23, 2, 0, 5)
    # the run of the 24th failed; on the 24th at noon nothing is wrong yet
    assert not is_stale(daily, last, at(2026, 11, 24, 12, 0), "v")


def test_periodic_uses_the_volumes_own_offset_in_the_period():
    daily = parse_schedule("daily")
    last = at(2026, 11, 23, 0, 0)
    first = next_run(daily, last, "vol-a")
    assert backup_deadline(daily, last, "vol-a") == first + timedelta(days=1) + HOUR


def test_weekday_cron_backed_up_on_friday_may_wait_until_tuesday():
    weekdays = parse_schedule("0 2 * * 1-5")
    friday = at(2026, 11, 27, 2, 0, 30)
    assert backup_deadline(weekdays, friday, "v") == at(2026, 12, 1, 3, 0)   # Monday's run may fail
    assert not is_stale(weekdays, friday, at(2026, 11, 30, 23, 0), "v")


def test_hourly_and_the_grace_are_used_as_given():
    hourly = parse_schedule("hourly")
    last = at(2026, 11, 23, 10, 0)
    grace = timedelta(minutes=5)
    first = next_run(hourly, last, "v")
    assert backup_deadline(hourly, last, "v", grace=grace) == first + HOUR + grace


def test_time_zone_of_the_schedule_counts():
    daily = parse_schedule("daily@02:00")
    last = at(2026, 11, 23, 1, 0)   # 02:00 in Berlin (UTC+1)
    assert backup_deadline(daily, last, "v", tz="Europe/Berlin") == at(2026, 11, 25, 2, 0)


def test_schedules_not_fired_by_the_clock_are_never_stale():
    long_ago = at(2020, 1, 1)
    for text in ("off", "on-unmount"):
        assert backup_deadline(parse_schedule(text), long_ago, "v") is None
        assert not is_stale(parse_schedule(text), long_ago, at(2026, 11, 23), "v")


def test_never_backed_up_counts_from_when_the_policy_was_set_and_without_that_never():
    daily = parse_schedule("daily@02:00")
    since = at(2026, 11, 20, 12, 0)
    assert is_stale(daily, None, at(2026, 11, 22, 3, 1), "v", since=since)
    assert not is_stale(daily, None, at(2026, 11, 22, 2, 59), "v", since=since)
    assert not is_stale(daily, None, at(2030, 1, 1), "v")


def test_cache_recomputes_when_a_backup_committed_and_forgets_removed_volumes():
    cache = DeadlineCache()
    entry = VolumeBackup("v", schedule="daily@02:00", last_success=at(2026, 11, 23, 2, 0))
    assert cache.deadline(entry) == at(2026, 11, 25, 3, 0)
    newer = VolumeBackup("v", schedule="daily@02:00", last_success=at(2026, 11, 24, 2, 0))
    assert cache.deadline(newer) == at(2026, 11, 26, 3, 0)
    other_policy = VolumeBackup("v", schedule="weekly", last_success=at(2026, 11, 24, 2, 0))
    assert cache.deadline(other_policy) == backup_deadline(other_policy.schedule, other_policy.last_success, "v")
    cache.keep_only([])
    assert cache._cached == {}
