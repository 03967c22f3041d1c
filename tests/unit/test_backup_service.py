"""The backup service wired into the driver, on real folder stores (rsync, real files)."""

import errno
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

from plugin.errors import BackendError, BackupError, BackupStorageError, InUse, InvalidOption, NotFound
from plugin.options import parse_options
from tests.fakes import calls_do_not_wait
from tests.filesystems import fill, small_tmpfs


@pytest.fixture
def driver(make_driver, clock):
    return make_driver(clock=clock)


@pytest.fixture
def service(driver):
    return driver.backups


def data(tmp_path, name, store="fast"):
    return tmp_path / store / "volumes" / name


def write(tmp_path, name, files, store="fast"):
    for rel, text in files.items():
        path = data(tmp_path, name, store) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read_tree(folder):
    return {os.path.relpath(os.path.join(root, f), folder): open(os.path.join(root, f)).read()
            for root, _, files in os.walk(folder) for f in files}


def test_backup_list_and_restore_as_new_volume(driver, service, tmp_path, clock):
    driver.create("mydata", {"Backup": "daily"})
    write(tmp_path, "mydata", {"a.txt": "one", "sub/b.txt": "two"})
    first = service.api_create("mydata")
    assert first["Method"] == "directory" and first["Origin"] == "manual"
    backup_dir = tmp_path / "fast" / "backups" / "mydata" / first["Id"]
    assert (backup_dir / "manifest.json").exists() and (backup_dir / "data" / "sub" / "b.txt").read_text() == "two"
    write(tmp_path, "mydata", {"a.txt": "changed"})
    os.remove(data(tmp_path, "mydata") / "sub" / "b.txt")
    driver.create("copy", {"RestoreFrom": "mydata@latest"})
    assert read_tree(data(tmp_path, "copy")) == {"a.txt": "one", "sub/b.txt": "two"}
    assert read_tree(data(tmp_path, "mydata")) == {"a.txt": "changed"}
    assert [b["Id"] for b in service.api_list("mydata")] == [first["Id"]]


def test_unchanged_volume_costs_only_metadata(driver, service, tmp_path, clock):
    driver.create("v", {})
    write(tmp_path, "v", {"f": "x" * 1000})
    one = service.api_create("v")
    clock.advance(minutes=1)
    two = service.api_create("v")
    assert two["Method"] == "unchanged" and two["Base"] == one["Id"]
    assert os.listdir(tmp_path / "fast" / "backups" / "v" / two["Id"]) == ["manifest.json"]
    driver.create("w", {"RestoreFrom": f"v@{two['Id']}"})
    assert read_tree(data(tmp_path, "w")) == {"f": "x" * 1000}


def test_restore_in_place_needs_force_and_keeps_a_safety_backup(driver, service, tmp_path, clock):
    driver.create("v", {})
    write(tmp_path, "v", {"f": "good"})
    good = service.api_create("v")
    write(tmp_path, "v", {"f": "bad", "new": "also bad"})
    with pytest.raises(InUse, match="add --force"):
        service.api_restore("v", good["Id"])
    assert read_tree(data(tmp_path, "v")) == {"f": "bad", "new": "also bad"}
    driver.mount("v", "c1")
    with pytest.raises(InUse, match="mounted 1 time"):
        service.api_restore("v", good["Id"], force=True)
    driver.unmount("v", "c1")
    clock.advance(seconds=5)
    done = service.api_restore("v", good["Id"], force=True)
    assert read_tree(data(tmp_path, "v")) == {"f": "good"}
    safety = next(b for b in service.api_list("v") if b["Id"] == done["SafetyBackup"])
    assert safety["Origin"] == "pre-restore"
    driver.create("before", {"RestoreFrom": f"v@{safety['Id']}"})
    assert read_tree(data(tmp_path, "before")) == {"f": "bad", "new": "also bad"}


def test_remove_takes_a_final_backup_that_stays_restorable(driver, service, tmp_path):
    driver.create("v", {"Backup": "weekly"})
    write(tmp_path, "v", {"f": "last words"})
    driver.remove("v")
    assert not data(tmp_path, "v").exists()
    [final] = service.api_list("v")
    assert final["Origin"] == "final"
    driver.create("v", {"RestoreFrom": "v@latest"})
    assert read_tree(data(tmp_path, "v")) == {"f": "last words"}


def test_remove_without_policy_takes_no_backup(driver, service):
    driver.create("v", {})
    driver.remove("v")
    with pytest.raises(NotFound, match="no volume named v and no backups of one"):
        service.api_list("v")


def test_failed_final_backup_keeps_the_volume(driver, service, tmp_path):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "precious"})
    service.engines["file"].copier.rsync = "/nonexistent/rsync"
    with pytest.raises(BackupError, match="was not removed: its final backup failed: .*needs rsync"):
        driver.remove("v")
    assert read_tree(data(tmp_path, "v")) == {"f": "precious"}
    assert driver.get("v")["Status"]["Backup"]["LastBackup"]["Result"] == "failed"
    left = tmp_path / "fast" / "backups" / "v"
    assert not left.exists() or os.listdir(left) == []   # no half backup left


def test_a_full_backup_store_is_a_clear_failure_in_status_and_lets_go_once_freed(make_driver, clock, tmp_path):
    with small_tmpfs(tmp_path / "full"):
        driver = make_driver(clock=clock, VOLUME_STORES=f"file://{tmp_path}/fast:default;file://{tmp_path}/full:full")
        driver.create("v", {"Backup": "daily", "BackupStore": "full"})
        write(tmp_path, "v", {"f": "precious"})
        filler = fill(tmp_path / "full")
        with pytest.raises(BackupStorageError, match=r"^cannot write the backup lease .*/full/backups/.leases/v/"
                                                     r"owner.json: No space left on device; the backup store is full"):
            driver.backups.api_create("v")
        status = driver.get("v")["Status"]["Backup"]
        assert status["LastBackup"]["Result"] == "failed" and "the backup store is full" in status["LastError"]
        with pytest.raises(BackupError, match="volume v was not removed: its final backup failed: .*No space left"):
            driver.remove("v")
        assert read_tree(data(tmp_path, "v")) == {"f": "precious"}
        assert os.listdir(tmp_path / "full" / "backups" / ".leases") == []     # no lease left behind
        filler.unlink()
        driver.remove("v")                                                     # at once, not in 10 minutes
        assert [b["Origin"] for b in driver.backups.api_list("v")] == ["final"]


def test_any_os_error_of_a_backup_is_typed_recorded_and_releases_the_lease(driver, service, tmp_path, monkeypatch):
    driver.create("v", {})

    def broken(*args):
        raise OSError(errno.EIO, "Input/output error", "/srv/volumes/v/f")
    monkeypatch.setattr(service.engines["file"].copier, "backup", broken)
    with pytest.raises(BackupStorageError, match=r"^manual backup of volume v failed: Input/output error "
                                                 r"\(/srv/volumes/v/f\)$"):
        service.api_create("v")
    assert driver.get("v")["Status"]["Backup"]["LastError"].endswith("Input/output error (/srv/volumes/v/f)")
    assert os.listdir(tmp_path / "fast" / "backups" / ".leases") == []
    assert not (tmp_path / "fast" / "backups" / "v").exists()         # the staged backup was aborted


def test_scheduled_backups_and_retention_over_ten_days(driver, service, tmp_path, clock):
    driver.create("v", {"Backup": "daily@02:00", "BackupKeep": "3"})
    manual = service.api_create("v")
    made = []
    for day in range(10):
        write(tmp_path, "v", {"f": f"day {day}"})
        clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC) + timedelta(days=day)
        made += service.scheduler.tick(clock.now)
    assert made == ["v"] * 10
    backups = service.api_list("v")
    scheduled = [b for b in backups if b["Origin"] == "schedule"]
    assert [b["Created"][:10] for b in scheduled] == ["2026-11-30", "2026-12-01", "2026-12-02"]
    assert manual["Id"] in [b["Id"] for b in backups]       # retention prunes scheduled ones only
    status = driver.get("v")["Status"]["Backup"]
    assert status["Backups"] == 4 and status["Policy"] == "daily@02:00"
    assert status["NextRun"] == "2026-12-03T02:00:00Z"
    assert status["LastBackup"]["Origin"] == "schedule"


def damage(tmp_path, name, backup_id, store="fast"):
    (tmp_path / store / "backups" / name / backup_id / "manifest.json").write_text("{ not json")


def test_a_damaged_backup_is_listed_deletable_and_never_restored_and_the_restore_says_so(
        driver, service, tmp_path, clock):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "one"})
    good = service.api_create("v")
    clock.advance(minutes=1)
    write(tmp_path, "v", {"f": "two"})
    bad = service.api_create("v")
    damage(tmp_path, "v", bad["Id"])
    service.store_opened("default")               # what a restart finds (a listing finds it too)
    listed = service.api_list("v")
    assert [(b["Id"], b["State"]) for b in listed] == [(good["Id"], "ok"), (bad["Id"], "damaged")]
    assert "manifest.json is not valid JSON" in listed[1]["Problem"]
    status = driver.get("v")["Status"]["Backup"]
    assert (status["Backups"], status["DamagedBackups"]) == (1, 1)

    done = service.api_restore("v", target="copy")
    assert done["Backup"] == good["Id"]
    assert done["Why"].startswith(f"latest usable backup {good['Id']}; {bad['Id']} is damaged: ")
    assert "not valid JSON" in done["Why"] and read_tree(data(tmp_path, "copy")) == {"f": "one"}
    assert driver.get("copy")["Status"]["Backup"]["RestoredFrom"] == {"Volume": "v", "Backup": good["Id"],
                                                                      "Why": done["Why"]}
    driver.create("other", {"RestoreFrom": "v@latest"})           # docker volume create: inspect says
    restored = driver.get("other")["Status"]["Backup"]["RestoredFrom"]
    assert restored["Backup"] == good["Id"] and restored["Why"].startswith("latest usable backup")
    with pytest.raises(BackupError, match=rf"backup {bad['Id']} of volume v is damaged: .*not valid JSON.*; "
                                          "it cannot be restored"):
        service.api_restore("v", bad["Id"], target="never")
    assert driver.find("never") is None

    service.api_delete("v", bad["Id"])
    assert not (tmp_path / "fast" / "backups" / "v" / bad["Id"]).exists()
    assert [b["Id"] for b in service.api_list("v")] == [good["Id"]]
    assert "DamagedBackups" not in driver.get("v")["Status"]["Backup"]


def test_backups_are_listed_in_the_order_they_were_taken_damaged_ones_too(driver, service, tmp_path, clock):
    clock.advance(microseconds=500000)                 # both in one second: ids ...Z and ...Z-1
    driver.create("v", {})
    write(tmp_path, "v", {"f": "one"})
    good = service.api_create("v")
    write(tmp_path, "v", {"f": "two"})
    bad = service.api_create("v")
    assert bad["Id"] == good["Id"] + "-1"
    damage(tmp_path, "v", bad["Id"])
    assert [b["Id"] for b in service.api_list("v")] == [good["Id"], bad["Id"]]


def test_retention_reclaims_a_damaged_scheduled_backup(driver, service, tmp_path, clock):
    driver.create("v", {"Backup": "daily@02:00", "BackupKeep": "2"})
    made = []
    for day in range(3):
        write(tmp_path, "v", {"f": f"day {day}"})
        clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC) + timedelta(days=day)
        service.scheduler.tick(clock.now)
        made.append(service.api_list("v")[-1]["Id"])
    assert sorted(os.listdir(tmp_path / "fast" / "backups" / "v")) == made[1:]     # BackupKeep=2
    damage(tmp_path, "v", made[1])
    write(tmp_path, "v", {"f": "day 3"})
    clock.now += timedelta(days=1)
    service.scheduler.tick(clock.now)             # keeps day 2 and day 3: day 1 would go, damaged or not
    assert not (tmp_path / "fast" / "backups" / "v" / made[1]).exists()     # its space is reclaimed
    listed = service.api_list("v")
    assert [b["State"] for b in listed] == ["ok", "ok"] and listed[0]["Id"] == made[2]


def test_on_unmount_backs_up_when_the_last_container_leaves(driver, service, tmp_path, clock):
    driver.create("v", {"Backup": "on-unmount"})
    driver.mount("v", "c1")
    driver.mount("v", "c2")
    write(tmp_path, "v", {"f": "x"})
    driver.unmount("v", "c1")
    assert service.scheduler.tick(clock()) == []
    driver.unmount("v", "c2")
    assert service.scheduler.tick(clock()) == ["v"]
    assert [b["Origin"] for b in service.api_list("v")] == ["schedule"]


def test_backup_store_must_be_of_the_same_family(make_driver, clock, tmp_path):
    driver = make_driver(clock=clock, VOLUME_STORES=f"file://{tmp_path}/fast:default;ds1/x:vmdk")
    # Without vCenter the datastore store is unavailable, and create says so first ...
    with pytest.raises(BackendError, match="volume store vmdk is unavailable"):
        driver.create("v", {"BackupStore": "vmdk"})
    assert driver.list() == []
    # ... and the policy check refuses the mix of families on its own.
    options = parse_options({"BackupStore": "vmdk"}, driver.stores)
    with pytest.raises(InvalidOption, match="BackupStore='vmdk' is a datastore store: backups of file volumes"):
        driver.backups.check_policy(options)


def test_backup_store_elsewhere(driver, service, tmp_path):
    driver.create("v", {"BackupStore": "slow"})
    write(tmp_path, "v", {"f": "x"})
    backup = service.api_create("v")
    assert (tmp_path / "slow" / "backups" / "v" / backup["Id"] / "data" / "f").read_text() == "x"


def test_restore_of_unknown_backup_creates_nothing(driver, tmp_path):
    with pytest.raises(NotFound, match="volume ghost has no backups"):
        driver.create("new", {"RestoreFrom": "ghost@latest"})
    assert not data(tmp_path, "new").exists() and driver.list() == []


def test_delete_refuses_a_base_of_unchanged_backups(driver, service, tmp_path, clock):
    driver.create("v", {})
    write(tmp_path, "v", {"f": "x"})
    base = service.api_create("v")
    clock.advance(minutes=1)
    later = service.api_create("v")
    with pytest.raises(BackupError, match=f"holds the data of {later['Id']}"):
        service.api_delete("v", base["Id"])
    service.api_delete("v", later["Id"])
    service.api_delete("v", base["Id"])
    assert service.api_list("v") == []


def test_backups_are_found_again_after_a_restart(driver, service, make_driver, clock, tmp_path):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "x"})
    backup = service.api_create("v")
    again = make_driver(clock=clock)
    status = again.get("v")["Status"]["Backup"]
    assert status["Backups"] == 1 and status["LastBackup"]["Id"] == backup["Id"]


def test_interrupted_in_place_restore_is_finished_at_start(driver, make_driver, clock, tmp_path):
    driver.create("v", {})
    write(tmp_path, "v", {"f": "old"})
    store = driver.stores["default"]
    staged = store.new_staging("v")
    with open(os.path.join(staged, "f"), "w") as handle:
        handle.write("restored")
    os.rename(staged, os.path.join(store.staging_dir, "v.ready"))
    os.rename(data(tmp_path, "v"), os.path.join(store.trash_dir, "v-crash"))   # crash mid-swap
    make_driver(clock=clock)
    assert read_tree(data(tmp_path, "v")) == {"f": "restored"}


class Gate:
    """Holds a copy until the test opens it: slow work without sleeping."""

    def __init__(self, copier):
        self.copier, self.entered, self.opened = copier, threading.Event(), threading.Event()
        self.calls = 0

    def wrap(self, method, monkeypatch=None):
        """Hold ``method`` of the copier (an instance, or a class with ``monkeypatch``)."""
        real = getattr(self.copier, method)

        def gated(*args, **kwargs):
            self.calls += 1
            self.entered.set()
            assert self.opened.wait(10), "the test never opened the gate"
            return real(*args, **kwargs)
        if monkeypatch is not None:
            monkeypatch.setattr(self.copier, method, gated)
        else:
            setattr(self.copier, method, gated)
        return self


def test_slow_restore_does_not_hold_docker_create(driver, service, tmp_path, monkeypatch):
    driver.create("src", {})
    write(tmp_path, "src", {"f": "restored bytes"})
    service.api_create("src")
    gate = Gate(service.engines["file"].copier).wrap("restore")
    with calls_do_not_wait(driver, until=gate.entered):
        driver.create("big", {"RestoreFrom": "src@latest"})    # answers while the copy runs
    assert gate.entered.wait(10)
    assert driver.get("big")["Status"]["Restore"]["State"] == "running"
    with calls_do_not_wait(driver), pytest.raises(InUse, match="volume big is still being restored"):
        driver.mount("big", "c1")
    with calls_do_not_wait(driver), pytest.raises(InUse, match="still being restored"):
        driver.remove("big")
    gate.opened.set()
    assert driver.find("big").job.wait(10)
    target = driver.mount("big", "c1")
    assert driver.get("big")["Status"]["Restore"]["State"] == "done"
    assert read_tree(data(tmp_path, "big")) == {"f": "restored bytes"} and target.endswith("/big")


def test_a_delete_refused_during_a_restore_says_a_restore_reads_it(driver, service, tmp_path):
    driver.create("src", {})
    write(tmp_path, "src", {"f": "x"})
    backup = service.api_create("src")
    gate = Gate(service.engines["file"].copier).wrap("restore")
    with calls_do_not_wait(driver, until=gate.entered):
        driver.create("big", {"RestoreFrom": "src@latest"})    # answers while the copy runs
    try:
        assert gate.entered.wait(10)
        with pytest.raises(BackupError, match=rf"^volume 'src' is busy: .* is restoring its backup {backup['Id']} "
                                              r"into volume big; its backup lease runs until"):
            service.api_delete("src", backup["Id"])
        with pytest.raises(BackupError, match=r"^volume 'src' is busy: .* is restoring its backup"):
            service.api_prune("src")
    finally:
        gate.opened.set()
    assert driver.find("big").job.wait(10)
    service.api_delete("src", backup["Id"])                    # once the restore is done
    assert service.api_list("src") == []


def test_a_slow_restore_as_a_new_volume_still_says_why_that_backup(driver, service, tmp_path):
    driver.create("src", {})
    write(tmp_path, "src", {"f": "x"})
    backup = service.api_create("src")
    gate = Gate(service.engines["file"].copier).wrap("restore")
    with calls_do_not_wait(driver, until=gate.entered):
        done = service.api_restore("src", target="copy")      # answers while the copy runs
    assert gate.entered.wait(10) and done["Why"] == f"latest backup {backup['Id']}"
    gate.opened.set()
    assert driver.find("copy").job.wait(10)
    assert driver.get("copy")["Status"]["Backup"]["RestoredFrom"]["Why"] == f"latest backup {backup['Id']}"


def test_slow_final_backup_does_not_hold_docker_remove(driver, service, tmp_path, monkeypatch):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "x"})
    gate = Gate(service.engines["file"].copier).wrap("backup")
    with calls_do_not_wait(driver), \
            pytest.raises(BackupError, match="volume v was not removed yet: its final backup is still running"):
        driver.remove("v")
    assert data(tmp_path, "v").exists() and driver.find("v") is not None
    gate.opened.set()
    driver.remove("v")                                            # the same job, not a second backup
    assert gate.calls == 1
    assert [b["Origin"] for b in service.api_list("v")] == ["final"] and not data(tmp_path, "v").exists()


def test_final_backup_is_taken_again_if_the_volume_was_used_meanwhile(driver, service, tmp_path, clock):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "before"})
    gate = Gate(service.engines["file"].copier).wrap("backup")
    with calls_do_not_wait(driver), pytest.raises(BackupError, match="still running"):
        driver.remove("v")
    gate.opened.set()
    clock.advance(minutes=1)
    driver.mount("v", "c1")
    write(tmp_path, "v", {"f": "after"})
    driver.unmount("v", "c1")
    driver.remove("v")
    assert gate.calls == 2
    driver.create("w", {"RestoreFrom": "v@latest"})
    assert read_tree(data(tmp_path, "w")) == {"f": "after"}


def test_progress_of_a_running_backup_is_shown(driver, service, tmp_path):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "x"})
    gate = Gate(service.engines["file"].copier).wrap("backup")
    assert service.api_progress("v") == {}
    worker = threading.Thread(target=service.api_create, args=("v",))
    worker.start()
    try:
        assert gate.entered.wait(10)
        shown = service.api_progress("v")
        assert shown["Operation"] == "backup" and shown["Phase"] == "copying files"
        assert driver.get("v")["Status"]["Backup"]["Progress"] == shown
    finally:
        gate.opened.set()
        worker.join(10)
    assert service.api_progress("v") == {} and "Progress" not in driver.get("v")["Status"]["Backup"]


# --- shared status under concurrency ----------------------------------------------------

class WatchedLock:
    """The status board's lock, setting ``contended`` when a thread finds it held."""

    def __init__(self, contended):
        self._lock, self.contended = threading.Lock(), contended

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        return self

    def __exit__(self, *_):
        self._lock.release()


class WorstMoment(dict):
    """The service's table of running operations, letting a backup thread finish at the worst
    moment: right after a reader first looked into it. The reader goes on once ``settled``:
    the backup thread has ended, or waits for the lock the reader holds (a service that reads
    under its lock makes it wait until the read is done)."""

    def __init__(self, finish, settled):
        super().__init__()
        self.finish, self.settled, self.fired = finish, settled, False

    def _interleave(self):
        if not self.fired:
            self.fired = True
            self.finisher = threading.Thread(target=self.finish)
            self.finisher.start()
            assert self.settled.wait(10), "the backup thread neither ended nor waited for the status lock"

    def __contains__(self, key):
        found = super().__contains__(key)
        self._interleave()
        return found

    def get(self, key, default=None):
        found = super().get(key, default)
        self._interleave()
        return found


def test_status_read_while_a_backup_finishes_never_fails(driver, service, tmp_path):
    driver.create("v", {"Backup": "daily"})
    write(tmp_path, "v", {"f": "x"})
    gate = Gate(service.engines["file"].copier).wrap("backup")
    settled = threading.Event()

    def back_up():
        try:
            service.api_create("v")
        finally:
            settled.set()
    worker = threading.Thread(target=back_up)

    def finish():
        gate.opened.set()
        worker.join(10)
    service.board._lock = WatchedLock(settled)
    service.board._progress = WorstMoment(finish, settled)
    worker.start()
    assert gate.entered.wait(10)
    shown = driver.get("v")["Status"]["Backup"]            # docker volume inspect, as the backup ends
    assert shown["Progress"]["Phase"] == "copying files"
    service.board._progress.finisher.join(10)
    assert not worker.is_alive()
    after = driver.get("v")["Status"]["Backup"]
    assert "Progress" not in after and after["Backups"] == 1 and after["LastBackup"]["Result"] == "ok"


def test_status_hammered_while_backups_start_and_finish(driver, service, tmp_path):
    for name in ("a", "b"):
        driver.create(name, {})
        write(tmp_path, name, {"f": name})
    failures = []

    def guarded(work):
        def run():
            try:
                work()
            except Exception as err:    # noqa: BLE001 - collected and asserted below
                failures.append(err)
        return threading.Thread(target=run)

    def backups():
        for _ in range(15):
            service.api_create("a")
            service.api_create("b")

    def inspect():
        for _ in range(2000):
            for name in ("a", "b"):
                driver.get(name)
                service.api_progress(name)
    threads = [guarded(backups), guarded(inspect), guarded(inspect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and not any(t.is_alive() for t in threads)
    assert driver.get("a")["Status"]["Backup"]["Backups"] == 15
