"""VMDK volumes as folders, for off-site copies (see ``views``).

**DiskSource**: the point in time is the local tier's snapshot-then-clone (or a direct
clone of a detached disk): committed as a local backup when the volume has a ``Backup``
policy, else made in a staging backup folder (under the volume's backup lease) that is
deleted after the copy. The clone gets a UUID of its own (a copy keeps its source's,
and the volume may be attached here too: this host must not take one for the other),
is attached to this host's VM in a mode that drops writes (``vmdisks.READ_ONLY``; on
vSAN, whose disks cannot be downloaded, attaching is the portable way to read one) and
mounted ``ro,noload`` at ``<disks>/.copy-<volume>``; unmounted and detached after.

**DiskSink**: a new disk of the volume's Capacity in a staging folder of the store, with
VIC's filesystem (labelled for the volume's name), mounted here while the restore fills
its ``.vic.vol.data``; then given the volume's disk UUID and moved over the volume's disk
with one ``MoveVirtualDisk`` (the old disk or the new, never none). Refused while the
volume's disk is attached to any VM. A crash leaves a staging folder that the store's
``open`` deletes at the next start.

``cleanup_clones``: at a store's first answer, unmount the ``.copy-*`` mounts and detach
the clones (disks under ``<store>/backups/``) a killed copy left on this host's VM.
"""

import logging
import os
import re
import uuid
from contextlib import contextmanager

from ..backup.contract import Sink, Source, Tree
from ..backup.lease import BACKING_UP
from ..backup.repository import BACKUPS_DIR
from ..backup.vmdkengine import StoreAccess
from ..errors import BackupError, InUse, VolumeError
from ..policy.schedule import OFF
from ..stores.devices import DiskInfo
from ..stores.hostdisks import capacity_kb

log = logging.getLogger(__name__)

COPY_MOUNT_PREFIX = ".copy-"
_DS_PATH = re.compile(r"^\[([^\]]+)\] (.+)$")


def split_ds_path(ds_path):
    """``("ds", "a/b.vmdk")`` of ``[ds] a/b.vmdk``."""
    found = _DS_PATH.match(ds_path)
    if not found:
        raise BackupError(f"{ds_path!r} is not a datastore path such as [ds] folder/disk.vmdk")
    return found.group(1), found.group(2)


class DiskSource(Source):
    """A VMDK volume's clone as a read-only folder; see the module docstring."""

    def __init__(self, volume, store, service, local, origin):
        self.volume, self.store = volume, store
        self._service, self._local, self._origin = service, local, origin
        self._engine = service.engines.get(store.spec.kind)
        if self._engine is None:
            raise BackupError(f"volume {volume.name} cannot be copied now: no vCenter session for its store")

    @contextmanager
    def tree(self):
        with self._clone() as (clone, taken):
            access = StoreAccess(self.store)
            fresh = uuid.uuid4().hex
            self._engine.disks.set_uuid(clone, fresh)
            datastore, path = split_ds_path(clone)
            info = DiskInfo(datastore, path, fresh, self.volume.options.capacity_mb)
            target = os.path.join(access.host_disks.mount_root, COPY_MOUNT_PREFIX + self.volume.name)
            if access.host_disks.mounter.is_mounted(target):
                access.host_disks.mounter.unmount(target)     # a killed copy's: never read an old clone
            with self._engine.holding(info.ds_path), access.host_disks.read_only(info, target) as folder:
                yield Tree(folder, taken)

    @contextmanager
    def _clone(self):
        """``(the clone's datastore path, its point in time)`` for the block."""
        if self.volume.options.backup.kind != OFF:
            with self._local.backup(self.volume, self._origin) as (_, location, data):
                yield f"{location}/{data.data}", data.created
            return
        name = self.volume.name
        target = self._service.targets.get(self.volume.options.backup_store)
        repository = target.repository
        with target.hold(name, f"{BACKING_UP} for an off-site copy"):
            staging = repository.begin(name, self._service.clock())
            try:
                outcome = self._engine.backup(self.volume, self.store, staging, None,
                                              self._service.volumes.lock)
                yield f"{staging.location}/{outcome.data}", outcome.created
            except BaseException:
                self._cleanup_after_failure()
                raise
            finally:
                repository.abort(staging)

    def _cleanup_after_failure(self):
        try:
            self._engine.cleanup_leftovers(self.store)
        except VolumeError as err:
            log.error("volume %s: cleanup after the failed copy failed: %s", self.volume.name, err)


class DiskSink(Sink):
    """A new disk for a VMDK volume, filled as a folder; see the module docstring."""

    def __init__(self, volume, store, engine):
        self.volume, self.store, self._engine = volume, store, engine

    @contextmanager
    def tree(self):
        access, name = StoreAccess(self.store), self.volume.name
        disk = access.disk(name)
        users = access.inventory.disk_users().users(disk)
        if users:
            raise InUse(f"volume {name} cannot be restored now: its disk {disk} is attached to VM "
                        f"{', '.join(vm.name for vm in users)}; stop the containers using it first")
        current_uuid = self._engine.disks.uuid(disk)
        staging = access.new_staging()
        restored = access.ds(f"{staging}/{name}.vmdk")
        try:
            self._engine.disks.create(restored, capacity_kb(self.volume.options.capacity_mb),
                                      what=f"creating the disk volume {name} is restored into ({restored})")
            info = DiskInfo(access.datastore, f"{staging}/{name}.vmdk", self._engine.disks.uuid(restored),
                            self.volume.options.capacity_mb)
            with self._engine.holding(info.ds_path), access.host_disks.new_filesystem(name, info, staging) as folder:
                yield folder
            self._engine.disks.set_uuid(restored, current_uuid)
            self._engine.disks.move_over(restored, disk, what=f"replacing {disk} with the restored disk {restored}")
        finally:
            access.staging.discard(staging)


def cleanup_clones(store, engine):
    """Undo what a killed copy left on this host for ``store``; the paths undone."""
    access = StoreAccess(store)
    done = []
    root = access.host_disks.mount_root
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        target = os.path.join(root, entry)
        if entry.startswith(COPY_MOUNT_PREFIX) and access.host_disks.mounter.is_mounted(target):
            log.info("unmounting %s, left by an interrupted off-site copy", target)
            access.host_disks.mounter.unmount(target)
            done.append(target)
    clones = access.ds(f"{access.layout.spec.path}/{BACKUPS_DIR}/")
    for disk in access.host_vm.disks():
        if disk.is_under(clones) and not engine.in_use(disk.path):
            log.info("detaching %s from VM %s, left attached by an interrupted off-site copy", disk.path,
                     access.host_vm.name)
            with access.host_vm.lock:
                access.host_vm.remove_disk(disk)
            done.append(disk.path)
    return done
