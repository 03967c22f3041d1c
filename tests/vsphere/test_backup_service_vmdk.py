"""The whole plugin, assembled as it runs, backing up VMDK volumes on the simulator.

Each plugin here is ``build_driver`` over real settings (``plugins``, tests/vsphere/
assembled.py): two datastore stores of the simulator (``default`` on LocalDS_1,
``second`` on LocalDS_0), the real ``plugin.mounter.Mounter``, so that Mount attaches the
disk, makes and mounts its filesystem through a loop device and bind-mounts it under the
plugin's mount root, as in production. Only the clock and the scheduler's executor are
the test's: ``service.scheduler.tick(now)`` runs due backups inline, and simulated days
pass without sleeping. No Docker: what a container would do
is done in the mountpoint that ``driver.mount`` returns.

A "restart" is a new ``build_driver`` over the same settings (same data folder and mount
root), started with ``driver.start()``; a second plugin instance has its own data folder,
mount root, host VM and host name (the lease owner), and the same stores.
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugin.assembly import DISKS_DIR
from plugin.backup.lease import DEFAULT_TTL, LEASES_DIR, LeaseHeld
from plugin.backup.vmdkengine import SNAPSHOT_PREFIX
from plugin.errors import InUse, VolumeError
from plugin.mounter import mounted_targets
from plugin.stores.hostdisks import vic_label

from .assembled import CAPACITY, DS, DS2
from .helpers import OTHER_VM, REPO, is_frozen, run, snapshots

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)   # the shared ``clock`` fixture's start
HANG_GUARD = 60          # seconds a blocked step may take before the test gives up (not a measured threshold)


def write(folder, files):
    for relative, content in files.items():
        path = Path(folder) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def read_tree(folder):
    """{relative path: bytes} of every file below ``folder``."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def on_datastore(vcsim, datastore, store_path, *parts):
    """The local file or folder behind ``[datastore] store_path/parts...``."""
    return vcsim.file(datastore, "/".join((store_path,) + parts))


def our_snapshots(session, vm_name):
    return sorted(name for name in snapshots(session, vm_name) if name.startswith(SNAPSHOT_PREFIX))


def test_a_mounted_volume_is_backed_up_lost_and_restored_as_new_and_in_place(plugins, vcsim, store_path, clock):
    plugin = plugins()
    driver, service = plugin.driver, plugin.service
    driver.create("mydata", {"Backup": "daily", "Capacity": CAPACITY})
    folder = driver.mount("mydata", "c1")
    assert folder == str(plugin.mount_root / "mydata") and folder in mounted_targets()
    blob = os.urandom(64 * 1024)
    original = {"a.txt": b"version 1", "sub/b.txt": b"deleted later", "blob.bin": blob}
    write(folder, original)
    during_copy = {}

    def copying(kwargs):
        during_copy["snapshots"] = our_snapshots(plugin.session, vcsim.host_vm)
        during_copy["frozen"] = is_frozen(folder)
        during_copy["source"] = kwargs["sourceName"]
    plugin.before("CopyVirtualDisk_Task", copying)

    clock.now = T0 + timedelta(minutes=5)
    backup = service.api_create("mydata")
    assert (backup["Method"], backup["Origin"], backup["Id"]) == ("snapshot-clone", "manual", "20261123T000500Z")
    snapshot = f"{SNAPSHOT_PREFIX}mydata-{backup['Id']}"
    # The clone read the disk the snapshot's own configuration names, while only the snapshot held it frozen.
    assert during_copy == {"snapshots": [snapshot], "frozen": False,
                           "source": f"[{DS}] {store_path}/volumes/mydata/mydata.vmdk"}
    assert our_snapshots(plugin.session, vcsim.host_vm) == []             # gone once the copy ended
    stored = on_datastore(vcsim, DS, store_path, "backups", "mydata", backup["Id"])
    assert sorted(os.listdir(stored)) == ["manifest.json", "mydata-flat.vmdk", "mydata.vmdk"]
    assert json.loads((stored / "manifest.json").read_text())["method"] == "snapshot-clone"
    assert blob in (stored / "mydata-flat.vmdk").read_bytes()
    assert sorted(os.listdir(on_datastore(vcsim, DS, store_path, "volumes"))) == ["mydata"]
    status = driver.get("mydata")["Status"]["Backup"]
    assert status["Backups"] == 1 and status["LastBackup"]["Id"] == backup["Id"] and status["LastError"] == ""

    # The user loses data: a file changed, one deleted.
    write(folder, {"a.txt": "version 2"})
    os.remove(os.path.join(folder, "sub", "b.txt"))
    changed = read_tree(folder)

    clock.advance(minutes=5)
    driver.create("mydata-old", {"RestoreFrom": "mydata@latest"})
    assert driver.get("mydata-old")["Status"]["Capacity"] == "16MB"           # the backed-up volume's
    assert read_tree(driver.mount("mydata-old", "c2")) == original
    driver.unmount("mydata-old", "c2")

    with pytest.raises(InUse, match="add --force"):
        service.api_restore("mydata", backup["Id"])
    with pytest.raises(InUse, match="volume mydata is mounted 1 time"):
        service.api_restore("mydata", backup["Id"], force=True)
    assert read_tree(folder) == changed
    driver.unmount("mydata", "c1")
    clock.advance(minutes=5)
    done = service.api_restore("mydata", backup["Id"], force=True)
    assert done == {"Volume": "mydata", "Backup": backup["Id"], "Why": f"backup {backup['Id']}, as asked",
                    "SafetyBackup": "20261123T001500Z"}
    assert read_tree(driver.mount("mydata", "c3")) == original
    driver.unmount("mydata", "c3")

    listed = {b["Id"]: b for b in service.api_list("mydata")}
    assert sorted(listed) == [backup["Id"], done["SafetyBackup"]]
    safety = listed[done["SafetyBackup"]]
    assert (safety["Origin"], safety["Method"]) == ("pre-restore", "direct-clone")
    assert (on_datastore(vcsim, DS, store_path, "backups", "mydata", safety["Id"], "mydata-flat.vmdk")).exists()
    service.api_restore("mydata", safety["Id"], target="mydata-before")
    assert read_tree(driver.mount("mydata-before", "c4")) == changed
    driver.unmount("mydata-before", "c4")
    assert our_snapshots(plugin.session, vcsim.host_vm) == []
    assert sorted(os.listdir(on_datastore(vcsim, DS, store_path, "volumes"))) == [
        "mydata", "mydata-before", "mydata-old"]


@pytest.mark.parametrize("keep, days, kept", [
    ("3", 6, ["20261126T020000Z", "20261127T020000Z", "20261128T020000Z"]),
    # The newest of each of the last 2 days and of the last 2 ISO weeks (Monday 23 Nov starts one).
    ("daily=2,weekly=2", 10, ["20261129T020000Z", "20261201T020000Z", "20261202T020000Z"]),
])
def test_scheduled_backups_over_simulated_days_keep_exactly_what_backupkeep_says(
        plugins, vcsim, store_path, clock, keep, days, kept):
    plugin = plugins()
    driver, service = plugin.driver, plugin.service
    driver.create("daily", {"Backup": "daily@02:00", "BackupKeep": keep, "Capacity": CAPACITY})
    folder = driver.mount("daily", "c1")
    write(folder, {"day.txt": "before the schedule"})
    manual = service.api_create("daily")
    assert service.scheduler.tick(T0 + timedelta(hours=1, minutes=59)) == []     # not due before 02:00
    ran = []
    for day in range(days):
        write(folder, {"day.txt": f"written on day {day}"})
        clock.now = T0 + timedelta(days=day, hours=2)
        ran += service.scheduler.tick(clock.now)
    assert ran == ["daily"] * days

    assert sorted(os.listdir(on_datastore(vcsim, DS, store_path, "backups", "daily"))) == [manual["Id"]] + kept
    listed = service.api_list("daily")
    assert [(b["Id"], b["Origin"], b["Method"]) for b in listed] == [(manual["Id"], "manual", "snapshot-clone")] + [
        (backup_id, "schedule", "snapshot-clone") for backup_id in kept]       # manual ones are never pruned
    newest = on_datastore(vcsim, DS, store_path, "backups", "daily", kept[-1], "daily-flat.vmdk")
    assert f"written on day {days - 1}".encode() in newest.read_bytes()
    assert our_snapshots(plugin.session, vcsim.host_vm) == [] and not is_frozen(folder)
    status = driver.get("daily")["Status"]["Backup"]
    assert status["Backups"] == 4 and status["NextRun"] == f"{T0 + timedelta(days=days, hours=2):%Y-%m-%dT%H:%M:%SZ}"
    assert status["LastBackup"]["Id"] == kept[-1] and status["LastBackup"]["Origin"] == "schedule"
    assert service.api_prune("daily") == []                                    # the policy holds already
    driver.unmount("daily", "c1")


def test_removing_a_volume_with_a_policy_leaves_a_final_backup_restorable_after_a_restart(
        plugins, vcsim, store_path):
    plugin = plugins()
    driver, service = plugin.driver, plugin.service
    driver.create("gone", {"Backup": "weekly", "BackupStore": "second", "Capacity": CAPACITY})
    folder = driver.mount("gone", "c1")
    write(folder, {"last-words.txt": "written just before docker volume rm"})
    expected = read_tree(folder)
    with pytest.raises(InUse, match="volume gone is in use"):
        driver.remove("gone")
    assert service.api_list("gone") == []                                       # refused before any backup
    driver.unmount("gone", "c1")
    driver.remove("gone")

    assert not on_datastore(vcsim, DS, store_path, "volumes", "gone").exists()
    assert driver.find("gone") is None
    [final] = service.api_list("gone")
    assert (final["Origin"], final["Method"], final["Store"]) == ("final", "direct-clone", "default")
    # BackupStore=second: the clone is on the other datastore.
    assert sorted(os.listdir(on_datastore(vcsim, DS2, store_path, "backups", "gone", final["Id"]))) == [
        "gone-flat.vmdk", "gone.vmdk", "manifest.json"]

    driver.stop()
    restarted = plugins()                                                       # the same plugin, started again
    assert restarted.service.api_list("gone") == [final]
    restarted.driver.create("gone", {"RestoreFrom": "gone@latest"})
    assert restarted.driver.get("gone")["Status"]["VolumeStore"] == "default"
    assert read_tree(restarted.driver.mount("gone", "c1")) == expected
    restarted.driver.unmount("gone", "c1")


def test_two_plugin_instances_never_back_up_one_volume_at_the_same_time(plugins, vcsim, store_path, clock):
    a = plugins("a")
    a.driver.create("shared", {"Backup": "daily", "Capacity": CAPACITY})
    folder = a.driver.mount("shared", "c1")
    write(folder, {"data.txt": "written on host a"})
    b = plugins("b", vm=OTHER_VM)                   # another Docker host, same vCenter and datastores
    due = a.driver.get("shared")["Status"]["Backup"]["NextRun"]
    assert b.driver.get("shared")["Status"]["Backup"]["NextRun"] == due   # both plan the same run
    clock.now = datetime.fromisoformat(due)

    in_copy, go_on = threading.Event(), threading.Event()

    def slow_copy(kwargs):
        in_copy.set()
        go_on.wait(HANG_GUARD)
    a.before("CopyVirtualDisk_Task", slow_copy)
    outcome = {}
    first = threading.Thread(target=lambda: outcome.setdefault("a", a.service.scheduler.tick(clock.now)))
    first.start()
    try:
        assert in_copy.wait(HANG_GUARD), "host a's scheduled backup never reached its copy"
        held = (f"volume 'shared' is busy: host docker-a, plugin pid {os.getpid()} is backing it up; "
                "its backup lease runs until")
        assert b.service.scheduler.tick(clock.now) == ["shared"]             # due on b too: tried, skipped
        skipped = b.service.scheduler.status("shared")
        # a's VM has the volume: the scheduled run is a's to make (turns.py), b looks again later.
        assert skipped["LastResult"] == "skipped" and skipped["LastError"].startswith(
            f"the scheduled backup of volume shared planned for {due} is made by the Docker host of VM "
            f"{vcsim.host_vm}, which has the volume attached")
        with pytest.raises(LeaseHeld, match=held):
            b.service.api_create("shared")
        shown = b.driver.get("shared")["Status"]["Backup"]["LastBackup"]     # what inspect shows on b
        assert shown["Result"] == "skipped" and shown["Error"].startswith(held)
        assert our_snapshots(a.session, vcsim.host_vm) == [f"{SNAPSHOT_PREFIX}shared-{clock.now:%Y%m%dT%H%M%SZ}"]
    finally:
        go_on.set()
        first.join(HANG_GUARD)
    assert outcome == {"a": ["shared"]} and a.service.scheduler.status("shared")["LastResult"] == "ok"
    assert our_snapshots(a.session, vcsim.host_vm) == []

    clock.advance(minutes=1)
    manual = b.service.api_create("shared")                                   # the lease is free again
    assert (manual["Origin"], manual["Method"]) == ("manual", "snapshot-clone")
    assert [(x["Origin"], x["Method"]) for x in a.service.api_list("shared")] == [
        ("schedule", "snapshot-clone"), ("manual", "snapshot-clone")]
    assert our_snapshots(a.session, vcsim.host_vm) == [] and not is_frozen(folder)
    assert LEASES_DIR not in os.listdir(on_datastore(vcsim, DS, store_path, "backups")) or os.listdir(
        on_datastore(vcsim, DS, store_path, "backups", LEASES_DIR)) == []
    a.driver.unmount("shared", "c1")


def filesystem_label(plugin, name):
    """The label of the filesystem ``plugin`` has mounted for volume ``name``."""
    device = run("findmnt", "-n", "-o", "SOURCE", str(plugin.mount_root / DISKS_DIR / name)).strip()
    return run("blkid", "-p", "-o", "value", "-s", "LABEL", device).strip()      # -p: no cache


def test_a_volume_restored_under_a_new_name_gets_vics_label_for_that_name(plugins):
    plugin = plugins()
    plugin.driver.create("web", {"Capacity": CAPACITY})
    write(plugin.driver.mount("web", "c1"), {"index.html": "v1"})
    assert filesystem_label(plugin, "web") == vic_label("web")
    plugin.service.api_create("web")
    plugin.driver.create("web-copy", {"RestoreFrom": "web@latest"})
    assert read_tree(plugin.driver.mount("web-copy", "c2")) == {"index.html": b"v1"}
    try:
        assert filesystem_label(plugin, "web-copy") == vic_label("web-copy")     # how a VCH finds it
    finally:
        plugin.driver.unmount("web-copy", "c2")
        plugin.driver.unmount("web", "c1")


def test_another_hosts_retention_never_deletes_the_backup_a_restore_is_reading(plugins, clock):
    a = plugins("a")
    a.driver.create("db", {"Backup": "daily@02:00", "BackupKeep": "1", "Capacity": CAPACITY})
    folder = a.driver.mount("db", "c1")
    write(folder, {"rows": "day 0"})
    b = plugins("b", vm=OTHER_VM)
    clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert a.service.scheduler.tick(clock.now) == ["db"]
    [day0] = a.service.api_list("db")

    reading, go_on = threading.Event(), threading.Event()

    def slow_read(kwargs):
        if "/backups/db/" in kwargs["sourceName"]:
            reading.set()
            go_on.wait(HANG_GUARD)
    a.before("CopyVirtualDisk_Task", slow_read)
    outcome = {}
    clock.now = datetime(2026, 11, 24, 1, 55, tzinfo=UTC)       # a restore shortly before the next run

    def restore():
        try:
            outcome["restored"] = a.service.api_restore("db", day0["Id"], target="db-day0")
        except VolumeError as err:
            outcome["error"] = err
    restoring = threading.Thread(target=restore)
    restoring.start()
    try:
        assert reading.wait(HANG_GUARD), "the restore never reached its copy"
        write(folder, {"rows": "day 1"})
        clock.advance(minutes=5)
        b.service.scheduler.tick(clock.now)             # host b's daily run, and its retention (keep 1)
    finally:
        go_on.set()
        restoring.join(HANG_GUARD)
    a.driver.unmount("db", "c1")
    assert outcome == {"restored": {"Volume": "db-day0", "Backup": day0["Id"], "Why": f"backup {day0['Id']}, as asked"}}
    assert read_tree(a.driver.mount("db-day0", "c2")) == {"rows": b"day 0"}
    a.driver.unmount("db-day0", "c2")


# The plugin, assembled from the same settings as the test's, running the volume's
# scheduled backup; it prints the backup id and stops at cfg["stop"] until it is killed.
CHILD = r"""
import json, socket, sys
from datetime import datetime

cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["repo"])
socket.gethostname = lambda: cfg["hostname"]         # the test's name of this host
from plugin.assembly import build_driver
from plugin.mounter import Mounter
from plugin.settings import from_env
from tests.fakes import InlineExecutor

now = datetime.fromisoformat(cfg["now"])
driver = build_driver(from_env(cfg["env"]), mounter=Mounter(), clock=lambda: now, executor=InlineExecutor(),
                      scheduler_thread=False)
driver.start()
session = driver.stores["default"].session
real_call_task = session.call_task

def stop_here(backup_id):
    print(backup_id, flush=True)
    sys.stdin.read()

def call_task(obj, method, /, *args, **kwargs):
    if method == "CopyVirtualDisk_Task" and cfg["stop"] == "before the copy":
        stop_here(kwargs["destName"].split("/")[-2])
    result = real_call_task(obj, method, *args, **kwargs)
    if method == "CreateSnapshot_Task" and cfg["stop"] == "while frozen, the snapshot taken":
        stop_here(kwargs["name"].rpartition("-")[2])
    return result

session.call_task = call_task
driver.backups.scheduler.tick(now)
"""


def run_and_kill(plugin, now, stop):
    """Run ``plugin`` again in a child process until ``stop``, SIGKILL it there; return the
    id of the backup it began."""
    cfg = {"repo": str(REPO), "env": plugin.env, "hostname": plugin.hostname, "now": now.isoformat(),
           "stop": stop}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stopped, _, _ = select.select([child.stdout], [], [], HANG_GUARD)
        backup_id = child.stdout.readline().strip() if stopped else ""
    finally:
        child.send_signal(signal.SIGKILL)          # the plugin dies where it stopped
        child.wait()
    assert backup_id, child.stderr.read()
    return backup_id


def crash_mid_backup(plugins, vcsim, store_path, clock, stop):
    """A plugin with a mounted volume ``orders`` (daily@02:00, one good backup) is restarted
    and killed in its 02:00 backup at ``stop``, then started again; return (the started
    plugin, the good backup, the id of the backup the killed plugin began, the mountpoint)."""
    plugin = plugins()
    plugin.driver.create("orders", {"Backup": "daily@02:00", "Capacity": CAPACITY})
    folder = plugin.driver.mount("orders", "c1")
    write(folder, {"orders.csv": "1,2,3"})
    good = plugin.service.api_create("orders")
    assert plugin.service.scheduler.tick(clock.now) == []       # as the scheduler thread does: the plan is saved
    plugin.driver.stop()

    clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)                # the daily run is due
    backup_id = run_and_kill(plugin, clock.now, stop)
    assert our_snapshots(plugin.session, vcsim.host_vm) == [f"{SNAPSHOT_PREFIX}orders-{backup_id}"]
    half = on_datastore(vcsim, DS, store_path, "backups", "orders", backup_id)
    assert half.is_dir() and "manifest.json" not in os.listdir(half)
    return plugins(), good, backup_id, folder                                   # the same plugin, started again


@pytest.mark.parametrize("stop", ["before the copy", "while frozen, the snapshot taken"])
def test_a_plugin_killed_between_snapshot_and_clone_leaves_nothing_after_a_restart(
        plugins, vcsim, store_path, clock, stop):
    restarted, good, _backup_id, folder = crash_mid_backup(plugins, vcsim, store_path, clock, stop)
    service = restarted.service
    assert our_snapshots(restarted.session, vcsim.host_vm) == []               # removed at start
    assert [b["Id"] for b in service.api_list("orders")] == [good["Id"]]       # no half backup listed
    assert not is_frozen(folder)
    write(folder, {"orders.csv": "1,2,3,4"})
    assert restarted.driver.get("orders")["Status"]["Backup"]["NextRun"] == "2026-11-23T02:00:00Z"  # cut off: due

    # Once the dead plugin's lease (it could not release it) has run out, the catch-up run backs the volume up.
    clock.now += DEFAULT_TTL
    assert service.scheduler.tick(clock.now) == ["orders"]
    assert service.scheduler.status("orders")["LastResult"] == "ok"
    [catch_up] = [b for b in service.api_list("orders") if b["Id"] != good["Id"]]
    assert (catch_up["Origin"], catch_up["Method"]) == ("schedule", "snapshot-clone")
    assert sorted(os.listdir(on_datastore(vcsim, DS, store_path, "backups", "orders"))) == sorted(
        [good["Id"], catch_up["Id"]])                                         # the half backup's folder is gone
    stored = on_datastore(vcsim, DS, store_path, "backups", "orders", catch_up["Id"], "orders-flat.vmdk")
    assert b"1,2,3,4" in stored.read_bytes()
    assert our_snapshots(restarted.session, vcsim.host_vm) == [] and not is_frozen(folder)
    restarted.driver.unmount("orders", "c1")


def test_the_catch_up_run_after_a_crash_is_not_lost_to_the_dead_plugins_lease(plugins, vcsim, store_path, clock):
    restarted, _good, _, _ = crash_mid_backup(plugins, vcsim, store_path, clock, "before the copy")
    clock.advance(minutes=1)                                                    # Docker restarts the plugin
    assert restarted.service.scheduler.tick(clock.now) == ["orders"]
    assert restarted.service.scheduler.status("orders")["LastResult"] == "ok"
    assert [b["Origin"] for b in restarted.service.api_list("orders")] == ["manual", "schedule"]
