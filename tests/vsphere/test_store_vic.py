"""A datastore volume made by this plugin is the volume VIC makes: the disk size VIC asks
vCenter for, and its filesystem made at create, so that a VCH's container VM mounts it by
its label without this plugin ever mounting it. Against the simulator, with real loop
devices, mkfs and mount; a create killed midway leaves nothing once the plugin starts again."""

import json
import os
import uuid

import pytest

from plugin.errors import MountError
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.hostdisks import vic_label
from plugin.stores.vmdkfolders import STAGING

from ..crash import run_and_kill
from .helpers import DS, REPO, create, disk_devices, local, loops_of, run


def asked_capacities(store):
    """Record the capacityKb of every CreateVirtualDisk the store asks vCenter for."""
    asked, real_call_task = [], store.session.call_task

    def call_task(obj, method, *args, **kwargs):
        if method == "CreateVirtualDisk_Task":
            asked.append(kwargs["spec"].capacityKb)
        return real_call_task(obj, method, *args, **kwargs)
    store.session.call_task = call_task
    return asked


@pytest.mark.parametrize("given, kib", [
    ({}, 1024 * 1024),                   # VIC's default 1024 MB: 1,048,576 KiB
    ({"Capacity": "10000"}, 10000 * 1024),
    ({"Capacity": "10G"}, 10000 * 1024),  # 10G is 10,000 MB, each a MiB on disk
    ({"Capacity": "64MB"}, 64 * 1024),
])
def test_create_asks_vcenter_for_vics_capacity(vcsim, make_store, given, kib):
    store = make_store()
    asked = asked_capacities(store)
    name = f"sized-{uuid.uuid4().hex[:6]}"
    create(store, name, **given)
    assert asked == [kib]
    assert local(vcsim, store, f"volumes/{name}/{name}-flat.vmdk").stat().st_size == kib * 1024


def test_a_capacity_10000_volume_has_the_filesystem_size_vics_suite_checks(vcsim, make_store):
    store = make_store()
    create(store, "ten-thousand", Capacity="10000")
    folder = store.attach("ten-thousand")
    try:
        size = int(run("df", "-B1", "--output=size", folder).split()[-1])
        shown = run("df", "-h", "--output=size", folder).split()[-1]
    finally:
        store.detach("ten-thousand")
    # VIC's 1-19 suite reads busybox's `df -h` in a container: 9.5G (to one decimal, as
    # busybox shows it; coreutils' df rounds up: 9.6G). Sized the old way (MB of 10^6
    # bytes) the same volume shows 9.1G.
    assert round(size / 2**30, 1) == 9.5, (size, shown)
    assert shown in ("9.5G", "9.6G")


def test_a_new_volume_is_mounted_by_its_label_without_ever_being_mounted_here(vcsim, make_store, tmp_path):
    store = make_store()
    name = f"by-label-{uuid.uuid4().hex[:8]}"     # its label is unique on this machine's loop devices
    create(store, name)
    flat = local(vcsim, store, f"volumes/{name}/{name}-flat.vmdk")
    assert loops_of(flat) == [] and not os.listdir(store.mount_root)       # released by the create
    # As a VCH's container VM does: the disk appears as a block device, mounted by label.
    device = run("losetup", "--find", "--show", str(flat)).strip()
    target = tmp_path / "container-vm"
    target.mkdir()
    try:
        assert run("blkid", "-p", "-o", "value", "-s", "TYPE", device).strip() == "ext4"
        run("mount", f"LABEL={vic_label(name)}", str(target))
        try:
            assert sorted(os.listdir(target)) == [".vic.vol.data", "lost+found"]
            assert oct((target / ".vic.vol.data").stat().st_mode & 0o7777) == "0o755"
            (target / ".vic.vol.data" / "from-a-vch.txt").write_text("written in a container VM\n")
        finally:
            run("umount", str(target))
    finally:
        run("losetup", "-d", device)
    folder = store.attach(name)                    # and this plugin sees what the VCH wrote
    try:
        with open(os.path.join(folder, "from-a-vch.txt")) as handle:
            assert handle.read() == "written in a container VM\n"
    finally:
        store.detach(name)


def test_a_create_whose_disk_this_host_cannot_see_fails_clearly_and_leaves_nothing(vcsim, make_store):
    store = make_store()
    store.host_disks.resolver = LoopDeviceResolver({})         # no device for the datastore's disks here
    with pytest.raises(MountError) as raised:
        create(store, "unseen")
    assert str(raised.value).startswith(
        f"cannot make the filesystem of new volume unseen: this host does not see its disk [{DS}] "
        f"{store.layout.staging_prefix()}")
    assert "no local folder is configured for datastore 'LocalDS_1'" in str(raised.value)
    assert os.listdir(local(vcsim, store, "volumes")) == []
    assert os.listdir(local(vcsim, store, STAGING)) == []
    assert not any(store.spec.path in d.backing.fileName for d in disk_devices(store.session, store.host_vm.ref))
    assert os.listdir(store.mount_root) == []


CHILD = """
import json, os, sys
sys.path.insert(0, {repo!r})
from plugin.mounter import Mounter
from plugin.options import parse_options
from plugin.stores.base import docker_metadata
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.vmdk import DatastoreStore
from plugin.storespec import parse_store_spec
from plugin.vsphere.hostvm import HostVM
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.session import Session
from plugin.vsphere.settings import VSphereSettings

cfg = json.loads(sys.argv[1])
session = Session(VSphereSettings(**cfg["settings"]))
store = DatastoreStore(parse_store_spec(cfg["spec"]), session, HostVM(session, Inventory(session), name=cfg["vm"]),
                       LoopDeviceResolver(cfg["datastores"]), Mounter(), cfg["mount_root"])
store.open()
real_mkdir = os.mkdir

def mkdir(path, *args):
    real_mkdir(path, *args)
    if path.endswith(".vic.vol.data"):     # the plugin dies here: disk attached, filesystem mounted
        print("stopped", path, flush=True)
        sys.stdin.read()

os.mkdir = mkdir
opts = parse_options({{"VolumeStore": "s"}}, ["s"])
store.create(cfg["name"], opts, docker_metadata(cfg["name"], opts.given))
print("not stopped", flush=True)
"""


def test_a_create_killed_with_its_disk_attached_and_mounted_leaves_nothing_after_a_start(
        vcsim, make_store, mount_root):
    store = make_store()
    cfg = {"settings": {"url": vcsim.url, "user": vcsim.user, "password": vcsim.password,
                        "ca_file": str(vcsim.ca_file)},
           "spec": f"{DS}/{store.spec.path}:s", "vm": vcsim.host_vm, "datastores": vcsim.datastore_folders,
           "mount_root": str(mount_root), "name": "cut-off"}
    run_and_kill(CHILD.format(repo=str(REPO)), cfg)              # the plugin dies mid-create
    [staged] = os.listdir(local(vcsim, store, STAGING))
    flat = local(vcsim, store, STAGING, staged, "cut-off-flat.vmdk")
    attached = [d for d in disk_devices(store.session, store.host_vm.ref) if staged in d.backing.fileName]
    assert loops_of(flat) and attached
    assert os.listdir(mount_root) == [f".making-{staged}"]
    assert os.listdir(local(vcsim, store, "volumes")) == []            # no volume, for a VCH either

    store.open()                                                       # the plugin starts again
    assert os.listdir(local(vcsim, store, STAGING)) == [] and os.listdir(mount_root) == []
    assert loops_of(flat) == []
    assert not [d for d in disk_devices(store.session, store.host_vm.ref) if staged in d.backing.fileName]
    create(store, "cut-off")                                           # the retry makes it whole
    assert json.loads(local(vcsim, store, "volumes/cut-off/imageMetadata/DockerMetaData").read_text())["Name"] \
        == "cut-off"
