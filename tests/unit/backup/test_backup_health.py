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


def test_off_site_copies_are_the_volumes_health_on_their_target_by_the_copys_schedule():
    clock = FakeClock(T0)
    board, seen = StatusBoard(clock), Recording()
    board.observe(seen)
    board.committed("db", manifest())
    board.copy_schedules("db", {"vault": (parse_schedule("weekly"), "db@vault")})
    clock.advance(minutes=3)
    board.copied("db", "vault", "schedule", T0 + timedelta(minutes=1), 120.0, size=1000, added=40, kept=3)
    clock.advance(minutes=30)
    board.copy_attempted("db", "vault", T0 + timedelta(minutes=30), "manual", "failed", "the server cannot be reached")
    local, vault = board.healths()[0]["db"]
    assert (local.target, local.last_success, local.last_result) == ("local", T0, "ok")     # untouched
    assert (vault.target, vault.schedule.text, vault.timed_by) == ("vault", "weekly", "db@vault")
    assert (vault.last_success, vault.last_duration, vault.size, vault.added, vault.kept) == \
        (T0 + timedelta(minutes=1), 120.0, 1000, 40, 3)
    assert (vault.last_result, vault.last_error) == ("failed", "the server cannot be reached")
    assert seen.told[1:] == [BackupEnded("db", "vault", "schedule", "ok", 120.0, 40, parse_schedule("weekly")),
                             BackupEnded("db", "vault", "manual", "failed", 180.0, None, parse_schedule("weekly"))]
    # a count from the target's listing: an older newest copy changes nothing known of the newest
    board.copies_counted("db", "vault", 2, newest=T0)
    [_, vault] = board.healths()[0]["db"]
    assert (vault.kept, vault.last_success, vault.size) == (2, T0 + timedelta(minutes=1), 1000)
    # its copy policy gone: no schedule there any more (never stale), what is known stays
    board.copy_schedules("db", {})
    [_, vault] = board.healths()[0]["db"]
    assert (vault.schedule.text, vault.timed_by, vault.kept) == ("off", "db", 2)


def test_a_verification_of_a_target_is_every_volumes_last_on_that_target_and_only_there():
    board, seen = StatusBoard(FakeClock(T0)), Recording()
    board.observe(seen)
    board.committed("db", manifest())
    for name in ("db", "web"):
        board.copy_schedules(name, {"vault": (parse_schedule("daily"), f"{name}@vault")})
    board.target_verified("vault", T0, False, "verification of backup target vault damaged: pack 1 is damaged")
    board.copy_schedules("new", {"vault": (parse_schedule("daily"), "new@vault")})      # copied there later
    healths = board.healths()[0]
    assert [(h.target, h.verification_ok) for h in healths["db"]] == [("local", None), ("vault", False)]
    assert [h.verification_error for h in healths["web"] + healths["new"]] == \
        ["verification of backup target vault damaged: pack 1 is damaged"] * 2
    assert seen.told[1:] == [("verification", None, "vault", "failed")]
    board.target_verified("vault", T0 + timedelta(days=7), True, tell=False)     # recorded before a restart
    assert {h.verification_ok for h in board.healths()[0]["web"]} == {True} and len(seen.told) == 2
