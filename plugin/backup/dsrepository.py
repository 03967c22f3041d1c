"""The backup catalog on a datastore: ``[ds] <root>/backups/<volume>/<backup-id>/``.

``DatastoreBackupRepository`` implements ``repository.BackupRepository`` (read its
contract there) for a backup store that is a datastore: it provides the folder operations
of ``repository.FolderBackupRepository``, which builds begin, commit, list, delete and
cleanup on them exactly as for ``LocalBackupRepository``: the layout, the commit marker
(``manifest.json`` written last) and the meaning of every method are the same; only the
file operations differ. ``Staging.location`` and ``location`` are datastore paths,
``[ds] root/backups/<volume>/<backup-id>``, which the VMDK engine copies disks into and
out of.

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

from ..errors import FileAlreadyExists, FileNotFoundOnDatastore
from ..options import validate_name
from ..vsphere.browse import list_folder, search_tree
from ..vsphere.files import DatastoreFiles
from ..vsphere.inventory import Inventory
from . import ids
from .manifest import FILE_NAME
from .repository import BACKUPS_DIR, FolderBackupRepository, is_volume_name

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


class DatastoreBackupRepository(FolderBackupRepository):
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

    def _make(self, volume, backup_id):
        return self.folder.make(self._rel(volume, backup_id))

    def _catalog(self, volume=None, backup_id=None):
        """One search task: of ``backups/``, of the volume's folder, or of the backup's."""
        parts = [p for p in (volume, backup_id) if p is not None]
        listed = self.folder.tree(self._rel(*parts) if parts else "")
        # The search answers relative to the folder searched: put its ancestors back.
        tree = {"/".join(parts[:i]): {parts[i]: None} if "" in listed else {} for i in range(len(parts))}
        tree.update({"/".join(parts + [k] if k else parts): v for k, v in listed.items()})
        catalog = {}
        for name in tree.get("", {}):
            if name not in tree or not is_volume_name(name):
                continue
            catalog[name] = {b: set(tree[f"{name}/{b}"]) for b in tree[name]
                             if ids.is_backup_id(b) and f"{name}/{b}" in tree}
        return catalog

    def _read(self, volume, backup_id):
        return self.folder.read(self._rel(volume, backup_id, FILE_NAME))

    def _read_many(self, volume, backup_ids):
        """The manifests read concurrently (``workers`` at once): one HTTP GET each."""
        rels = {backup_id: self._rel(volume, backup_id, FILE_NAME) for backup_id in backup_ids}
        documents = self.folder.read_many(list(rels.values()), self.workers)
        return {backup_id: None if isinstance(documents[rel], FileNotFoundOnDatastore) else documents[rel]
                for backup_id, rel in rels.items()}

    def _publish(self, volume, backup_id, name, data):
        """Upload under a temporary name in the backup's folder, then move into place
        without replacing (a copy made by a vCenter task is on the datastore once it ends)."""
        try:
            self.folder.publish(self._rel(volume, backup_id, name), data, replace=False,
                                temp_folder=self._rel(volume, backup_id))
        except FileAlreadyExists:
            return False
        return True

    def _delete(self, volume, backup_id, name=None):
        return self.folder.delete(self._rel(volume, backup_id, name))

    def _remove_if_empty(self, volume):
        """Delete ``backups/<volume>`` when nothing is left in it (its last backup went)."""
        if not self.folder.names(self._rel(volume)):
            self.folder.delete(self._rel(volume), quiet=True)
