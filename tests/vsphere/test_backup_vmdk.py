"""VMDK volume backups and restores against the simulator, with real filesystem bytes.

Volumes are made by DatastoreStore, mounted through loop devices over the simulated
datastore's ``-flat.vmdk`` files (as in test_store.py), written to, backed up by
VmdkEngine into a DatastoreBackupRepository, and read back after restores: what a user
would check. The backup service is played by ``Rig``: begin, engine.backup, commit.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from pyVmomi import vim

from plugin.backup import manifest as mf
from plugin.backup.dsrepository import DatastoreBackupRepository
from plugin.backup.vmdkengine import SNAPSHOT_PREFIX, VmdkEngine, snapshot_description
from plugin.driver import Volume
from plugin.errors import BackupError, InUse, MountError, VSphereError
from plugin.options import parse_options
from plugin.stores.base import docker_metadata
from plugin.stores.devices import run as run_argv
from plugin.stores.vmdkfolders import STAGING
from plugin.vsphere.vmdisks import attach_spec, detach_spec

from .helpers import DS, OTHER_VM, REPO, disk_devices, is_frozen, snapshots, vm_ref

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HANG_GUARD = 60          # seconds for a child process to reach its copy (not a measured threshold)


def options(**given):
    return parse_options({"VolumeStore": "s", "Capacity": "64M", **given}, ["s"])


class Ticker:
    """An aware clock that moves one second each time it is read."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


class Runner:
    """The real runner (fsfreeze, blkid, e2label), recording every command."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return run_argv(argv)

    def named(self, program):
        return [argv for argv in self.calls if argv[0] == program]


class Locks:
    """The driver's per-volume lock, recording who holds it."""

    def __init__(self):
        self.held = set()

    @contextmanager
    def hold(self, name):
        self.held.add(name)
        try:
            yield
        finally:
            self.held.discard(name)


class Rig:
    """One store, its backup catalog and the engine; plays the backup service."""

    def __init__(self, store, vcsim):
        self.store, self.vcsim, self.session = store, vcsim, store.session
        self.repo = DatastoreBackupRepository(store.session, DS, store.spec.path, inventory=store.inventory)
        self.runner, self.locks, self.clock = Runner(), Locks(), Ticker()
        self.engine = VmdkEngine(store.session, runner=self.runner, clock=self.clock)
        self.hooks = {}            # SOAP method -> callable(kwargs) run before the call
        real_invoke = store.session.invoke

        def invoke(obj, method, *args, **kwargs):
            if method in self.hooks:
                self.hooks[method](kwargs)
            return real_invoke(obj, method, *args, **kwargs)
        store.session.invoke = invoke

    def create(self, name, files=None):
        """Create a 64 MB volume, attach and mount it, write ``files``; return its folder."""
        opts = options()
        self.store.create(name, opts, docker_metadata(name, opts.given))
        folder = self.store.attach(name)
        self.write(folder, files or {})
        return folder

    @staticmethod
    def write(folder, files):
        for relative, text in files.items():
            with open(os.path.join(folder, relative), "w", encoding="utf-8") as handle:
                handle.write(text)

    def backup(self, name, previous=None, commit=True):
        staging = self.repo.begin(name, self.clock())
        outcome = self.engine.backup(Volume(name, "s", options()), self.store, staging, previous,
                                     self.locks.hold)
        if not commit:
            return staging, outcome
        base = previous.data_backup_id if outcome.method == mf.UNCHANGED else ""
        started = self.clock()
        manifest = mf.Manifest(volume=name, backup_id=staging.backup_id, method=outcome.method, origin="manual",
                               created=outcome.created, started=started, finished=self.clock(), store="s",
                               source=outcome.source, size=outcome.size, data=outcome.data, base=base,
                               source_modified=outcome.source_modified,
                               metadata=docker_metadata(name, options().given), extra=outcome.extra)
        self.repo.commit(manifest)
        return manifest

    def local(self, *parts):
        return self.vcsim.file(DS, "/".join((self.store.spec.path,) + parts))

    def backup_files(self, manifest):
        return sorted(os.listdir(self.local("backups", manifest.volume, manifest.backup_id)))

    def flat_bytes(self, manifest):
        folder = self.local("backups", manifest.volume, manifest.backup_id)
        return (folder / f"{manifest.volume}-flat.vmdk").read_bytes()

    def restore_replace(self, manifest, name=None):
        """Restore ``manifest`` into volume ``name`` (default: the volume backed up)."""
        data = self.repo.data_manifest(manifest)
        self.engine.restore_replace(data, self.repo.location(data.volume, data.backup_id), self.store,
                                    name or manifest.volume)


def take_snapshot(session, vm_name, name, description=""):
    return session.call_task(vm_ref(session, vm_name), "CreateSnapshot_Task", name=name, description=description,
                             memory=False, quiesce=False)


def attach_to(session, vm_name, ds_path, mode):
    vm = vm_ref(session, vm_name)
    devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    spec, _ = attach_spec(devices, ds_path, 64 * 1024, vm_name)
    spec.deviceChange[-1].device.backing.diskMode = mode
    session.call_task(vm, "ReconfigVM_Task", spec=spec)


def failing(message):
    """A hook that makes a vSphere call fail with ``message``."""
    def hook(kwargs):
        raise VSphereError(message)
    return hook


def power(session, vm_name, on):
    session.call_task(vm_ref(session, vm_name), "PowerOnVM_Task" if on else "PowerOffVM_Task")


@pytest.fixture
def rig(make_store, vcsim, session):
    yield Rig(make_store(), vcsim)
    for vm_name in (vcsim.host_vm, OTHER_VM):       # the simulator is shared: leave no snapshot
        if snapshots(session, vm_name):
            session.call_task(vm_ref(session, vm_name), "RemoveAllSnapshots_Task")


def test_a_mounted_volume_is_frozen_snapshotted_and_the_frozen_disk_cloned(rig, vcsim, session, mount_root):
    secret = "written by a container " + os.urandom(6).hex()
    folder = rig.create("pgdata", {"table.dat": secret})
    take_snapshot(session, vcsim.host_vm, "before-upgrade")          # a user's snapshot: never touched
    seen = {}

    def during_copy(kwargs):
        seen["snapshots"] = sorted(snapshots(session, vcsim.host_vm))
        seen["source"], seen["lock held"] = kwargs["sourceName"], "pgdata" in rig.locks.held
        seen["frozen"] = is_frozen(folder)
    rig.hooks["CopyVirtualDisk_Task"] = during_copy
    rig.hooks["CreateSnapshot_Task"] = lambda kwargs: seen.setdefault("lock at snapshot",
                                                                      "pgdata" in rig.locks.held)
    manifest = rig.backup("pgdata")

    mountpoint = str(mount_root / "pgdata")
    assert rig.runner.calls == [["fsfreeze", "--freeze", mountpoint], ["fsfreeze", "--unfreeze", mountpoint]]
    name = f"{SNAPSHOT_PREFIX}pgdata-{manifest.backup_id}"
    assert seen == {"snapshots": sorted(["before-upgrade", name]), "lock at snapshot": True, "lock held": False,
                    "frozen": False, "source": f"[{DS}] {rig.store.spec.path}/volumes/pgdata/pgdata.vmdk"}
    assert sorted(snapshots(session, vcsim.host_vm)) == ["before-upgrade"]   # ours lived only during the copy
    assert manifest.method == mf.SNAPSHOT_CLONE and manifest.data == "pgdata.vmdk"
    assert manifest.extra["snapshot"] == name and manifest.extra["vm"] == vcsim.host_vm
    assert 0 < manifest.extra["copy_seconds"] < manifest.extra["snapshot_seconds"]
    assert rig.backup_files(manifest) == ["manifest.json", "pgdata-flat.vmdk", "pgdata.vmdk"]
    assert secret.encode() in rig.flat_bytes(manifest)
    assert sorted(os.listdir(rig.local("volumes"))) == ["pgdata"]            # nothing added under volumes/
    with open(os.path.join(folder, "after.txt"), "w") as handle:            # writable: thawed
        handle.write("still writable")
    rig.store.detach("pgdata")


def test_a_disk_under_another_vm_snapshot_is_still_seen_attached(rig, vcsim, session, snapshot_deltas, mount_root):
    """On a real vCenter, while any snapshot of the VM exists, the VM's disk is a delta over
    the volume's ``<name>.vmdk`` (``snapshot_deltas`` plays it): the engine still sees the
    disk attached to a running VM, so it freezes and snapshots rather than cloning a disk
    in use, and refuses to replace it in place."""
    secret = "under a user's snapshot " + os.urandom(6).hex()
    rig.create("snapped", {"s.txt": secret})
    take_snapshot(session, vcsim.host_vm, "before-upgrade")
    snapshot_deltas(rig.session, f"{rig.store.spec.path}/volumes")
    manifest = rig.backup("snapped")
    mountpoint = str(mount_root / "snapped")
    assert manifest.method == mf.SNAPSHOT_CLONE and manifest.extra["vm"] == vcsim.host_vm
    assert rig.runner.calls == [["fsfreeze", "--freeze", mountpoint], ["fsfreeze", "--unfreeze", mountpoint]]
    assert sorted(snapshots(session, vcsim.host_vm)) == ["before-upgrade"]
    assert secret.encode() in rig.flat_bytes(manifest)
    with pytest.raises(InUse, match=f"volume snapped cannot be restored in place: .* to VM {vcsim.host_vm};"):
        rig.restore_replace(manifest)
    rig.store.detach("snapped")
    assert not [d for d in disk_devices(session, vm_ref(session, vcsim.host_vm)) if "/snapped/" in d.backing.fileName]


def test_a_detached_volume_is_cloned_under_its_lock_and_not_copied_again_unchanged(rig):
    rig.create("logs", {"day1.log": "first day"})
    rig.store.detach("logs")
    copies = []
    rig.hooks["CopyVirtualDisk_Task"] = lambda kwargs: copies.append("logs" in rig.locks.held)
    first = rig.backup("logs")
    assert first.method == mf.DIRECT_CLONE and copies == [True]            # the lock kept attaches out
    assert rig.runner.calls == [] and snapshots(rig.session, rig.vcsim.host_vm) == {}
    assert b"first day" in rig.flat_bytes(first)
    assert first.source_modified

    second = rig.backup("logs", previous=first)
    assert second.method == mf.UNCHANGED and second.base == first.backup_id
    assert copies == [True] and rig.backup_files(second) == ["manifest.json"]     # nothing copied
    assert rig.repo.data_manifest(second) == first

    folder = rig.store.attach("logs")
    rig.write(folder, {"day2.log": "second day"})
    rig.store.detach("logs")
    third = rig.backup("logs", previous=second)
    assert third.method == mf.DIRECT_CLONE and len(copies) == 2
    assert b"second day" in rig.flat_bytes(third) and b"second day" not in rig.flat_bytes(first)


def test_restore_in_place_replaces_the_data_of_a_detached_volume(rig):
    folder = rig.create("app", {"config.yml": "good: true", "keep.txt": "kept"})
    rig.store.detach("app")
    manifest = rig.backup("app")
    folder = rig.store.attach("app")
    rig.write(folder, {"config.yml": "broken"})
    os.remove(os.path.join(folder, "keep.txt"))
    with pytest.raises(InUse, match=f"volume app cannot be restored in place: .* to VM {rig.vcsim.host_vm};"):
        rig.restore_replace(manifest)
    rig.store.detach("app")

    rig.restore_replace(manifest)
    assert sorted(os.listdir(rig.local("volumes/app"))) == ["app-flat.vmdk", "app.vmdk", "imageMetadata"]
    assert os.listdir(rig.local(STAGING)) == []
    folder = rig.store.attach("app")
    with open(os.path.join(folder, "config.yml")) as handle:
        assert handle.read() == "good: true"
    assert os.path.exists(os.path.join(folder, "keep.txt"))
    rig.store.detach("app")


def test_a_failed_restore_leaves_the_old_data_in_place(rig):
    rig.create("db", {"rows": "original rows"})
    rig.store.detach("db")
    manifest = rig.backup("db")

    rig.hooks["MoveVirtualDisk_Task"] = failing("moving the disk failed: vCenter went away")
    with pytest.raises(VSphereError):
        rig.restore_replace(manifest)
    assert sorted(os.listdir(rig.local("volumes"))) == ["db"]
    assert os.listdir(rig.local(STAGING)) == []
    assert b"original rows" in rig.local("volumes/db/db-flat.vmdk").read_bytes()


def test_a_restore_cut_off_while_relabelling_leaves_no_disk_attached_after_cleanup(rig, vcsim, session):
    rig.create("src", {"f": "data"})
    rig.store.detach("src")
    manifest = rig.backup("src")
    rig.create("src-copy")                                           # restored into: relabelled
    rig.store.detach("src-copy")
    host = rig.store.host_vm
    real_remove = host.remove_disk

    def vcenter_gone(device):
        host.remove_disk = real_remove
        raise VSphereError("detaching the staged disk failed: vCenter cannot be reached")
    host.remove_disk = vcenter_gone
    with pytest.raises(VSphereError, match="vCenter cannot be reached"):
        rig.restore_replace(manifest, "src-copy")
    staged = [d.backing.fileName for d in host.devices() if isinstance(d, vim.vm.device.VirtualDisk)
              and f"/{STAGING}/" in d.backing.fileName]
    assert len(staged) == 1                                          # left attached to this host's VM
    assert rig.engine.cleanup_leftovers(rig.store) == staged
    assert not [d for d in host.devices() if isinstance(d, vim.vm.device.VirtualDisk)
                and f"/{STAGING}/" in d.backing.fileName]
    assert sorted(os.listdir(rig.local("volumes"))) == ["src", "src-copy"]


def test_a_copy_that_fails_removes_the_snapshot_and_lists_no_backup(rig, vcsim):
    folder = rig.create("queue", {"q": "messages"})

    rig.hooks["CopyVirtualDisk_Task"] = failing("copying the disk failed: the datastore is out of space")
    with pytest.raises(VSphereError, match="out of space"):
        rig.backup("queue", commit=False)
    assert snapshots(rig.session, vcsim.host_vm) == {}
    assert not is_frozen(folder)
    assert rig.engine.cleanup_leftovers(rig.store) == []
    assert rig.repo.cleanup_incomplete("queue") != [] and rig.repo.list("queue") == []
    rig.store.detach("queue")


CHILD = r"""
import json, sys
sys.path.insert(0, {repo!r})
from plugin.backup.dsrepository import DatastoreBackupRepository
from plugin.backup.vmdkengine import VmdkEngine
from plugin.driver import Volume
from plugin.locks import NameLocks
from plugin.mounter import Mounter
from plugin.options import parse_options
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.vmdk import DatastoreStore
from plugin.storespec import parse_store_spec
from plugin.vsphere.hostvm import HostVM
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.session import Session
from plugin.vsphere.settings import VSphereSettings
from datetime import datetime, timezone

cfg = json.loads(sys.argv[1])
session = Session(VSphereSettings(**cfg["settings"]))
store = DatastoreStore(parse_store_spec(cfg["spec"]), session, HostVM(session, Inventory(session), name=cfg["vm"]),
                       LoopDeviceResolver(cfg["datastores"]), Mounter(), cfg["mount_root"])
repo = DatastoreBackupRepository(session, cfg["datastore"], store.spec.path)
staging = repo.begin(cfg["volume"], datetime.now(timezone.utc))
real_invoke = session.invoke

def invoke(obj, method, *args, **kwargs):
    if method == "CopyVirtualDisk_Task":      # the plugin dies here: between snapshot and clone
        print(staging.backup_id, flush=True)
        sys.stdin.read()
    return real_invoke(obj, method, *args, **kwargs)

session.invoke = invoke
opts = parse_options({{"VolumeStore": "s"}}, ["s"])
VmdkEngine(session).backup(Volume(cfg["volume"], "s", opts), store, staging, None, NameLocks().hold)
"""


def test_a_plugin_killed_between_snapshot_and_clone_leaves_nothing_after_cleanup(rig, vcsim, session, mount_root):
    folder = rig.create("orders", {"o.csv": "1,2,3"})
    take_snapshot(session, vcsim.host_vm, "before-upgrade")
    take_snapshot(session, vcsim.host_vm, f"{SNAPSHOT_PREFIX}orders-20261122T020000Z",
                  snapshot_description("orders", "20261122T020000Z", "another-docker-host"))
    cfg = {"settings": {"url": vcsim.url, "user": vcsim.user, "password": vcsim.password,
                        "ca_file": str(vcsim.ca_file)},
           "spec": f"{DS}/{rig.store.spec.path}:s", "vm": vcsim.host_vm, "datastores": vcsim.datastore_folders,
           "mount_root": str(mount_root), "datastore": DS, "volume": "orders"}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO)), json.dumps(cfg)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(HANG_GUARD, child.kill)
    timer.start()
    try:
        backup_id = child.stdout.readline().strip()
    finally:
        timer.cancel()
    assert backup_id, child.stderr.read()
    child.send_signal(signal.SIGKILL)
    child.wait()

    ours = f"{SNAPSHOT_PREFIX}orders-{backup_id}"
    assert ours in snapshots(session, vcsim.host_vm)                      # left behind by the dead plugin
    assert not is_frozen(folder)                                           # thawed before the copy began
    assert rig.repo.list("orders") == []                                   # the half backup is not listed

    restarted = Rig(rig.store, vcsim)                                      # the plugin starts again
    assert restarted.engine.cleanup_leftovers(rig.store) == [ours]
    assert sorted(snapshots(session, vcsim.host_vm)) == sorted(
        ["before-upgrade", f"{SNAPSHOT_PREFIX}orders-20261122T020000Z"])  # not ours to remove (yet)
    assert restarted.repo.cleanup_incomplete("orders") == [("orders", backup_id)]
    assert not rig.local("backups/orders").exists()

    much_later = VmdkEngine(session, clock=lambda: datetime.now(UTC) + timedelta(days=2),
                            stale_after=timedelta(days=1))
    assert much_later.cleanup_leftovers(rig.store) == [f"{SNAPSHOT_PREFIX}orders-20261122T020000Z"]
    assert sorted(snapshots(session, vcsim.host_vm)) == ["before-upgrade"]  # a user's snapshot: never
    rig.store.detach("orders")


def test_a_disk_on_another_running_vm_is_snapshotted_there_and_independent_disks_refused(rig, session, caplog):
    rig.create("shared", {"s.txt": "from another host"})
    rig.store.detach("shared")
    disk = f"[{DS}] {rig.store.spec.path}/volumes/shared/shared.vmdk"
    attach_to(session, OTHER_VM, disk, "persistent")
    needed = []
    real_get = rig.session.get_properties

    def consolidation_needed(objs, paths):       # the simulator never needs it; a real vCenter may
        if paths == ["runtime.consolidationNeeded"]:
            needed.append(objs)
            return {"runtime.consolidationNeeded": True}
        return real_get(objs, paths)
    rig.session.get_properties = consolidation_needed
    manifest = rig.backup("shared")
    assert manifest.method == mf.SNAPSHOT_CLONE and manifest.extra["vm"] == OTHER_VM
    assert rig.runner.calls == [] and manifest.extra["frozen_seconds"] == 0.0   # not mounted here: no freeze
    assert snapshots(session, OTHER_VM) == {}
    assert len(needed) == 1                                    # vSphere asked for it: it was tried
    assert f"consolidating the disks of VM {OTHER_VM} failed" in caplog.text
    assert b"from another host" in rig.flat_bytes(manifest)

    vm = vm_ref(session, OTHER_VM)
    device = next(d for d in session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
                  if isinstance(d, vim.vm.device.VirtualDisk) and d.backing.fileName == disk)
    session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(device))
    attach_to(session, OTHER_VM, disk, "independent_persistent")
    with pytest.raises(BackupError) as refused:
        rig.backup("shared")
    assert str(refused.value) == (
        f"volume shared cannot be backed up now: its disk is attached to the running VM {OTHER_VM} as an "
        "independent disk (independent_persistent), as VIC container VMs attach volumes, and vSphere cannot "
        "snapshot independent disks. The backup is retried and succeeds once the disk is detached (its "
        "container stopped and removed) or the VM is powered off")
    assert snapshots(session, OTHER_VM) == {}

    power(session, OTHER_VM, on=False)
    try:
        stopped = rig.backup("shared")
    finally:
        power(session, OTHER_VM, on=True)
    assert stopped.method == mf.DIRECT_CLONE and stopped.extra["stopped_vms"] == [OTHER_VM]


def test_a_freeze_that_fails_takes_no_snapshot(rig, vcsim):
    rig.create("frozen", {"f": "x"})

    def failing(argv):
        rig.runner.calls.append(list(argv))
        raise MountError(f"{' '.join(argv)} failed (exit 1): Operation not supported")
    rig.engine.runner = failing
    with pytest.raises(BackupError, match="cannot freeze the filesystem at .*/frozen for a consistent snapshot"):
        rig.backup("frozen", commit=False)
    assert snapshots(rig.session, vcsim.host_vm) == {}
    assert [argv[1] for argv in rig.runner.calls] == ["--freeze"]
    rig.store.detach("frozen")
