"""The logic of off-site copies with stand-ins: the restic target's catalog and verdicts
(a stub repository), the shared lock, the board, and what the assembled driver refuses
or schedules before any copy runs (no restic is called in this file)."""

import os
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from plugin.backup.contract import Tree
from plugin.errors import InvalidOption, NotFound
from plugin.locks import SharedLock
from plugin.offsite.board import CopyBoard
from plugin.offsite.errors import RepositoryMissing, TargetUnreachable
from plugin.offsite.messages import BackupResult, CheckResult, ForgetResult, Snapshot
from plugin.offsite.targetspec import parse_targets
from plugin.offsite.tier import EMPTY_MARKER, ResticTier, _lift, host_name
from plugin.policy.retention import parse_keep

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def snapshot(snapshot_id, volume, backup_id, kind="schedule", **labels):
    tags = [f"volume={volume}", f"backup={backup_id}", f"kind={kind}", *(f"{k}={v}" for k, v in labels.items())]
    return Snapshot(id=snapshot_id * 8, short_id=snapshot_id * 8 if len(snapshot_id) == 1 else snapshot_id,
                    time=T0, tags=tuple(tags), paths=("/x",), host="docker-a")


class StubRestic:
    """The parts of restic.Restic a ResticTier calls, answering from lists."""

    def __init__(self, snapshots=(), check=None, fail=None):
        self.listed = list(snapshots)
        self.check_result = check or CheckResult(ok=True, read_data_subset="5%")
        self.fail = fail
        self.calls = []

    def ensure_initialised(self):
        self.calls.append("init")
        return SimpleNamespace(created=False)

    def snapshots(self, tags=None, host=None):
        if self.fail:
            raise self.fail
        return [s for s in self.listed if not tags or all(s.labels.get(k) == v for k, v in tags.items())]

    def backup(self, path, tags, host, progress=None, parent=None, taken_at=None, ignore_ctime=False):
        self.calls.append(("backup", sorted(os.listdir(path)), tags, host, parent, ignore_ctime))
        return BackupResult(snapshot_id="f" * 64, bytes_added=10, total_bytes=100, files=2)

    def forget(self, keep, *, tags, group_by="", prune=True, host=None):
        self.calls.append(("forget", keep.text, tags, host))
        return ForgetResult(kept=(), removed=("a" * 8,), pruned=True)

    def check(self, read):
        self.calls.append(("check", read))
        if self.fail:
            raise self.fail
        return self.check_result


def tier(restic, text="file:///srv/vault:vault", **settings):
    env = {"BACKUP_TARGET_VAULT_PASSWORD": "p", **settings}
    [spec] = parse_targets(text, env).available
    return ResticTier(spec, restic, "docker a!", lambda: T0)


class FakeSource:
    def __init__(self, path, store_kind="file", ctime_kept=True):
        self.path, self.ctime_kept = path, ctime_kept
        self.volume = SimpleNamespace(name="mydata", store="fast", options=SimpleNamespace(capacity_mb=64))
        self.store = SimpleNamespace(spec=SimpleNamespace(kind=store_kind))

    def tree(self):
        from contextlib import contextmanager

        @contextmanager
        def given():
            yield Tree(str(self.path), T0, self.ctime_kept)
        return given()


def test_the_catalog_is_the_tagged_snapshots_oldest_first_and_latest_is_the_newest():
    restic = StubRestic([snapshot("a", "mydata", "20261123T010000Z"), snapshot("b", "other", "20261123T010000Z"),
                         Snapshot(id="c" * 64, short_id="cccccccc", time=T0, tags=("by-hand",), paths=(), host="h"),
                         snapshot("d", "mydata", "20261123T020000Z", capacity="64", store="fast")])
    target = tier(restic)

    assert [(r.volume, r.id) for r in target.records()] == [("mydata", "20261123T010000Z"),
                                                           ("other", "20261123T010000Z"),
                                                           ("mydata", "20261123T020000Z")]
    latest = target.find("mydata", "latest")
    assert latest.record.id == "20261123T020000Z" and latest.why == \
        "latest copy 20261123T020000Z on backup target vault"
    assert latest.record.facts["Capacity"] == "64MB" and latest.record.facts["VolumeStore"] == "fast"
    with pytest.raises(NotFound, match="backup target vault has no copy 20261122T000000Z of volume mydata"):
        target.find("mydata", "20261122T000000Z")
    with pytest.raises(NotFound, match="has no copy of volume nothing"):
        target.find("nothing", "latest")


def test_a_copy_is_tagged_names_its_parent_and_an_empty_volume_holds_a_marker(tmp_path):
    restic = StubRestic([snapshot("a", "mydata", "20261123T020000Z")])
    target = tier(restic)
    volume = tmp_path / "volume"
    volume.mkdir()

    record = target.put(FakeSource(volume, ctime_kept=False), "manual")

    _, listed, tags, host, parent, ignore_ctime = restic.calls[-1]
    assert listed == [EMPTY_MARKER] and ignore_ctime
    assert tags == {"volume": "mydata", "backup": "20261123T020000Z-1", "kind": "manual", "format": "folder",
                    "capacity": "64", "store": "fast"}
    assert host == "docker-a" and parent == "a" * 8
    assert (record.id, record.added, record.size) == ("20261123T020000Z-1", 10, 100)
    assert record.kept == 2                    # the listing made for its id and parent, and this one


def test_retention_forgets_the_volumes_scheduled_copies_of_every_host_and_says_which():
    restic = StubRestic([snapshot("a", "mydata", "20261123T010000Z"), snapshot("b", "mydata", "20261123T020000Z")])

    deleted = tier(restic).retain("mydata", parse_keep("daily=7"))

    # a volume of a swarm is copied by whichever node has it: its retention is the volume's
    assert restic.calls[-1] == ("forget", "daily=7", {"volume": "mydata", "kind": "schedule"}, None)
    assert deleted == ["20261123T010000Z"]


@pytest.mark.parametrize("restic, result", [
    (StubRestic(), "ok"),
    (StubRestic(check=CheckResult(ok=False, problems=("pack 1234 is damaged",))), "damaged"),
    (StubRestic(fail=RepositoryMissing("no repository")), "empty"),
    (StubRestic(fail=TargetUnreachable("backup target vault: the server cannot be reached")), "failed"),
])
def test_a_verification_says_ok_damaged_empty_or_failed(restic, result, tmp_path):
    verification = tier(restic, BACKUP_TARGET_VAULT_VERIFY_READ="2/9").verify(str(tmp_path / "scratch"))
    assert verification.result == result
    if result == "damaged":
        assert verification.problems == ("pack 1234 is damaged",)
    if result == "failed":
        assert "cannot be reached" in verification.error
    if result in ("ok", "damaged"):
        assert ("check", "2/9") in restic.calls


def test_one_path_of_a_restore_becomes_the_volume(tmp_path):
    folder = tmp_path / "new"
    (folder / "reports" / "2026").mkdir(parents=True)
    (folder / "reports" / "2026" / "jan.csv").write_text("1")
    (folder / "reports" / "2026" / "q1").mkdir()
    _lift(str(folder), "reports/2026")
    assert sorted(os.listdir(folder)) == ["jan.csv", "q1"]

    single = tmp_path / "single"
    (single / "a").mkdir(parents=True)
    (single / "a" / "b.txt").write_text("b")
    _lift(str(single), "a/b.txt")
    assert os.listdir(single) == ["b.txt"]


def test_host_names_are_what_restic_takes():
    assert host_name("docker-host-1") == "docker-host-1"
    assert host_name("my host (lab)") == "my-host--lab"
    assert host_name("_x") == "h_x"


def test_an_exclusive_hold_waits_for_shared_ones_and_goes_before_new_ones():
    lock = SharedLock()
    order, first_in, exclusive_waiting = [], threading.Event(), threading.Event()
    release_first = threading.Event()

    def shared(name, entered=None, release=None):
        with lock.shared():
            order.append(name)
            if entered:
                entered.set()
            if release:
                release.wait(10)

    def exclusive():
        exclusive_waiting.set()
        with lock.exclusive():
            order.append("exclusive")

    first = threading.Thread(target=shared, args=("shared-1", first_in, release_first))
    first.start()
    assert first_in.wait(10)
    writer = threading.Thread(target=exclusive)
    writer.start()
    assert exclusive_waiting.wait(10)
    while not lock._waiting:            # the writer is queued (a state, not a time)
        threading.Event().wait(0.01)
    late = threading.Thread(target=shared, args=("shared-2",))
    late.start()
    release_first.set()
    for thread in (first, writer, late):
        thread.join(10)
    assert order == ["shared-1", "exclusive", "shared-2"]


def test_the_board_keeps_the_last_copy_and_verification_across_a_restart(tmp_path):
    path = str(tmp_path / "state" / "offsite-status.json")
    board = CopyBoard(path, lambda: T0, {"vault": "/srv/vault"})
    from plugin.backup.contract import Record, Verification
    board.copied("mydata", "vault", Record("vault", "mydata", "20261123T020000Z", T0, "schedule", size=5, added=3))
    board.verified(Verification("vault", T0, "damaged", "5%", problems=("pack x",)))
    board.failed("other", "vault", T0, "manual", "the server cannot be reached")

    again = CopyBoard(path, lambda: T0, {"vault": "/srv/vault"})
    again.load()
    moved = CopyBoard(path, lambda: T0, {"vault": "s3:https://elsewhere/b"})
    moved.load()
    assert moved.shown("mydata", "vault") == {} and moved.verification("vault") == {}

    shown = again.shown("mydata", "vault")
    assert shown["LastCopy"]["Id"] == "20261123T020000Z" and shown["LastCopy"]["BytesAdded"] == 3
    assert shown["LastVerification"]["Result"] == "damaged" and shown["LastError"] == ""
    assert again.shown("other", "vault")["LastError"] == "the server cannot be reached"
    again.removed("other")
    assert again.targets_of("other") == [] and again.targets_of("mydata") == ["vault"]


# --- the assembled driver: what is refused before anything is made -------------------------

def test_a_copy_to_a_target_not_declared_or_unusable_is_refused_before_anything(make_driver, tmp_path):
    driver = make_driver(BACKUP_TARGETS="local:local;file:///srv/ok:ok;s3:ftp://x/y:broken",
                         BACKUP_TARGET_OK_PASSWORD="p")
    refusals = {
        "nowhere@daily": "no backup target is labelled 'nowhere' \\(off-site targets: ok\\)",
        "local@daily": "local is the local tier, which Backup and BackupStore schedule",
        "broken@daily": "backup target broken is unavailable: .*unsupported scheme|is not valid",
        "ok@never": "'never' is not a schedule",
    }
    for value, said in refusals.items():
        with pytest.raises(InvalidOption, match=f"BackupCopy={value!r}: .*({said})"):
            driver.create("v", {"BackupCopy": value})
    with pytest.raises(InvalidOption, match="BackupCopyKeep='3' needs BackupCopy"):
        driver.create("v", {"BackupCopyKeep": "3"})
    assert driver.list() == [] and not (tmp_path / "fast" / "volumes" / "v").exists()


def test_each_copy_of_a_volume_is_scheduled_on_its_own_and_unscheduled_with_it(make_driver, clock):
    driver = make_driver(clock=clock, BACKUP_TARGETS="file:///srv/a:a;file:///srv/b:b",
                         BACKUP_TARGET_A_PASSWORD="p", BACKUP_TARGET_B_PASSWORD="p")
    driver.create("v", {"BackupCopy": "a@daily;b@weekly", "BackupCopyKeep": "a:3;b:daily=7"})
    copies = driver.backups.copies

    assert copies.copy_schedule.names() == ["v@a", "v@b"]
    shown = driver.get("v")["Status"]["Backup"]["Copies"]
    assert (shown["a"]["Policy"], shown["a"]["Keep"], shown["b"]["Keep"]) == ("a@daily", "3", "daily=7")
    assert shown["a"]["NextRun"] and shown["b"]["NextRun"]
    driver.remove("v")
    assert copies.copy_schedule.names() == []


def test_a_volume_whose_target_went_away_shows_why_its_copies_stop(make_driver, clock):
    driver = make_driver(clock=clock, BACKUP_TARGETS="file:///srv/a:a", BACKUP_TARGET_A_PASSWORD="p")
    driver.create("v", {"BackupCopy": "a@daily"})
    driver.stop()

    again = make_driver(clock=clock, BACKUP_TARGETS="local:local")

    status = again.get("v")["Status"]["Backup"]
    assert "its BackupCopy cannot be followed" in status["CopyProblem"]
    assert "no backup target is labelled 'a'" in status["CopyProblem"]
    assert again.backups.copies.copy_schedule.names() == []
