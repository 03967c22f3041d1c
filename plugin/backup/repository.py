"""The backup catalog: where backups live and how one is committed.

Layout, under the root of the backup store (never under its ``volumes/``)::

    <root>/backups/<volume>/<backup-id>/          one backup
    <root>/backups/<volume>/<backup-id>/<data>    the copy (a disk, or the folder ``data``)
    <root>/backups/<volume>/<backup-id>/manifest.json

``manifest.json`` is written last and atomically: it is the commit marker. A backup
folder without one is an incomplete backup (a copy in progress, or one that died) and
is never listed; ``cleanup_incomplete`` removes those. A backup folder whose manifest
is there but cannot be used is a *damaged* backup (``DamagedBackup``): never restored,
but listed as damaged with the reason (``scan``), deletable, and pruned by retention
like the backups around it (see ``prune``). Backups stay after their volume
is removed: the catalog is keyed by name, not by a live volume.

``BackupRepository`` is the contract, documented method by method. ``FolderBackupRepository``
implements it once over a few folder operations below ``backups/`` (make a backup folder
atomically, list the catalog, read a manifest, publish one, delete, remove a volume's
empty folder); ``LocalBackupRepository`` provides them on a folder this host sees (file
and NFS stores), ``dsrepository.DatastoreBackupRepository`` on a datastore.
"""

import abc
import ctypes
import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackupError, InvalidName, NotFound, VolumeError
from ..fsutil import atomic_write
from ..options import validate_name
from ..policy import ids
from ..policy.retention import SCHEDULE, BackupInfo, prunable
from ..timefmt import rfc3339_exact
from .failures import storage_errors
from .manifest import (
    FILE_NAME,
    Manifest,
    NewerFormat,
    from_json,
    recorded_origin,
)

log = logging.getLogger(__name__)

BACKUPS_DIR = "backups"


@dataclass(frozen=True)
class DamagedBackup:
    """A committed backup (its manifest.json is there) whose manifest cannot be used.

    ``state`` is DAMAGED when the manifest is not a valid one (not JSON, a field wrong,
    it describes another backup), UNREADABLE when it could not be read now (an I/O or
    vCenter failure) or was written by a newer plugin. ``reason`` says which. ``origin``
    is what the manifest still records ("" when nothing readable). Only DAMAGED ones
    are ever pruned (``reclaimable``); any can be deleted on request.
    """

    volume: str
    backup_id: str
    state: str
    reason: str
    origin: str = ""

    @property
    def reclaimable(self):
        return self.state == DAMAGED

    @property
    def created(self):
        """The time in its id: when the backup began (its manifest's times are lost)."""
        return ids.id_time(self.backup_id)

    def info(self):
        """The retention view: its origin if recorded, else a scheduled backup of its id's time."""
        return BackupInfo(self.backup_id, self.created, self.origin or SCHEDULE)

    def summary(self):
        """As /Backup.List shows it, beside the usable backups' ``Manifest.summary``."""
        shown = {"Id": self.backup_id, "Volume": self.volume, "Created": rfc3339_exact(self.created),
                 "State": self.state, "Problem": self.reason}
        if self.origin:
            shown["Origin"] = self.origin
        return shown


DAMAGED, UNREADABLE = "damaged", "unreadable"


@dataclass(frozen=True)
class Scan:
    """What the catalog holds of one volume: the usable backups (Manifests) and the
    damaged ones (DamagedBackup), each oldest first."""

    backups: list
    damaged: list

    def __bool__(self):
        return bool(self.backups or self.damaged)

    def usable(self, backup_id):
        """The Manifest of ``backup_id`` if it is a usable backup, else None."""
        return next((m for m in self.backups if m.backup_id == backup_id), None)

    def broken(self, backup_id):
        """The DamagedBackup of ``backup_id`` if it is a damaged one, else None."""
        return next((d for d in self.damaged if d.backup_id == backup_id), None)


@dataclass(frozen=True)
class Staging:
    """A backup in progress: its id and where the engine writes its data.

    ``location`` is in the repository's own terms: a ``Path`` for LocalBackupRepository,
    a datastore path for a datastore repository.
    """

    volume: str
    backup_id: str
    location: object


class BackupRepository(abc.ABC):
    """The catalog of the backups kept in one backup store.

    Concurrency: the repository does not serialize anything. The caller runs at most one
    backup of a volume at a time, across hosts too (``lease``), and prunes and cleans up a
    volume only while holding its lease. Calls for different volumes may run at once.
    """

    # begin starts a new backup of volume at the aware time now: it picks the first free
    # id for now (ids.candidates), creates its folder atomically (a folder that exists
    # already means that id is taken: try the next) and returns a Staging. Nothing is
    # listed until commit. Raises InvalidName for a bad volume name.
    @abc.abstractmethod
    def begin(self, volume, now):
        """Create the folder of a new backup; return its Staging."""

    # commit makes a staged backup a backup: it makes the data durable, then writes
    # manifest.json into the backup's folder atomically (temporary name, flush, rename),
    # and only then is the backup listed. The manifest names the volume and the backup
    # id, which must be a begun, uncommitted backup; otherwise BackupError.
    @abc.abstractmethod
    def commit(self, manifest):
        """Write the manifest of a staged backup, making it a listed backup."""

    # abort deletes a staged backup that will not be committed (the copy failed).
    # Idempotent; never deletes a committed backup (BackupError).
    @abc.abstractmethod
    def abort(self, staging):
        """Delete an uncommitted backup's folder."""

    # scan returns a Scan of volume: its committed backups whose manifests are usable,
    # as Manifests, and those whose manifests are not, as DamagedBackup (with the
    # reason, logged), each oldest first (by id). A volume with no backups, or unknown,
    # gives an empty Scan. Nothing is deleted here.
    @abc.abstractmethod
    def scan(self, volume):
        """The volume's committed backups, usable and damaged."""

    # read returns the Manifest of one committed backup. Raises InvalidOption for a
    # malformed id, NotFound when there is no such committed backup, BackupError when
    # its manifest is invalid.
    @abc.abstractmethod
    def read(self, volume, backup_id):
        """One committed backup's manifest."""

    # location returns where a backup's folder is, in the terms of Staging.location, for
    # an engine that reads the data. It does not check that the backup exists.
    @abc.abstractmethod
    def location(self, volume, backup_id):
        """The folder of a backup."""

    # delete removes one backup: first its manifest (so it stops being listed at once),
    # then the rest. A crash in between leaves an incomplete folder for
    # cleanup_incomplete. Raises NotFound when the backup does not exist. It does not
    # check whether other backups record this one as their base: retention.referrers.
    @abc.abstractmethod
    def delete(self, volume, backup_id):
        """Delete a backup."""

    # cleanup_incomplete deletes backup folders without a manifest, of volume (or of
    # every volume when None) whose id time is before the aware time before (any age
    # when None), and returns [(volume, backup_id)] of what it deleted. A backup being
    # copied has no manifest yet: call it for a volume while holding the volume's
    # lease, or with before set to a time no running backup started before.
    @abc.abstractmethod
    def cleanup_incomplete(self, volume=None, before=None):
        """Delete incomplete backups; return what was deleted."""

    # --- built on the operations above --------------------------------------------------

    def list(self, volume):
        """The volume's usable committed backups, oldest first (damaged ones: ``scan``)."""
        return self.scan(volume).backups

    def latest(self, volume):
        """The newest committed backup of volume, or None."""
        backups = self.list(volume)
        return backups[-1] if backups else None

    def prune(self, volume, retention, now, tz=None, reading=()):
        """Delete the backups of ``volume`` that ``retention.prunable`` allows; return their ids.

        Call it while holding the volume's lease (so no other host prunes or backs it up)
        with ``reading``: the ids restores on this host are reading.

        A damaged backup (``DamagedBackup.reclaimable``) goes when retention would prune
        a backup of its origin made at its id's time, judged against the usable backups
        alone: it never takes the place of a usable one, and never changes what happens
        to them. It is never the reason a usable backup goes.
        """
        scan = self.scan(volume)
        usable = [m.info() for m in scan.backups]
        doomed = prunable(retention, usable, now, tz, reading)
        doomed |= {d.backup_id for d in scan.damaged
                   if d.reclaimable and d.backup_id in prunable(retention, [*usable, d.info()], now, tz, reading)}
        deleted = sorted(doomed, key=ids.sort_key)  # oldest first
        for backup_id in deleted:
            self.delete(volume, backup_id)
        return deleted

    def data_manifest(self, manifest):
        """The Manifest of the backup that holds ``manifest``'s data (itself unless unchanged)."""
        if manifest.holds_data:
            return manifest
        try:
            return self.read(manifest.volume, manifest.base)
        except NotFound:
            raise BackupError(
                f"backup {manifest.backup_id} of volume {manifest.volume!r} was recorded as unchanged "
                f"since backup {manifest.base}, which no longer exists: it cannot be restored") from None


def is_volume_name(name):
    """True for a folder under ``backups/`` named like a volume (not ``.leases`` and the like)."""
    try:
        validate_name(name)
    except InvalidName:
        return False
    return True


class FolderBackupRepository(BackupRepository):
    """The contract built on a few operations on the folders below ``backups/``.

    A subclass provides the storage: ``location`` and the ``_`` methods below, which take
    a valid volume name and backup id (checked here) and may raise VolumeError for a
    storage failure. Everything else (ids, the commit marker, what is listed, what is
    incomplete) is decided here, once for every kind of storage.
    """

    # --- the folder operations a storage provides ---------------------------------------

    # _make creates backup_id's folder under volume's, which it makes first if needed;
    # the backup folder itself atomically: False when it exists already (that id is taken).
    @abc.abstractmethod
    def _make(self, volume, backup_id):
        """Create a backup folder; False when it exists."""

    # _catalog lists what is below backups/: {volume: {backup id: set of the names in the
    # backup's folder}}, of every volume, of volume, or of its backup backup_id only. Only
    # folders named like volumes and like backup ids count; what does not exist is left out.
    @abc.abstractmethod
    def _catalog(self, volume=None, backup_id=None):
        """{volume: {backup id: names in its folder}}."""

    # _read returns the bytes of backup_id's manifest, or None when it does not exist.
    @abc.abstractmethod
    def _read(self, volume, backup_id):
        """A manifest's bytes, or None."""

    # _read_many returns {backup id: bytes, None, or the VolumeError reading it raised}
    # for the manifests of backup_ids of volume; a storage may read them at once.
    def _read_many(self, volume, backup_ids):
        found = {}
        for backup_id in backup_ids:
            try:
                found[backup_id] = self._read(volume, backup_id)
            except VolumeError as err:
                found[backup_id] = err
        return found

    # _publish makes the data in backup_id's folder durable, then writes file name there
    # with data (bytes) atomically: a reader sees no file or all of it. False when the
    # storage found the file there already and left it as it was.
    @abc.abstractmethod
    def _publish(self, volume, backup_id, name, data):
        """Write a file into a backup folder in one step."""

    # _delete deletes file name of backup_id's folder (name None: the folder with all it
    # holds): False when it did not exist.
    @abc.abstractmethod
    def _delete(self, volume, backup_id, name=None):
        """Delete a backup's file or folder."""

    # _remove_if_empty deletes volume's folder when nothing is left in it; a failure is
    # logged only.
    @abc.abstractmethod
    def _remove_if_empty(self, volume):
        """Delete a volume's empty folder."""

    # --- the contract ---------------------------------------------------------------

    @staticmethod
    def _checked(volume, backup_id):
        return validate_name(volume), ids.check_id(backup_id)

    def begin(self, volume, now):
        validate_name(volume)
        for backup_id in ids.candidates(now):
            if self._make(volume, backup_id):
                return Staging(volume, backup_id, self.location(volume, backup_id))
        raise BackupError(f"no free backup id left for volume {volume!r} in the second {ids.base_id(now)}")

    def commit(self, manifest):
        manifest.validate()
        volume, backup_id = manifest.volume, manifest.backup_id
        where = self.location(volume, backup_id)
        names = self._catalog(volume, backup_id).get(volume, {}).get(backup_id)
        if names is None:
            raise BackupError(f"cannot commit backup {backup_id} of volume {volume!r}: its folder {where} "
                              "does not exist (it was not begun, or was aborted)")
        if FILE_NAME in names:
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed already")
        if manifest.holds_data and manifest.data.split("/")[0] not in names:
            raise BackupError(f"cannot commit backup {backup_id} of volume {volume!r}: "
                              f"its data {manifest.data!r} is not in {where}")
        if not self._publish(volume, backup_id, FILE_NAME, manifest.to_json().encode("utf-8")):
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed already")

    def abort(self, staging):
        volume, backup_id = self._checked(staging.volume, staging.backup_id)
        if self._read(volume, backup_id) is not None:
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed: "
                              "delete it instead of aborting it")
        self._delete(volume, backup_id)
        self._remove_if_empty(volume)

    def _parse(self, volume, backup_id, data):
        where = f"{self.location(volume, backup_id)}/{FILE_NAME}"
        manifest = from_json(data, where)
        if (manifest.volume, manifest.backup_id) != (volume, backup_id):
            raise BackupError(f"{where} is not valid: it describes backup {manifest.backup_id} of volume "
                              f"{manifest.volume!r}, not {backup_id} of {volume!r}")
        return manifest

    def _listed(self, volume, backup_id, document):
        """A listed backup from its read (bytes, None or VolumeError): a Manifest, a
        DamagedBackup, or None when it was deleted since the listing."""
        if document is None:
            return None
        if isinstance(document, VolumeError):
            damaged = DamagedBackup(volume, backup_id, UNREADABLE, f"its manifest cannot be read now: {document}")
        else:
            try:
                return self._parse(volume, backup_id, document)
            except NewerFormat as err:
                damaged = DamagedBackup(volume, backup_id, UNREADABLE, str(err), recorded_origin(document))
            except VolumeError as err:
                damaged = DamagedBackup(volume, backup_id, DAMAGED, str(err), recorded_origin(document))
        log.warning("backup %s of volume %s is %s and cannot be restored: %s", backup_id, volume,
                    damaged.state, damaged.reason)
        return damaged

    def scan(self, volume):
        folders = self._catalog(validate_name(volume)).get(volume, {})
        committed = sorted((b for b, names in folders.items() if FILE_NAME in names), key=ids.sort_key)
        documents = self._read_many(volume, committed)
        found = [self._listed(volume, b, documents.get(b)) for b in committed]
        return Scan(backups=[f for f in found if isinstance(f, Manifest)],
                    damaged=[f for f in found if isinstance(f, DamagedBackup)])

    def read(self, volume, backup_id):
        volume, backup_id = self._checked(volume, backup_id)
        data = self._read(volume, backup_id)
        if data is None:
            raise NotFound(f"volume {volume!r} has no backup {backup_id}")
        return self._parse(volume, backup_id, data)

    def delete(self, volume, backup_id):
        volume, backup_id = self._checked(volume, backup_id)
        if not self._delete(volume, backup_id, FILE_NAME):
            raise NotFound(f"volume {volume!r} has no backup {backup_id}")
        self._delete(volume, backup_id)
        self._remove_if_empty(volume)

    def cleanup_incomplete(self, volume=None, before=None):
        catalog = self._catalog(validate_name(volume) if volume is not None else None)
        removed = []
        for name, folders in sorted(catalog.items()):
            incomplete = [b for b in sorted(folders, key=ids.sort_key)
                          if FILE_NAME not in folders[b] and (before is None or ids.id_time(b) < before)]
            for backup_id in incomplete:
                self._delete(name, backup_id)
                removed.append((name, backup_id))
            if incomplete and len(incomplete) == len(folders):
                self._remove_if_empty(name)
        return removed


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _libc_syncfs():
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):  # pragma: no cover - not Linux/glibc
        return None


_SYNCFS = _libc_syncfs()


def sync_filesystem(path):
    """Flush every written file of the filesystem holding ``path`` to disk."""
    if _SYNCFS is None:  # pragma: no cover - not Linux
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:  # pragma: no cover - syncfs fails only on a broken fd
            os.sync()
    finally:
        os.close(fd)


def _subfolders(folder):
    """The names of the folders in ``folder`` (not following links); [] when it does not exist."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]


class LocalBackupRepository(FolderBackupRepository):
    """The catalog in a folder this host sees: ``<root>/backups/...``.

    ``root`` is the backup store's root folder (for a file or NFS store, the folder that
    also holds ``volumes/``).
    """

    def __init__(self, root):
        self.root = Path(root)
        self.backups = self.root / BACKUPS_DIR

    def __repr__(self):
        return f"LocalBackupRepository({str(self.root)!r})"

    def location(self, volume, backup_id):
        return self.backups / validate_name(volume) / ids.check_id(backup_id)

    def _make(self, volume, backup_id):
        path = self.location(volume, backup_id)
        for attempt in (1, 2):
            try:
                with storage_errors(f"cannot create backup folder {path}",
                                    passing=(FileExistsError, FileNotFoundError)):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.mkdir()
                return True
            except FileExistsError:
                return False
            except FileNotFoundError:
                # The volume folder was removed between the two mkdirs (a delete of the
                # volume's last backup): make it again.
                if attempt == 2:
                    raise BackupError(f"cannot create backup folder {path}: its parent keeps vanishing") from None
        raise AssertionError("unreachable")

    def _catalog(self, volume=None, backup_id=None):
        catalog = {}
        with storage_errors(f"cannot list the backups in {self.backups}"):
            for name in [volume] if volume is not None else _subfolders(self.backups):
                if not is_volume_name(name) or not (self.backups / name).is_dir():
                    continue
                folders = catalog.setdefault(name, {})
                for found in [backup_id] if backup_id is not None else _subfolders(self.backups / name):
                    if not ids.is_backup_id(found):
                        continue
                    try:
                        folders[found] = set(os.listdir(self.backups / name / found))
                    except (FileNotFoundError, NotADirectoryError):
                        continue
        return catalog

    def _read(self, volume, backup_id):
        path = self.location(volume, backup_id) / FILE_NAME
        with storage_errors(f"cannot read {path}"):
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None

    def _publish(self, volume, backup_id, name, data):
        path = self.location(volume, backup_id)
        with storage_errors(f"cannot write {path / name}"):
            sync_filesystem(path)
            atomic_write(str(path / name), data)
        return True

    def _delete(self, volume, backup_id, name=None):
        path = self.location(volume, backup_id)
        if name is None:
            existed = path.is_dir()
            shutil.rmtree(path, ignore_errors=True)
            return existed
        with storage_errors(f"cannot delete backup {backup_id} of volume {volume!r}"):
            try:
                os.remove(path / name)
            except (FileNotFoundError, NotADirectoryError):
                return False
            _fsync_dir(path)
        return True

    def _remove_if_empty(self, volume):
        folder = self.backups / volume
        try:
            os.rmdir(folder)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                log.warning("cannot remove empty backup folder %s: %s", folder, err.strerror)
