"""Backup leases on a datastore, so that of several Docker hosts on one vCenter only one
backs a volume up at a time.

``DatastoreLeaseFolder`` implements ``lease.LeaseFolder`` (read its contract there) in
``[ds] <backup root>/backups/.leases/<volume>/owner.json``, the same layout as
``LocalLeaseFolder``; ``lease.Leases`` takes, renews, breaks and releases the leases on it.
What makes it safe across hosts is vSphere's own atomicity:

- ``make``: one ``MakeDirectory`` without parent creation, which fails with
  FileAlreadyExists when another host made the folder first (``.leases`` itself is made
  on first use);
- ``write``: the owner file is uploaded under a temporary name *beside* the lease folder
  and moved into it with ``MoveDatastoreFile`` (force on): a reader sees the old or the
  new owner, and a lease folder that was broken or released meanwhile is not made again
  (the move finds no folder: FileNotFoundError, as the contract says). An upload
  straight into the folder would recreate it: the HTTP file interface makes missing
  folders.
- ``move`` (breaking, releasing) is one ``MoveDatastoreFile``; ``remove`` one
  ``DeleteDatastoreFile``; ``read`` one HTTP GET; ``made`` one folder listing.

Failures of vCenter itself raise the session's VSphereError subclasses.
"""

from ..errors import FileNotFoundOnDatastore
from ..vsphere.folders import DatastoreFolder
from .lease import LEASES_DIR, OWNER_FILE, LeaseFolder, subfolder
from .repository import BACKUPS_DIR


class DatastoreLeaseFolder(LeaseFolder):
    """Leases in ``[datastore] root_path/backups/.leases/``.

    ``root_path`` is the backup store's root on ``datastore``, as for
    ``DatastoreBackupRepository``; ``inventory`` and ``files`` are shared with it if given.
    """

    def __init__(self, session, datastore, root_path, inventory=None, files=None, folder=None):
        self.folder = folder or DatastoreFolder(session, datastore,
                                                f"{root_path.strip('/')}/{BACKUPS_DIR}/{LEASES_DIR}",
                                                inventory=inventory, files=files)

    def within(self, name):
        outer = self.folder
        return DatastoreLeaseFolder(None, None, None, folder=DatastoreFolder(
            outer.session, outer.datastore, outer.path(subfolder(name)), inventory=outer.inventory,
            files=outer.files))

    def __repr__(self):
        return f"DatastoreLeaseFolder({self.folder.ds()!r})"

    def make(self, name):
        return self.folder.make(name)

    def write(self, name, data):
        try:
            self.folder.publish(f"{name}/{OWNER_FILE}", data, replace=True, temp_folder="")
        except FileNotFoundOnDatastore:
            raise FileNotFoundError(f"the lease folder {self.folder.ds(name)} does not exist") from None

    def read(self, name):
        return self.folder.read(f"{name}/{OWNER_FILE}")

    def made(self, name):
        entry = self.folder.tree().get("", {}).get(name)
        return entry.modified if entry is not None else None

    def move(self, name, new_name):
        try:
            self.folder.move(name, new_name)
        except FileNotFoundOnDatastore:
            return False
        return True

    def remove(self, name):
        self.folder.delete(name)

    def names(self):
        return sorted(self.folder.names())
