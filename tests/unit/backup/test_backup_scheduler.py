import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from plugin.backup.lease import LeaseHeld
from plugin.backup.scheduler import BackupScheduler, JsonFileStateStore, MemoryStateStore
from plugin.errors import BackupError
from plugin.policy.schedule import CRON, Schedule, jitter_fraction, parse_schedule

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


class Recorder:
    """run_backup for tests: records (name, time) and answers with an id or an error."""

    def __init__(self, clock, errors=None):
        self.clock = clock
        self.calls = []
        self.errors = errors or {}

    def __call__(self, name):
        self.calls.append((name, self.clock()))
        error = self.errors.get(name)
        if error is not None:
            raise error
        return f"{self.clock():%Y%m%dT%H%M%SZ}"

    def times(self, name):
        return [t for n, t in self.calls if n == name]


def ceil_minute(when):
    return when if when.second == 0 and when.microsecond == 0 else \
        when.replace(second=0, microsecond=0) + timedelta(minutes=1)


def run_minutes(scheduler, clock, minutes):
    for _ in range(minutes):
        clock.advance(minutes=1)
        scheduler.tick(clock())


def scheduler_for(clock, run, executor, **kwargs):
    return BackupScheduler(clock, run, executor=executor, **kwargs)


def build(clock, executor, policies, errors=None, **kwargs):
    """A scheduler with a Recorder as run_backup and ``policies`` (name -> Backup value) set."""
    run = Recorder(clock, errors)
    scheduler = scheduler_for(clock, run, executor, **kwargs)
    for name, text in policies.items():
        scheduler.set(name, parse_schedule(text))
    return scheduler, run


def test_fires_at_the_right_times_across_a_week(clock, inline_executor):
    policies = {"hourly-vol": "hourly", "daily-vol": "daily", "at-two": "daily@02:00",
                "weekly-vol": "weekly", "office": "*/30 9-17 * * 1-5", "manual-only": "off"}
    scheduler, run = build(clock, inline_executor, policies, concurrency=10)
    run_minutes(scheduler, clock, 7 * 24 * 60)

    hour_offset = timedelta(seconds=int(jitter_fraction("hourly-vol") * 3600))
    assert run.times("hourly-vol") == [ceil_minute(MONDAY + timedelta(hours=h) + hour_offset) for h in range(168)]
    day_offset = timedelta(seconds=int(jitter_fraction("daily-vol") * 86400))
    assert run.times("daily-vol") == [ceil_minute(MONDAY + timedelta(days=d) + day_offset) for d in range(7)]
    assert run.times("at-two") == [MONDAY + timedelta(days=d, hours=2) for d in range(7)]
    week_offset = timedelta(seconds=int(jitter_fraction("weekly-vol") * 7 * 86400))
    assert run.times("weekly-vol") == [ceil_minute(MONDAY + week_offset)]
    office = [MONDAY + timedelta(days=d, hours=9, minutes=30 * k) for d in range(5) for k in range(18)]
    assert run.times("office") == office
    assert run.times("manual-only") == []


def test_daily_at_runs_once_a_day_across_the_dst_change(make_clock, inline_executor):
    clock = make_clock(datetime(2026, 3, 5, tzinfo=UTC))
    scheduler, run = build(clock, inline_executor, {"v": "daily@02:30"}, tz="America/New_York")
    run_minutes(scheduler, clock, 7 * 24 * 60)
    assert run.times("v") == [datetime(2026, 3, 5, 7, 30, tzinfo=UTC), datetime(2026, 3, 6, 7, 30, tzinfo=UTC),
                              datetime(2026, 3, 7, 7, 30, tzinfo=UTC),
                              datetime(2026, 3, 8, 7, 30, tzinfo=UTC),   # 03:30 EDT: 02:30 does not exist
                              datetime(2026, 3, 9, 6, 30, tzinfo=UTC), datetime(2026, 3, 10, 6, 30, tzinfo=UTC),
                              datetime(2026, 3, 11, 6, 30, tzinfo=UTC)]


def test_concurrency_bound_and_earliest_first(clock, manual_executor):
    scheduler, run = build(clock, manual_executor, {f"v{i}": f"{i} 2 * * *" for i in range(10)},  # 02:00 ... 02:09
                           concurrency=3)
    clock.advance(hours=3)
    assert scheduler.tick() == ["v0", "v1", "v2"]
    assert scheduler.tick() == []
    assert sum(scheduler.status(f"v{i}")["Running"] for i in range(10)) == 3
    manual_executor.finish(1)
    assert scheduler.tick() == ["v3"]
    while manual_executor.pending:
        manual_executor.finish(1)
        scheduler.tick()
    assert sorted(name for name, _ in run.calls) == [f"v{i}" for i in range(10)]


def test_concurrency_bound_with_real_threads(clock):
    lock, gate = threading.Condition(), threading.Event()
    state = {"running": 0, "peak": 0, "done": 0}

    def run(name):
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            lock.notify_all()
        assert gate.wait(timeout=30)
        with lock:
            state["running"] -= 1
            state["done"] += 1
            lock.notify_all()

    scheduler = BackupScheduler(clock, run, concurrency=2)
    for i in range(6):
        scheduler.set(f"v{i}", parse_schedule("daily@00:30"))
    clock.advance(hours=1)
    scheduler.start()
    try:
        with lock:
            assert lock.wait_for(lambda: state["running"] == 2, timeout=30)
        gate.set()
        with lock:
            assert lock.wait_for(lambda: state["done"] == 6, timeout=30)
    finally:
        scheduler.stop()
    assert state["peak"] == 2
    assert all(scheduler.status(f"v{i}")["LastResult"] == "ok" for i in range(6))


def test_one_catch_up_run_after_downtime(clock, inline_executor, tmp_path):
    store = tmp_path / "state.json"
    policies = {"db": "daily@02:00", "never-ran": "daily@23:00"}
    first, run = build(clock, inline_executor, policies, state_store=JsonFileStateStore(store))
    run_minutes(first, clock, 3 * 60)  # Monday 03:00: db ran at 02:00
    first.stop()
    assert run.times("db") == [MONDAY + timedelta(hours=2)]

    clock.advance(days=5)  # down until Saturday 03:00: five runs of each missed
    second = scheduler_for(clock, run, inline_executor, state_store=JsonFileStateStore(store))
    for name, text in policies.items():
        second.set(name, parse_schedule(text))
    assert second.status("db")["NextRun"] == "2026-11-24T02:00:00Z"  # the missed plan, kept
    run_minutes(second, clock, 24 * 60)
    saturday = MONDAY + timedelta(days=5)
    assert run.times("db") == [MONDAY + timedelta(hours=2), saturday + timedelta(hours=3, minutes=1),
                               saturday + timedelta(days=1, hours=2)]
    assert run.times("never-ran") == [saturday + timedelta(hours=3, minutes=1), saturday + timedelta(hours=23)]


def test_a_run_cut_off_by_a_crash_runs_again_once(clock, manual_executor):
    state = MemoryStateStore()
    first, run = build(clock, manual_executor, {"db": "daily@02:00"}, state_store=state)
    clock.advance(hours=2)
    assert first.tick() == ["db"]  # started; the plugin dies before it finishes
    assert state.data["db"]["running_since"] == "2026-11-23T02:00:00Z"
    clock.advance(minutes=10)
    second = scheduler_for(clock, run, manual_executor, state_store=state)
    second.set("db", parse_schedule("daily@02:00"))
    assert second.tick() == ["db"]
    assert second.tick() == []


def test_failures_are_shown_and_retried_with_backoff_then_the_schedule_resumes(clock, inline_executor):
    error = BackupError("the disk of volume db is attached as independent: it cannot be snapshotted")
    scheduler, run = build(clock, inline_executor, {"db": "daily@02:00"}, {"db": error})
    run_minutes(scheduler, clock, 2 * 60)
    status = scheduler.status("db")
    assert status["LastResult"] == "failed" and status["LastError"] == str(error)
    assert status["NextRun"] == "2026-11-23T02:15:00Z"
    run_minutes(scheduler, clock, 15)
    assert scheduler.status("db")["NextRun"] == "2026-11-23T02:45:00Z"  # 30 minutes after the second
    del run.errors["db"]
    run_minutes(scheduler, clock, 30)
    status = scheduler.status("db")
    assert status == {"Policy": "daily@02:00", "NextRun": "2026-11-24T02:00:00Z", "Running": False,
                      "LastRun": "2026-11-23T02:45:00Z", "LastResult": "ok",
                      "LastBackup": "20261123T024500Z", "LastError": ""}
    assert len(run.times("db")) == 3


def test_retry_is_never_later_than_the_regular_run(clock, inline_executor):
    scheduler, _ = build(clock, inline_executor, {"h": "5 * * * *"}, {"h": BackupError("store unreachable")},
                         retry_delay=timedelta(hours=5))
    run_minutes(scheduler, clock, 5)
    assert scheduler.status("h")["NextRun"] == "2026-11-23T01:05:00Z"


def test_a_lease_held_elsewhere_is_a_skip_not_a_failure(clock, inline_executor):
    scheduler, _ = build(clock, inline_executor, {"db": "daily@02:00"},
                         {"db": LeaseHeld("volume 'db' is being backed up by host-b")})
    run_minutes(scheduler, clock, 2 * 60)
    status = scheduler.status("db")
    assert (status["LastResult"], status["NextRun"]) == ("skipped", "2026-11-24T02:00:00Z")


def test_another_hosts_turn_is_a_skip_looked_at_again_at_its_time(clock, inline_executor):
    class OtherHostsTurn(LeaseHeld):
        retry_at = datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
    scheduler, run = build(clock, inline_executor, {"db": "daily@02:00"},
                           {"db": OtherHostsTurn("made by the Docker host of VM b")})
    run_minutes(scheduler, clock, 2 * 60)
    status = scheduler.status("db")
    assert (status["LastResult"], status["NextRun"]) == ("skipped", "2026-11-23T02:05:00Z")
    run.errors.clear()
    run_minutes(scheduler, clock, 5)
    assert run.times("db") == [datetime(2026, 11, 23, 2, 0, tzinfo=UTC), datetime(2026, 11, 23, 2, 5, tzinfo=UTC)]
    assert scheduler.status("db")["NextRun"] == "2026-11-24T02:00:00Z"


def test_a_retry_time_past_the_regular_run_waits_for_the_regular_run(clock, inline_executor):
    class OtherHostsTurn(LeaseHeld):
        retry_at = datetime(2026, 11, 25, tzinfo=UTC)
    scheduler, _ = build(clock, inline_executor, {"db": "daily@02:00"}, {"db": OtherHostsTurn("its turn")})
    run_minutes(scheduler, clock, 2 * 60)
    assert scheduler.status("db")["NextRun"] == "2026-11-24T02:00:00Z"


def test_a_bug_in_one_backup_does_not_stop_the_others(clock, inline_executor):
    scheduler, _ = build(clock, inline_executor, {"a": "daily@02:00", "b": "daily@02:00"},
                         {"a": RuntimeError("boom")})
    run_minutes(scheduler, clock, 2 * 60)
    assert scheduler.status("a")["LastError"] == "internal error: RuntimeError: boom"
    assert scheduler.status("b")["LastResult"] == "ok"


def test_a_schedule_that_cannot_be_computed_is_shown_and_stops_no_other(clock, inline_executor):
    # A never-firing cron as a plugin stored it before parse_schedule refused those.
    scheduler, run = build(clock, inline_executor, {"ok": "daily@02:00"})
    scheduler.set("never", Schedule(CRON, "0 0 31 2 *", cron="0 0 31 2 *"))
    status = scheduler.status("never")
    assert status["NextRun"] is None and "no run after" in status["ScheduleError"]
    scheduler.request("never")                       # a backup on request still runs, and ends well
    run_minutes(scheduler, clock, 2 * 60 + 1)
    assert [name for name, _ in run.calls] == ["never", "ok"]
    assert scheduler.status("never")["LastResult"] == "ok" and scheduler.status("never")["NextRun"] is None


def test_removed_volumes_stop_and_their_state_goes(clock, manual_executor):
    state = MemoryStateStore()
    scheduler, _run = build(clock, manual_executor, {"v": "hourly"}, state_store=state)
    clock.advance(hours=1)
    assert scheduler.tick() == ["v"]
    scheduler.remove("v")
    manual_executor.finish()
    clock.advance(hours=3)
    assert scheduler.tick() == []
    assert scheduler.status("v") == {} and "v" not in state.data


def test_policy_change_replans_and_same_policy_keeps_the_plan(clock, inline_executor):
    scheduler, _ = build(clock, inline_executor, {"v": "daily@05:00"})
    scheduler.set("v", parse_schedule("daily@05:00"), now=clock() + timedelta(hours=6))
    assert scheduler.status("v")["NextRun"] == "2026-11-23T05:00:00Z"
    scheduler.set("v", parse_schedule("daily@01:00"))
    assert scheduler.status("v")["NextRun"] == "2026-11-23T01:00:00Z"
    scheduler.set("v", parse_schedule("off"))
    assert scheduler.status("v") == {"Policy": "off", "NextRun": None, "Running": False}
    clock.advance(days=2)
    assert scheduler.tick() == []


def test_on_unmount_requests_run_off_the_request_path_one_at_a_time(clock, manual_executor):
    scheduler, run = build(clock, manual_executor, {"v": "on-unmount"})
    scheduler.request("v")
    scheduler.request("unknown")
    assert scheduler.tick() == ["v"]
    scheduler.request("v")  # unmounted again while the backup runs
    assert scheduler.tick() == []
    manual_executor.finish()
    assert scheduler.tick() == ["v"]
    manual_executor.finish()
    assert scheduler.tick() == [] and len(run.calls) == 2


def test_state_is_saved_only_when_something_changed(clock, inline_executor):
    state = MemoryStateStore()
    scheduler, _ = build(clock, inline_executor, {"v": "daily@02:00"}, state_store=state)
    scheduler.tick()
    saves = state.saves
    run_minutes(scheduler, clock, 60)
    assert state.saves == saves


def test_forget_others_drops_volumes_removed_while_down(clock, inline_executor, tmp_path):
    path = tmp_path / "state.json"
    first, _ = build(clock, inline_executor, {"kept": "daily", "gone": "daily"}, state_store=JsonFileStateStore(path))
    first.stop()
    second, _ = build(clock, inline_executor, {"kept": "daily"}, state_store=JsonFileStateStore(path))
    second.forget_others()
    second.tick()
    assert sorted(json.loads(path.read_text())) == ["kept"]


def test_a_corrupt_state_file_is_kept_aside(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_text("{ truncated")
    assert JsonFileStateStore(path).load() == {}
    assert (tmp_path / "state.json.corrupt").read_text() == "{ truncated"
    assert "planning every volume afresh" in caplog.text


def test_concurrency_must_be_positive(clock):
    with pytest.raises(ValueError):
        BackupScheduler(clock, print, concurrency=0)


def test_state_is_saved_at_most_once_per_save_every_and_at_stop(clock, inline_executor):
    state = MemoryStateStore()
    scheduler, _ = build(clock, inline_executor, {f"v{i}": "0 2 * * *" for i in range(5)}, state_store=state,
                         concurrency=5, save_every=timedelta(seconds=30))
    clock.advance(hours=2)
    scheduler.tick()                      # saves, starts and finishes all five
    assert state.saves == 1
    assert all(state.data[f"v{i}"].get("running_since") for i in range(5))  # saved before they ran
    clock.advance(seconds=10)
    scheduler.tick()
    assert state.saves == 1               # the finished runs wait for the next save
    clock.advance(seconds=20)
    scheduler.tick()
    assert state.saves == 2 and state.data["v0"]["last_result"] == "ok"
    scheduler.request("v0")
    scheduler.stop()
    assert state.saves == 3 and state.data["v0"]["next_run"] == "2026-11-23T02:00:30Z"


def test_its_load_is_the_backups_due_waiting_for_a_worker_and_those_running(clock, manual_executor):
    scheduler, _ = build(clock, manual_executor, {"a": "daily@02:00", "b": "daily@02:00", "c": "daily@02:00",
                                                  "later": "daily@05:00", "manual": "off"}, concurrency=2)
    clock.now = MONDAY.replace(hour=2)
    assert scheduler.load() == (3, 0)               # due, and no tick has started them yet
    assert sorted(scheduler.tick()) == ["a", "b"]
    assert scheduler.load() == (1, 2)               # c waits for a worker
    manual_executor.finish(1)
    assert scheduler.load() == (1, 1)
    scheduler.tick()
    manual_executor.finish()
    assert scheduler.load() == (0, 0)


def test_the_last_runs_are_kept_across_a_restart(clock, inline_executor):
    state = MemoryStateStore()
    scheduler, _ = build(clock, inline_executor, {"db": "daily@02:00", "web": "daily@02:00", "new": "daily@09:00"},
                         {"db": BackupError("the datastore is full")}, state_store=state)
    run_minutes(scheduler, clock, 2 * 60)
    scheduler.stop()
    again, _ = build(clock, inline_executor, {"db": "daily@02:00", "web": "daily@02:00"}, state_store=state)
    assert again.last_runs() == {"db": ("failed", "the datastore is full"), "web": ("ok", "")}
