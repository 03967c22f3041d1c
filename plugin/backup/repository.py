"""The backup catalog: where backups live and how one is committed.

Layout, under the root of the backup store (never under its ``volumes/``)::

    <root>/backups/<volume>/<backup-id>/          one backup
    <root>/backups/<volume>/<backup-id>/<data>    the copy (a disk, or the folder ``data``)
    <root>/backups/<volume>/<backup-id>/manifest.json

``manifest.json`` is written last and atomically: it is the commit marker. A backup
folder without one is an incomplete backup (a copy in progress, or one that died) and
is never listed; ``cleanup_incomplete`` removes those. Backups stay after their volume
is removed: the catalog is keyed by name, not by a live volume.

``BackupRepository`` is the contract, documented method by method. ``LocalBackupRepository``
implements it on a folder this host sees (file and NFS stores). A datastore
implementation needs only: make a folder (atomic, failing when it exists), upload a small
file under a temporary name and move it into place, list a folder, read a small file,
delete a folder.
"""

import abc
import ctypes
import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackupError, InvalidName, NotFound
from ..fsutil import atomic_write
from ..options import validate_name
from . import ids
from .manifest import FILE_NAME, from_json
from .retention import prunable

log = logging.getLogger(__name__)

BACKUPS_DIR = "backups"


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

    # list returns the committed backups of volume as Manifests, oldest first (by id).
    # A volume with no backups, or unknown, gives []. A manifest that cannot be read or
    # is invalid is logged and left out: never deleted, it may be a newer plugin's.
    @abc.abstractmethod
    def list(self, volume):
        """The volume's committed backups, oldest first."""

    # list_volumes returns, sorted, the names of the volumes that have at least one
    # committed backup, whether or not the volume itself still exists.
    @abc.abstractmethod
    def list_volumes(self):
        """Names of the volumes with a committed backup."""

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

    def latest(self, volume):
        """The newest committed backup of volume, or None."""
        backups = self.list(volume)
        return backups[-1] if backups else None

    def resolve(self, volume, ref):
        """The Manifest for ``ref``: a backup id or ``latest``. Raises NotFound."""
        if ref == "latest":
            newest = self.latest(volume)
            if newest is None:
                raise NotFound(f"volume {volume!r} has no backups")
            return newest
        return self.read(volume, ref)

    def prune(self, volume, retention, now, tz=None, reading=()):
        """Delete the backups of ``volume`` that ``retention.prunable`` allows; return their ids.

        Call it while holding the volume's lease (so no other host prunes or backs it up)
        with ``reading``: the ids restores on this host are reading.
        """
        backups = self.list(volume)
        doomed = prunable(retention, [m.info() for m in backups], now, tz, reading)
        deleted = []
        for manifest in backups:  # oldest first
            if manifest.backup_id in doomed:
                self.delete(volume, manifest.backup_id)
                deleted.append(manifest.backup_id)
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


class LocalBackupRepository(BackupRepository):
    """The catalog in a folder this host sees: ``<root>/backups/...``.

    ``root`` is the backup store's root folder (for a file or NFS store, the folder that
    also holds ``volumes/``).
    """

    def __init__(self, root):
        self.root = Path(root)
        self.backups = self.root / BACKUPS_DIR

    def __repr__(self):
        return f"LocalBackupRepository({str(self.root)!r})"

    def _volume_dir(self, volume):
        return self.backups / validate_name(volume)

    def location(self, volume, backup_id):
        return self._volume_dir(volume) / ids.check_id(backup_id)

    def begin(self, volume, now):
        volume_dir = self._volume_dir(volume)
        for backup_id in ids.candidates(now):
            path = volume_dir / backup_id
            try:
                volume_dir.mkdir(parents=True, exist_ok=True)
                path.mkdir()
            except FileExistsError:
                continue
            except FileNotFoundError:
                # The volume folder was removed between the two mkdirs (a delete of the
                # volume's last backup): make it again.
                volume_dir.mkdir(parents=True, exist_ok=True)
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
            except OSError as err:
                raise BackupError(f"cannot create backup folder {path}: {err.strerror}") from None
            return Staging(volume, backup_id, path)
        raise BackupError(f"no free backup id left for volume {volume!r} in the second {ids.base_id(now)}")

    def commit(self, manifest):
        manifest.validate()
        path = self.location(manifest.volume, manifest.backup_id)
        if not path.is_dir():
            raise BackupError(
                f"cannot commit backup {manifest.backup_id} of volume {manifest.volume!r}: "
                f"its folder {path} does not exist (it was not begun, or was aborted)")
        if (path / FILE_NAME).exists():
            raise BackupError(f"backup {manifest.backup_id} of volume {manifest.volume!r} is committed already")
        if manifest.holds_data and not (path / manifest.data).exists():
            raise BackupError(
                f"cannot commit backup {manifest.backup_id} of volume {manifest.volume!r}: "
                f"its data {manifest.data!r} is not in {path}")
        try:
            sync_filesystem(path)
            atomic_write(str(path / FILE_NAME), manifest.to_json().encode("utf-8"))
        except OSError as err:
            raise BackupError(f"cannot write {path / FILE_NAME}: {err.strerror}") from None

    def abort(self, staging):
        path = self.location(staging.volume, staging.backup_id)
        if (path / FILE_NAME).exists():
            raise BackupError(
                f"backup {staging.backup_id} of volume {staging.volume!r} is committed: "
                "delete it instead of aborting it")
        shutil.rmtree(path, ignore_errors=True)
        self._remove_if_empty(path.parent)

    def _backup_dirs(self, volume_dir):
        try:
            entries = list(os.scandir(volume_dir))
        except FileNotFoundError:
            return []
        found = [e.name for e in entries if ids.is_backup_id(e.name) and e.is_dir(follow_symlinks=False)]
        return sorted(found, key=ids.sort_key)

    def _read_manifest(self, volume, backup_id):
        path = self.location(volume, backup_id) / FILE_NAME
        where = f"{path}"
        text = path.read_bytes()
        manifest = from_json(text, where)
        if manifest.volume != volume or manifest.backup_id != backup_id:
            raise BackupError(
                f"{where} is not valid: it describes backup {manifest.backup_id} of volume "
                f"{manifest.volume!r}, not {backup_id} of {volume!r}")
        return manifest

    def list(self, volume):
        found = []
        for backup_id in self._backup_dirs(self._volume_dir(volume)):
            try:
                found.append(self._read_manifest(volume, backup_id))
            except FileNotFoundError:
                continue  # incomplete
            except (BackupError, OSError) as err:
                log.warning("backup %s of volume %s is left out of the list: %s", backup_id, volume, err)
        return found

    def list_volumes(self):
        return [name for name in self._all_volume_dirs()
                if any((self.backups / name / b / FILE_NAME).exists()
                       for b in self._backup_dirs(self.backups / name))]

    def read(self, volume, backup_id):
        path = self.location(volume, backup_id)
        try:
            return self._read_manifest(volume, backup_id)
        except FileNotFoundError:
            raise NotFound(f"volume {volume!r} has no backup {backup_id}") from None
        except OSError as err:
            raise BackupError(f"cannot read {path / FILE_NAME}: {err.strerror}") from None

    def delete(self, volume, backup_id):
        path = self.location(volume, backup_id)
        try:
            os.remove(path / FILE_NAME)
        except FileNotFoundError:
            raise NotFound(f"volume {volume!r} has no backup {backup_id}") from None
        except OSError as err:
            raise BackupError(f"cannot delete backup {backup_id} of volume {volume!r}: {err.strerror}") from None
        _fsync_dir(path)
        shutil.rmtree(path, ignore_errors=True)
        self._remove_if_empty(path.parent)

    def cleanup_incomplete(self, volume=None, before=None):
        volumes = [volume] if volume is not None else self._all_volume_dirs()
        removed = []
        for name in volumes:
            volume_dir = self._volume_dir(name)
            for backup_id in self._backup_dirs(volume_dir):
                if (volume_dir / backup_id / FILE_NAME).exists():
                    continue
                if before is not None and ids.id_time(backup_id) >= before:
                    continue
                shutil.rmtree(volume_dir / backup_id, ignore_errors=True)
                removed.append((name, backup_id))
            if removed:
                self._remove_if_empty(volume_dir)
        return removed

    def _all_volume_dirs(self):
        try:
            entries = list(os.scandir(self.backups))
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    names.append(validate_name(entry.name))
            except InvalidName:
                continue  # .leases and other bookkeeping folders
        return sorted(names)

    @staticmethod
    def _remove_if_empty(folder):
        try:
            os.rmdir(folder)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                log.warning("cannot remove empty backup folder %s: %s", folder, err.strerror)
