"""Datastore volume stores: VMDK volumes in a VIC virtual container host's layout.

A store with root ``[ds] path`` (``storespec.StoreSpec.datastore_root``) keeps volume
``NAME`` as::

    [ds] path/volumes/NAME/NAME.vmdk                        thin VMDK of Capacity x 1024 KiB (default 1024 MB)
    [ds] path/volumes/NAME/imageMetadata/DockerMetaData     JSON, as VIC writes it

which is what a VCH creates and lists, so both see the same volumes. A Capacity "MB" is
a MiB on disk, as VIC makes it (``capacity_kb``). Metadata is read from
``imageMetadata`` or ``ImageMetadata`` (VIC's documentation spells it so) and written to
``imageMetadata``. Nothing else is ever placed under ``volumes/``: a VCH lists every
entry there as a volume.

Create makes the volume complete, as VIC's create does (``lib/portlayer/storage/volume/
vsphere/store.go``): the disk, then its filesystem (ext4 labelled like VIC's, the first
16 hex digits of md5(NAME), holding ``.vic.vol.data`` 0755, the folder containers see),
then the metadata. So a VCH's container VM mounts a volume made here by its label
without this plugin ever mounting it. To make the filesystem the new disk is attached to
this host's VM for a moment (the VM needs disk.EnableUUID, checked first), found as a
block device (``device_resolver``), formatted, mounted at ``mount_root/.making-<staging>``
to make ``.vic.vol.data``, unmounted and detached. Where this host cannot get the disk's
device, the create fails saying so and leaves nothing.

Create never leaves a half-made volume under ``volumes/``: the folder is built in
``[ds] path/vsphere-volume-staging/<host tag>-<random>/`` (folder, disk, filesystem,
metadata) and then moved to ``volumes/NAME`` in one MoveDatastoreFile, which also
detects a volume of that name made meanwhile (FileAlreadyExists -> Conflict). A failed
create deletes its staging folder; one that could not (vCenter gone, the plugin killed)
is undone by ``open`` on this host's next start: its filesystem unmounted, its disk
detached from this host's VM and its device released, the folder deleted.

Attach (first Mount on this host): the disk is added to the Docker host's VM
(``vsphere.hostvm.HostVM``) on a free paravirtual SCSI unit, the guest block device is
found by the disk's UUID, and its filesystem mounted on ``mount_root/NAME``. A disk
without a filesystem (made by an earlier version of this plugin) gets VIC's at its
first attach. The folder returned for containers is the filesystem's ``.vic.vol.data``
when it exists, else its root, as VIC's containers see it (it is never added to an
existing filesystem: that would hide the files a VCH shows from the root).

Detach: unmount, remove the disk from the VM (the file stays), ``release`` the device.
Both are idempotent, and a mounted volume found after a plugin restart is returned as
it is. Remove refuses a disk attached to any VM ("in use by VM X") and otherwise
deletes the volume's folder.

The disk mode is ``persistent`` (VIC attaches volumes ``independent_persistent``):
backups snapshot this host's VM, and independent disks are left out of VM snapshots.
The consequence (README): a snapshot of this host's VM taken by anyone holds the
volumes attached at that time, their writes go to delta disks until it is removed.

Round trips (SOAP + HTTP): create 12 + 1 PUT, plus the VM's disk.EnableUUID once
(make the staging folder; create the disk; its UUID; the VM's devices and a
reconfiguration, twice: attach and detach; move into place; each task awaited);
attach 3 (+1, the disk's UUID, for a volume this process did not create); detach 3;
remove 3; discover 3 per store + 1 GET per volume's metadata (read concurrently);
status: none (memory only).
"""

import hashlib
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass

from ..errors import Conflict, FileAlreadyExists, InUse, MountError, VolumeError, VSphereError
from ..options import DEFAULT_CAPACITY_MB, parse_capacity_mb
from ..vsphere.browse import modified_rfc3339
from ..vsphere.disks import VirtualDisks
from ..vsphere.files import DatastoreFiles
from ..vsphere.folders import DatastoreFolder
from ..vsphere.hostvm import HostVM
from ..vsphere.inventory import Inventory
from ..vsphere.session import Session
from ..vsphere.settings import from_env
from .base import METADATA_FILE, StoredVolume, VolumeStore, metadata_bytes
from .devices import DiskInfo, Formatter, resolver_from_env

LOG = logging.getLogger(__name__)

VOLUMES = "volumes"
STAGING = "vsphere-volume-staging"
METADATA_DIRS = ("imageMetadata", "ImageMetadata")   # read in this order; write the first
DATA_DIR = ".vic.vol.data"


def vic_label(name):
    """The filesystem label VIC gives volume ``name``: md5 hex, first 16 characters."""
    return hashlib.md5(name.encode("utf-8")).hexdigest()[:16]  # VIC's label, not security


def capacity_kb(capacity_mb):
    """The disk's KiB for a Capacity in MB, as VIC makes it (storage_handlers.go: MB x 1024)."""
    return capacity_mb * 1024


def parse_metadata(data, metadata_dir):
    """(DockerMetaData as a dict, problem text) from the bytes of the file."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except ValueError as err:
        return {}, f"its {metadata_dir}/{METADATA_FILE} is not valid JSON: {err}"
    if not isinstance(parsed, dict):
        return {}, f"its {metadata_dir}/{METADATA_FILE} is not a JSON object"
    return parsed, ""


def metadata_capacity_mb(metadata):
    """The Capacity in a volume's DockerMetaData DriverOpts (any key case), else the default."""
    options = (metadata or {}).get("DriverOpts") or {}
    for key, value in options.items():
        if str(key).lower() == "capacity":
            try:
                return parse_capacity_mb(value)
            except VolumeError:
                break
    return DEFAULT_CAPACITY_MB


@dataclass
class _Volume:
    """What this store remembers of a volume (``status`` reads only this)."""

    name: str
    capacity_mb: int
    uuid: str = ""
    attached_to: str = ""


class DatastoreStore(VolumeStore):
    """VolumeStore for a ``datastore/path:label`` spec; see the module docstring.

    ``session``: vsphere.session.Session; ``host_vm``: vsphere.hostvm.HostVM (its
    ``inventory`` is shared); ``device_resolver``: a stores.devices resolver;
    ``mounter``: plugin.mounts.Mounter (``mount(device, target, options, fstype)``,
    ``unmount(target)``, ``is_mounted(target)``); ``mount_root``: the folder below which
    volume filesystems are mounted (inside the plugin's propagated mount);
    ``formatter``: stores.devices.Formatter (blkid, mkfs.ext4).
    """

    def __init__(self, spec, session, host_vm, device_resolver, mounter, mount_root,
                 formatter=None, metadata_workers=8):
        super().__init__(spec)
        self.session = session
        self.host_vm = host_vm
        self.inventory = host_vm.inventory
        self.resolver = device_resolver
        self.mounter = mounter
        self.formatter = formatter or Formatter()
        self.mount_root = mount_root
        self.files = DatastoreFiles(session)
        self.folder = DatastoreFolder(session, spec.datastore, inventory=self.inventory, files=self.files)
        self.disks = VirtualDisks(session)
        self.metadata_workers = metadata_workers
        self._volumes = {}
        self._lock = threading.Lock()

    # --- paths (public: the backup engine works in the same layout) ------------------
    #
    # Paths relative to the datastore are ``path/...``; ``ds`` makes them ``[ds] path/...``.

    @property
    def datastore(self):
        return self.spec.datastore

    def ds(self, path):
        """``[datastore] path`` for a path relative to the datastore."""
        return f"[{self.datastore}] {path}"

    @property
    def _volumes_dir(self):
        return f"{self.spec.path}/{VOLUMES}"

    def volume_folder(self, name):
        """The folder of volume ``name`` (``path/volumes/NAME``), relative to the datastore."""
        return f"{self._volumes_dir}/{name}"

    def _disk(self, name):
        return f"{self.volume_folder(name)}/{name}.vmdk"

    def disk_path(self, name):
        """The disk of volume ``name`` as a datastore path, ``[ds] path/volumes/NAME/NAME.vmdk``."""
        return self.ds(self._disk(name))

    def mountpoint(self, name):
        """Where this store mounts volume ``name``'s filesystem on this host."""
        return os.path.join(self.mount_root, name)

    @property
    def _staging_dir(self):
        return f"{self.spec.path}/{STAGING}"

    def staging_prefix(self):
        """What the paths of this host's staging folders start with (relative to the datastore)."""
        return f"{self._staging_dir}/{self._host_tag}-"

    @property
    def _host_tag(self):
        return hashlib.sha1(self.host_vm.name.encode("utf-8")).hexdigest()[:12]  # a name, not security

    # --- cache -----------------------------------------------------------------------

    def _remember(self, volume):
        with self._lock:
            self._volumes[volume.name] = volume
        return volume

    def forget(self, name):
        """Drop what is cached of volume ``name`` (its disk was made or deleted elsewhere,
        by a VCH for example)."""
        with self._lock:
            self._volumes.pop(name, None)

    def _volume(self, name):
        """The cached record, or a new one from the volume's metadata (one GET)."""
        with self._lock:
            known = self._volumes.get(name)
        if known:
            return known
        return self._remember(_Volume(name, metadata_capacity_mb(self._read_metadata(name))))

    # --- VolumeStore -----------------------------------------------------------------

    def open(self):
        """Make ``<root>/volumes`` if missing; undo and delete this host's leftover staging
        folders (a create or restore that a crash interrupted: its disk may still be
        attached to this host's VM, its filesystem mounted, its device held)."""
        self.inventory.datastore(self.datastore)
        self.folder.make(self._volumes_dir, parents=True,
                         what=f"making the volume store folder {self.ds(self._volumes_dir)}")
        prefix = self.staging_prefix()  # also finds the host's VM now rather than on first create
        leftovers = [f"{self._staging_dir}/{entry}" for entry in self.folder.names(self._staging_dir)]
        leftovers = [path for path in leftovers if path.startswith(prefix)]
        if leftovers:
            attached = self.host_vm.disks()
        for path in leftovers:
            LOG.info("store %s: deleting the leftover of an interrupted create, %s", self.label, self.ds(path))
            self._undo_staged(path, attached)
            self.discard(path)

    def _undo_staged(self, path, attached):
        """Unmount, detach and release what a killed create left of staging folder ``path``;
        ``attached``: the AttachedDisks of this host's VM."""
        target = self._making_mountpoint(path)
        if self.mounter.is_mounted(target):
            self.mounter.unmount(target)
        inside = f"{self.ds(path)}/"
        with self.host_vm.lock:
            for disk in attached:
                if disk.is_under(inside):
                    self.host_vm.remove_disk(disk)
        for entry in self.folder.names(path):
            if entry.endswith(".vmdk") and not entry.endswith("-flat.vmdk"):
                self.resolver.release(DiskInfo(self.datastore, f"{path}/{entry}", "", 0))

    def discover(self, known=None):
        """Every entry of ``<root>/volumes``, with its metadata, creation time and problems.

        The metadata of names in ``known`` (with metadata) is reused, not read again.
        """
        known = known or {}
        tree = self.folder.tree(self._volumes_dir)
        users = self.inventory.disk_users()
        names = sorted(tree.get("", {}))
        spelling = {name: next((d for d in METADATA_DIRS if METADATA_FILE in tree.get(f"{name}/{d}", {})), None)
                    for name in names}
        reused = {n: known[n].metadata for n in names if spelling[n] and n in known and known[n].metadata}
        documents = self.folder.read_many(
            [self._metadata_path(n, d) for n, d in spelling.items() if d and n not in reused],
            workers=self.metadata_workers)
        with self._lock:
            cached, self._volumes = self._volumes, {}
        found = []
        for name in names:
            meta, problem = reused.get(name, {}), "" if name in reused else "no imageMetadata/DockerMetaData file"
            if spelling[name] and name not in reused:
                meta, problem = self._parsed(documents[self._metadata_path(name, spelling[name])], spelling[name])
            if f"{name}.vmdk" not in tree.get(name, {}):
                problem = f"no disk {name}.vmdk in its folder"
            attached = ", ".join(vm.name for vm in users.users(self.disk_path(name)))
            uuid = cached[name].uuid if name in cached else ""
            self._remember(_Volume(name, metadata_capacity_mb(meta), uuid=uuid, attached_to=attached))
            found.append(StoredVolume(name=name, metadata=meta, problem=problem,
                                      created_at=modified_rfc3339(tree[""][name])))
        return found

    def refresh(self, known):
        """One listing of ``<root>/volumes`` (names only); known volumes as known, new ones
        looked up (``lookup``): a steady store costs one search task, whatever its size."""
        names = self.folder.names(self._volumes_dir)
        found = []
        for name in sorted(names):
            stored = known[name] if name in known else self.lookup(name)
            if stored is not None:
                found.append(stored)
        return found

    @staticmethod
    def _parsed(document, metadata_dir):
        """(metadata, problem) of a read that gave bytes or a VolumeError."""
        if isinstance(document, VolumeError):
            return {}, f"its metadata could not be read: {document}"
        return parse_metadata(document, metadata_dir)

    def lookup(self, name):
        """Volume ``name`` as the datastore holds it now, or None: one listing of its
        folder and one GET of its metadata."""
        tree = self.folder.tree(self.volume_folder(name))
        if not tree:
            return None
        disk = tree.get("", {}).get(f"{name}.vmdk")
        spelling = next((d for d in METADATA_DIRS if METADATA_FILE in tree.get(d, {})), None)
        meta, problem = {}, "no imageMetadata/DockerMetaData file"
        if spelling:
            path = self._metadata_path(name, spelling)
            meta, problem = self._parsed(self.folder.read_many([path])[path], spelling)
        if disk is None:
            problem = f"no disk {name}.vmdk in its folder"
        self._remember(_Volume(name, metadata_capacity_mb(meta)))
        return StoredVolume(name=name, metadata=meta, problem=problem,
                            created_at=modified_rfc3339(disk) if disk is not None else "")

    def create(self, name, options, metadata):
        # The disk gets its filesystem here, as VIC's create does: this host must see it.
        try:
            self.host_vm.require_enable_uuid()
        except VSphereError:
            if self.lookup(name) is not None:     # made already (by another host): that volume
                raise Conflict(f"volume {name} already exists in volume store {self.label} "
                               f"({self.ds(self.volume_folder(name))})") from None
            raise
        staging = self.new_staging(f"the folder of volume {name}")
        disk = f"{staging}/{name}.vmdk"
        try:
            self.disks.create(self.ds(disk), capacity_kb(options.capacity_mb),
                              what=f"creating the disk of volume {name} ({self.ds(disk)})")
            uuid = self._make_filesystem(name, DiskInfo(self.datastore, disk, "", options.capacity_mb), staging)
            self.write_metadata(staging, metadata)
            self.publish(name, staging)
        except BaseException:
            self.discard(staging)
            raise
        self._remember(_Volume(name, options.capacity_mb, uuid=uuid))

    def _make_filesystem(self, name, info, staging):
        """Give the new, staged disk ``info`` VIC's filesystem (see the module docstring),
        attaching it to this host's VM for the while; return its UUID."""
        uuid = self.disks.uuid(info.ds_path)
        info = DiskInfo(info.datastore, info.path, uuid, info.capacity_mb)
        self.host_vm.attach_disk(info.ds_path, capacity_kb(info.capacity_mb))
        try:
            try:
                device = self.resolver.wait_for_device(info)
            except VolumeError as err:
                raise MountError(f"cannot make the filesystem of new volume {name}: this host does not see "
                                 f"its disk {info.ds_path}: {err}") from None
            target = self._making_mountpoint(staging)
            self._format_and_mount(device, name, target)
            self.mounter.unmount(target)
        except BaseException:
            self._unplug_quietly(info)
            raise
        self._unplug(info)
        return uuid

    def _making_mountpoint(self, staging):
        """Where a staged disk's new filesystem is mounted for a moment (volume names cannot
        start with a dot: never a volume's mountpoint)."""
        return os.path.join(self.mount_root, f".making-{staging.rsplit('/', 1)[-1]}")

    def _unplug(self, info):
        """Detach disk ``info`` from this host's VM (if attached) and release its device."""
        try:
            self.host_vm.detach_disk(info.ds_path)
        finally:
            self.resolver.release(info)

    def _unplug_quietly(self, info):
        try:
            self.mounter.unmount(self._making_mountpoint(info.path.rsplit("/", 1)[0]))
            self._unplug(info)
        except Exception as err:  # noqa: BLE001 - the original failure is what matters
            LOG.warning("could not detach the new disk %s again (deleted at the next start): %s", info.ds_path, err)

    # --- staging: how a volume folder is built and then appears in one step ------------

    def new_staging(self, purpose="a staging folder"):
        """Make a new staging folder of this host; return its path (relative to the datastore).

        ``open`` deletes the ones a crash left (``staging_prefix``); ``publish`` moves a
        complete one into ``volumes/``, ``discard`` deletes one.
        """
        staging = f"{self.staging_prefix()}{secrets.token_hex(6)}"
        self.folder.make(staging, parents=True, what=f"making {purpose} ({self.ds(staging)})")
        return staging

    def write_metadata(self, folder, metadata):
        """Write DockerMetaData (a dict) into volume folder ``folder`` (relative path; one PUT)."""
        self.folder.write(f"{folder}/{METADATA_DIRS[0]}/{METADATA_FILE}", metadata_bytes(metadata))

    def publish(self, name, staging):
        """Move complete staging folder ``staging`` to ``volumes/<name>`` in one step;
        Conflict when a volume of that name exists."""
        target = self.ds(self.volume_folder(name))
        try:
            self.folder.move(staging, self.volume_folder(name), what=f"moving volume {name} into place ({target})")
        except FileAlreadyExists:
            raise Conflict(f"volume {name} already exists in volume store {self.label} "
                           f"({target})") from None

    def discard(self, staging):
        """Delete staging folder ``staging`` and what it holds; a failure is logged only."""
        self._delete_folder(staging, quiet=True)

    def remove(self, name):
        users = self.inventory.disk_users().users(self.disk_path(name))
        if users:
            raise InUse(self._in_use_message(name, users))
        self._delete_folder(self.volume_folder(name))
        self.forget(name)

    def attach(self, name):
        volume = self._volume(name)
        target = self.mountpoint(name)
        if self.mounter.is_mounted(target):          # attached and mounted already (a restart)
            volume.attached_to = self.host_vm.name
            return self._exposed(target)
        disk = self.disk_path(name)
        self.host_vm.require_enable_uuid()
        with self.host_vm.lock:
            snapshot = self.inventory.disk_users()
            users = snapshot.users(disk)
            others = [vm for vm in users if not self.host_vm.same_as(vm)]
            if others:
                raise InUse(self._in_use_message(name, others))
            attached_now = not users
            if attached_now:
                slot = self.host_vm.attach_disk(disk, capacity_kb(volume.capacity_mb), users=snapshot)
                LOG.info("volume %s: attached %s to VM %s at %s", name, disk, self.host_vm.name, slot)
        volume.attached_to = self.host_vm.name
        try:
            self._mount(volume, target)
        except BaseException:
            if attached_now:
                self._detach_quietly(name)
            raise
        return self._exposed(target)

    def _mount(self, volume, target):
        device = self.resolver.wait_for_device(self._disk_info(volume))
        if self.formatter.has_filesystem(device):
            self.mounter.mount(device, target, options=("noatime",), fstype="ext4")
        else:   # a disk made without one (by an earlier version of this plugin)
            self._format_and_mount(device, volume.name, target)

    def _format_and_mount(self, device, name, target):
        """VIC's volume filesystem on ``device``, mounted at ``target``: ext4 labelled
        ``vic_label(name)``, holding the folder containers see, ``.vic.vol.data`` (0755)."""
        self.formatter.make_ext4(device, vic_label(name))
        self.mounter.mount(device, target, options=("noatime",), fstype="ext4")
        data = os.path.join(target, DATA_DIR)
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)

    def _disk_info(self, volume):
        if not volume.uuid:
            volume.uuid = self.disks.uuid(self.disk_path(volume.name))
        return DiskInfo(self.datastore, self._disk(volume.name), volume.uuid, volume.capacity_mb)

    def _exposed(self, target):
        data = os.path.join(target, DATA_DIR)
        return data if os.path.isdir(data) else target

    def detach(self, name):
        with self._lock:
            volume = self._volumes.get(name) or _Volume(name, DEFAULT_CAPACITY_MB)
        target = self.mountpoint(name)
        if self.mounter.is_mounted(target):
            self.mounter.unmount(target)
        self.host_vm.detach_disk(self.disk_path(name))
        self.resolver.release(DiskInfo(self.datastore, self._disk(name), volume.uuid, volume.capacity_mb))
        volume.attached_to = ""
        try:
            os.rmdir(target)
        except OSError:
            pass

    def _detach_quietly(self, name):
        try:
            self.detach(name)
        except Exception as err:  # noqa: BLE001 - the original failure is what matters
            LOG.warning("volume %s: could not undo its attachment: %s", name, err)

    def status(self, name):
        with self._lock:
            volume = self._volumes.get(name)
        fields = {"Disk": self.disk_path(name)}
        if volume is not None:
            fields["AttachedTo"] = volume.attached_to
            fields["Capacity"] = f"{volume.capacity_mb}MB"
        return fields

    # --- helpers ---------------------------------------------------------------------

    def _in_use_message(self, name, users):
        names = ", ".join(vm.name for vm in users)
        here = " (this Docker host)" if any(self.host_vm.same_as(vm) for vm in users) else ""
        return (f"volume {name} is in use by VM {names}{here}: its disk "
                f"{self.disk_path(name)} is attached there")

    def _delete_folder(self, path, quiet=False):
        if not self.folder.delete(path, quiet=quiet) and not quiet:
            LOG.info("%s was already gone", self.ds(path))

    def _metadata_path(self, name, metadata_dir):
        return f"{self.volume_folder(name)}/{metadata_dir}/{METADATA_FILE}"

    def _read_metadata(self, name):
        """The volume's parsed DockerMetaData from either spelling, or None (one or two GETs)."""
        for metadata_dir in METADATA_DIRS:
            data = self.folder.read(self._metadata_path(name, metadata_dir))
            if data is not None:
                return parse_metadata(data, metadata_dir)[0]
        return None


def datastore_store_factory(env, mounter, mount_root, session=None, read_file=None):
    """``factory(spec) -> DatastoreStore`` for every datastore spec, all sharing one
    Session, Inventory and HostVM built from the VSPHERE_* settings in ``env``
    (``vsphere.settings.from_env``; the device resolver from ``devices.resolver_from_env``).

    Nothing connects to vCenter here: the first store's ``open`` logs in. Raises
    ConfigError for invalid settings.
    """
    settings = from_env(env, **({"read_file": read_file} if read_file else {}))
    session = session or Session(settings)
    host_vm = HostVM(session, Inventory(session), name=settings.vm)
    resolver = resolver_from_env(env)

    def factory(spec):
        return DatastoreStore(spec, session, host_vm, resolver, mounter, mount_root)

    factory.session = session
    return factory
