"""A datastore volume's disk on this Docker host: plugged into the host's VM and found as
a block device, VIC's filesystem made on it, mounted; and all of that undone.

**VIC's filesystem**, as VIC's create makes it (``lib/portlayer/storage/volume/
vsphere/store.go``): ext4 labelled with the first 16 hex digits of md5(NAME)
(``vic_label``), holding ``.vic.vol.data`` (0755), the folder containers see. A VCH's
container VM mounts it by its label. The folder returned for containers is the
filesystem's ``.vic.vol.data`` when it exists, else its root, as VIC's containers see it
(it is never added to an existing filesystem: that would hide the files a VCH shows
from the root).

**Plugging** (``plugged``): the disk is attached to this host's VM (``vsphere.hostvm.
HostVM``), its block device found by the device resolver (``stores.devices``); after
the block it is detached and the device released. A new, staged disk gets its
filesystem so for a moment at create (``make_filesystem``, mounted at
``mount_root/.making-<staging>``); ``undo_staged`` undoes what a create killed midway
left of that at the next start. A restore from an off-site copy fills such a new
filesystem before it replaces a volume's disk (``new_filesystem``).

**Read-only** (``read_only``): a backup's clone is attached in a mode vSphere drops
writes to (``vmdisks.READ_ONLY``) and mounted ``ro,noload`` (no journal replay: nothing is
written to it), for an off-site copy to read its files.
"""

import hashlib
import logging
import os
from contextlib import contextmanager

from ..errors import MountError, VolumeError
from ..vsphere.vmdisks import PERSISTENT, READ_ONLY
from .devices import DiskInfo, Formatter

log = logging.getLogger(__name__)

VIC_DATA_DIR = ".vic.vol.data"


def vic_label(name):
    """The filesystem label VIC gives volume ``name``: md5 hex, first 16 characters."""
    return hashlib.md5(name.encode("utf-8")).hexdigest()[:16]  # noqa: S324 - VIC's label, not security


def capacity_kb(capacity_mb):
    """The disk's KiB for a Capacity in MB, as VIC makes it (storage_handlers.go: MB x 1024)."""
    return capacity_mb * 1024


class HostDisks:
    """The disks of one datastore store on this host; see the module docstring.

    ``datastore``: the store's datastore; ``host_vm``: vsphere.hostvm.HostVM; ``resolver``: a stores.devices resolver;
    ``mounter``: plugin.mounter.Mounter (``mount(device, target, options, fstype)``,
    ``unmount(target)``, ``is_mounted(target)``); ``mount_root``: the folder below which
    volume filesystems are mounted (inside the plugin's propagated mount);
    ``formatter``: stores.devices.Formatter (blkid, mkfs.ext4).
    """

    def __init__(self, datastore, host_vm, resolver, mounter, mount_root, formatter=None):
        self.datastore = datastore
        self.host_vm = host_vm
        self.resolver = resolver
        self.mounter = mounter
        self.mount_root = mount_root
        self.formatter = formatter or Formatter()

    # --- where filesystems are mounted --------------------------------------------------

    def mountpoint(self, name):
        """Where volume ``name``'s filesystem is mounted on this host."""
        return os.path.join(self.mount_root, name)

    def is_mounted(self, name):
        return self.mounter.is_mounted(self.mountpoint(name))

    def mounted_volumes(self):
        """Names of the volumes whose filesystem is mounted on this host."""
        names = os.listdir(self.mount_root) if os.path.isdir(self.mount_root) else []
        return [name for name in names if self.is_mounted(name)]

    def making_mountpoint(self, staging):
        """Where a staged disk's new filesystem is mounted for a moment (volume names cannot
        start with a dot: never a volume's mountpoint)."""
        return os.path.join(self.mount_root, f".making-{staging.rsplit('/', 1)[-1]}")

    @staticmethod
    def exposed(target):
        """The folder containers see of the filesystem mounted at ``target``."""
        data = os.path.join(target, VIC_DATA_DIR)
        return data if os.path.isdir(data) else target

    # --- plugging -----------------------------------------------------------------------

    @contextmanager
    def plugged(self, info, mounted_at=None, mode=PERSISTENT):
        """Disk ``info`` (a DiskInfo) attached to this host's VM (in disk mode ``mode``) for
        the block; detached and its device released after. When the block fails, that
        failure is the one raised: the undoing (``mounted_at`` unmounted first, if given)
        is tried quietly, and what it could not undo is undone at the next start."""
        self.host_vm.attach_disk(info.ds_path, capacity_kb(info.capacity_mb), mode=mode)
        try:
            yield
        except BaseException:
            try:
                if mounted_at is not None:
                    self.mounter.unmount(mounted_at)
                self.unplug(info)
            except Exception as err:  # noqa: BLE001 - the original failure is what matters
                log.warning("could not detach the disk %s again (deleted at the next start): %s", info.ds_path, err)
            raise
        self.unplug(info)

    def device(self, info):
        """The block device of attached disk ``info``, once this host sees it (a bounded wait)."""
        return self.resolver.wait_for_device(info)

    def unplug(self, info):
        """Detach disk ``info`` from this host's VM (if attached) and release its device."""
        try:
            self.host_vm.detach_disk(info.ds_path)
        finally:
            self.resolver.release(info)

    # --- filesystems --------------------------------------------------------------------

    def make_filesystem(self, name, info, staging):
        """Give the new disk ``info`` (its UUID known) of volume ``name``, in staging folder
        ``staging``, VIC's filesystem, attaching it to this host's VM for the while.
        MountError when this host does not see the disk."""
        with self.new_filesystem(name, info, staging):
            pass

    @contextmanager
    def new_filesystem(self, name, info, staging):
        """``make_filesystem``, with the new filesystem mounted for the block: it gets the
        folder containers will see (``.vic.vol.data``, empty) to fill."""
        target = self.making_mountpoint(staging)
        with self.plugged(info, mounted_at=target):
            try:
                device = self.device(info)
            except VolumeError as err:
                raise MountError(f"cannot make the filesystem of new volume {name}: this host does not see "
                                 f"its disk {info.ds_path}: {err}") from None
            self._format_and_mount(device, name, target)
            yield os.path.join(target, VIC_DATA_DIR)
            self.mounter.unmount(target)

    @contextmanager
    def read_only(self, info, target):
        """Disk ``info`` (a backup's clone) attached read-only and its filesystem mounted
        ``ro,noload`` at ``target`` for the block; gives the folder containers saw."""
        with self.plugged(info, mounted_at=target, mode=READ_ONLY):
            self.mounter.mount(self.device(info), target, options=("ro", "noload"), fstype="ext4")
            yield self.exposed(target)
            self.mounter.unmount(target)

    def mount(self, name, info):
        """Mount the filesystem of volume ``name``'s attached disk ``info`` at its mountpoint
        (making VIC's on a disk without one: made by an earlier version of this plugin);
        return the folder containers see."""
        target = self.mountpoint(name)
        device = self.device(info)
        if self.formatter.has_filesystem(device):
            self.mounter.mount(device, target, options=("noatime",), fstype="ext4")
        else:
            self._format_and_mount(device, name, target)
        return self.exposed(target)

    def _format_and_mount(self, device, name, target):
        """VIC's volume filesystem on ``device``, mounted at ``target``: ext4 labelled
        ``vic_label(name)``, holding the folder containers see, ``.vic.vol.data`` (0755)."""
        self.formatter.make_ext4(device, vic_label(name))
        self.mounter.mount(device, target, options=("noatime",), fstype="ext4")
        data = os.path.join(target, VIC_DATA_DIR)
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)  # noqa: S103 - VIC's mode: a VCH's containers read it as any user

    def unmount(self, name):
        """Unmount volume ``name``'s filesystem (if mounted) and remove its mountpoint."""
        target = self.mountpoint(name)
        if self.mounter.is_mounted(target):
            self.mounter.unmount(target)
        try:
            os.rmdir(target)
        except OSError:
            pass

    # --- leftovers ----------------------------------------------------------------------

    def undo_staged(self, staging, attached, entries):
        """Unmount, detach and release what a killed create left of staging folder
        ``staging`` (a path on the datastore); ``attached``: the AttachedDisks of this
        host's VM; ``entries``: the names in the folder."""
        target = self.making_mountpoint(staging)
        if self.mounter.is_mounted(target):
            self.mounter.unmount(target)
        inside = f"[{self.datastore}] {staging}/"
        with self.host_vm.lock:
            for disk in attached:
                if disk.is_under(inside):
                    self.host_vm.remove_disk(disk)
        for entry in entries:
            if entry.endswith(".vmdk") and not entry.endswith("-flat.vmdk"):
                self.resolver.release(DiskInfo(self.datastore, f"{staging}/{entry}", "", 0))
