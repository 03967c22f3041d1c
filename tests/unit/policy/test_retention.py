from datetime import UTC, datetime, timedelta

from plugin.policy import ids
from plugin.policy.retention import (
    FINAL,
    MANUAL,
    PRE_RESTORE,
    SCHEDULE,
    BackupInfo,
    parse_keep,
    prunable,
    referrers,
    select_to_keep,
)


def backup(when, origin=SCHEDULE, base=""):
    return BackupInfo(ids.base_id(when), when, origin, base)


def daily_at_two(first, last):
    day, found = first, []
    while day <= last:
        found.append(backup(datetime(day.year, day.month, day.day, 2, tzinfo=UTC)))
        day += timedelta(days=1)
    return found


def ids_of(*times):
    return {ids.base_id(t) for t in times}


def test_keep_newest_n():
    backups = daily_at_two(datetime(2026, 3, 1), datetime(2026, 3, 10))
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert select_to_keep(parse_keep("3"), backups, now) == ids_of(
        *(datetime(2026, 3, d, 2, tzinfo=UTC) for d in (8, 9, 10)))


def test_buckets_keep_the_newest_of_each_day_week_and_month():
    backups = daily_at_two(datetime(2026, 1, 1), datetime(2026, 3, 31))
    backups.append(backup(datetime(2026, 3, 31, 14, tzinfo=UTC)))  # a second one on the last day
    now = datetime(2026, 3, 31, 23, tzinfo=UTC)
    kept = select_to_keep(parse_keep("daily=7,weekly=4,monthly=12"), backups, now)
    def at(m, d, h=2):
        return datetime(2026, m, d, h, tzinfo=UTC)
    expected = ids_of(
        at(3, 31, 14), *(at(3, d) for d in (30, 29, 28, 27, 26, 25)),   # 7 days (31st: the 14:00 one)
        at(3, 22), at(3, 15),                                           # weeks 14, 13 kept already; 12, 11
        at(2, 28), at(1, 31),                                           # months: March kept already
    )
    assert kept == expected


def test_buckets_count_days_that_have_backups_not_calendar_days():
    backups = daily_at_two(datetime(2026, 1, 1), datetime(2026, 1, 20))
    now = datetime(2026, 3, 1, tzinfo=UTC)  # the schedule stopped six weeks ago
    kept = select_to_keep(parse_keep("daily=3"), backups, now)
    assert kept == ids_of(*(datetime(2026, 1, d, 2, tzinfo=UTC) for d in (18, 19, 20)))


def test_buckets_use_the_time_zone():
    late = backup(datetime(2026, 3, 9, 23, 30, tzinfo=UTC))   # 10 March in Berlin
    early = backup(datetime(2026, 3, 10, 1, 0, tzinfo=UTC))
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    keep = parse_keep("daily=1")
    assert select_to_keep(keep, [late, early], now, "UTC") == {early.id}
    assert select_to_keep(keep, [late, early], now, "Europe/Berlin") == {early.id}
    assert select_to_keep(parse_keep("daily=2"), [late, early], now, "UTC") == {late.id, early.id}
    assert select_to_keep(parse_keep("daily=2"), [late, early], now, "Europe/Berlin") == {early.id}


def test_backups_from_the_future_are_kept():
    backups = daily_at_two(datetime(2026, 3, 1), datetime(2026, 3, 5))
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    kept = select_to_keep(parse_keep("1"), backups, now)
    assert kept == ids_of(*(datetime(2026, 3, d, 2, tzinfo=UTC) for d in (4, 5)))


def test_plain_tuples_are_accepted():
    when = datetime(2026, 3, 1, tzinfo=UTC)
    assert select_to_keep(parse_keep("1"), [("20260301T000000Z", when, SCHEDULE)], when) == {"20260301T000000Z"}


def test_prune_only_scheduled_backups_beyond_the_policy():
    scheduled = daily_at_two(datetime(2026, 3, 1), datetime(2026, 3, 10))
    others = [backup(datetime(2026, 3, 2, 5, tzinfo=UTC), MANUAL),
              backup(datetime(2026, 3, 3, 5, tzinfo=UTC), PRE_RESTORE),
              backup(datetime(2026, 3, 4, 5, tzinfo=UTC), FINAL)]
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    pruned = prunable(parse_keep("2"), scheduled + others, now)
    assert pruned == {b.id for b in scheduled[:8]}


def test_manual_backups_do_not_push_scheduled_ones_out():
    scheduled = daily_at_two(datetime(2026, 3, 1), datetime(2026, 3, 3))
    manual = [backup(datetime(2026, 3, 4, h, tzinfo=UTC), MANUAL) for h in range(5)]
    now = datetime(2026, 3, 5, tzinfo=UTC)
    assert prunable(parse_keep("2"), scheduled + manual, now) == {scheduled[0].id}


def test_the_newest_backup_and_those_being_read_are_never_pruned():
    scheduled = daily_at_two(datetime(2026, 3, 1), datetime(2026, 3, 5))
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    # A policy keeping nothing of these (the newest 1 is kept anyway), a restore reading the 2nd.
    pruned = prunable(parse_keep("1"), scheduled, now, reading={scheduled[1].id})
    assert pruned == {scheduled[0].id, scheduled[2].id, scheduled[3].id}
    assert prunable(parse_keep("1"), [], now) == set()


def test_the_base_of_a_kept_unchanged_backup_is_kept():
    base = backup(datetime(2026, 3, 1, 2, tzinfo=UTC))
    same = [backup(datetime(2026, 3, d, 2, tzinfo=UTC), base=base.id) for d in (2, 3)]
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert prunable(parse_keep("1"), [base, *same], now) == {same[0].id}
    assert referrers([base, *same], base.id) == [same[0].id, same[1].id]
    assert referrers([base, *same], same[0].id) == []
