"""What the status board keeps and tells for operations: the newest good backup apart
from the last attempt, the kinds of backups, the bytes they copied, an observer that
cannot break a backup."""

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from plugin.backup import manifest as mf
from plugin.backup.health import BackupEnded, added_bytes, backup_kind
from plugin.backup.status import StatusBoard
from plugin.policy.schedule import parse_schedule
from tests.fakes import FakeClock

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def manifest(minutes=0, **changes):
    at = T0 + timedelta(minutes=minutes)
    made = mf.Manifest(volume="db", backup_id=f"{at:%Y%m%dT%H%M%SZ}", method=mf.DIRECTORY, origin="schedule",
                       created=at, started=at, finished=at + timedelta(seconds=90), store="default",
                       source="/v/db", size=1000, data="data", extra={"files": 1, "linked": 0, "added": 600})
    return replace(made, **changes)


class Recording:
    def __init__(self):
        self.told = []

    def backup_ended(self, event):
        self.told.append(event)

    def restore_ended(self, volume, result):
        self.told.append(("restore", volume, result))

    def verification_ended(self, volume, target, result):
        self.told.append(("verification", volume, target, result))


def test_the_newest_good_backup_is_kept_apart_from_the_last_attempt():
    clock = FakeClock(T0)
    board, seen = StatusBoard(clock), Recording()
    board.observe(seen)
    board.committed("db", manifest())
    clock.advance(days=1, seconds=5)
    board.attempted("db", T0 + timedelta(days=1), "schedule", "failed", "the datastore is full")
    healths, kept = board.healths()
    [health] = healths["db"]
    assert (health.last_success, health.last_duration, health.size, health.added) == (T0, 90.0, 1000, 600)
    assert (health.last_result, health.last_error) == ("failed", "the datastore is full")
    assert seen.told == [BackupEnded("db", "local", "schedule", "ok", 90.0, 600),
                         BackupEnded("db", "local", "schedule", "failed", 5.0)]
    # a start-up scan finding an older backup does not make it the newest
    board.found("db", [SimpleNamespace(backups=[manifest(minutes=-60)], damaged=[])])
    assert board.healths()[0]["db"][0].last_success == T0


def test_restores_and_verifications_are_told_with_their_result():
    board, seen = StatusBoard(FakeClock(T0)), Recording()
    board.observe(seen)
    with board.reporting("db", "restore"):
        pass
    try:
        with board.reporting("db", "restore"):
            raise OSError("gone")
    except OSError:
        pass
    with board.reporting("db", "backup"):
        pass                                   # a backup is told by committed/attempted, not here
    board.verified("db", "offsite", T0, False, "checksum mismatch")
    assert seen.told == [("restore", "db", "ok"), ("restore", "db", "failed"),
                         ("verification", "db", "offsite", "failed")]
    [health] = board.healths()[0]["db"]
    assert (health.target, health.verification_ok, health.verification_error) == ("offsite", False,
                                                                                   "checksum mismatch")


def test_an_observer_that_fails_never_fails_the_backup(caplog):
    class Broken:
        def backup_ended(self, event):
            raise RuntimeError("bug")
    board = StatusBoard(FakeClock(T0), observer=Broken())
    caplog.set_level(logging.ERROR)
    board.committed("db", manifest())
    assert board.healths()[0]["db"][0].last_result == "ok"
    assert "the backup status observer failed on backup_ended" in caplog.text


def test_kinds_and_bytes_copied():
    assert backup_kind("schedule", parse_schedule("daily")) == "scheduled"
    assert backup_kind("schedule", parse_schedule("on-unmount")) == "on-unmount"
    assert backup_kind("schedule", None) == "scheduled"
    assert [backup_kind(origin, parse_schedule("on-unmount")) for origin in ("manual", "final", "pre-restore")] \
        == ["manual", "final", "pre-restore"]
    assert added_bytes(manifest()) == 600
    assert added_bytes(manifest(method=mf.UNCHANGED, data="", base="20261122T020000Z")) == 0
    assert added_bytes(manifest(method=mf.SNAPSHOT_CLONE, data="disk.vmdk", extra={})) == 1000
    assert added_bytes(manifest(extra={})) is None          # a folder backup of an older plugin
