"""Helpers the tests of the simulator tier share: what they make, read and undo on the
simulator, its datastores and this machine (the fixtures are in conftest.py)."""

import re
import subprocess
from pathlib import Path

from plugin.options import parse_options
from plugin.stores.base import docker_metadata
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.session import Session
from plugin.vsphere.vmdisks import attached_disks, detach_spec
from tests.e2e import leftovers

REPO = Path(__file__).resolve().parents[2]
DS = "LocalDS_1"                 # the datastore of the stores the tests make
OTHER_VM = "DC0_H0_VM1"          # a VM of the simulator that is not the Docker host's


def run(*argv):
    """The stdout of ``argv`` (CalledProcessError when it fails)."""
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def loops_of(path):
    """The loop devices over file ``path``."""
    return run("losetup", "-n", "-O", "NAME", "-j", str(path)).split()


def volume_options(**given):
    """Validated options of a volume in store ``s`` (the one ``make_store`` makes)."""
    return parse_options({"VolumeStore": "s", **given}, ["s"])


def create(store, name, **given):
    """Create volume ``name`` in ``store`` with options ``given``; return its metadata."""
    opts = volume_options(**given)
    metadata = docker_metadata(name, opts.given)
    store.create(name, opts, metadata)
    return metadata


def local(simulator, store, *parts):
    """The local file or folder behind ``[DS] <store root>/parts...``."""
    return simulator.file(DS, "/".join((store.spec.path,) + parts))


def vm_ref(session, name):
    return Inventory(session).find_vm(name).ref


def disk_devices(session, vm):
    """The VirtualDisk devices of VM ``vm`` (a VM reference), as vCenter shows them now."""
    devices = session.get_properties(vm, ["config.hardware.device"]).get("config.hardware.device") or []
    return [disk.device for disk in attached_disks(devices)]


def snapshots(session, vm_name):
    """{name: SnapshotTree} of every snapshot of a VM."""
    info = session.get_properties(vm_ref(session, vm_name), ["snapshot"]).get("snapshot")
    found = {}
    pending = list(info.rootSnapshotList) if info else []
    while pending:
        node = pending.pop()
        found[node.name] = node
        pending.extend(node.childSnapshotList or [])
    return found


def is_frozen(folder):
    """True when the filesystem holding ``folder`` is frozen (thawing it then, to leave it usable)."""
    result = subprocess.run(["fsfreeze", "--unfreeze", folder], capture_output=True, text=True, check=False)
    return result.returncode == 0


def delta_over(disk, number=1):
    """``disk`` as a real vCenter shows it while its VM has a snapshot: its backing is a
    delta disk ``<name>-00000N.vmdk`` whose ``parent`` is the backing it had."""
    from pyVmomi import vim

    base = disk.backing
    disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=re.sub(r"\.vmdk$", f"-{number:06d}.vmdk", base.fileName), diskMode=base.diskMode,
        thinProvisioned=base.thinProvisioned, parent=base)
    return disk


def cleanup(simulator, root, mount_dir):
    """Undo what a store test may have left: mounts below ``mount_dir``, loop devices over
    the simulator's datastore files, disks below store folder ``root`` attached to its VMs."""
    leftovers.unmount_below(str(mount_dir))
    simulator.release_loop_devices()
    if simulator.process.poll() is not None:
        return
    session = Session(simulator.settings(), sleep=lambda _: None)
    try:
        for vm in (vm_ref(session, name) for name in simulator.info["vms"]):
            for disk in disk_devices(session, vm):
                if f"] {root}/" in disk.backing.fileName:
                    session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(disk))
    finally:
        session.close()
