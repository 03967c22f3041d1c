"""Pure functions over a VM's device list: find a disk, plan its attachment or removal.

No vCenter calls here: callers read ``config.hardware.device`` and send the specs.
``attached_disks`` gives the disks on a device list as ``AttachedDisk``: what the rest
of the plugin knows of a disk device (its files, device key, disk mode).

Attachment rules: the disk goes on a paravirtual SCSI controller, on the lowest free
unit (0-15, unit 7 is the controller's own); if every such controller is full (or
there is none) a new one is added in the same reconfiguration on the lowest free SCSI
bus (0-3). The disk is ``persistent`` (VM snapshots include it) and thin; no file
operation, so the existing VMDK is used as it is.
"""

import re
from dataclasses import dataclass

from pyVmomi import vim

from ..errors import VSphereError

SCSI_UNITS = range(16)
CONTROLLER_UNIT = 7
SCSI_BUSES = range(4)
_NEW_CONTROLLER_KEY = -100
_NEW_DISK_KEY = -101


def normalize_path(ds_path):
    """``[ds]  a/b.vmdk`` and ``[ds] /a/b.vmdk`` -> ``[ds] a/b.vmdk`` for comparisons."""
    match = re.match(r"^\s*\[([^\]]*)\]\s*/?(.*?)\s*$", ds_path or "")
    if not match:
        return (ds_path or "").strip()
    return f"[{match.group(1)}] {match.group(2)}"


def disk_chain(device):
    """The ``[ds] path`` files of a VirtualDisk's backing chain, the file the VM writes
    first and its base disk last; () for other devices.

    While a VM has snapshots its disk's backing is a delta (``<name>-000001.vmdk``) whose
    ``parent`` is the disk as it was at the snapshot, down to the disk that was attached
    (``<name>.vmdk``), which has no parent.
    """
    if not isinstance(device, vim.vm.device.VirtualDisk):
        return ()
    chain, backing, seen = [], device.backing, set()
    while backing is not None and id(backing) not in seen:
        seen.add(id(backing))
        name = getattr(backing, "fileName", None)
        if name:
            chain.append(normalize_path(name))
        backing = getattr(backing, "parent", None)
    return tuple(chain)


def disk_path(device):
    """The ``[ds] path`` of a VirtualDisk's base disk, or None for other devices.

    That is the file that was attached (a volume's ``<name>.vmdk``), also while VM
    snapshots make the backing a delta disk over it (``disk_chain``).
    """
    chain = disk_chain(device)
    return chain[-1] if chain else None


@dataclass(frozen=True)
class AttachedDisk:
    """A virtual disk on a VM's device list."""

    files: tuple            # ``disk_chain``: the file the VM writes first, the attached disk last
    device: object          # the vim.vm.device.VirtualDisk

    @property
    def path(self):
        """The disk that was attached (its base disk, also under VM snapshots)."""
        return self.files[-1]

    @property
    def key(self):
        """The device key, the same in the VM's snapshots."""
        return self.device.key

    @property
    def mode(self):
        """The disk mode: ``persistent``, ``independent_persistent``..."""
        return str(getattr(self.device.backing, "diskMode", "") or "")

    @property
    def independent(self):
        """True for a disk attached in an independent mode, which VM snapshots leave out."""
        return self.mode.startswith("independent")

    def is_under(self, prefix):
        """True when a file of the disk starts with ``prefix``: a folder (``[ds] a/b/``,
        with the slash) or the start of names in one."""
        return any(name.startswith(prefix) for name in self.files)


def attached_disks(devices):
    """The AttachedDisk of every virtual disk in ``devices``."""
    return [AttachedDisk(chain, device) for device in devices or [] if (chain := disk_chain(device))]


def find_disk(devices, ds_path):
    """The VirtualDisk in ``devices`` whose backing file is ``ds_path``, directly or
    through its ``parent`` chain (a VM snapshot's delta disk over it), or None."""
    wanted = normalize_path(ds_path)
    for device in devices or []:
        if wanted in disk_chain(device):
            return device
    return None


def find_attached(devices, ds_path):
    """The AttachedDisk of disk ``ds_path`` in ``devices`` (as ``find_disk`` finds it), or None."""
    device = find_disk(devices, ds_path)
    return AttachedDisk(disk_chain(device), device) if device is not None else None


def _free_slot(devices):
    """(controller key, unit) of the first free unit on a paravirtual controller, or None."""
    controllers = sorted((d for d in devices if isinstance(d, vim.vm.device.ParaVirtualSCSIController)),
                         key=lambda c: c.busNumber)
    for controller in controllers:
        used = {d.unitNumber for d in devices if d.controllerKey == controller.key}
        for unit in SCSI_UNITS:
            if unit != CONTROLLER_UNIT and unit not in used:
                return controller.key, unit
    return None


#: Disk modes: volumes are attached persistent (see stores.vmdk); a backup's clone that
#: is only read is attached so that vSphere drops whatever would be written to it.
PERSISTENT, READ_ONLY = "persistent", "independent_nonpersistent"


def attach_spec(devices, ds_path, capacity_kb, vm_name="the VM", mode=PERSISTENT):
    """A ``vim.vm.ConfigSpec`` adding existing disk ``ds_path`` to a VM with ``devices``,
    in disk mode ``mode``.

    Returns (spec, slot) where slot reads ``SCSI(bus:unit)``. Raises VSphereError when
    no SCSI bus is left for a new controller.
    """
    changes = []
    slot = _free_slot(devices)
    if slot is None:
        buses = {d.busNumber for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)}
        free_buses = [b for b in SCSI_BUSES if b not in buses]
        if not free_buses:
            raise VSphereError(
                f"cannot attach {ds_path} to {vm_name}: its SCSI controllers are all full "
                "and it already has four; detach some volumes first")
        controller = vim.vm.device.ParaVirtualSCSIController(
            key=_NEW_CONTROLLER_KEY, busNumber=free_buses[0],
            sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)
        changes.append(vim.vm.device.VirtualDeviceSpec(
            operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=controller))
        slot, bus = (_NEW_CONTROLLER_KEY, 0), free_buses[0]
    else:
        bus = next(d.busNumber for d in devices if d.key == slot[0])
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=ds_path, diskMode=mode, thinProvisioned=True)
    disk = vim.vm.device.VirtualDisk(key=_NEW_DISK_KEY, controllerKey=slot[0], unitNumber=slot[1],
                                     capacityInKB=capacity_kb, backing=backing)
    changes.append(vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=disk))
    return vim.vm.ConfigSpec(deviceChange=changes), f"SCSI({bus}:{slot[1]})"


def detach_spec(disk):
    """A ``vim.vm.ConfigSpec`` removing ``disk`` from its VM and keeping its files."""
    return vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(
        operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=disk)])


def normalize_disk_uuid(text):
    """``60 00 C2 9d ... 3e-5f ...`` or a dashed UUID -> 32 lower-case hex digits."""
    return re.sub(r"[^0-9a-fA-F]", "", text or "").lower()
