"""VM snapshots: take one, read which disk file it holds, remove it, list a VM's.

``Snapshots(session)`` works on any VM of the datacenter, given as an ``inventory.VMRef``
or a ``hostvm.HostVM`` (``name`` and ``ref``). A snapshot is named by the handle that
``take`` returns or a ``SnapshotNode`` of a listing holds. ``nodes`` reads a VM's
snapshot trees (its ``snapshot`` property, read by the caller with other properties in
one round trip) as SnapshotNodes.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from pyVmomi import vim

from ..errors import VolumeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotNode:
    """One snapshot of a VM's snapshot trees."""

    name: str
    description: str
    created: datetime
    handle: object          # vim.vm.Snapshot


def walk_snapshots(trees):
    """Every node of a VM's snapshot trees (``snapshot.rootSnapshotList``), parents first."""
    for tree in trees or []:
        yield tree
        yield from walk_snapshots(tree.childSnapshotList)


def nodes(info):
    """SnapshotNodes of a VM's ``snapshot`` property (None: no snapshots), parents first."""
    return [SnapshotNode(tree.name, tree.description or "", tree.createTime, tree.snapshot)
            for tree in walk_snapshots(info.rootSnapshotList if info else [])]


class Snapshots:
    """Taking and removing snapshots of the VMs in ``session``'s datacenter."""

    def __init__(self, session):
        self.session = session

    def take(self, vm, name, description, quiesce=False, timeout=None):
        """Snapshot VM ``vm`` without its memory (``quiesce``: ask VMware Tools in the guest
        to quiesce first); return its handle. TaskTimeout after ``timeout`` seconds."""
        return self.session.call_task(vm.ref, "CreateSnapshot_Task", name=name, description=description,
                                      memory=False, quiesce=quiesce, timeout=timeout,
                                      what=f"taking snapshot {name} of VM {vm.name}")

    def disk_file(self, snapshot, disk_key):
        """The file of the disk with device key ``disk_key`` as the snapshot's own
        configuration names it (the disk as it was when taken), or None when it holds none."""
        devices = self.session.get_properties(snapshot, ["config.hardware.device"]).get(
            "config.hardware.device") or []
        for device in devices:
            if isinstance(device, vim.vm.device.VirtualDisk) and device.key == disk_key:
                return device.backing.fileName
        return None

    def remove(self, snapshot, name, vm):
        """Remove snapshot ``snapshot`` (called ``name``; its children stay) of VM ``vm``,
        then consolidate the VM's disks when vSphere says it is needed. VolumeError when
        removal fails; a failed consolidation is logged only: the snapshot is gone, vSphere
        shows the VM as needing consolidation."""
        self.session.call_task(snapshot, "RemoveSnapshot_Task", removeChildren=False, consolidate=True,
                               what=f"removing snapshot {name} of VM {vm.name}")
        needed = self.session.get_properties(vm.ref, ["runtime.consolidationNeeded"])
        if not needed.get("runtime.consolidationNeeded"):
            return
        try:
            self.session.call_task(vm.ref, "ConsolidateVMDisks_Task", what=f"consolidating the disks of VM {vm.name}")
        except VolumeError as err:
            log.warning("%s; vSphere shows the VM as needing disk consolidation", err)
