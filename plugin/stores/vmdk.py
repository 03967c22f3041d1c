"""Datastore volume stores: VMDK volumes in a VIC virtual container host's layout.

``DatastoreStore`` is the VolumeStore of a ``datastore/path:label`` spec. It keeps its
volumes where a VCH keeps them (``vmdkfolders.VolumeLayout``), so both see the same
volumes, and is made of parts with one job each:

- ``vmdkfolders.StagingArea``: the staging folders in which a volume folder is built
  before it appears under ``volumes/`` in one step, and publishing them;
- ``vmdklisting.VolumeListing``: discover, refresh and lookup: what the datastore holds;
- ``hostdisks.HostDisks``: a disk on this host: attached to its VM, found as a block
  device, VIC's filesystem made and mounted;
- ``vsphere.disks.VirtualDisks`` and ``vsphere.folders.DatastoreFolder``: the disk and
  file operations on vCenter.

A Capacity "MB" is a MiB on disk, as VIC makes it (``hostdisks.capacity_kb``).

Create makes the volume complete, as VIC's create does (``lib/portlayer/storage/volume/
vsphere/store.go``): the disk, then its filesystem (``hostdisks``), then the metadata.
So a VCH's container VM mounts a volume made here by its label without this plugin
ever mounting it. To make the filesystem the new disk is attached to this host's VM for
a moment (the VM needs disk.EnableUUID, checked first), found as a block device,
formatted, mounted at ``mount_root/.making-<staging>`` to make ``.vic.vol.data``,
unmounted and detached. Where this host cannot get the disk's device, the create fails
saying so and leaves nothing.

Create never leaves a half-made volume under ``volumes/``: the folder is built in a
staging folder (folder, disk, filesystem, metadata) and then moved to ``volumes/NAME``
in one step, which also detects a volume of that name made meanwhile (Conflict). A
failed create deletes its staging folder; one that could not (vCenter gone, the plugin
killed) is undone by ``open`` on this host's next start: its filesystem unmounted, its
disk detached from this host's VM and its device released, the folder deleted.

Attach (first Mount on this host): the disk is added to the Docker host's VM
(``vsphere.hostvm.HostVM``) on a free paravirtual SCSI unit, the guest block device is
found by the disk's UUID, and its filesystem mounted on ``mount_root/NAME``. A disk
without a filesystem (made by an earlier version of this plugin) gets VIC's at its
first attach. Detach: unmount, remove the disk from the VM (the file stays), ``release``
the device. Both are idempotent, and a mounted volume found after a plugin restart is
returned as it is. A disk another VM holds (another Docker host of a swarm) is taken from
a powered-off VM, waited for (up to ``wait``, at most ``release_wait`` seconds) while a
running one has it, and then refused (``stores.fencing``: "in use by VM X (powered
on)"); ``release`` detaches it by hand (``vsphere-volume detach``). Remove refuses a
disk attached to any VM and otherwise deletes the volume's folder.

The disk mode is ``persistent`` (VIC attaches volumes ``independent_persistent``):
backups snapshot this host's VM, and independent disks are left out of VM snapshots.
The consequence (README): a snapshot of this host's VM taken by anyone holds the
volumes attached at that time, their writes go to delta disks until it is removed.

Round trips (SOAP + HTTP): create 12 + 1 PUT, plus the VM's disk.EnableUUID once
(make the staging folder; create the disk; its UUID; the VM's devices and a
reconfiguration, twice: attach and detach; move into place; each task awaited);
attach 3 (+1, the disk's UUID, for a volume this process did not create; +1 per second
waited for another host; +2 per powered-off VM it is taken from); detach 3;
remove 3; discover 3 per store + 1 GET per volume's metadata (read concurrently);
status: none (memory only).

``DatastoreStores`` builds the stores of every datastore spec on one Session, Inventory,
HostVM and device resolver, from the VSPHERE_* settings.
"""

import logging
import threading
from dataclasses import dataclass, replace

from ..errors import InUse, VSphereError
from ..options import DEFAULT_CAPACITY_MB
from ..settingvalues import whole_number
from ..vsphere.disks import VirtualDisks
from ..vsphere.files import DatastoreFiles
from ..vsphere.folders import DatastoreFolder
from ..vsphere.hostvm import HostVM
from ..vsphere.inventory import Inventory
from ..vsphere.session import Session
from ..vsphere.settings import from_env
from .base import VolumeStore
from .devices import DiskInfo, resolver_from_env
from .fencing import DiskFence, in_use_message
from .hostdisks import HostDisks, capacity_kb
from .vmdkfolders import StagingArea, VolumeLayout
from .vmdklisting import VolumeListing, metadata_capacity_mb

log = logging.getLogger(__name__)

# Seconds a Mount waits for another Docker host to release a volume's disk
# (MOUNT_RELEASE_WAIT), and the most it may be set to. The Mount's own budget bounds the
# wait too (``mounting``: what the budget leaves beyond the attach; ``jobs.CallBudgets``).
RELEASE_WAIT, MAX_RELEASE_WAIT = 20, 60


@dataclass
class _Volume:
    """What this store remembers of a volume (``status`` reads only this)."""

    name: str
    capacity_mb: int
    uuid: str = ""
    attached_to: str = ""


class KnownVolumes:
    """The _Volume records of a store's volumes, safe to use from several threads."""

    def __init__(self):
        self._volumes = {}
        self._lock = threading.Lock()

    def get(self, name):
        with self._lock:
            return self._volumes.get(name)

    def put(self, volume):
        with self._lock:
            self._volumes[volume.name] = volume
        return volume

    def forget(self, name):
        with self._lock:
            self._volumes.pop(name, None)

    def replace_all(self, volumes):
        """Remember exactly ``volumes``, with the disk UUIDs known of the same names."""
        with self._lock:
            known = self._volumes
            self._volumes = {v.name: replace(v, uuid=known[v.name].uuid) if v.name in known else v
                             for v in volumes}


class DatastoreStore(VolumeStore):
    """VolumeStore for a ``datastore/path:label`` spec; see the module docstring.

    ``session``: vsphere.session.Session; ``host_vm``: vsphere.hostvm.HostVM (its
    ``inventory`` is shared); ``device_resolver``: a stores.devices resolver;
    ``mounter``: plugin.mounter.Mounter; ``mount_root``: the folder below which volume
    filesystems are mounted (inside the plugin's propagated mount); ``formatter``:
    stores.devices.Formatter (blkid, mkfs.ext4); ``metadata_workers``: how many metadata
    files a listing reads at once.

    Its parts (``layout``, ``staging``, ``host_disks``, with ``host_vm`` and
    ``inventory``) are public: the backup engine works in the same layout, staging
    folders and VM.
    """

    def __init__(self, spec, session, host_vm, device_resolver, mounter, mount_root,
                 formatter=None, metadata_workers=8, release_wait=RELEASE_WAIT):
        super().__init__(spec)
        self.session = session
        self.host_vm = host_vm
        self.inventory = host_vm.inventory
        self.mounter = mounter
        self.mount_root = mount_root
        self.files = DatastoreFiles(session)
        self.folder = DatastoreFolder(session, spec.datastore, inventory=self.inventory, files=self.files)
        self.disks = VirtualDisks(session)
        self.layout = VolumeLayout(spec, host_vm)
        self.staging = StagingArea(self.layout, self.folder)
        self.listing = VolumeListing(self.layout, self.folder, self.inventory, metadata_workers)
        self.host_disks = HostDisks(spec.datastore, host_vm, device_resolver, mounter, mount_root, formatter)
        self.fence = DiskFence(self.inventory, host_vm)
        self.release_wait = release_wait
        self.known = KnownVolumes()

    @property
    def datastore(self):
        return self.spec.datastore

    def disk_path(self, name):
        """The disk of volume ``name`` as a datastore path, ``[ds] path/volumes/NAME/NAME.vmdk``."""
        return self.layout.disk_path(name)

    def mountpoint(self, name):
        """Where this store mounts volume ``name``'s filesystem on this host."""
        return self.host_disks.mountpoint(name)

    def forget(self, name):
        """Drop what is remembered of volume ``name`` (its disk was made or deleted
        elsewhere, by a VCH for example)."""
        self.known.forget(name)

    def _volume(self, name):
        """The remembered record, or a new one from the volume's metadata (one GET)."""
        return self.known.get(name) or self.known.put(
            _Volume(name, metadata_capacity_mb(self.listing.read_metadata(name))))

    # --- VolumeStore -----------------------------------------------------------------

    def open(self):
        """Make ``<root>/volumes`` if missing; undo and delete this host's leftover staging
        folders (a create or restore that a crash interrupted: its disk may still be
        attached to this host's VM, its filesystem mounted, its device held)."""
        self.inventory.datastore(self.datastore)
        volumes = self.layout.volumes_dir
        self.folder.make(volumes, parents=True, what=f"making the volume store folder {self.layout.ds(volumes)}")
        leftovers = self.staging.leftovers()    # also finds the host's VM now rather than on first create
        attached = self.host_vm.disks() if leftovers else []
        for path in leftovers:
            log.info("store %s: deleting the leftover of an interrupted create, %s", self.label, self.layout.ds(path))
            self.host_disks.undo_staged(path, attached, self.folder.names(path))
            self.staging.discard(path)

    def discover(self, known=None):
        """Every entry of ``<root>/volumes``, with its metadata, creation time and problems.

        The metadata of names in ``known`` (with metadata) is reused, not read again.
        """
        listed = self.listing.discover(known)
        self.known.replace_all([_Volume(entry.volume.name, metadata_capacity_mb(entry.volume.metadata),
                                        attached_to=entry.attached_to) for entry in listed])
        return [entry.volume for entry in listed]

    def refresh(self, known):
        """One listing of ``<root>/volumes`` (names only); known volumes as known, new ones
        looked up (``lookup``): a steady store costs one search task, whatever its size."""
        found = []
        for name in self.listing.names():
            stored = known[name] if name in known else self.lookup(name)
            if stored is not None:
                found.append(stored)
        return found

    def lookup(self, name):
        """Volume ``name`` as the datastore holds it now, or None: one listing of its
        folder and one GET of its metadata."""
        stored = self.listing.lookup(name)
        if stored is not None:
            self.known.put(_Volume(name, metadata_capacity_mb(stored.metadata)))
        return stored

    def create(self, name, options, metadata):
        # The disk gets its filesystem here, as VIC's create does: this host must see it.
        try:
            self.host_vm.require_enable_uuid()
        except VSphereError:
            if self.lookup(name) is not None:     # made already (by another host): that volume
                raise self.staging.name_taken(name) from None
            raise
        staging = self.staging.new(f"the folder of volume {name}")
        disk = DiskInfo(self.datastore, f"{staging}/{name}.vmdk", "", options.capacity_mb)
        try:
            self.disks.create(disk.ds_path, capacity_kb(options.capacity_mb),
                              what=f"creating the disk of volume {name} ({disk.ds_path})")
            disk = replace(disk, uuid=self.disks.uuid(disk.ds_path))
            self.host_disks.make_filesystem(name, disk, staging)
            self.staging.write_metadata(staging, metadata)
            self.staging.publish(name, staging)
        except BaseException:
            self.staging.discard(staging)
            raise
        self.known.put(_Volume(name, options.capacity_mb, uuid=disk.uuid))

    def remove(self, name):
        found = self.fence.holders(self.disk_path(name))
        if found:
            raise InUse(in_use_message(name, self.disk_path(name), found))
        folder = self.layout.volume_folder(name)
        if not self.folder.delete(folder):
            log.info("%s was already gone", self.layout.ds(folder))
        self.forget(name)

    def attach(self, name, wait=0.0):
        volume = self._volume(name)
        if self.host_disks.is_mounted(name):          # attached and mounted already (a restart)
            volume.attached_to = self.host_vm.name
            return self.host_disks.exposed(self.mountpoint(name))
        disk = self.disk_path(name)
        self.host_vm.require_enable_uuid()

        def plug(users, here):
            if not here:
                slot = self.host_vm.attach_disk(disk, capacity_kb(volume.capacity_mb), users=users)
                log.info("volume %s: attached %s to VM %s at %s", name, disk, self.host_vm.name, slot)
            return not here
        attached_now = self.fence.claim(name, disk, min(wait, self.release_wait), plug)
        volume.attached_to = self.host_vm.name
        try:
            return self.host_disks.mount(name, self._disk_info(volume))
        except BaseException:
            if attached_now:
                self._detach_quietly(name)
            raise

    def _disk_info(self, volume):
        if not volume.uuid:
            volume.uuid = self.disks.uuid(self.disk_path(volume.name))
        return DiskInfo(self.datastore, self.layout.disk(volume.name), volume.uuid, volume.capacity_mb)

    def detach(self, name):
        volume = self.known.get(name) or _Volume(name, DEFAULT_CAPACITY_MB)
        self.host_disks.unmount(name)
        self.host_disks.unplug(DiskInfo(self.datastore, self.layout.disk(name), volume.uuid, volume.capacity_mb))
        volume.attached_to = ""

    def _detach_quietly(self, name):
        try:
            self.detach(name)
        except Exception as err:  # noqa: BLE001 - the original failure is what matters
            log.warning("volume %s: could not undo its attachment: %s", name, err)

    def status(self, name):
        volume = self.known.get(name)
        fields = {"Disk": self.disk_path(name)}
        if volume is not None:
            fields["AttachedTo"] = volume.attached_to
            fields["Capacity"] = f"{volume.capacity_mb}MB"
        return fields

    def holders(self, name):
        return [holder.describe() for holder in self.fence.holders(self.disk_path(name))]

    def release(self, name, force=False, only=None):
        detached, here = self.fence.release(name, self.disk_path(name), force, only)
        return detached, self.host_vm.name if here else ""


class DatastoreStores:
    """The datastore stores of one plugin and what they share: one Session (``session``,
    also the backup engine's and catalogs'), one HostVM with its Inventory, one device
    resolver, the mounter and the folder below which they mount (``mount_root``).

    ``store(spec)`` builds the DatastoreStore of a datastore spec. Nothing connects to
    vCenter here: the first store's ``open`` logs in.
    """

    def __init__(self, session, host_vm, resolver, mounter, mount_root, release_wait=RELEASE_WAIT):
        self.session = session
        self.host_vm = host_vm
        self.resolver = resolver
        self.mounter = mounter
        self.mount_root = mount_root
        self.release_wait = release_wait

    @property
    def inventory(self):
        return self.host_vm.inventory

    @classmethod
    def from_env(cls, env, mounter, mount_root, session=None, read_file=None):
        """The DatastoreStores of the VSPHERE_* settings in ``env`` (``vsphere.settings.
        from_env``; the device resolver from ``devices.resolver_from_env``; MOUNT_RELEASE_WAIT).
        Raises ConfigError for invalid settings."""
        settings = from_env(env, **({"read_file": read_file} if read_file else {}))
        release_wait = whole_number(env, "MOUNT_RELEASE_WAIT", RELEASE_WAIT, 0, MAX_RELEASE_WAIT)
        session = session or Session(settings)
        host_vm = HostVM(session, Inventory(session), name=settings.vm)
        return cls(session, host_vm, resolver_from_env(env), mounter, mount_root, release_wait)

    def store(self, spec):
        """The DatastoreStore of datastore spec ``spec`` (a storespec.StoreSpec)."""
        return DatastoreStore(spec, self.session, self.host_vm, self.resolver, self.mounter, self.mount_root,
                              release_wait=self.release_wait)
