"""Scheduled off-site copies through the assembled driver, to a target in memory
(``faketarget.FakeTarget``): what a copy run makes of a volume with a local schedule."""

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from .faketarget import FakeTarget, SeenFromAnotherHost

TARGETS = {"BACKUP_TARGETS": "file:///srv/a:a", "BACKUP_TARGET_A_PASSWORD": "p"}


def with_target(driver, clock, label="a"):
    """``driver`` copying to a FakeTarget in place of its target ``label``."""
    target = FakeTarget(label, clock)
    driver.backups.copies.targets[label] = target
    return target


def last_copy(driver, name, label="a"):
    return driver.get(name)["Status"]["Backup"]["Copies"][label].get("LastCopy", {})


def test_a_scheduled_copy_of_a_volume_with_a_local_schedule_copies_its_own_local_backup(make_driver, clock):
    driver = make_driver(clock=clock, **TARGETS)
    target = with_target(driver, clock)
    driver.create("db", {"Backup": "daily@02:00", "BackupCopy": "a@daily@03:00"})
    (Path(driver.stores["default"].data_path("db")) / "f").write_text("day one")
    clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert driver.backups.scheduler.tick(clock()) == ["db"]          # the local tier's run of the day
    clock.now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

    assert driver.backups.copies.copy_schedule.tick(clock()) == ["db@a"]

    copied = last_copy(driver, "db")
    assert (copied["Result"], copied["Origin"]) == ("ok", "schedule"), copied
    [record] = target.kept
    assert target.files[record.id] == {"f": b"day one"} and record.created == clock.now
    local = [(b["Origin"], b["Created"]) for b in driver.backups.api_list("db")]
    assert local == [("schedule", "2026-11-23T02:00:00Z"), ("schedule", "2026-11-23T03:00:00Z")]


# --- one copy per planned run, whichever hosts know the volume --------------------------------

def two_hosts(make_driver, clock, tmp_path, options):
    """Two plugin instances (hosts) on the same folder store, copying to one target (each
    with its own process lock on it); the first made volume ``db`` with ``options`` before
    the second started (so it found it)."""
    def host(name):
        return make_driver(clock=clock, DATA_DIR=str(tmp_path / f"host-{name}"),
                           MOUNT_ROOT=str(tmp_path / f"mnt-{name}"), **TARGETS)
    a = host("a")
    a.create("db", options)
    b = host("b")
    shared = with_target(a, clock)
    b.backups.copies.targets["a"] = SeenFromAnotherHost(shared)
    return (a, b), shared


def scheduled_copies(target):
    return [(r.id, r.origin) for r in target.kept if r.origin == "schedule"]


def test_two_hosts_make_one_copy_per_planned_run_and_the_other_says_why_it_skipped(make_driver, clock, tmp_path):
    (a, b), target = two_hosts(make_driver, clock, tmp_path, {"BackupCopy": "a@daily@03:00"})
    assert b.get("db")["Status"]["Backup"]["Copies"]["a"]["NextRun"] == "2026-11-23T03:00:00Z"
    for day in range(2):
        clock.now = datetime(2026, 11, 23 + day, 3, 0, tzinfo=UTC)
        hosts = (a, b) if day == 0 else (b, a)       # whichever fires first makes it
        for host in hosts:
            assert host.backups.copies.copy_schedule.tick(clock()) == ["db@a"]
        made, skipped = (last_copy(host, "db") for host in hosts)
        assert (made["Result"], made["Origin"]) == ("ok", "schedule")
        assert (skipped["Result"], skipped["Origin"]) == ("skipped", "schedule")
        assert skipped["Error"] == (
            f"the scheduled copy of volume db to backup target a planned for {clock.now:%Y-%m-%dT%H:%M:%SZ} was "
            f"made already: copy {made['Id']} (begun {clock.now:%Y-%m-%dT%H:%M:%SZ})")
        # not a failure: the next regular run, no retry; its health knows the other host's copy
        assert {h.get("db")["Status"]["Backup"]["Copies"]["a"]["NextRun"] for h in hosts} == \
            {f"2026-11-{24 + day}T03:00:00Z"}
        [health] = [e for e in hosts[1].backups.board.healths()[0]["db"] if e.target == "a"]
        assert (health.last_result, health.last_success, health.kept) == ("skipped", clock.now, day + 1)
    assert scheduled_copies(target) == [("20261123T030000Z", "schedule"), ("20261124T030000Z", "schedule")]
    # copies asked for by hand are never held back
    assert [c["Origin"] for c in b.backups.api_copy("db")] == ["manual"]


def test_a_host_leaves_the_copy_to_the_host_whose_vm_has_the_volume_then_makes_it_if_none_was(
        make_driver, clock, tmp_path):
    (a, _), target = two_hosts(make_driver, clock, tmp_path, {"BackupCopy": "a@daily@03:00"})
    a.backups.copies.runs.holder = lambda volume: "docker-b-vm"      # b's VM has the volume attached
    clock.now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

    a.backups.copies.copy_schedule.tick(clock())

    skipped = last_copy(a, "db")
    assert skipped["Result"] == "skipped" and skipped["Error"] == (
        "the scheduled copy of volume db to backup target a planned for 2026-11-23T03:00:00Z is made by the Docker "
        "host of VM docker-b-vm, which has the volume attached; this host makes it at 2026-11-23T03:05:00Z if none "
        "was made by then")
    assert target.calls == [] and a.get("db")["Status"]["Backup"]["Copies"]["a"]["NextRun"] == "2026-11-23T03:05:00Z"
    clock.now = datetime(2026, 11, 23, 3, 5, tzinfo=UTC)         # b did not make it (down): a does
    a.backups.copies.copy_schedule.tick(clock())
    assert last_copy(a, "db")["Result"] == "ok"
    assert scheduled_copies(target) == [("20261123T030500Z", "schedule")]


def test_two_hosts_firing_at_once_make_one_copy_the_other_finds_the_copy_lease_held(make_driver, clock, tmp_path):
    (a, b), target = two_hosts(make_driver, clock, tmp_path, {"BackupCopy": "a@daily@03:00"})
    clock.now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    copying, finish = threading.Event(), threading.Event()
    put = target.put

    def first_put_waits(*args, **kwargs):
        target.put = put                      # only host a's copy waits
        copying.set()
        finish.wait(60)
        return put(*args, **kwargs)
    target.put = first_put_waits
    on_a = threading.Thread(target=a.backups.copies.copy_schedule.tick, args=(clock(),))
    on_a.start()
    try:
        assert copying.wait(60)               # host a is copying db: nothing on the target yet
        assert b.backups.copies.copy_schedule.tick(clock()) == ["db@a"]
        skipped = last_copy(b, "db")
        assert skipped["Result"] == "skipped", skipped
        assert "is making its scheduled copy to backup target a" in skipped["Error"]
    finally:
        finish.set()
        on_a.join(60)
    assert last_copy(a, "db")["Result"] == "ok"
    assert len(scheduled_copies(target)) == 1
    assert not os.listdir(tmp_path / "fast" / "backups" / ".leases" / ".copies-a")      # released


def test_a_copy_by_hand_counts_the_copies_kept_without_listing_them_again(make_driver, clock):
    driver = make_driver(clock=clock, **TARGETS)
    target = with_target(driver, clock)
    driver.create("db", {"BackupCopy": "a@daily"})
    for _ in range(2):
        clock.advance(minutes=1)
        driver.backups.api_copy("db", "a")
    assert target.calls == ["put", "put"]
    [health] = [e for e in driver.backups.board.healths()[0]["db"] if e.target == "a"]
    assert health.kept == 2
