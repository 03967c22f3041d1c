"""Planning disk attachments on a VM's device list (pure functions, real pyVmomi objects)."""

import pytest
from pyVmomi import vim, vmodl

from plugin.errors import VSphereError
from plugin.vsphere.inventory import DiskUsers, VMRef
from plugin.vsphere.vmdisks import (
    attach_spec,
    detach_spec,
    disk_chain,
    disk_path,
    find_disk,
    normalize_disk_uuid,
    normalize_path,
)

PV = vim.vm.device.ParaVirtualSCSIController
Op = vim.vm.device.VirtualDeviceSpec.Operation


def disk(key, controller, unit, path=None):
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=path or f"[ds] vm/disk{key}.vmdk")
    return vim.vm.device.VirtualDisk(key=key, controllerKey=controller, unitNumber=unit, backing=backing)


def controller(key, bus, kind=PV):
    return kind(key=key, busNumber=bus)


def added(spec):
    return [change.device for change in spec.deviceChange if change.operation == Op.add]


def test_the_first_free_unit_of_a_paravirtual_controller():
    devices = [controller(1000, 0), disk(2000, 1000, 0), disk(2001, 1000, 1)]
    spec, slot = attach_spec(devices, "[ds] v/v/v.vmdk", 1000)
    (new,) = added(spec)
    assert (new.controllerKey, new.unitNumber, slot) == (1000, 2, "SCSI(0:2)")
    assert new.backing.diskMode == "persistent" and new.backing.thinProvisioned
    assert new.backing.fileName == "[ds] v/v/v.vmdk" and new.capacityInKB == 1000
    assert spec.deviceChange[0].fileOperation is None          # the existing file, not a new one


def test_unit_seven_is_skipped():
    devices = [controller(1000, 0)] + [disk(2000 + u, 1000, u) for u in range(7)]
    _, slot = attach_spec(devices, "[ds] x.vmdk", 1)
    assert slot == "SCSI(0:8)"


def test_a_new_controller_when_every_paravirtual_unit_is_taken():
    units = [u for u in range(16) if u != 7]
    devices = ([controller(1000, 0), controller(1001, 1, vim.vm.device.VirtualLsiLogicController)]
               + [disk(2000 + u, 1000, u) for u in units])
    spec, slot = attach_spec(devices, "[ds] x.vmdk", 1)
    new_controller, new_disk = added(spec)
    assert isinstance(new_controller, PV) and new_controller.busNumber == 2
    assert new_disk.controllerKey == new_controller.key and new_disk.unitNumber == 0
    assert slot == "SCSI(2:0)"


def test_a_new_controller_when_the_vm_has_none():
    spec, slot = attach_spec([], "[ds] x.vmdk", 1)
    assert [type(d) for d in added(spec)] == [PV, vim.vm.device.VirtualDisk]
    assert slot == "SCSI(0:0)"


def test_no_bus_left_is_a_clear_error():
    kinds = [PV, vim.vm.device.VirtualLsiLogicController] * 2
    devices = [controller(1000 + b, b, kinds[b]) for b in range(4)]
    devices += [disk(3000 + u, 1000 + b, u) for b in (0, 2) for u in range(16) if u != 7]
    with pytest.raises(VSphereError) as raised:
        attach_spec(devices, "[ds] x.vmdk", 1, vm_name="docker-01")
    assert "cannot attach [ds] x.vmdk to docker-01" in str(raised.value)


def test_finding_and_detaching_a_disk_by_its_file():
    target = disk(2001, 1000, 1, "[ds]  vols/volumes/a/a.vmdk")
    devices = [controller(1000, 0), disk(2000, 1000, 0), target]
    assert find_disk(devices, "[ds] vols/volumes/a/a.vmdk") is target
    assert find_disk(devices, "[ds] vols/volumes/b/b.vmdk") is None
    change = detach_spec(target).deviceChange[0]
    assert change.operation == Op.remove and change.fileOperation is None and change.device is target


def snapshotted(key, controller, unit, path, deltas=1):
    """A disk as a VM with ``deltas`` snapshots has it: the backing is the newest delta
    (``<name>-00000N.vmdk``), each delta's ``parent`` the one before, down to ``path``."""
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=path, diskMode="persistent")
    for number in range(1, deltas + 1):
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=path.replace(".vmdk", f"-{number:06d}.vmdk"), diskMode="persistent", parent=backing)
    return vim.vm.device.VirtualDisk(key=key, controllerKey=controller, unitNumber=unit, backing=backing)


def test_a_disk_under_a_vm_snapshot_is_found_through_its_parent_chain():
    base = "[ds] vols/volumes/a/a.vmdk"
    target = snapshotted(2001, 1000, 1, "[ds]  vols/volumes/a/a.vmdk", deltas=2)
    devices = [controller(1000, 0), disk(2000, 1000, 0), target]
    assert target.backing.fileName == "[ds]  vols/volumes/a/a-000002.vmdk"
    assert disk_chain(target) == ("[ds] vols/volumes/a/a-000002.vmdk", "[ds] vols/volumes/a/a-000001.vmdk", base)
    assert disk_path(target) == base                                  # the file that was attached
    assert find_disk(devices, base) is target
    assert find_disk(devices, "[ds] vols/volumes/a/a-000001.vmdk") is target
    assert find_disk(devices, "[ds] vols/volumes/b/b.vmdk") is None
    assert detach_spec(target).deviceChange[0].device is target


def test_devices_without_a_chain():
    plain = disk(2000, 1000, 0, "[ds] vm/os.vmdk")
    assert disk_chain(plain) == ("[ds] vm/os.vmdk",) and disk_path(plain) == "[ds] vm/os.vmdk"
    assert disk_chain(controller(1000, 0)) == () and disk_path(controller(1000, 0)) is None
    assert disk_path(vim.vm.device.VirtualDisk(key=1, backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo())) is None


def vm_contents(moid, name, devices):
    """What the PropertyCollector answers for one VM's name and devices."""
    prop = vmodl.DynamicProperty
    return vmodl.query.PropertyCollector.ObjectContent(obj=vim.VirtualMachine(moid), propSet=[
        prop(name="name", val=name),
        prop(name="config.hardware.device", val=vim.vm.device.VirtualDevice.Array(devices))])


def test_disk_users_see_a_disk_through_a_snapshots_delta():
    base = "[ds] vols/volumes/a/a.vmdk"
    snapped = [controller(1000, 0), snapshotted(2000, 1000, 0, base)]
    plain = [controller(1000, 0), disk(2000, 1000, 0, "[ds] vols/volumes/b/b.vmdk")]
    users = DiskUsers([vm_contents("vm-1", "docker-01", snapped), vm_contents("vm-2", "docker-02", plain)])
    assert users.users(base) == [VMRef("docker-01", vim.VirtualMachine("vm-1"))]
    assert users.users("[ds]  /vols/volumes/a/a.vmdk ") == users.users(base)
    assert [vm.name for vm in users.users("[ds] vols/volumes/b/b.vmdk")] == ["docker-02"]
    assert users.users("[ds] vols/volumes/c/c.vmdk") == []
    assert find_disk(users.devices(vim.VirtualMachine("vm-1")), base) is snapped[1]


def test_normalizing_paths_and_uuids():
    assert normalize_path("[ds] /a/b.vmdk ") == "[ds] a/b.vmdk"
    assert normalize_disk_uuid("60 00 C2 9d 4a 1b 2c 3d-4e 5f 60 71 82 93 a4 b5") == "6000c29d4a1b2c3d4e5f60718293a4b5"
    assert normalize_disk_uuid("e6e45e71-20ca-56cd-9170-b15ead5f0bc7") == "e6e45e7120ca56cd9170b15ead5f0bc7"
