"""The backup catalog on a datastore: ``[ds] <root>/backups/<volume>/<backup-id>/``.

``DatastoreBackupRepository`` implements ``repository.BackupRepository`` (read its
contract there) for a backup store that is a datastore: the layout, the commit marker
(``manifest.json`` written last) and the meaning of every method are the same as
``LocalBackupRepository``'s; only the file operations differ. ``Staging.location`` and
``location`` are datastore paths, ``[ds] root/backups/<volume>/<backup-id>``, which the
VMDK engine copies disks into and out of.

Every vSphere call goes through ``vsphere.session.Session`` (``DatastoreFolder`` below):

- a new backup folder is one ``MakeDirectory`` *without* parent creation, which fails
  when the folder exists (FileAlreadyExists: that id is taken, the next one is tried);
  only the first backup of a volume also makes ``backups/<volume>`` (one more call);
- commit uploads the manifest under a temporary name (HTTP PUT) and moves it into place
  with ``MoveDatastoreFile`` (force off: a second commit finds it and fails);
- listings are one ``SearchDatastoreSubFolders`` (matchPattern ``["*"]``) of the volume's
  folder, or of ``backups/`` for every volume, then one HTTP GET per committed backup,
  read concurrently: a bounded number of SOAP round trips whatever the number of backups;
- deleting goes through ``DeleteDatastoreFile`` (manifest first, then the folder).

Round trips (SOAP tasks count as the call plus at least one PropertyCollector read):
begin 1 (3 for a volume's first backup); commit 1 search + 1 PUT + 1 move; list 1 search
+ N GETs; list_volumes 1 search; read 1 GET; abort 1 GET + 1 delete + 1 search; delete
2 deletes + 1 search (+1 delete for a volume's last backup); cleanup_incomplete 1 search
+ 1 delete per incomplete folder.

Concurrency is the caller's, exactly as ``BackupRepository`` says: one backup, prune or
cleanup of a volume at a time, across hosts too (the volume's lease).
"""

import logging
import secrets

from ..errors import (
    BackupError, FileAlreadyExists, FileNotFoundOnDatastore, InvalidName, NotFound, VolumeError,
)
from ..options import validate_name
from ..vsphere.browse import list_folder, search_tree
from ..vsphere.files import DatastoreFiles
from ..vsphere.inventory import Inventory
from . import ids
from .manifest import FILE_NAME, from_json
from .repository import BACKUPS_DIR, BackupRepository, Staging

log = logging.getLogger(__name__)


class DatastoreFolder:
    """File operations below one folder of a datastore, in paths relative to it.

    ``root`` is a path on datastore ``datastore`` (``store/backups``); ``rel`` arguments
    are relative to it ("" is the root itself). Missing files and folders are answered
    with False or None where the method says so; other failures raise the session's
    typed errors (VSphereError and subclasses).
    """

    def __init__(self, session, datastore, root, inventory=None, files=None):
        self.session = session
        self.datastore = datastore
        self.root = root.strip("/")
        self.inventory = inventory or Inventory(session)
        self.files = files or DatastoreFiles(session)

    def path(self, rel=""):
        """The path on the datastore (without ``[ds]``)."""
        return f"{self.root}/{rel}".rstrip("/")

    def ds(self, rel=""):
        """The datastore path, ``[ds] root/rel``."""
        return f"[{self.datastore}] {self.path(rel)}"

    def _call(self, method, what, **kwargs):
        manager = self.session.content.fileManager
        dc = self.session.datacenter.ref
        if method == "MakeDirectory":
            return self.session.invoke(manager, method, datacenter=dc, what=what, **kwargs)
        if method == "MoveDatastoreFile_Task":
            kwargs.update(sourceDatacenter=dc, destinationDatacenter=dc)
        else:
            kwargs.update(datacenter=dc)
        return self.session.call_task(manager, method, what=what, **kwargs)

    def make(self, rel):
        """Create folder ``rel`` atomically (its parents as needed): False when it exists.

        The folder itself is made without ``createParentDirectories``, which would
        succeed on an existing folder; parents are made only when vSphere says missing.
        """
        for attempt in (1, 2):
            try:
                self._call("MakeDirectory", f"making {self.ds(rel)}", name=self.ds(rel),
                           createParentDirectories=False)
                return True
            except FileAlreadyExists:
                return False
            except FileNotFoundOnDatastore:
                if attempt == 2:
                    raise
                parent = rel.rpartition("/")[0]
                try:
                    self._call("MakeDirectory", f"making {self.ds(parent)}", name=self.ds(parent),
                               createParentDirectories=True)
                except FileAlreadyExists:
                    pass
        raise AssertionError("unreachable")

    def read(self, rel):
        """The bytes of file ``rel``, or None when it does not exist (one HTTP GET)."""
        try:
            return self.files.read(self.datastore, self.path(rel))
        except FileNotFoundOnDatastore:
            return None

    def read_many(self, rels, workers=8):
        """{rel: bytes, or the VolumeError reading it raised}, read concurrently."""
        found = self.files.read_many(self.datastore, [self.path(r) for r in rels], workers=workers)
        return {rel: found[self.path(rel)] for rel in rels}

    def publish(self, rel, data, replace, temp_folder):
        """Make file ``rel`` hold ``data`` in one step: upload a temporary file into folder
        ``temp_folder``, then move it onto ``rel``, so a reader sees old or new content.

        ``replace`` False: FileAlreadyExists when ``rel`` exists. FileNotFoundOnDatastore
        when the folder of ``rel`` does not exist, provided ``temp_folder`` is another
        folder (an upload creates missing folders). The temporary file, named so that no
        other host picks the same, is deleted on failure.
        """
        temp_rel = f"{temp_folder}/.{rel.rpartition('/')[2]}-{secrets.token_hex(8)}.tmp".lstrip("/")
        self.files.write(self.datastore, self.path(temp_rel), data)
        try:
            self._call("MoveDatastoreFile_Task", f"moving {self.ds(temp_rel)} to {self.ds(rel)}",
                       sourceName=self.ds(temp_rel), destinationName=self.ds(rel), force=replace)
        except BaseException:
            self.delete(temp_rel, quiet=True)
            raise

    def move(self, rel, new_rel):
        """Rename ``rel`` to ``new_rel`` (which must not exist): False when ``rel`` is gone."""
        try:
            self._call("MoveDatastoreFile_Task", f"moving {self.ds(rel)} to {self.ds(new_rel)}",
                       sourceName=self.ds(rel), destinationName=self.ds(new_rel), force=False)
        except FileNotFoundOnDatastore:
            return False
        return True

    def delete(self, rel, quiet=False):
        """Delete file or folder ``rel`` with its content: False when it did not exist.

        ``quiet``: log other failures instead of raising them (cleanup after a failure).
        """
        try:
            self._call("DeleteDatastoreFile_Task", f"deleting {self.ds(rel)}", name=self.ds(rel))
        except FileNotFoundOnDatastore:
            return False
        except Exception as err:  # noqa: BLE001 - quiet: the caller's failure matters more
            if not quiet:
                raise
            log.warning("could not delete %s: %s", self.ds(rel), err)
            return False
        return True

    def _browser(self):
        return self.inventory.datastore(self.datastore).browser

    def tree(self, rel=""):
        """{folder relative to ``rel``: {entry: FileInfo}} of everything below ``rel``
        ("" for ``rel`` itself; {} when it does not exist): one search task."""
        return search_tree(self.session, self._browser(), self.ds(rel))

    def names(self, rel=""):
        """The names in folder ``rel`` ([] when it does not exist): one search task."""
        return list_folder(self.session, self._browser(), self.ds(rel))


def _is_volume_name(name):
    try:
        validate_name(name)
    except InvalidName:
        return False  # .leases and other bookkeeping folders
    return True


class DatastoreBackupRepository(BackupRepository):
    """The catalog in ``[datastore] root_path/backups``; see the module docstring.

    ``root_path`` is the backup store's root on ``datastore`` (for a datastore volume
    store, its path: the folder that also holds ``volumes/``). ``inventory`` (shared with
    the store, to reuse its datastore lookups) and ``files`` default to new ones on
    ``session``; ``workers`` is how many manifests are read at once.
    """

    def __init__(self, session, datastore, root_path, inventory=None, files=None, workers=8):
        self.folder = DatastoreFolder(session, datastore, f"{root_path.strip('/')}/{BACKUPS_DIR}",
                                      inventory=inventory, files=files)
        self.workers = workers

    def __repr__(self):
        return f"DatastoreBackupRepository({self.folder.ds()!r})"

    @staticmethod
    def _rel(volume, backup_id=None, name=None):
        parts = [validate_name(volume)]
        if backup_id is not None:
            parts.append(ids.check_id(backup_id))
        if name is not None:
            parts.append(name)
        return "/".join(parts)

    def location(self, volume, backup_id):
        return self.folder.ds(self._rel(volume, backup_id))

    def begin(self, volume, now):
        for backup_id in ids.candidates(now):
            if self.folder.make(self._rel(volume, backup_id)):
                return Staging(volume, backup_id, self.location(volume, backup_id))
        raise BackupError(f"no free backup id left for volume {volume!r} in the second {ids.base_id(now)}")

    def commit(self, manifest):
        manifest.validate()
        volume, backup_id = manifest.volume, manifest.backup_id
        where = self.location(volume, backup_id)
        tree = self.folder.tree(self._rel(volume, backup_id))
        if "" not in tree:
            raise BackupError(f"cannot commit backup {backup_id} of volume {volume!r}: its folder {where} "
                              "does not exist (it was not begun, or was aborted)")
        if FILE_NAME in tree[""]:
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed already")
        if manifest.holds_data and manifest.data.split("/")[0] not in tree[""]:
            raise BackupError(f"cannot commit backup {backup_id} of volume {volume!r}: "
                              f"its data {manifest.data!r} is not in {where}")
        try:
            self.folder.publish(self._rel(volume, backup_id, FILE_NAME), manifest.to_json().encode("utf-8"),
                                replace=False, temp_folder=self._rel(volume, backup_id))
        except FileAlreadyExists:
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed already") from None

    def abort(self, staging):
        volume, backup_id = staging.volume, staging.backup_id
        if self.folder.read(self._rel(volume, backup_id, FILE_NAME)) is not None:
            raise BackupError(f"backup {backup_id} of volume {volume!r} is committed: "
                              "delete it instead of aborting it")
        self.folder.delete(self._rel(volume, backup_id))
        self._remove_if_empty(volume)

    def _catalog(self, volume=None):
        """{volume: {backup id: names in its folder}} from one listing (of one volume, or all)."""
        if volume is None:
            tree = self.folder.tree()
        else:
            listed = self.folder.tree(self._rel(volume))
            tree = {"": {volume: None} if "" in listed else {}}
            tree.update({f"{volume}/{k}".rstrip("/"): v for k, v in listed.items()})
        catalog = {}
        for name in tree.get("", {}):
            if name not in tree or not _is_volume_name(name):
                continue
            catalog[name] = {b: set(tree[f"{name}/{b}"]) for b in tree[name]
                             if ids.is_backup_id(b) and f"{name}/{b}" in tree}
        return catalog

    def _parse(self, volume, backup_id, data):
        where = self.folder.ds(self._rel(volume, backup_id, FILE_NAME))
        manifest = from_json(data, where)
        if (manifest.volume, manifest.backup_id) != (volume, backup_id):
            raise BackupError(f"{where} is not valid: it describes backup {manifest.backup_id} of volume "
                              f"{manifest.volume!r}, not {backup_id} of {volume!r}")
        return manifest

    def list(self, volume):
        folders = self._catalog(validate_name(volume)).get(volume, {})
        committed = sorted((b for b, names in folders.items() if FILE_NAME in names), key=ids.sort_key)
        documents = self.folder.read_many([self._rel(volume, b, FILE_NAME) for b in committed], self.workers)
        found = (self._listed(volume, b, documents[self._rel(volume, b, FILE_NAME)]) for b in committed)
        return [manifest for manifest in found if manifest is not None]

    def _listed(self, volume, backup_id, document):
        """The Manifest of a listed backup from its read (bytes or VolumeError), or None."""
        if isinstance(document, FileNotFoundOnDatastore):
            return None  # deleted since the listing
        try:
            if isinstance(document, VolumeError):
                raise document
            return self._parse(volume, backup_id, document)
        except VolumeError as err:
            log.warning("backup %s of volume %s is left out of the list: %s", backup_id, volume, err)
            return None

    def list_volumes(self):
        return sorted(name for name, folders in self._catalog().items()
                      if any(FILE_NAME in names for names in folders.values()))

    def read(self, volume, backup_id):
        data = self.folder.read(self._rel(volume, backup_id, FILE_NAME))
        if data is None:
            raise NotFound(f"volume {volume!r} has no backup {backup_id}")
        return self._parse(volume, backup_id, data)

    def delete(self, volume, backup_id):
        if not self.folder.delete(self._rel(volume, backup_id, FILE_NAME)):
            raise NotFound(f"volume {volume!r} has no backup {backup_id}")
        self.folder.delete(self._rel(volume, backup_id))
        self._remove_if_empty(volume)

    def cleanup_incomplete(self, volume=None, before=None):
        removed = []
        for name, folders in self._catalog(volume).items():
            incomplete = [b for b, names in sorted(folders.items(), key=lambda item: ids.sort_key(item[0]))
                          if FILE_NAME not in names and (before is None or ids.id_time(b) < before)]
            for backup_id in incomplete:
                self.folder.delete(self._rel(name, backup_id))
                removed.append((name, backup_id))
            if incomplete and len(incomplete) == len(folders):
                self._remove_if_empty(name)
        return removed

    def _remove_if_empty(self, volume):
        """Delete ``backups/<volume>`` when nothing is left in it (its last backup went)."""
        if not self.folder.names(self._rel(volume)):
            self.folder.delete(self._rel(volume), quiet=True)
