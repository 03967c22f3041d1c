"""DatastoreStore against the simulator, down to real mkfs, mount and bytes in the flat file."""

import json
import os
import subprocess
import threading
import time

import pytest
from pyVmomi import vim

from plugin.errors import ConfigError, Conflict, InUse, VSphereError, VSphereUnavailable
from plugin.mounter import Mounter
from plugin.stores.devices import LOOP_SETTING
from plugin.stores.hostdisks import vic_label
from plugin.stores.vmdk import DatastoreStores
from plugin.stores.vmdkfolders import STAGING
from plugin.storespec import parse_store_spec
from plugin.vsphere.vmdisks import attach_spec, detach_spec
from tests.simulator import make_vic_volume

from .helpers import DS, create, disk_devices, local, loops_of, run, vm_ref


def our_disk(store, name):
    return next((d for d in disk_devices(store.session, store.host_vm.ref)
                 if d.backing.fileName == f"[{DS}] {store.spec.path}/volumes/{name}/{name}.vmdk"), None)


def test_create_writes_vics_layout_and_nothing_else(vcsim, make_store):
    store = make_store()
    with store.session.counting() as trips:
        metadata = create(store, "web-data", Capacity="64M")
    volumes = local(vcsim, store, "volumes")
    assert sorted(os.listdir(volumes)) == ["web-data"]
    assert sorted(os.listdir(volumes / "web-data")) == ["imageMetadata", "web-data-flat.vmdk", "web-data.vmdk"]
    assert json.loads((volumes / "web-data/imageMetadata/DockerMetaData").read_text()) == metadata
    assert os.listdir(local(vcsim, store, STAGING)) == []
    # The disk is attached to this host's VM for a moment to get its filesystem (two
    # reconfigurations; the VM's disk.EnableUUID and devices read, the tasks awaited).
    assert dict(trips) == {"MakeDirectory": 1, "CreateVirtualDisk_Task": 1, "QueryVirtualDiskUuid": 1,
                           "ReconfigVM_Task": 2, "MoveDatastoreFile_Task": 1, "RetrievePropertiesEx": 7,
                           "http.PUT": 1}
    assert our_disk(store, "web-data") is None and os.listdir(store.mount_root) == []


def test_create_of_an_existing_volume_is_a_conflict_and_leaves_it_alone(vcsim, make_store):
    store = make_store()
    metadata = create(store, "dup")
    with pytest.raises(Conflict):
        create(store, "dup", Capacity="2G")
    other_host = make_store()               # no cache: the move into place finds it
    with pytest.raises(Conflict) as raised:
        create(other_host, "dup", Capacity="2G")
    assert f"volume dup already exists in volume store s ([{DS}] {store.spec.path}/volumes/dup)" == str(raised.value)
    assert json.loads(local(vcsim, store, "volumes/dup/imageMetadata/DockerMetaData").read_text()) == metadata
    assert os.listdir(local(vcsim, store, STAGING)) == []


def test_a_failed_create_leaves_nothing_behind(vcsim, make_store, monkeypatch):
    store = make_store()

    def broken_write(*args):
        raise VSphereError("writing metadata failed: HTTP 500")
    monkeypatch.setattr(store.files, "write", broken_write)
    with pytest.raises(VSphereError):
        create(store, "half")
    assert os.listdir(local(vcsim, store, "volumes")) == []
    assert os.listdir(local(vcsim, store, STAGING)) == []


def test_the_simulator_killed_mid_create_leaves_no_volume(start_vcsim, make_store, sleeps):
    private = start_vcsim("-delay", "CreateVirtualDisk_Task=20000")
    store = make_store(simulator=private)
    failures = []

    def creating():
        try:
            create(store, "doomed")
        except Exception as err:  # noqa: BLE001 - the test inspects it
            failures.append(err)

    worker = threading.Thread(target=creating)
    worker.start()
    staging = local(private, store, STAGING)
    guard = time.monotonic() + 30           # a hang guard, not a measured threshold
    while not (staging.is_dir() and os.listdir(staging)) and time.monotonic() < guard:
        time.sleep(0.02)
    private.kill()
    worker.join()
    assert len(failures) == 1 and isinstance(failures[0], VSphereUnavailable)
    assert "cannot be reached" in str(failures[0])
    assert os.listdir(local(private, store, "volumes")) == []      # a VCH lists nothing new
    assert sleeps                            # the retries backed off (without waiting)


def test_open_deletes_this_hosts_leftover_staging_folders(vcsim, make_store):
    store = make_store()
    manager, dc = store.session.content.fileManager, store.session.datacenter.ref
    assert store.layout.staging_prefix().startswith(f"{store.spec.path}/{STAGING}/")
    others = f"{store.spec.path}/{STAGING}/0123456789ab-other-host-busy"
    for leftover in (f"{store.layout.staging_prefix()}dead", others):
        store.session.invoke(manager, "MakeDirectory", name=store.layout.ds(leftover), datacenter=dc,
                             createParentDirectories=True)
    store.open()
    assert os.listdir(local(vcsim, store, STAGING)) == ["0123456789ab-other-host-busy"]


def test_discover_lists_every_volume_in_a_bounded_number_of_round_trips(vcsim, make_store, tmp_path):
    store = make_store()
    for name in ("alpha", "beta"):
        create(store, name)
    vic = make_vic_volume(vcsim, DS, store.spec.path, "from-vch")
    store.session.invoke(store.session.content.fileManager, "MakeDirectory",
                         name=f"[{DS}] {store.spec.path}/volumes/broken", datacenter=store.session.datacenter.ref)
    with store.session.counting() as first:
        found = {v.name: v for v in store.discover()}
    assert sorted(found) == ["alpha", "beta", "broken", "from-vch"]
    assert found["from-vch"].metadata == vic and found["from-vch"].problem == ""
    assert found["alpha"].metadata["Name"] == "alpha" and found["alpha"].created_at.endswith("Z")
    assert found["broken"].problem == "no disk broken.vmdk in its folder"
    for name in ("gamma", "delta", "epsilon", "zeta"):
        create(store, name)
    with store.session.counting() as second:
        assert len(store.discover()) == 8
    soap = {k: v for k, v in first.items() if not k.startswith("http.")}
    assert soap == {"SearchDatastoreSubFolders_Task": 1, "RetrievePropertiesEx": 2}
    assert {k: v for k, v in second.items() if not k.startswith("http.")} == soap
    assert (first["http.GET"], second["http.GET"]) == (3, 7)        # one per metadata file


def test_attach_mounts_the_vic_filesystem_and_the_bytes_land_in_the_flat_file(vcsim, make_store, mount_root):
    store = make_store()
    create(store, "payload", Capacity="64M")
    with store.session.counting() as trips:
        folder = store.attach("payload")
    assert folder == str(mount_root / "payload" / ".vic.vol.data")
    assert trips["ReconfigVM_Task"] == 1 and "QueryVirtualDiskUuid" not in trips   # known since the create
    flat = local(vcsim, store, "volumes/payload/payload-flat.vmdk")
    (device,) = loops_of(flat)
    assert run("blkid", "-p", "-o", "value", "-s", "LABEL", device).strip() == vic_label("payload")
    assert flat.stat().st_size == 64 * 1024 * 1024
    disk = our_disk(store, "payload")
    controller = next(d for d in store.host_vm.devices() if d.key == disk.controllerKey)
    assert isinstance(controller, vim.vm.device.ParaVirtualSCSIController) and disk.unitNumber != 7
    assert disk.backing.diskMode == "persistent"
    assert store.status("payload")["AttachedTo"] == vcsim.host_vm

    secret = b"bytes-written-by-a-container-" + os.urandom(8).hex().encode()
    with open(os.path.join(folder, "data.bin"), "wb") as handle:
        handle.write(secret)
    with store.session.counting() as trips:
        store.detach("payload")
    assert dict(trips) == {"RetrievePropertiesEx": 2, "ReconfigVM_Task": 1}
    assert loops_of(flat) == [] and our_disk(store, "payload") is None
    assert not os.path.exists(mount_root / "payload")
    assert secret in flat.read_bytes()
    assert store.status("payload")["AttachedTo"] == ""


def test_attach_is_idempotent_and_found_again_after_a_plugin_restart(vcsim, make_store, make_session, mount_root):
    store = make_store()
    create(store, "sticky")
    folder = store.attach("sticky")
    with open(os.path.join(folder, "note.txt"), "w") as handle:
        handle.write("still here")
    with store.session.counting() as trips:
        assert store.attach("sticky") == folder
    assert trips == {}
    restarted = make_store(session=make_session(vcsim))          # a new process: nothing cached
    with restarted.session.counting() as trips:
        assert restarted.attach("sticky") == folder
    assert "ReconfigVM_Task" not in trips
    restarted.detach("sticky")
    restarted.detach("sticky")                                   # idempotent
    assert our_disk(store, "sticky") is None
    assert loops_of(local(vcsim, store, "volumes/sticky/sticky-flat.vmdk")) == []
    again = restarted.attach("sticky")
    with open(os.path.join(again, "note.txt")) as handle:
        assert handle.read() == "still here"
    restarted.detach("sticky")


def test_a_volume_made_by_a_vch_is_discovered_and_mounted(vcsim, make_store, mount_root):
    store = make_store()
    make_vic_volume(vcsim, DS, store.spec.path, "vch-vol", files={".vic.vol.data/hello.txt": "from a VCH container"})
    make_vic_volume(vcsim, DS, store.spec.path, "vch-old", files={"top.txt": "filesystem root"})
    assert {v.name for v in store.discover()} == {"vch-vol", "vch-old"}
    folder = store.attach("vch-vol")
    assert folder == str(mount_root / "vch-vol" / ".vic.vol.data")
    with open(os.path.join(folder, "hello.txt")) as handle:
        assert handle.read() == "from a VCH container"
    old = store.attach("vch-old")                # no .vic.vol.data: the root is exposed, as VIC does
    assert old == str(mount_root / "vch-old") and os.path.exists(os.path.join(old, "top.txt"))
    assert not os.path.exists(os.path.join(old, ".vic.vol.data"))
    store.detach("vch-vol")
    store.detach("vch-old")


def _attach_elsewhere(session, vm_name, ds_path):
    vm = vm_ref(session, vm_name)
    devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    spec, _ = attach_spec(devices, ds_path, 64 * 1024, vm_name)
    session.call_task(vm, "ReconfigVM_Task", spec=spec)
    return vm


def test_a_disk_attached_to_another_vm_is_in_use(vcsim, make_store):
    store = make_store()
    create(store, "shared")
    path = f"[{DS}] {store.spec.path}/volumes/shared/shared.vmdk"
    vm = _attach_elsewhere(store.session, "DC0_H0_VM1", path)
    in_use = f"volume shared is in use by VM DC0_H0_VM1 (powered on): its disk {path} is attached there"
    fence_by_hand = (". If that Docker host is down (its Docker engine does not run), detach the disk from its VM "
                     "by hand: vsphere-volume detach --force shared")
    for action, says in ((store.remove, in_use), (store.attach, in_use + fence_by_hand)):
        with pytest.raises(InUse) as raised:
            action("shared")
        assert str(raised.value) == says
    disk = next(d for d in disk_devices(store.session, vm) if d.backing.fileName == path)
    store.session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(disk))
    with store.session.counting() as trips:
        store.remove("shared")
    assert dict(trips) == {"RetrievePropertiesEx": 2, "DeleteDatastoreFile_Task": 1}
    assert os.listdir(local(vcsim, store, "volumes")) == []
    assert store.discover() == []


def test_a_disk_under_a_vm_snapshot_is_found_through_its_delta(vcsim, make_store, session, snapshot_deltas):
    """On a real vCenter a VM with a snapshot has the volume's disk as a delta over
    ``<name>.vmdk``: remove, attach and detach still find it (tests/vsphere/conftest.py
    ``snapshot_deltas`` plays the deltas the simulator does not make)."""
    store = make_store()
    create(store, "snapped")
    create(store, "elsewhere")
    store.attach("snapped")
    path = f"[{DS}] {store.spec.path}/volumes/elsewhere/elsewhere.vmdk"
    other = _attach_elsewhere(store.session, "DC0_H0_VM1", path)
    snapshot_deltas(store.session, store.spec.path)
    (seen,) = [d for d in disk_devices(store.session, other) if store.spec.path in d.backing.fileName]
    assert seen.backing.fileName.endswith("/elsewhere-000001.vmdk") and seen.backing.parent.fileName == path
    with pytest.raises(InUse) as raised:
        store.remove("snapped")
    assert f"in use by VM {vcsim.host_vm} (this Docker host)" in str(raised.value)
    with pytest.raises(InUse) as raised:
        store.attach("elsewhere")
    assert str(raised.value).startswith(
        f"volume elsewhere is in use by VM DC0_H0_VM1 (powered on): its disk {path} is attached there. ")
    store.discover()
    assert store.status("elsewhere")["AttachedTo"] == "DC0_H0_VM1"
    store.detach("snapped")
    host_disks = [d.backing.fileName for d in disk_devices(session, vm_ref(session, vcsim.host_vm))]
    assert not any(f"{store.spec.path}/volumes/" in name for name in host_disks)      # really detached
    store.remove("snapped")
    assert os.listdir(local(vcsim, store, "volumes")) == ["elsewhere"]


def test_a_volume_mounted_here_cannot_be_removed(vcsim, make_store):
    store = make_store()
    create(store, "busy")
    store.attach("busy")
    with pytest.raises(InUse) as raised:
        store.remove("busy")
    assert f"in use by VM {vcsim.host_vm} (this Docker host)" in str(raised.value)
    store.detach("busy")
    store.remove("busy")


def test_a_vm_without_disk_enable_uuid_is_refused_clearly(vcsim, make_store):
    store = make_store(host_vm="DC0_H0_VM1")     # the harness sets disk.EnableUUID on DC0_H0_VM0 only
    with store.session.counting() as trips, pytest.raises(VSphereError) as raised:
        create(store, "nouuid")                  # it must see the new disk to make its filesystem
    assert str(raised.value).startswith("VM DC0_H0_VM1 does not have disk.EnableUUID=TRUE (it has nothing)")
    assert "advanced setting disk.EnableUUID=TRUE" in str(raised.value)
    assert "MakeDirectory" not in trips and "CreateVirtualDisk_Task" not in trips      # refused before
    make_vic_volume(vcsim, DS, store.spec.path, "from-vch")             # a VCH's volume
    with pytest.raises(VSphereError, match="does not have disk.EnableUUID=TRUE"):
        store.attach("from-vch")
    assert not any("from-vch" in d.backing.fileName for d in disk_devices(store.session, store.host_vm.ref))


def test_a_controller_is_added_when_the_vm_has_no_paravirtual_one(vcsim, make_store, session):
    vm = vm_ref(session, "DC0_C0_RP0_VM0")
    devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
    remove = [d for d in devices if isinstance(d, (vim.vm.device.VirtualDisk, vim.vm.device.ParaVirtualSCSIController))]
    spec = vim.vm.ConfigSpec(
        extraConfig=[vim.option.OptionValue(key="disk.EnableUUID", value="TRUE")],
        deviceChange=[detach_spec(d).deviceChange[0] for d in remove])
    session.call_task(vm, "ReconfigVM_Task", spec=spec)
    store = make_store(host_vm="DC0_C0_RP0_VM0")
    slots, real_add_disk = [], store.host_vm.add_disk
    store.host_vm.add_disk = lambda *args: slots.append(real_add_disk(*args)) or slots[-1]
    create(store, "newbus")            # the create attaches the disk for a moment: the controller is added then
    folder = store.attach("newbus")
    disk = our_disk(store, "newbus")
    controller = next(d for d in store.host_vm.devices() if d.key == disk.controllerKey)
    assert isinstance(controller, vim.vm.device.ParaVirtualSCSIController) and controller.busNumber == 0
    assert [d.key for d in store.host_vm.devices() if isinstance(d, vim.vm.device.ParaVirtualSCSIController)] == [
        controller.key]                # added once, by the create, and used again
    # The create's disk took the new bus's first unit. (The simulator gives the new
    # controller the key of the one removed above, so the CD-ROM that was on that one shows
    # on unit 0 of the new one: the attach takes the next free unit.)
    assert slots == ["SCSI(0:0)", "SCSI(0:1)"] and (controller.busNumber, disk.unitNumber) == (0, 1)
    assert os.path.isdir(folder)
    store.detach("newbus")


def test_status_comes_from_memory(vcsim, make_store):
    store = make_store()
    create(store, "quiet", Capacity="2G")
    store.discover()
    with store.session.counting() as trips:
        status = store.status("quiet")
    assert trips == {}
    assert status == {"Disk": f"[{DS}] {store.spec.path}/volumes/quiet/quiet.vmdk", "AttachedTo": "",
                      "Capacity": "2000MB"}


def test_the_host_vm_is_found_by_its_smbios_uuid(vcsim, session):
    from plugin.vsphere.hostvm import HostVM, swapped_uuid
    from plugin.vsphere.inventory import Inventory
    uuid = vcsim.info["host_vm"]["uuid"]
    for shown in (uuid, swapped_uuid(uuid)):      # as the kernel shows it, with either byte order
        host = HostVM(session, Inventory(session), read_file=lambda path, shown=shown: shown.upper() + "\n")
        assert host.name == vcsim.host_vm
    unknown = HostVM(session, Inventory(session), read_file=lambda path: "00000000-0000-0000-0000-000000000001")
    with pytest.raises(ConfigError) as raised:
        unknown.name  # noqa: B018 - reading it is what fails
    assert "set VSPHERE_VM" in str(raised.value)


def test_the_loop_mode_really_runs_mkfs(vcsim, make_store):
    """The data path is real: the filesystem on the flat file is ext4 with VIC's label."""
    store = make_store()
    create(store, "real-fs")
    store.attach("real-fs")
    store.detach("real-fs")
    flat = local(vcsim, store, "volumes/real-fs/real-fs-flat.vmdk")
    probe = subprocess.run(["blkid", "-p", "-o", "export", str(flat)], capture_output=True, text=True, check=True)
    assert "TYPE=ext4" in probe.stdout and f"LABEL={vic_label('real-fs')}" in probe.stdout


def test_the_factory_builds_stores_from_plugin_settings(vcsim, store_path, mount_root):
    env = {"VSPHERE_URL": vcsim.url, "VSPHERE_USER": vcsim.user, "VSPHERE_PASSWORD_FILE": "/pw",
           "VSPHERE_CA_FILE": str(vcsim.ca_file), "VSPHERE_VM": vcsim.host_vm,
           LOOP_SETTING: json.dumps(vcsim.datastore_folders)}
    stores = DatastoreStores.from_env(env, Mounter(), str(mount_root), read_file=lambda path: vcsim.password)
    first = stores.store(parse_store_spec(f"LocalDS_1/{store_path}/a:a"))
    second = stores.store(parse_store_spec(f"LocalDS_0/{store_path}/b:b"))
    assert first.session is second.session and first.host_vm is second.host_vm
    first.open()
    second.open()
    create(second, "via-factory")
    folder = second.attach("via-factory")
    assert os.path.isdir(folder)
    second.detach("via-factory")
    second.remove("via-factory")
    assert first.release_wait == 20                      # MOUNT_RELEASE_WAIT's default
    assert DatastoreStores.from_env({**env, "MOUNT_RELEASE_WAIT": "45"}, Mounter(), str(mount_root),
                                    read_file=lambda path: vcsim.password).release_wait == 45
    with pytest.raises(ConfigError, match=r"^MOUNT_RELEASE_WAIT='90' is not valid: use a whole number from 0 to 60"):
        DatastoreStores.from_env({**env, "MOUNT_RELEASE_WAIT": "90"}, Mounter(), str(mount_root),
                                 read_file=lambda path: vcsim.password)
    stores.session.close()
