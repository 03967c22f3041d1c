"""Backups of VMDK volumes (``stores.vmdk.DatastoreStore``): snapshot, then clone.

``VmdkEngine`` implements ``engine.BackupEngine`` (read its calling contract there).
Which way a disk is copied depends on who has it attached when the backup starts,
decided under the volume's lock (``lock(name)``):

- **attached to a powered-on VM** (this Docker host's VM, another one's): freeze the
  filesystem if this plugin mounted it here (``fsfreeze -f``; always thawed, in a
  ``finally``), take a VM snapshot without memory (quiesced when ``quiesce`` says so)
  named ``vsphere-volume-backup-<volume>-<backup-id>``, thaw, and
  release the lock. Then clone, with ``CopyVirtualDisk``, the disk file that the
  *snapshot's own* ``config.hardware.device`` names (on a real vCenter the frozen base
  disk; the VM now writes a delta) into the staging folder, and remove the snapshot
  (``consolidate``; ``ConsolidateVMDisks`` when the VM says ``consolidationNeeded``).
  The snapshot lives only while the clone runs. The freeze lasts at most
  ``snapshot_timeout`` seconds of snapshot task (plus one request's timeout).
  Method ``snapshot-clone``.
- **attached to no running VM** (none, or only powered-off or suspended ones, whose disks
  are closed): clone the volume's disk directly while still holding the lock, so that
  no attach on this host starts mid-copy. Method ``direct-clone``.
- **attached as an independent disk to a running VM** (VIC container VMs attach volumes
  so): vSphere cannot snapshot it; BackupError saying that it is retried once the disk
  is detached.
- **unchanged**: a disk that no VM runs with, whose files have the same size and
  modification time on the datastore as the ``previous`` backup recorded, and the same
  path, is not copied (method ``unchanged``). A disk open by a running VM is always
  copied: its modification time on the datastore does not follow the guest's writes.

The copy in the backup folder is ``<volume>.vmdk`` (``CopyOutcome.data``).

Restores (called with the volume lock held; a restore into a new volume is the store's
``create``, then this):

- ``restore_replace`` copies the backup into the store's staging folder, gives it the
  volume's current disk UUID, and moves it over ``volumes/<name>/<name>.vmdk`` with one
  ``MoveVirtualDisk`` (force): vCenter runs that task to its end even if the plugin dies,
  so a crash leaves the old disk or the new one, never none; a failure deletes the
  staging folder, and one left by a crash is deleted by the store's ``open`` at the next
  start. **Label**: VIC finds a volume's filesystem by its label, the first 16 hex digits
  of md5(name). A backup restored into a volume of another name therefore gets its
  ext2/3/4 label rewritten (``e2label``) *in the staging folder, before it replaces the
  disk*, so that a VCH and this plugin both find it from the first attach: the staged
  disk is attached to this host's VM for the moment, labelled, and detached. A disk
  without a filesystem, or restored under its own name, is not attached at all.

Leftovers (``cleanup_leftovers``): snapshots named ``vsphere-volume-backup-...`` on this
host's VM that this host took (its VM's name is in the snapshot's description), unless
a backup of this engine is using them now; a snapshot of that name taken by another host
is left alone until it is ``stale_after`` old (that host may be copying
from it). Other snapshots are never touched. Also disks of this host's staging folders
still attached to its VM (a restore that died while relabelling), which the store's
``open`` could not delete while attached.

Every vSphere call goes through ``session``, as disks (``vsphere.disks``), snapshots
(``vsphere.snapshots``) and the store's VM and folders; ``runner(argv)`` runs fsfreeze, blkid and
e2label (``stores.devices.run``: MountError on failure); ``clock()`` gives aware times.

SOAP round trips (a task counts its call and the PropertyCollector reads awaiting it):
snapshot-clone 12 (listing 2, who has the disk 2, snapshot 2, its configuration 1, copy 2,
removal 2, consolidationNeeded 1); direct-clone 5; unchanged 3; restore_replace 10 (+6 to
relabel); cleanup_leftovers 1 (+2 to 3 per removal).
"""

import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import BackupError, InUse, MountError, VolumeError
from ..stores.devices import DiskInfo, run
from ..stores.hostdisks import vic_label
from ..stores.vmdklisting import metadata_capacity_mb
from ..storespec import DATASTORE
from ..vsphere.disks import VirtualDisks
from ..vsphere.snapshots import Snapshots
from .engine import BackupEngine, CopyOutcome
from .manifest import DIRECT_CLONE, SNAPSHOT_CLONE, UNCHANGED
from ..timefmt import rfc3339_exact, utc_now

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "vsphere-volume-backup-"
_OWNER = re.compile(r"^vsphere-volume-host: (.+)$", re.MULTILINE)
_EXT = ("ext2", "ext3", "ext4")
SNAPSHOT_TIMEOUT = 60.0                 # seconds a snapshot may take: the bound of the freeze
COPY_TIMEOUT = 24 * 3600.0              # seconds a disk copy may take
STALE_AFTER = timedelta(hours=24)       # when another host's backup snapshot counts as left behind


def snapshot_name(volume, backup_id):
    """The name of the snapshot taken for one backup: recognisable, and unique per backup."""
    return f"{SNAPSHOT_PREFIX}{volume}-{backup_id}"


def snapshot_description(volume, backup_id, host):
    """What a person sees in the vSphere client; its last line names the host that took it."""
    return (f"Taken by the vsphere-volume Docker plugin to back up volume {volume} (backup {backup_id}); "
            f"removed when the copy ends.\nvsphere-volume-host: {host}")


def snapshot_owner(description):
    """The host named by ``snapshot_description``, or "" when there is none."""
    found = _OWNER.search(description or "")
    return found.group(1).strip() if found else ""




class StoreAccess:
    """What the engine needs of a DatastoreStore, in one place: only its public parts.

    Paths in VIC's layout (``layout``), the staging folders (``staging``) and this host's
    side of a disk (``host_disks``) are the store's own, so that the store's ``open``
    deletes what a crashed restore left.
    """

    def __init__(self, store):
        self.datastore = store.datastore
        self.host_vm = store.host_vm
        self.inventory = store.inventory
        self.layout = store.layout
        self.staging = store.staging
        self.host_disks = store.host_disks
        self.folder = store.folder
        self.ds = store.layout.ds
        self.disk = store.layout.disk_path

    def new_staging(self):
        """A new staging folder of this host (relative path), made on the datastore."""
        return self.staging.new("the staging folder of a restore")

    def disk_files(self, name):
        """(size in bytes, modification time text) of the volume's disk files on the datastore.

        The descriptor ``<name>.vmdk`` and, where the datastore lists it, its extent
        ``<name>-flat.vmdk``: their sizes summed, their newest modification time.
        """
        entries = self.folder.tree(self.layout.volume_folder(name)).get("", {})
        files = [entries[f] for f in (f"{name}.vmdk", f"{name}-flat.vmdk") if f in entries]
        if f"{name}.vmdk" not in entries:
            raise BackupError(f"volume {name} cannot be backed up: its disk {self.disk(name)} does not exist")
        times = [f.modified for f in files if f.modified is not None]
        modified = rfc3339_exact(max(times)) if times else ""
        return sum(f.size for f in files), modified


@dataclass(frozen=True)
class _Attachment:
    """The running VM that has a volume's disk (a VMRef), and the disk there (a vmdisks.AttachedDisk)."""

    vm: object
    disk: object


@dataclass(frozen=True)
class _Snapshot:
    """A backup snapshot while its clone runs: times are the engine clock's."""

    ref: object             # its handle (vsphere.snapshots)
    name: str
    vm: object              # VMRef
    disk_key: int           # the volume's disk device key in the VM (and in the snapshot)
    taken: datetime         # the point in time the data is from (after the freeze)
    made: datetime          # the snapshot task ended: the snapshot exists from here
    frozen_seconds: float   # 0.0 when nothing was frozen


class VmdkEngine(BackupEngine):
    """BackupEngine for DatastoreStore volumes; see the module docstring.

    ``session``: the vsphere Session of the stores. ``runner``: runs fsfreeze, blkid and
    e2label. ``clock``: aware current time. ``quiesce``: ask VMware Tools in the guest to
    quiesce for the snapshot. ``snapshot_timeout``, ``copy_timeout``: seconds a snapshot,
    a disk copy may take. ``stale_after``: when a backup snapshot that another host took
    on this host's VM counts as left behind (that host may be copying from it before).
    """

    kinds = (DATASTORE,)

    def __init__(self, session, runner=run, clock=utc_now, quiesce=False, snapshot_timeout=SNAPSHOT_TIMEOUT,
                 copy_timeout=COPY_TIMEOUT, stale_after=STALE_AFTER):
        self.disks = VirtualDisks(session)
        self.snapshots = Snapshots(session)
        self.runner = runner
        self.clock = clock
        self.quiesce = quiesce
        self.snapshot_timeout = snapshot_timeout
        self.copy_timeout = copy_timeout
        self.stale_after = stale_after
        self._busy = set()                 # snapshot names and staged disks in use here now
        self._busy_lock = threading.Lock()

    # --- backup ---------------------------------------------------------------------

    def backup(self, volume, store, staging, previous, lock, progress=None):
        progress = progress or _quiet
        access = StoreAccess(store)
        name = volume.name
        source = access.disk(name)
        data = f"{name}.vmdk"
        with lock(name):
            size, modified = access.disk_files(name)
            attachment, stopped = self._attachment(access, name)
            if attachment is None:
                if (previous is not None and modified and previous.source == source
                        and previous.size == size and previous.source_modified == modified):
                    return CopyOutcome(UNCHANGED, "", self.clock(), source, size, modified)
                return self._clone_direct(source, f"{staging.location}/{data}", size, modified, stopped,
                                          progress)
            progress("taking a snapshot")
            snapshot = self._take_snapshot(access, name, staging.backup_id, attachment)
        return self._clone_snapshot(snapshot, source, f"{staging.location}/{data}", size, progress)

    def attached_elsewhere(self, volume, store):
        access = StoreAccess(store)
        users = access.inventory.disk_users()
        running = [vm for vm in users.users(access.disk(volume.name))
                   if users.running(vm) and not access.host_vm.same_as(vm)]
        return running[0].name if running else ""

    def _attachment(self, access, name):
        """(_Attachment of the running VM with the disk or None, names of stopped VMs with it)."""
        users = access.inventory.disk_users()
        vms = users.users(access.disk(name))
        if not vms:
            return None, []
        running = [vm for vm, on in zip(vms, access.inventory.powered_on(vms), strict=True) if on]
        stopped = [vm.name for vm in vms if vm not in running]
        if len(running) > 1:
            raise BackupError(f"volume {name} cannot be backed up: its disk {access.disk(name)} is attached to "
                              f"several running VMs ({', '.join(vm.name for vm in running)})")
        if not running:
            return None, stopped
        disk = users.disk(running[0], access.disk(name))
        if disk.independent:
            raise BackupError(
                f"volume {name} cannot be backed up now: its disk is attached to the running VM "
                f"{running[0].name} as an independent disk ({disk.mode}), as VIC container VMs "
                "attach volumes, and vSphere cannot snapshot independent disks. The backup is retried and "
                "succeeds once the disk is detached (its container stopped and removed) or the VM is "
                "powered off")
        return _Attachment(running[0], disk), stopped

    def _copy(self, source, destination, progress=None):
        progress = progress or _quiet
        progress("copying the disk")
        self.disks.copy(source, destination, timeout=self.copy_timeout,
                        progress=lambda percent: progress("copying the disk", percent))

    def _clone_direct(self, source, destination, size, modified, stopped, progress):
        started = self.clock()
        self._copy(source, destination, progress)
        extra = {"copy_seconds": (self.clock() - started).total_seconds()}
        if stopped:
            extra["stopped_vms"] = stopped
        return CopyOutcome(DIRECT_CLONE, destination.rpartition("/")[2], started, source, size, modified,
                           extra=extra)

    # --- snapshot path ----------------------------------------------------------------

    @contextmanager
    def _frozen(self, mountpoint):
        """Freeze the filesystem at ``mountpoint`` (None: nothing to freeze) for the block."""
        if mountpoint is None:
            yield
            return
        self._hold(mountpoint)   # cleanup_leftovers thaws what is frozen and not held
        try:
            self.runner(["fsfreeze", "--freeze", mountpoint])
        except MountError as err:
            self._release(mountpoint)
            raise BackupError(f"cannot freeze the filesystem at {mountpoint} for a consistent snapshot: "
                              f"{err}") from None
        try:
            yield
        finally:
            self._release(mountpoint)
            try:
                self.runner(["fsfreeze", "--unfreeze", mountpoint])
            except MountError as err:
                log.error("the filesystem at %s could not be thawed: %s; containers writing to it hang "
                          "until `fsfreeze --unfreeze %s` succeeds", mountpoint, err, mountpoint)
                raise BackupError(f"the filesystem at {mountpoint} was frozen for a snapshot and could not be "
                                  f"thawed ({err}): run `fsfreeze --unfreeze {mountpoint}` on the Docker "
                                  "host") from None

    def _take_snapshot(self, access, name, backup_id, attachment):
        """Freeze (if mounted here), snapshot the VM, thaw; return the snapshot's facts."""
        vm = attachment.vm
        here = access.host_vm.same_as(vm) and access.host_disks.is_mounted(name)
        label = snapshot_name(name, backup_id)
        self._hold(label)
        try:
            with self._frozen(access.host_disks.mountpoint(name) if here else None):
                taken = self.clock()
                ref = self.snapshots.take(vm, label, snapshot_description(name, backup_id, access.host_vm.name),
                                          quiesce=self.quiesce, timeout=self.snapshot_timeout)
                made = self.clock()
            thawed = self.clock()
        except BaseException:
            self._release(label)
            raise
        return _Snapshot(ref, label, vm, attachment.disk.key, taken, made,
                         (thawed - taken).total_seconds() if here else 0.0)

    def _snapshot_disk(self, snapshot):
        """The disk file the snapshot's own configuration names for our device."""
        found = self.snapshots.disk_file(snapshot.ref, snapshot.disk_key)
        if found is not None:
            return found
        raise BackupError(f"snapshot {snapshot.name} of VM {snapshot.vm.name} does not hold the "
                          "volume's disk: it was detached while the snapshot was taken; try again")

    def _clone_snapshot(self, snapshot, source, destination, size, progress):
        try:
            frozen_disk = self._snapshot_disk(snapshot)
            copy_started = self.clock()
            self._copy(frozen_disk, destination, progress)
            copied = self.clock()
        except BaseException:
            self._remove_snapshot(snapshot, quiet=True)
            raise
        progress("removing the snapshot")
        self._remove_snapshot(snapshot)
        extra = {
            "snapshot": snapshot.name, "vm": snapshot.vm.name, "quiesced": self.quiesce,
            "frozen_seconds": snapshot.frozen_seconds,
            "copy_seconds": (copied - copy_started).total_seconds(),
            "snapshot_seconds": (self.clock() - snapshot.made).total_seconds(),
        }
        return CopyOutcome(SNAPSHOT_CLONE, destination.rpartition("/")[2], snapshot.taken, source, size,
                           extra=extra)

    @contextmanager
    def holding(self, label):
        """While inside, ``label`` (a staged disk's path, a mountpoint) is in use here:
        ``cleanup_leftovers`` leaves it alone (an off-site restore filling a staged disk)."""
        self._hold(label)
        try:
            yield
        finally:
            self._release(label)

    def in_use(self, label):
        """True while ``label`` is held here (``holding``, or by a backup of this engine)."""
        return self._is_busy(label)

    def _hold(self, label):
        with self._busy_lock:
            self._busy.add(label)

    def _release(self, label):
        with self._busy_lock:
            self._busy.discard(label)

    def _is_busy(self, label):
        with self._busy_lock:
            return label in self._busy

    def _remove_snapshot(self, snapshot, quiet=False):
        """Remove our snapshot and consolidate; ``quiet`` logs a failure instead of raising it."""
        try:
            self.snapshots.remove(snapshot.ref, snapshot.name, snapshot.vm)
        except VolumeError as err:
            if quiet:
                log.warning("%s; it is removed at the next start or after the next failed backup", err)
                return
            raise BackupError(f"the disk was copied, but {err}; the snapshot is removed at the next start "
                              "or after the next failed backup") from None
        finally:
            self._release(snapshot.name)

    # --- leftovers ------------------------------------------------------------------

    def cleanup_leftovers(self, store):
        """Remove this engine's leftovers from this host's VM (see the module docstring);
        return what was removed: snapshot names and staged disk paths."""
        access = StoreAccess(store)
        self._thaw_left_frozen(access)
        vm = access.host_vm
        snapshots, disks = vm.snapshots_and_disks()
        now = self.clock()
        removed = []
        for node in snapshots:
            if not node.name.startswith(SNAPSHOT_PREFIX):
                continue                    # not ours: never touched
            owner = snapshot_owner(node.description)
            foreign_and_fresh = owner != vm.name and now - node.created < self.stale_after
            if self._is_busy(node.name) or foreign_and_fresh:
                continue
            log.info("removing snapshot %s of VM %s, left behind by an interrupted backup (taken %s by %s)",
                     node.name, vm.name, node.created.isoformat(), owner or "an unknown host")
            self.snapshots.remove(node.handle, node.name, vm)
            removed.append(node.name)
        staged = access.ds(access.layout.staging_prefix())
        for disk in disks:
            if disk.is_under(staged) and not self._is_busy(disk.path):
                log.info("detaching %s from VM %s, left attached by an interrupted restore", disk.path, vm.name)
                with vm.lock:
                    vm.remove_disk(disk)
                removed.append(disk.path)
        return removed

    def _thaw_left_frozen(self, access):
        """Thaw the filesystems of this store mounted here that a killed plugin left frozen
        (containers writing to them hang). Thawing one that is not frozen fails harmlessly."""
        for name in access.host_disks.mounted_volumes():
            mountpoint = access.host_disks.mountpoint(name)
            if self._is_busy(mountpoint):
                continue
            try:
                self.runner(["fsfreeze", "--unfreeze", mountpoint])
            except MountError:
                continue            # not frozen: the usual case
            log.warning("volume %s: its filesystem at %s was left frozen by an interrupted backup; thawed",
                        name, mountpoint)

    # --- restore --------------------------------------------------------------------

    def restore_replace(self, manifest, location, store, name, progress=None):
        access = StoreAccess(store)
        disk = access.disk(name)
        users = access.inventory.disk_users().users(disk)
        if users:
            raise InUse(f"volume {name} cannot be restored in place: its disk {disk} is attached to VM "
                        f"{', '.join(vm.name for vm in users)}; stop the containers using it first")
        source = f"{location}/{manifest.data or manifest.volume + '.vmdk'}"
        current_uuid = self.disks.uuid(disk)
        staging = access.new_staging()
        restored = access.ds(f"{staging}/{name}.vmdk")
        try:
            self._copy(source, restored, progress)
            self.disks.set_uuid(restored, current_uuid)
            if name != manifest.volume:
                # VIC finds a volume's filesystem by its label: give it the label of its new name.
                info = DiskInfo(access.datastore, f"{staging}/{name}.vmdk", current_uuid,
                                metadata_capacity_mb(manifest.metadata))
                self._hold(info.ds_path)
                try:
                    self._relabel(access, info, name)
                finally:
                    self._release(info.ds_path)
            self.disks.move_over(restored, disk, what=f"replacing {disk} with the restored copy {restored}")
        finally:
            access.staging.discard(staging)
        log.info("volume %s: its data was replaced by backup %s", name, manifest.backup_id)

    def _relabel(self, access, info, target):
        """Give the filesystem of staged disk ``info`` VIC's label for ``target`` (see module doc)."""
        access.host_vm.require_enable_uuid()
        with access.host_disks.plugged(info):
            device = access.host_disks.device(info)
            fields = self._probe(device)
            wanted = vic_label(target)
            if fields.get("TYPE") in _EXT and fields.get("LABEL") != wanted:
                self.runner(["e2label", device, wanted])
                log.info("volume %s: filesystem label %r rewritten to %r", target, fields.get("LABEL", ""), wanted)

    def _probe(self, device):
        """{"TYPE": ..., "LABEL": ...} of the filesystem on ``device``; {} when it has none."""
        try:
            output = self.runner(["blkid", "-p", "-o", "export", device]).stdout
        except MountError as err:
            if "(exit 2)" in str(err):
                return {}
            raise
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def _quiet(phase, percent=None):
    """The progress reporter when nobody watches."""
