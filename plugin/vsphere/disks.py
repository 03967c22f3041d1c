"""Virtual disk files on the datastores of the session's datacenter: every call of the
plugin to vCenter's VirtualDiskManager.

``VirtualDisks(session)`` creates a thin disk, reads and sets a disk's UUID, copies a
disk and moves one over another, in datastore paths (``[ds] a/b.vmdk``); every task is
awaited. A disk's UUID is given and taken as 32 lower-case hex digits
(``vmdisks.normalize_disk_uuid``); vSphere's own spelling stays here.
"""

from pyVmomi import vim

from .vmdisks import normalize_disk_uuid


def vsphere_uuid(hex32):
    """32 hex digits as vSphere writes disk UUIDs: ``60 00 c2 ... 9f-1e 2d ...``."""
    pairs = [hex32[i:i + 2] for i in range(0, 32, 2)]
    return " ".join(pairs[:8]) + "-" + " ".join(pairs[8:])


class VirtualDisks:
    """The VirtualDiskManager of ``session``'s datacenter; see the module docstring."""

    def __init__(self, session):
        self.session = session

    def _task(self, method, what, timeout=None, progress=None, **kwargs):
        return self.session.call_task(self.session.content.virtualDiskManager, method, what=what,
                                      timeout=timeout, progress=progress, **kwargs)

    def _call(self, method, what, **kwargs):
        return self.session.invoke(self.session.content.virtualDiskManager, method, what=what, **kwargs)

    def create(self, path, capacity_kb, what=None):
        """Create thin disk ``path`` of ``capacity_kb`` KiB (lsiLogic adapter type)."""
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            diskType="thin", adapterType="lsiLogic", capacityKb=capacity_kb)
        self._task("CreateVirtualDisk_Task", what or f"creating disk {path}", name=path,
                   datacenter=self.session.datacenter.ref, spec=spec)

    def uuid(self, path):
        """The UUID of disk ``path`` (32 lower-case hex digits)."""
        return normalize_disk_uuid(self._call("QueryVirtualDiskUuid", f"reading the UUID of {path}",
                                              name=path, datacenter=self.session.datacenter.ref))

    def set_uuid(self, path, uuid):
        """Give disk ``path`` the UUID ``uuid`` (32 hex digits)."""
        self._call("SetVirtualDiskUuid", f"setting the UUID of {path}", name=path,
                   datacenter=self.session.datacenter.ref, uuid=vsphere_uuid(uuid))

    def copy(self, source, destination, timeout=None, progress=None):
        """Copy disk ``source`` to the new disk ``destination``; ``progress(percent)`` as
        vCenter reports it; TaskTimeout after ``timeout`` seconds.

        No destSpec: vCenter refuses one (the simulator says NotImplemented; choosing the
        format of a copy is an ESXi-only feature), so the copy's format is vCenter's.
        """
        dc = self.session.datacenter.ref
        self._task("CopyVirtualDisk_Task", f"copying disk {source} to {destination}", timeout=timeout,
                   progress=progress, sourceName=source, sourceDatacenter=dc, destName=destination,
                   destDatacenter=dc)

    def move_over(self, source, destination, what=None):
        """Move disk ``source`` onto ``destination``, replacing it, in one task (vCenter
        runs it to its end once started: ``destination`` is the old disk or the new)."""
        dc = self.session.datacenter.ref
        self._task("MoveVirtualDisk_Task", what or f"moving disk {source} over {destination}",
                   sourceName=source, sourceDatacenter=dc, destName=destination, destDatacenter=dc, force=True)
