"""The contract of a backup engine: how one kind of volume is copied into a backup and back.

The backup service (``plugin.backup.service``) owns the catalog (``repository``), the
leases, retention and the schedule; an engine only moves bytes for one kind of store:

- ``DirectoryEngine`` (``direngine``): folder volumes (file and NFS stores).
- ``VmdkEngine`` (``vmdkengine``): VMDK volumes on datastores (snapshot, then clone).

Calling contract: the service calls ``backup`` with the volume's backup lease held (no
other host backs it up) and never twice at once for one volume on this host. ``backup``
may take the driver's per-volume lock itself (``lock(name)``) when it must keep attach,
detach and remove out while it reads (a disk attached to no VM is cloned under it).
``restore_replace`` is called with the volume lock held. A restore into a new volume is
the store's ``create``, then ``restore_replace``.
"""

import abc
from dataclasses import dataclass, field


@dataclass
class CopyOutcome:
    """What ``backup`` did; the service turns it into the manifest.

    method: manifest.SNAPSHOT_CLONE / DIRECT_CLONE / DIRECTORY / UNCHANGED.
    data: where the data is inside the backup folder ("" for UNCHANGED).
    created: the aware datetime the data is from (snapshot taken, copy started).
    """

    method: str
    data: str
    created: object
    source: str
    size: int
    source_modified: str = ""
    extra: dict = field(default_factory=dict)


class BackupEngine(abc.ABC):
    # kinds is the tuple of storespec kinds (FILE, NFS, DATASTORE) this engine serves.
    kinds = ()

    # backup copies the current data of ``volume`` (driver.Volume) living in ``store``
    # (its VolumeStore) into ``staging`` (repository.Staging of the backup store's
    # repository). ``previous`` is the newest committed Manifest of the volume or None:
    # when the data provably did not change since it, return method UNCHANGED and copy
    # nothing. On failure raise BackupError (or a VolumeError subclass) and leave cleanup
    # of the staging folder to the service; never leave a snapshot of yours behind.
    # ``progress(phase, percent=None)``, when given, is told what is happening ("copying
    # the disk", 42) for `vsphere-volume` and `docker volume inspect` to show.
    @abc.abstractmethod
    def backup(self, volume, store, staging, previous, lock, progress=None):
        """Copy the volume into staging; return a CopyOutcome."""

    # restore_replace replaces the data of existing, unmounted volume ``name`` in ``store``
    # with that of the backup at ``location`` (repository.location of the backup holding
    # the data) whose manifest is ``manifest``. The service has taken a safety backup of
    # the current data first. A crash part-way leaves either the old data or the new.
    @abc.abstractmethod
    def restore_replace(self, manifest, location, store, name, progress=None):
        """Replace a volume's data with a backup's."""

    # attached_elsewhere names the running VM other than this Docker host's that has
    # ``volume`` (in ``store``) attached, or returns "": that VM's host makes its
    # scheduled backups (``turns``). Volumes many hosts use at once have none.
    def attached_elsewhere(self, volume, store):
        """The running VM of another host that has the volume, or ""."""
        return ""

    # cleanup_leftovers is called at start and after a failed backup: it removes what
    # this engine leaves behind when interrupted (its own snapshots, temporary copies),
    # and never anything it did not make.
    def cleanup_leftovers(self, store):  # noqa: B027 - an engine that leaves nothing keeps this
        """Remove this engine's own leftovers in ``store``."""
