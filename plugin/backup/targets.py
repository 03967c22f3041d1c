"""Where backups are kept: the backup targets, and which of them hold a volume's backups.

A ``BackupTarget`` is one place backups go, by label: today a backup store's catalog
(``repository.BackupRepository``) and its leases (``lease.Leases``), the tier of a
store's own family (datastore clones, folder copies). ``BackupTargets`` holds them all
and answers the routing questions every operation asks: which targets hold backups of
a volume (its own backup store first, a removed volume's in every target), where one
backup is, and which backup ``latest`` or an id means for a restore.
"""

from dataclasses import dataclass
from typing import NamedTuple

from ..errors import BackupError, NotFound
from ..policy import ids
from .lease import BACKING_UP
from .repository import DamagedBackup


@dataclass(frozen=True)
class BackupTarget:
    """One place backups are kept: its label, its catalog, the leases on its volumes."""

    label: str
    repository: object   # BackupRepository
    leases: object       # Leases

    def scan(self, volume):
        """The Scan of ``volume``'s backups here (usable and damaged)."""
        return self.repository.scan(volume)

    def hold(self, volume, purpose=BACKING_UP):
        """Hold ``volume``'s lease here for ``purpose`` (a context manager; see Leases.hold)."""
        return self.leases.hold(volume, purpose)


class Found(NamedTuple):
    """A backup chosen to restore from: where it is, its manifest, and why this one."""

    target: BackupTarget
    manifest: object
    why: str


class BackupTargets:
    """The backup targets by label. ``volumes`` (a ``volumes.Volumes``) says which backup
    store a live volume has, so that its own is searched first."""

    def __init__(self, targets, volumes):
        self._targets = dict(targets)
        self._volumes = volumes

    def __contains__(self, label):
        return label in self._targets

    def get(self, label):
        """The target ``label``; raises BackupError when that store cannot hold backups now."""
        target = self._targets.get(label)
        if target is None:
            raise BackupError(f"volume store {label} cannot hold backups now (it is unavailable)")
        return target

    def catalogs(self, name):
        """[(BackupTarget, Scan)] of the targets holding backups of volume ``name``, usable
        or damaged. A live volume's own backup store comes first; removed volumes are
        searched in all."""
        order = list(self._targets)
        volume = self._volumes.find(name)
        if volume is not None and volume.options.backup_store in order:
            order.remove(volume.options.backup_store)
            order.insert(0, volume.options.backup_store)
        found = ((self._targets[label], self._targets[label].scan(name)) for label in order)
        return [(target, scan) for target, scan in found if scan]

    def locate(self, name, backup_id, catalogs=None):
        """``(target, Manifest)`` or ``(target, DamagedBackup)`` of backup ``backup_id`` of
        volume ``name`` (searched in ``catalogs``, by default all that hold some), or None."""
        for target, scan in self.catalogs(name) if catalogs is None else catalogs:
            entry = scan.usable(backup_id) or scan.broken(backup_id)
            if entry is not None:
                return target, entry
        return None

    def find(self, name, ref):
        """The Found backup ``ref`` (an id or ``latest``) of a volume, to restore from.

        A damaged backup is never restored: asked for by id, it is refused with its
        reason; ``latest`` is the newest usable backup, and ``why`` names the damaged
        ones that are newer (and their reasons)."""
        catalogs = self.catalogs(name)
        if not catalogs:
            raise NotFound(f"volume {name} has no backups")
        if ref == "latest":
            return _latest(name, catalogs)
        located = self.locate(name, ref, catalogs)
        if located is None:
            raise NotFound(f"volume {name} has no backup {ref} (see: vsphere-volume backups {name})")
        target, entry = located
        if isinstance(entry, DamagedBackup):
            raise BackupError(f"backup {ref} of volume {name} is {entry.state}: {entry.reason}; "
                              f"it cannot be restored (vsphere-volume delete {name} {ref} deletes it)")
        return Found(target, entry, f"backup {ref}, as asked")


def _latest(name, catalogs):
    """The Found newest usable backup in ``catalogs`` (see ``BackupTargets.find``)."""
    usable = [(target, m) for target, scan in catalogs for m in scan.backups]
    damaged = sorted((d for _, scan in catalogs for d in scan.damaged), key=lambda d: ids.sort_key(d.backup_id))
    if not usable:
        raise BackupError(f"volume {name} has no usable backup: {_reasons(damaged)}")
    target, manifest = max(usable, key=lambda found: found[1].created)
    newer = [d for d in damaged if ids.sort_key(d.backup_id) > ids.sort_key(manifest.backup_id)]
    if newer:
        return Found(target, manifest, f"latest usable backup {manifest.backup_id}; {_reasons(newer)}")
    return Found(target, manifest, f"latest backup {manifest.backup_id}")


def _reasons(damaged):
    return "; ".join(f"{d.backup_id} is {d.state}: {d.reason}" for d in damaged)
