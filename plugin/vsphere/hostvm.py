"""The Docker host's own VM: the VM that volume disks are attached to.

Found once, on first use: by name (``VSPHERE_VM``) or else by this machine's SMBIOS
UUID (``/sys/class/dmi/id/product_uuid``; VMware's BIOS UUID, tried as read and with
the first three fields byte-swapped, which older virtual hardware and kernels show).

``lock`` serializes the reconfigurations of the VM (two attaches choosing the same
free SCSI unit would collide); it is held from reading the devices to the end of the
ReconfigVM task: ``attach_disk`` and ``detach_disk`` take it, callers of ``add_disk``,
``remove_disk`` and ``remove_disk_from`` (another VM's disk) hold it. Disks are
``vmdisks.AttachedDisk``; VMs of the inventory (``inventory.VMRef``) are told from this
one with ``same_as``.
"""

import logging
import threading
import uuid as uuidlib

from ..errors import ConfigError, VSphereError
from .snapshots import nodes
from .vmdisks import PERSISTENT, attach_spec, attached_disks, detach_spec, find_attached

log = logging.getLogger(__name__)

PRODUCT_UUID = "/sys/class/dmi/id/product_uuid"
ENABLE_UUID = "disk.EnableUUID"


def _read_text(path):
    with open(path, encoding="ascii") as handle:
        return handle.read()


def swapped_uuid(text):
    """The UUID with its first three fields byte-swapped (SMBIOS < 2.6 byte order)."""
    return str(uuidlib.UUID(bytes_le=uuidlib.UUID(text).bytes))


class HostVM:
    """The VM this plugin runs in, as vCenter knows it."""

    def __init__(self, session, inventory, name="", product_uuid_path=PRODUCT_UUID, read_file=_read_text):
        self.session = session
        self.inventory = inventory
        self.lock = threading.RLock()
        self._wanted_name = name
        self._product_uuid_path = product_uuid_path
        self._read_file = read_file
        self._vm = None
        self._enable_uuid_checked = False

    def _resolve(self):
        with self.lock:
            if self._vm is None:
                self._vm = self._find()
                log.info("the Docker host's VM is %s (%s)", self._vm.name, self._vm.ref._moId)
            return self._vm

    def _find(self):
        if self._wanted_name:
            return self.inventory.find_vm(self._wanted_name)
        try:
            product_uuid = self._read_file(self._product_uuid_path).strip().lower()
        except OSError as err:
            raise ConfigError(
                f"cannot read this machine's SMBIOS UUID from {self._product_uuid_path} "
                f"({err.strerror or err}): set VSPHERE_VM to the name of the Docker host's VM") from None
        for candidate in dict.fromkeys((product_uuid, swapped_uuid(product_uuid))):
            found = self.inventory.find_vm_by_uuid(candidate)
            if found:
                return found
        raise ConfigError(
            f"no VM in datacenter {self.session.datacenter.path} has this machine's SMBIOS UUID "
            f"{product_uuid}: set VSPHERE_VM to the name of the Docker host's VM")

    @property
    def ref(self):
        return self._resolve().ref

    @property
    def name(self):
        return self._resolve().name

    def same_as(self, vm):
        """True when ``vm`` (an inventory.VMRef) is this VM."""
        return vm.ref == self.ref

    def devices(self):
        """The VM's current device list (one round trip)."""
        return list(self.session.get_properties(self.ref, ["config.hardware.device"])
                    .get("config.hardware.device") or [])

    def disks(self):
        """The VM's AttachedDisks (one round trip)."""
        return attached_disks(self.devices())

    def snapshots_and_disks(self):
        """(the VM's snapshots as snapshots.SnapshotNodes, its AttachedDisks): one round trip."""
        facts = self.session.get_properties(self.ref, ["snapshot", "config.hardware.device"])
        return nodes(facts.get("snapshot")), attached_disks(facts.get("config.hardware.device"))

    def require_enable_uuid(self):
        """Raise VSphereError unless the VM has ``disk.EnableUUID=TRUE`` (checked once).

        Without it the guest does not see disk UUIDs, so an attached disk cannot be told
        apart from the others.
        """
        if self._enable_uuid_checked:
            return
        options = self.session.get_properties(self.ref, ["config.extraConfig"]).get("config.extraConfig") or []
        value = next((str(o.value) for o in options if o.key == ENABLE_UUID), "")
        if value.strip().lower() not in ("true", "1"):
            raise VSphereError(
                f"VM {self.name} does not have {ENABLE_UUID}=TRUE (it has {value or 'nothing'}): "
                "its guest cannot see the UUIDs of attached disks, so volumes cannot be found "
                f"after attaching. Power the VM off, add the advanced setting {ENABLE_UUID}=TRUE, "
                "and power it on again")
        self._enable_uuid_checked = True

    def attach_disk(self, ds_path, capacity_kb, users=None, mode=PERSISTENT):
        """Attach existing disk ``ds_path`` under ``lock``; return its slot, ``SCSI(bus:unit)``.

        ``users``: an inventory.DiskUsers read under ``lock``, whose device list of this VM
        is used (else the devices are read first); ``mode``: the disk mode (vmdisks).
        """
        with self.lock:
            devices = users.devices(self.ref) if users is not None else self.devices()
            return self.add_disk(devices, ds_path, capacity_kb, mode)

    def detach_disk(self, ds_path):
        """Detach disk ``ds_path`` under ``lock`` if it is attached (also under a snapshot's
        delta disk); its files are kept. True when it was attached."""
        with self.lock:
            disk = find_attached(self.devices(), ds_path)
            if disk is None:
                return False
            self.remove_disk(disk)
            return True

    def add_disk(self, devices, ds_path, capacity_kb, mode=PERSISTENT):
        """Attach existing disk ``ds_path``; ``devices`` is a fresh read taken under ``lock``.

        Returns the slot, ``SCSI(bus:unit)``.
        """
        spec, slot = attach_spec(devices, ds_path, capacity_kb, self.name, mode)
        self.session.call_task(self.ref, "ReconfigVM_Task", spec=spec,
                               what=f"attaching {ds_path} to VM {self.name} at {slot}")
        return slot

    def remove_disk(self, disk):
        """Detach AttachedDisk ``disk`` (its files are kept); the caller holds ``lock``."""
        self.session.call_task(self.ref, "ReconfigVM_Task", spec=detach_spec(disk.device),
                               what=f"detaching {disk.files[0]} from VM {self.name}")

    def remove_disk_from(self, vm, disk):
        """Detach AttachedDisk ``disk`` from another VM ``vm`` (an inventory.VMRef): the
        disk leaves that VM's configuration and its files are kept, so the VM still boots.
        Taking a volume from another Docker host's VM (``stores.fencing``); the caller
        holds ``lock`` and has decided that VM may lose it."""
        self.session.call_task(vm.ref, "ReconfigVM_Task", spec=detach_spec(disk.device),
                               what=f"detaching {disk.files[0]} from VM {vm.name}")

    def __repr__(self):
        return f"HostVM({self._vm.name if self._vm else self._wanted_name or 'by SMBIOS UUID'})"

