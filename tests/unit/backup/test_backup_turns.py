"""One scheduled backup per planned run, whichever hosts know a volume (plugin/backup/turns.py):
the rule with an injected clock, then two plugin instances on one folder store."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from plugin.backup.turns import AlreadyMade, NotOurTurn, ScheduledTurns
from plugin.options import parse_options
from plugin.policy.retention import FINAL, MANUAL, SCHEDULE

PLANNED = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@dataclass
class Volume:
    name: str
    options: object


def made(backup_id, origin, started):
    """What check_not_made reads of a backup: (id, origin, begun)."""
    return (backup_id, origin, started)


def volume(backup="daily@02:00"):
    return Volume("db", parse_options({"Backup": backup}, ["default"]))


def test_the_planned_run_is_the_last_one_at_or_before_now_for_scheduled_backups_only(make_clock):
    clock = make_clock(PLANNED + timedelta(minutes=3))
    turns = ScheduledTurns(clock)
    assert turns.planned(volume(), SCHEDULE) == PLANNED
    assert turns.planned(volume(), MANUAL) is None and turns.planned(volume(), FINAL) is None
    assert turns.planned(volume("on-unmount"), SCHEDULE) is None     # not fired by the clock: never held back


def test_a_host_leaves_the_run_to_the_host_that_has_the_volume_for_the_grace(make_clock):
    clock = make_clock(PLANNED)
    turns = ScheduledTurns(clock, grace=timedelta(minutes=5))
    with pytest.raises(NotOurTurn) as skipped:
        turns.check_turn(volume(), PLANNED, "docker-1")
    assert skipped.value.retry_at == PLANNED + timedelta(minutes=5)
    assert str(skipped.value) == (
        "the scheduled backup of volume db planned for 2026-11-23T02:00:00Z is made by the Docker host of VM "
        "docker-1, which has the volume attached; this host makes it at 2026-11-23T02:05:00Z if none was made by then")
    turns.check_turn(volume(), PLANNED, "")                   # attached here, or to no running VM: its turn
    clock.advance(minutes=5)
    turns.check_turn(volume(), PLANNED, "docker-1")           # that host did not make it: this one does


def test_a_run_made_already_is_not_made_again(make_clock):
    clock = make_clock(PLANNED + timedelta(minutes=7))
    turns = ScheduledTurns(clock)
    earlier = [made("20261122T020000Z", SCHEDULE, PLANNED - timedelta(days=1)),
               made("20261123T015900Z", MANUAL, PLANNED - timedelta(minutes=1)),
               made("20261123T020500Z", MANUAL, PLANNED + timedelta(minutes=5))]
    turns.check_not_made(volume(), PLANNED, earlier)          # yesterday's, and manual ones, do not count
    with pytest.raises(AlreadyMade) as skipped:
        turns.check_not_made(volume(), PLANNED, [*earlier, made("20261123T020001Z", SCHEDULE,
                                                                PLANNED + timedelta(seconds=1))])
    assert str(skipped.value) == ("the scheduled backup of volume db planned for 2026-11-23T02:00:00Z was made "
                                  "already: backup 20261123T020001Z (begun 2026-11-23T02:00:01Z)")
    turns.check_not_made(volume(), None, earlier)             # not a scheduled run: nothing held back


# --- two hosts sharing one store --------------------------------------------------------------

def test_two_hosts_make_one_backup_per_planned_run_and_the_other_records_why_it_skipped(
        make_driver, clock, tmp_path):
    first = make_driver(clock=clock, DATA_DIR=str(tmp_path / "host-a"), MOUNT_ROOT=str(tmp_path / "mnt-a"))
    first.create("db", {"Backup": "daily@02:00"})
    second = make_driver(clock=clock, DATA_DIR=str(tmp_path / "host-b"), MOUNT_ROOT=str(tmp_path / "mnt-b"))
    assert second.find("db") is not None                      # it knows the volume: it schedules it too
    for day in range(2):
        clock.now = PLANNED + timedelta(days=day)
        hosts = (first, second) if day == 0 else (second, first)   # whichever fires first makes it
        for host in hosts:
            host.backups.scheduler.tick(clock())
        made, skipped = (host.backups.status("db")["LastBackup"] for host in hosts)
        assert made["Result"] == "ok" and made["Origin"] == SCHEDULE
        assert skipped["Result"] == "skipped"
        assert skipped["Error"] == (f"the scheduled backup of volume db planned for {clock.now:%Y-%m-%dT%H:%M:%SZ} "
                                    f"was made already: backup {made['Id']} (begun {made['Created']})")
        # The host that skipped knows that backup: its health is not stale for want of its own.
        [health] = hosts[1].backups.board.healths()[0]["db"]
        assert (health.last_success, health.last_result) == (datetime.fromisoformat(made["Created"]), "skipped")
        assert hosts[1].backups.status("db")["Backups"] == day + 1
    listed = first.backups.api_list("db")
    assert [(b["Origin"], b["Id"]) for b in listed] == [(SCHEDULE, "20261123T020000Z"), (SCHEDULE, "20261124T020000Z")]
    # Neither host counts its skip as a failure: each plans the next day's run.
    assert {host.backups.status("db")["NextRun"] for host in (first, second)} == {"2026-11-25T02:00:00Z"}
