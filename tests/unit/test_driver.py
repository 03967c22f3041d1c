"""Semantics users rely on, on real directory stores (mounts faked)."""

import json
import os
import threading

import pytest

from plugin.errors import Conflict, InUse, InvalidName, InvalidOption, MountError, NotFound
from tests.fakes import calls_do_not_wait
from tests.waiting import wait_until


def metadata(env, store_dir, name):
    with open(os.path.join(store_dir, "volumes_metadata", name, "DockerMetaData")) as handle:
        return json.load(handle)


def test_create_writes_vic_layout(driver, tmp_path, env):
    driver.create("mydata", {"capacity": "10G", "Backup": "daily"})
    assert os.path.isdir(tmp_path / "fast" / "volumes" / "mydata")
    assert metadata(env, tmp_path / "fast", "mydata") == {
        "Driver": "vsphere", "DriverOpts": {"capacity": "10G", "Backup": "daily"}, "Name": "mydata",
        "Labels": {}, "AttachHistory": [""], "Image": ""}


def test_new_volume_owned_by_store_ids(driver, tmp_path):
    driver.create("owned", {"VolumeStore": "slow"})
    st = os.stat(tmp_path / "slow" / "volumes" / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 4321)


def test_create_is_idempotent_for_same_options(driver):
    driver.create("v", {"Capacity": "10G"})
    driver.create("v", {"capacity": "10000"})
    assert [v["Name"] for v in driver.list()] == ["v"]


def test_create_refuses_other_options(driver):
    driver.create("v", {"Capacity": "10G"})
    with pytest.raises(Conflict, match=r"already exists with other options: Capacity=10000 \(asked 5000\)"):
        driver.create("v", {"Capacity": "5G"})


@pytest.mark.parametrize("name, opts, error", [
    ("bad name", {}, InvalidName), ("ok", {"Size": "1"}, InvalidOption),
    ("ok", {"Capacity": "1GiB"}, InvalidOption), ("ok", {"VolumeStore": "nope"}, InvalidOption),
    ("ok", {"Backup": "0 0 31 2 *"}, InvalidOption),
])
def test_bad_input_changes_nothing(driver, tmp_path, name, opts, error):
    before = sorted(os.listdir(tmp_path / "fast" / "volumes"))
    with pytest.raises(error):
        driver.create(name, opts)
    assert sorted(os.listdir(tmp_path / "fast" / "volumes")) == before
    assert driver.list() == []


def test_get_unknown_says_so(driver):
    with pytest.raises(NotFound, match="no volume named ghost"):
        driver.get("ghost")


def test_get_status(driver):
    driver.create("v", {"Capacity": "2G", "Backup": "daily@02:30", "BackupKeep": "3"})
    status = driver.get("v")["Status"]
    assert status["VolumeStore"] == "default" and status["Capacity"] == "2000MB"
    assert status["Options"]["Backup"] == "daily@02:30" and status["Options"]["BackupKeep"] == "3"
    assert status["Mounts"] == 0


def test_mounts_are_counted_per_caller(driver, mounter):
    driver.create("v", {})
    target = driver.mount("v", "c1")
    assert driver.mount("v", "c1") == target
    driver.mount("v", "c2")
    assert driver.get("v")["Status"]["Mounts"] == 3 and driver.path("v") == target
    driver.unmount("v", "c1")
    driver.unmount("v", "c2")
    assert mounter.is_mounted(target)
    driver.unmount("v", "c1")
    assert not mounter.is_mounted(target) and driver.path("v") == ""


def test_remove_refused_while_mounted(driver, tmp_path):
    driver.create("v", {})
    driver.mount("v", "c1")
    driver.mount("v", "c2")
    with pytest.raises(InUse, match="mounted 2 time\\(s\\) by 2 container"):
        driver.remove("v")
    assert os.path.isdir(tmp_path / "fast" / "volumes" / "v")


def test_remove_deletes_data_and_metadata_only(driver, tmp_path):
    driver.create("v", {})
    driver.create("keep", {})
    (tmp_path / "fast" / "volumes" / "v" / "file").write_text("x")
    driver.remove("v")
    assert sorted(os.listdir(tmp_path / "fast" / "volumes")) == ["keep"]
    assert sorted(os.listdir(tmp_path / "fast" / "volumes_metadata")) == ["keep"]
    with pytest.raises(NotFound):
        driver.get("v")


def test_mount_state_survives_restart(driver, make_driver, mounter):
    driver.create("v", {})
    target = driver.mount("v", "c1")
    mounter.mounted.clear()          # the restart lost the plugin's mounts
    again = make_driver()
    assert mounter.is_mounted(target)  # restored at start
    assert again.get("v")["Status"]["Mounts"] == 1
    with pytest.raises(InUse):
        again.remove("v")
    again.unmount("v", "c1")
    again.remove("v")


def test_unrecorded_mount_is_released_at_start(driver, make_driver, mounter):
    driver.create("v", {})
    target = driver.mounts.mountpoint("v")
    mounter.bind("/somewhere", target)   # mounted, but no container recorded
    make_driver()
    assert not mounter.is_mounted(target)


def test_failed_bind_leaves_no_mount_recorded(driver, mounter):
    driver.create("v", {})
    mounter.fail_next_bind = MountError("bind failed: boom")
    with pytest.raises(MountError):
        driver.mount("v", "c1")
    assert driver.get("v")["Status"]["Mounts"] == 0


def test_volumes_found_at_start(driver, make_driver, tmp_path):
    driver.create("a", {"Backup": "weekly"})
    (tmp_path / "fast" / "volumes" / "by-vch").mkdir()   # created by a VCH, metadata lost
    again = make_driver()
    assert sorted(v["Name"] for v in again.list()) == ["a", "by-vch"]
    assert again.get("a")["Status"]["Options"]["Backup"] == "weekly"
    # Shown as it is, with a Problem: no metadata of default options is made up for it.
    assert "has no metadata" in again.get("by-vch")["Status"]["Problem"]
    assert not (tmp_path / "fast" / "volumes_metadata" / "by-vch").exists()


def test_interrupted_remove_is_finished_at_start(driver, make_driver, tmp_path):
    trash = tmp_path / "fast" / ".vsphere-volume-trash" / "gone-1234"
    trash.mkdir(parents=True)
    (trash / "f").write_text("x")
    make_driver()
    assert not trash.exists()


def test_capabilities_scope(driver):
    assert driver.capabilities() == {"Scope": "local"}


def test_same_name_is_serialized_other_names_run_in_parallel(driver):
    inside, release = threading.Event(), threading.Event()
    store = driver.stores["default"]
    real_create = store.create

    entered = []

    def slow_create(name, options, meta):
        entered.append(name)
        if name == "slow":
            inside.set()
            release.wait(5)
        real_create(name, options, meta)

    store.create = slow_create
    worker = threading.Thread(target=driver.create, args=("slow", {}))
    worker.start()
    assert inside.wait(5)
    driver.create("fast", {})                      # another name is not blocked
    blocked = threading.Thread(target=driver.create, args=("slow", {}))
    blocked.start()
    wait_until(lambda: driver._locks.users("slow") == 2, 10, "the second create of slow to queue on its lock",
               poll=0.005)
    assert blocked.is_alive() and entered == ["slow", "fast"]   # the same name waits for the first
    release.set()
    worker.join(5)
    blocked.join(5)
    assert sorted(v["Name"] for v in driver.list()) == ["fast", "slow"]


def test_invalid_vcenter_settings_make_datastore_stores_unavailable_not_the_plugin(make_driver, tmp_path):
    driver = make_driver(VOLUME_STORES=f"file://{tmp_path}/fast:default;ds1/vols:vmdk",
                         VSPHERE_URL="ftp://vcenter.example", VSPHERE_USER="u", VSPHERE_PASSWORD="p")
    with pytest.raises(Exception) as err:
        driver.create("v", {"VolumeStore": "vmdk"})
    assert "volume store vmdk" in str(err.value) and "VSPHERE_URL" in str(err.value)
    driver.create("w", {})
    assert [v["Name"] for v in driver.list()] == ["w"]
    assert driver.describe()["Stores"][1]["Error"].startswith("volume store vmdk")


class SlowStore:
    """Wraps a store so attach/detach block until the test lets them go."""

    def __init__(self, store, method):
        import threading
        self.entered, self.opened = threading.Event(), threading.Event()
        real = getattr(store, method)

        def slow(name, **options):
            self.entered.set()
            assert self.opened.wait(10), "the test never let the store go on"
            return real(name, **options)
        setattr(store, method, slow)


def test_a_slow_attach_answers_docker_in_time_and_is_not_run_twice(driver, mounter):
    driver.create("v", {})
    slow = SlowStore(driver.stores["default"], "attach")
    with calls_do_not_wait(driver), \
            pytest.raises(InUse, match="volume v is not ready yet: attaching volume v is still running"):
        driver.mount("v", "c1")
    assert driver.get("v")["Status"]["Mounts"] == 0                  # no phantom mount recorded
    assert driver.get("v")["Status"]["Busy"]["State"] == "running"
    with calls_do_not_wait(driver), pytest.raises(InUse, match="volume v is busy: attaching volume v"):
        driver.mount("v", "c1")                                        # waits for the same attach
    slow.opened.set()
    assert driver.find("v").job.wait(10)
    target = driver.mount("v", "c1")                                   # the attach is done: mounts
    assert mounter.is_mounted(target) and driver.get("v")["Status"]["Mounts"] == 1


def test_a_slow_detach_does_not_hold_docker_unmount(driver, mounter):
    driver.create("v", {})
    target = driver.mount("v", "c1")
    slow = SlowStore(driver.stores["default"], "detach")
    with calls_do_not_wait(driver):
        driver.unmount("v", "c1")                                      # answers; detach goes on
    assert slow.entered.wait(10) and not mounter.is_mounted(target)
    assert driver.get("v")["Status"]["Mounts"] == 0
    with calls_do_not_wait(driver), pytest.raises(InUse, match="volume v is busy: detaching volume v"):
        driver.remove("v")
    slow.opened.set()
    assert driver.find("v").job.wait(10)
    driver.remove("v")
    assert driver.list() == []


def test_list_follows_every_change(driver):
    assert driver.list() == []
    driver.create("a", {})
    assert driver.list() == [{"Name": "a", "Mountpoint": ""}]
    target = driver.mount("a", "c1")
    assert driver.list() == [{"Name": "a", "Mountpoint": target}]
    driver.create("b", {})
    assert [v["Name"] for v in driver.list()] == ["a", "b"]
    driver.unmount("a", "c1")
    assert driver.list()[0] == {"Name": "a", "Mountpoint": ""}
    driver.remove("a")
    assert driver.list() == [{"Name": "b", "Mountpoint": ""}]


def test_remove_detaches_an_attach_that_outlived_its_mount(driver, monkeypatch):
    driver.create("v", {})
    store = driver.stores["default"]
    slow = SlowStore(store, "attach")
    detached = []
    monkeypatch.setattr(store, "detach", detached.append)
    with calls_do_not_wait(driver), pytest.raises(InUse, match="still running"):
        driver.mount("v", "c1")
    slow.opened.set()
    assert driver.find("v").job.wait(10)
    driver.remove("v")
    assert detached == ["v"] and driver.list() == []


def test_remove_of_a_volume_never_attached_does_not_detach(driver, monkeypatch):
    driver.create("v", {})
    detached = []
    monkeypatch.setattr(driver.stores["default"], "detach", detached.append)
    driver.remove("v")
    assert detached == []
