"""Deduplication and rate limits of notifications, with an injected clock."""

from datetime import UTC, datetime, timedelta

import pytest

from plugin.ops.conditions import (
    BACKUP_FAILED,
    BACKUP_STALE,
    STORE_UNAVAILABLE,
    Condition,
)
from plugin.ops.notify import RECOVERED, SUPPRESSED, Notifier
from tests.fakes import FakeClock


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))


def failed(volume="db", error="the datastore is full"):
    return Condition(BACKUP_FAILED, volume=volume, target="local", error=error)


def test_a_failure_seen_many_times_is_notified_once_and_its_recovery_once(clock):
    notifier = Notifier(clock, host="h1")
    first = notifier.update([failed()])
    assert [(n.event, n.volume, n.error) for n in first] == [(BACKUP_FAILED, "db", "the datastore is full")]
    for _ in range(50):
        clock.advance(minutes=15)
        assert notifier.update([failed(error="another wording of the failure")]) == []
    recovered = notifier.update([])
    assert [(n.event, n.cause, n.volume, n.error) for n in recovered] == [(RECOVERED, BACKUP_FAILED, "db", "")]
    assert notifier.update([]) == []


def test_causes_and_subjects_are_deduplicated_separately(clock):
    notifier = Notifier(clock)
    conditions = [failed("a"), failed("b"), Condition(BACKUP_STALE, volume="a", target="local"),
                  Condition(STORE_UNAVAILABLE, store="ds1", error="unreachable")]
    sent = notifier.update(conditions)
    assert sorted((n.event, n.volume, n.store) for n in sent) == [
        (BACKUP_FAILED, "a", None), (BACKUP_FAILED, "b", None), (BACKUP_STALE, "a", None),
        (STORE_UNAVAILABLE, None, "ds1")]
    assert notifier.update(conditions) == []
    assert [(n.event, n.cause, n.volume) for n in notifier.update(conditions[1:])] == [(RECOVERED, BACKUP_FAILED, "a")]


def test_a_flapping_volume_is_notified_at_most_once_per_interval(clock):
    notifier = Notifier(clock, min_interval=timedelta(hours=1))
    assert len(notifier.update([failed()])) == 1
    clock.advance(minutes=10)
    assert [n.event for n in notifier.update([])] == [RECOVERED]
    clock.advance(minutes=10)
    assert notifier.update([failed()]) == []            # 10 minutes after the recovery: held
    clock.advance(minutes=10)
    assert notifier.update([]) == []                    # and it recovered unseen: nothing at all
    clock.advance(minutes=10)
    assert notifier.update([failed()]) == []
    clock.advance(minutes=31)                           # an hour after the last one sent
    assert [n.event for n in notifier.update([failed()])] == [BACKUP_FAILED]


def test_a_storm_is_folded_into_one_summary_and_the_rest_waits_for_the_window(clock):
    notifier = Notifier(clock, burst=10, window=timedelta(minutes=10))
    storm = [failed(f"vol-{i:04d}") for i in range(1000)]
    sent = notifier.update(storm)
    assert len(sent) == 10
    assert [n.event for n in sent[:9]] == [BACKUP_FAILED] * 9
    summary = sent[9]
    assert summary.event == SUPPRESSED and summary.count == 991
    assert summary.error.startswith("991 more events within 10 minutes")
    assert "volume vol-0009 backup-failed" in summary.error and summary.error.endswith(", …")
    # all recover at once, but the window is used up: held until it opens again
    clock.advance(minutes=1)
    assert notifier.update([]) == []
    clock.advance(minutes=9)
    recovered = notifier.update([])
    assert len(recovered) == 10 and recovered[-1].event == SUPPRESSED and recovered[-1].count == 991
    clock.advance(minutes=10)
    assert notifier.update([]) == []


def test_records_of_recovered_conditions_are_forgotten_after_the_interval(clock):
    notifier = Notifier(clock, min_interval=timedelta(hours=1))
    notifier.update([failed(f"v{i}") for i in range(5)])
    notifier.update([])
    clock.advance(hours=1)
    notifier.update([])
    assert notifier._records == {}


def test_body_has_the_documented_keys(clock):
    notifier = Notifier(clock, host="docker-1")
    (notification,) = notifier.update([failed()])
    assert notification.body() == {
        "source": "vsphere-volume", "host": "docker-1", "event": "backup-failed", "cause": "backup-failed",
        "volume": "db", "store": None, "target": "local", "time": "2026-11-23T02:00:00Z",
        "error": "the datastore is full", "count": 1}
    assert notification.title() == "vsphere-volume on docker-1: volume db: backup-failed"


def test_burst_below_two_is_refused(clock):
    with pytest.raises(ValueError, match="at least 2"):
        Notifier(clock, burst=1)
