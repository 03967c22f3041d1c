"""No silent data loss, no vanished volumes: the driver's side of restores, start-up,
unavailable stores, races and Docker's limits, on real folder stores (mounts faked)."""

import http.client
import json
import threading
from datetime import datetime, UTC

import pytest

from plugin import commands
from plugin.errors import BackendError, Conflict, InUse, MountError
from plugin.jobs import CallBudgets

from .test_backup_service import read_tree, write


def data(tmp_path, name, store="fast"):
    return tmp_path / store / "volumes" / name


@pytest.fixture
def driver(make_driver, clock):
    return make_driver(clock=clock)


def restorable(driver, tmp_path, name="mydata", files=None):
    """A volume ``name`` with one backup of ``files``; returns the backup's summary."""
    driver.create(name, {"Backup": "daily"})
    write(tmp_path, name, files or {"a.txt": "backed up"})
    return driver.backups.api_create(name)


# --- 1. RestoreFrom onto a name that exists -------------------------------------------------

def test_restore_from_onto_an_existing_volume_is_refused_and_changes_nothing(driver, tmp_path):
    restorable(driver, tmp_path)
    driver.create("yesterday", {})
    write(tmp_path, "yesterday", {"mine.txt": "keep me"})
    with pytest.raises(Conflict) as refused:
        driver.create("yesterday", {"RestoreFrom": "mydata@latest"})
    message = str(refused.value)
    assert "volume yesterday already exists" in message and "never overwrites" in message
    assert "vsphere-volume restore yesterday --backup ID --force" in message
    assert read_tree(data(tmp_path, "yesterday")) == {"mine.txt": "keep me"}


def test_backup_restore_into_an_existing_target_is_refused(driver, tmp_path):
    restorable(driver, tmp_path)
    driver.create("other", {})
    write(tmp_path, "other", {"mine.txt": "keep me"})
    with pytest.raises(Conflict, match="volume other already exists"):
        driver.backups.api_restore("mydata", "latest", "other")
    assert read_tree(data(tmp_path, "other")) == {"mine.txt": "keep me"}


def test_the_same_restore_from_create_again_is_the_same_volume(driver, tmp_path):
    restorable(driver, tmp_path)
    driver.create("copy", {"RestoreFrom": "mydata@latest"})
    driver.create("copy", {"RestoreFrom": "mydata@latest"})       # Docker retried: done already
    assert read_tree(data(tmp_path, "copy")) == {"a.txt": "backed up"}
    with pytest.raises(Conflict, match="already exists with other options: RestoreFrom=mydata@latest"):
        driver.create("copy", {"Capacity": "1024"})


# --- 2. a restore cut off by a crash ---------------------------------------------------------

def crash_mid_restore(driver, tmp_path):
    """A RestoreFrom create whose plugin died while it copied: the mark written before the
    volume, the volume created, part of the data."""
    backup = restorable(driver, tmp_path, files={"a.txt": "backed up", "b.txt": "two"})
    driver.discovery.marks.mark("copy", "mydata@latest", "default", "2026-11-23T00:00:00Z")
    driver.stores["default"].create("copy", driver.find("mydata").options,
                                    {"Driver": "vsphere", "Name": "copy",
                                     "DriverOpts": {"RestoreFrom": "mydata@latest"}})
    write(tmp_path, "copy", {"a.txt": "backed"})                   # half of one file
    assert driver.health.watcher.attempt("default")                      # listed (and persisted) as it was
    return backup


def failing_store(monkeypatch, label, reason):
    """Store ``label`` does not answer (its listing raises) until the returned dict is cleared."""
    from plugin.stores.directory import DirectoryStore
    real_discover = DirectoryStore.discover
    down = {label: reason}

    def discover(store, known=None):
        if store.label in down:
            raise BackendError(down[store.label])
        return real_discover(store, known)
    monkeypatch.setattr(DirectoryStore, "discover", discover)
    return down


def test_a_cut_off_restore_is_shown_incomplete_until_its_store_answers_then_finished(
        driver, make_driver, clock, tmp_path, monkeypatch):
    crash_mid_restore(driver, tmp_path)
    down = failing_store(monkeypatch, "default", "vCenter cannot be reached")
    again = make_driver(clock=clock)
    state = again.get("copy")["Status"]["Restore"]["State"]
    assert state.startswith("incomplete: its restore from mydata@latest") and "did not finish" in state
    with pytest.raises(InUse, match="volume copy cannot be mounted: its restore from mydata@latest"):
        again.mount("copy", "c1")
    with pytest.raises(Conflict, match="exists, but its restore from mydata@latest"):
        again.create("copy", {"Capacity": "2G"})                  # another create does not pass for it
    del down["default"]                                            # the store answers again
    again.create("copy", {"RestoreFrom": "mydata@latest"})          # the same create finishes it
    assert read_tree(data(tmp_path, "copy")) == {"a.txt": "backed up", "b.txt": "two"}
    assert again.get("copy")["Status"]["Restore"]["State"] == "done"
    assert again.discovery.marks.get("copy") is None
    again.mount("copy", "c1")


def test_a_cut_off_restore_that_cannot_go_on_stays_visibly_incomplete(driver, make_driver, clock, tmp_path):
    backup = crash_mid_restore(driver, tmp_path)
    driver.backups.api_delete("mydata", backup["Id"])              # its backup is gone meanwhile
    again = make_driver(clock=clock)
    assert again.find("copy").restore.wait(10)
    state = again.get("copy")["Status"]["Restore"]["State"]
    assert state.startswith("incomplete: its restore from mydata@latest failed") and "remove the volume" in state
    with pytest.raises(InUse, match="cannot be mounted: its restore from mydata@latest failed"):
        again.mount("copy", "c1")
    assert read_tree(data(tmp_path, "copy")) == {"a.txt": "backed"}  # what was there is kept, not shown whole
    again.remove("copy")


def test_a_mark_without_its_volume_is_dropped_when_the_store_is_listed(driver, make_driver, clock, tmp_path):
    driver.discovery.marks.mark("never-made", "mydata@latest", "default", "2026-11-23T00:00:00Z")
    again = make_driver(clock=clock)
    assert again.discovery.marks.get("never-made") is None and again.find("never-made") is None


# --- 4. one failing store never stops the others ------------------------------------------------

@pytest.mark.parametrize("failure", [
    http.client.HTTPException("wrong path /sdk/x"), RuntimeError("a bug in a store"),
    MountError("mount of 10.0.0.5:/vols did not finish within 60 s; it was stopped"),
])
def test_any_failure_of_one_store_leaves_the_others_listed_and_the_scheduler_running(
        make_driver, mounter, clock, tmp_path, monkeypatch, failure):
    first = make_driver(clock=clock)
    first.create("v", {"VolumeStore": "slow", "Backup": "daily"})
    first.mount("v", "c1")
    mounter.mounted.clear()                                        # the restart lost the mounts
    from plugin.stores.directory import DirectoryStore
    real_open = DirectoryStore.open

    def open_fails_for_default(store):
        if store.label == "default":
            raise failure
        real_open(store)
    monkeypatch.setattr(DirectoryStore, "open", open_fails_for_default)
    again = make_driver(clock=clock)
    assert [v["Name"] for v in again.list()] == ["v"]
    assert mounter.is_mounted(again.mounts.mountpoint("v"))                 # mounts reconciled
    assert again.backups.scheduler.status("v")["NextRun"]            # the scheduler knows it
    error = again.describe()["Stores"][0]["Error"]
    assert str(failure) in error
    with pytest.raises(BackendError, match="volume store default is unavailable: .*" + str(failure)[:10]):
        again.create("w", {})


def test_a_volume_whose_schedule_cannot_be_followed_gets_a_problem_not_the_plugin(make_driver, clock, tmp_path,
                                                                                  monkeypatch):
    first = make_driver(clock=clock)
    first.create("a", {"Backup": "daily"})
    first.create("b", {"Backup": "daily"})
    from plugin.backup.service import BackupService
    real = BackupService.volume_added

    def volume_added(service, volume):
        if volume.name == "a":
            raise ValueError("no run of '0 0 31 2 *' in the next 100 years")
        real(service, volume)
    monkeypatch.setattr(BackupService, "volume_added", volume_added)
    again = make_driver(clock=clock)
    assert "its backup schedule cannot be followed: no run" in again.get("a")["Status"]["Problem"]
    assert again.backups.scheduler.status("b")["NextRun"]


def test_a_command_that_outlives_its_timeout_is_a_clear_error():
    with pytest.raises(MountError, match="mounting x did not finish within 0.2 s; it was stopped"):
        commands.run(["sleep", "30"], what="mounting x", timeout=0.2)


# --- 5. a store that does not answer at start ----------------------------------------------------

def test_volumes_of_a_store_that_does_not_answer_at_start_stay_listed_and_are_picked_up_again(
        make_driver, clock, tmp_path, monkeypatch):
    first = make_driver(clock=clock)
    first.create("kept", {"VolumeStore": "slow", "Capacity": "2G"})
    write(tmp_path, "kept", {"f": "data"}, store="slow")
    down = failing_store(monkeypatch, "slow",
                         "vCenter 10.0.0.1 cannot be reached (listing, 3 attempts): ConnectionRefusedError")
    again = make_driver(clock=clock)
    assert [v["Name"] for v in again.list()] == ["kept"]
    info = again.get("kept")
    assert info["Status"]["Capacity"] == "2000MB" and info["CreatedAt"]
    assert "volume store slow is unavailable: vCenter 10.0.0.1 cannot be reached" in info["Status"]["Stale"]["Error"]
    assert info["Status"]["Stale"]["ListedAt"]
    with pytest.raises(BackendError, match="volume store slow is unavailable: vCenter 10.0.0.1"):
        again.mount("kept", "c1")
    with pytest.raises(BackendError, match="volume store slow is unavailable"):
        again.remove("kept")
    del down["slow"]                                                  # vCenter answers again
    target = again.mount("kept", "c1")                                # no restart
    assert "Stale" not in again.get("kept")["Status"]
    assert target == again.mounts.mountpoint("kept")


def test_the_last_listing_is_written_atomically_and_follows_creates_and_removes(driver, tmp_path):
    driver.create("a", {"Capacity": "3G"})
    driver.create("b", {})
    driver.remove("b")
    listing = json.loads((tmp_path / "data" / "state" / "listings" / "default.json").read_text())
    assert [v["Name"] for v in listing["Volumes"]] == ["a"]
    assert listing["Volumes"][0]["Metadata"]["DriverOpts"] == {"Capacity": "3G"}


# --- 10. races -------------------------------------------------------------------------------

def test_plugin_status_while_volumes_come_and_go(driver):
    errors, stop = [], threading.Event()

    def churn():
        for i in range(50):
            driver.create(f"v{i}", {})
            driver.remove(f"v{i}")
        stop.set()

    def describe():
        while not stop.is_set():
            try:
                driver.describe()
            except Exception as err:  # noqa: BLE001 - what the test looks for
                errors.append(err)
                return
    workers = [threading.Thread(target=churn), threading.Thread(target=describe)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == [] and stop.is_set()


# --- 14. stray temporary files ---------------------------------------------------------------------

def test_temporary_files_of_interrupted_writes_are_removed_at_start(driver, make_driver, clock, tmp_path):
    state = tmp_path / "data" / "state"
    for folder in (state, state / "listings"):
        (folder / ".tmp-abc123").write_text("half")
    make_driver(clock=clock)
    assert not (state / ".tmp-abc123").exists() and not (state / "listings" / ".tmp-abc123").exists()


# --- 15. an Unmount that releases nothing -----------------------------------------------------------

def test_an_unmount_of_a_caller_without_a_mount_is_not_the_last_unmount(driver, tmp_path, clock):
    driver.create("v", {"Backup": "on-unmount"})
    write(tmp_path, "v", {"f": "x"})
    driver.unmount("v", "never-mounted")
    assert driver.backups.scheduler.tick(clock.now) == [] and driver.backups.api_list("v") == []
    driver.mount("v", "c1")
    driver.unmount("v", "c1")                                         # the real last unmount
    assert driver.backups.scheduler.tick(clock.now) == ["v"]
    clock.advance(minutes=1)
    driver.unmount("v", "c1")                                         # again: nothing to do
    assert driver.backups.scheduler.tick(clock.now) == []
    [backup] = driver.backups.api_list("v")
    assert backup["Origin"] == "schedule"


# --- 17. Docker's limits -----------------------------------------------------------------------------

class FakeMonotonic:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_every_wait_of_a_remove_shares_one_budget_under_dockers_limit(driver, tmp_path, monkeypatch):
    clock = FakeMonotonic()
    driver.budgets = CallBudgets(create=90, mount=90, other=40, monotonic=clock)
    driver.create("v", {"Backup": "daily"})
    volume = driver.find("v")

    class PendingJob:          # a detach that took 30 s of the call's time before it ended
        done = False
        started = datetime(2026, 11, 23, tzinfo=UTC)
        what = "detaching volume v"

        def wait(self, timeout):
            clock.now += 30
            self.done = True
            return True
    volume.job = PendingJob()
    waits = []
    monkeypatch.setattr(driver.backups, "before_remove", lambda volume, wait=None: waits.append(wait))
    driver.remove("v")
    assert waits == [10] and driver.find("v") is None


def test_the_budgets_are_inside_dockers_limits_and_the_enable_timeout():
    default = CallBudgets()                       # docker plugin enable's default --timeout: 30 s
    assert max(default.create, default.mount, default.other) < 30
    for seconds in (10, 30, 60, 119):
        budgets = CallBudgets.within(seconds)
        assert max(budgets.create, budgets.mount, budgets.other) < seconds
    uncut = CallBudgets.within(0)                 # docker plugin install: the calls' own limits
    assert 60 < uncut.create < 120 and 60 < uncut.mount < 120 and 30 < uncut.other < 60


@pytest.mark.parametrize("given, budgets", [({}, CallBudgets.within(30)),
                                            ({"PLUGIN_ENABLE_TIMEOUT": "60"}, CallBudgets.within(60)),
                                            ({"PLUGIN_ENABLE_TIMEOUT": "0"}, CallBudgets.within(0))])
def test_the_driver_takes_its_budgets_from_plugin_enable_timeout(tmp_path, given, budgets):
    from plugin.assembly import build_driver
    from plugin.settings import from_env
    settings = from_env({"DATA_DIR": str(tmp_path), "VOLUME_STORES": f"file://{tmp_path}/v:default", **given})
    assert build_driver(settings, backups=False).budgets == budgets


@pytest.mark.parametrize("value", ["5", "3601", "30s", "-1"])
def test_a_plugin_enable_timeout_docker_cannot_have_is_refused(value):
    from plugin.errors import ConfigError
    from plugin.settings import from_env
    with pytest.raises(ConfigError, match=r"PLUGIN_ENABLE_TIMEOUT=.* is not valid: .*(0|10) .*3600"):
        from_env({"PLUGIN_ENABLE_TIMEOUT": value})


@pytest.mark.parametrize("budget, wait", [(22.5, 11.25), (45.0, 22.5), (90.0, 65.0)])
def test_a_mount_waits_for_a_release_with_what_its_budget_leaves_beyond_the_attach(driver, budget, wait):
    class Store:
        def __init__(self):
            self.asked = []

        def attach(self, name, wait=0.0):
            self.asked.append(wait)
            return "/src"
    store = Store()
    driver.create("v", {})
    driver.budgets = CallBudgets(create=budget, mount=budget, other=budget, monotonic=lambda: 0.0)
    driver.mounts.health.require = lambda label, retry=False: store
    driver.mount("v", "c1")
    assert store.asked == [wait]


# --- 18. CreatedAt ---------------------------------------------------------------------------------

def test_created_at_is_left_out_when_the_store_does_not_know_it(driver, tmp_path):
    driver.create("v", {})
    driver.find("v").created_at = ""
    assert "CreatedAt" not in driver.get("v")
