"""Scheduled off-site copies through the assembled driver, to a target in memory
(``faketarget.FakeTarget``): what a copy run makes of a volume with a local schedule."""

from datetime import UTC, datetime
from pathlib import Path

from .faketarget import FakeTarget

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

