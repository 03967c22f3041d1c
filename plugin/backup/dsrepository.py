"""The backup catalog on a datastore: ``[ds] <root>/backups/<volume>/<backup-id>/``.

``DatastoreBackupRepository`` implements ``repository.BackupRepository`` (read its
contract there) for a backup store that is a datastore: it provides the folder operations
of ``repository.FolderBackupRepository``, which builds begin, commit, list, delete and
cleanup on them exactly as for ``LocalBackupRepository``: the layout, the commit marker
(``manifest.json`` written last) and the meaning of every method are the same; only the
file operations differ. ``Staging.location`` and ``location`` are datastore paths,
``[ds] root/backups/<volume>/<backup-id>``, which the VMDK engine copies disks into and
out of.

Every vSphere call goes through ``vsphere.folders.DatastoreFolder``:

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

from ..errors import FileAlreadyExists, FileNotFoundOnDatastore
from ..options import validate_name
from ..policy import ids
from ..vsphere.folders import DatastoreFolder
from .manifest import FILE_NAME
from .repository import BACKUPS_DIR, FolderBackupRepository, is_volume_name


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
