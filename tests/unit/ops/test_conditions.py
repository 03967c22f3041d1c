"""What is wrong now, read from the state."""

from datetime import UTC, datetime

from plugin.ops.conditions import (
    BACKUP_FAILED,
    BACKUP_STALE,
    STORE_UNAVAILABLE,
    VERIFICATION_FAILED,
    current_conditions,
)
from plugin.ops.stale import DeadlineCache
from plugin.ops.state import OpsState, StoreStatus, VolumeBackup

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def conditions(*volumes, stores=()):
    return current_conditions(OpsState(volumes=volumes, stores=stores), NOW, DeadlineCache())


def test_a_healthy_state_has_no_condition():
    fresh = VolumeBackup("ok", schedule="daily@02:00", last_success=datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
                         last_result="ok", verification_ok=True)
    skipped = VolumeBackup("other-host", schedule="daily@02:00", last_result="skipped",
                           last_success=datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    assert conditions(fresh, skipped, stores=[StoreStatus("default")]) == []


def test_each_cause_is_found_with_its_error():
    stale = VolumeBackup("old", schedule="daily@02:00", last_success=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
                         last_result="ok")
    failing = VolumeBackup("db", schedule="off", last_result="failed", last_error="x" * 2000)
    unverified = VolumeBackup("web", verification_ok=False, verification_error="checksum of disk.vmdk differs")
    found = conditions(stale, failing, unverified, stores=[StoreStatus("ds1", False, "unreachable", "vCenter ...")])
    by_cause = {c.cause: c for c in found}
    assert sorted(by_cause) == sorted([BACKUP_STALE, BACKUP_FAILED, VERIFICATION_FAILED, STORE_UNAVAILABLE])
    assert by_cause[BACKUP_STALE].volume == "old"
    assert by_cause[BACKUP_STALE].error == ("the newest backup is from 2026-11-23T02:00:00Z; Backup=daily@02:00 "
                                            "wanted a newer one by 2026-11-25T03:00:00Z")
    assert by_cause[BACKUP_FAILED].error.endswith("… (2000 characters)")
    assert by_cause[VERIFICATION_FAILED].error == "checksum of disk.vmdk differs"
    assert (by_cause[STORE_UNAVAILABLE].store, by_cause[STORE_UNAVAILABLE].error) == ("ds1", "vCenter ...")


def test_never_backed_up_is_stale_counted_from_its_policy():
    since = datetime(2026, 11, 20, tzinfo=UTC)
    (condition,) = conditions(VolumeBackup("new", schedule="daily@02:00", since=since))
    assert condition.cause == BACKUP_STALE
    assert condition.error.startswith("no backup since the policy was set (2026-11-20T00:00:00Z)")


def test_a_failed_verification_of_an_offsite_target_is_one_condition_for_the_target():
    damaged = {"verification_ok": False, "verification_error": "pack 3f2a is damaged"}
    found = conditions(VolumeBackup("db", "vault", **damaged), VolumeBackup("web", "vault", **damaged),
                       VolumeBackup("db", "local", verification_ok=False, verification_error="checksum"))
    assert [(c.cause, c.volume, c.target, c.error) for c in found] == [
        (VERIFICATION_FAILED, "db", "local", "checksum"),
        (VERIFICATION_FAILED, None, "vault", "pack 3f2a is damaged")]
