"""Files and folders on a datastore: every datastore file operation of the plugin.

``DatastoreFolder(session, datastore, root)`` works in paths relative to ``root``, a
folder of datastore ``datastore`` ("" for the datastore itself); ``ds(rel)`` is the
datastore path ``[ds] root/rel`` that vSphere and messages name. Through it:

- folders are made with FileManager's ``MakeDirectory`` (``make``: atomic by default,
  False when the folder exists; ``parents=True`` also makes missing parents, in one call);
- files and folders are moved and deleted with FileManager's ``MoveDatastoreFile`` and
  ``DeleteDatastoreFile`` tasks (a move is one step; a delete removes a folder with
  what it holds);
- small files are read and written over the HTTP file interface (``files``), and
  ``publish`` replaces a file in one step (upload under a temporary name, then move);
- folders are listed with the HostDatastoreBrowser (``tree``, ``names``: ``browse``).

Missing files and folders are answered with False or None where a method says so;
other failures raise the session's typed errors (VSphereError and subclasses). Every
method takes an optional ``what``, the action as error messages name it.
"""

import logging
import secrets

from ..errors import FileAlreadyExists, FileNotFoundOnDatastore
from .browse import list_folder, search_tree
from .files import DatastoreFiles
from .inventory import Inventory

log = logging.getLogger(__name__)


class DatastoreFolder:
    """File operations below one folder of a datastore; see the module docstring.

    ``inventory`` (to reuse its datastore lookups) and ``files`` default to new ones on
    ``session``.
    """

    def __init__(self, session, datastore, root="", inventory=None, files=None):
        self.session = session
        self.datastore = datastore
        self.root = root.strip("/")
        self.inventory = inventory or Inventory(session)
        self.files = files or DatastoreFiles(session)

    def path(self, rel=""):
        """The path on the datastore (without ``[ds]``)."""
        return "/".join(part for part in (self.root, rel.strip("/")) if part)

    def ds(self, rel=""):
        """The datastore path, ``[ds] root/rel``."""
        return f"[{self.datastore}] {self.path(rel)}"

    # --- FileManager ------------------------------------------------------------------

    def _make_directory(self, rel, parents, what):
        self.session.invoke(self.session.content.fileManager, "MakeDirectory", name=self.ds(rel),
                            datacenter=self.session.datacenter.ref, createParentDirectories=parents,
                            what=what or f"making {self.ds(rel)}")

    def make(self, rel, parents=False, what=None):
        """Create folder ``rel``: False when it exists.

        By default atomically: the folder itself is made without
        ``createParentDirectories``, which would succeed on an existing folder, and its
        parents only when vSphere says they are missing. ``parents``: one call that also
        makes missing parents (vSphere then need not say that the folder existed).
        """
        if parents:
            try:
                self._make_directory(rel, True, what)
            except FileAlreadyExists:
                return False
            return True
        for attempt in (1, 2):
            try:
                self._make_directory(rel, False, what)
                return True
            except FileAlreadyExists:
                return False
            except FileNotFoundOnDatastore:
                if attempt == 2:
                    raise
                self.make(rel.rpartition("/")[0], parents=True)
        raise AssertionError("unreachable")

    def move(self, rel, new_rel, replace=False, what=None):
        """Rename ``rel`` to ``new_rel``. FileNotFoundOnDatastore when ``rel`` (or the
        folder of ``new_rel``) does not exist; FileAlreadyExists when ``new_rel`` exists,
        unless ``replace``."""
        dc = self.session.datacenter.ref
        self.session.call_task(self.session.content.fileManager, "MoveDatastoreFile_Task",
                               sourceName=self.ds(rel), sourceDatacenter=dc, destinationName=self.ds(new_rel),
                               destinationDatacenter=dc, force=replace,
                               what=what or f"moving {self.ds(rel)} to {self.ds(new_rel)}")

    def delete(self, rel, quiet=False, what=None):
        """Delete file or folder ``rel`` with its content: False when it did not exist.

        ``quiet``: log other failures instead of raising them (cleanup after a failure).
        """
        try:
            self.session.call_task(self.session.content.fileManager, "DeleteDatastoreFile_Task",
                                   name=self.ds(rel), datacenter=self.session.datacenter.ref,
                                   what=what or f"deleting {self.ds(rel)}")
        except FileNotFoundOnDatastore:
            return False
        except Exception as err:
            if not quiet:
                raise
            log.warning("could not delete %s: %s", self.ds(rel), err)
            return False
        return True

    # --- small files over HTTP --------------------------------------------------------

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

    def write(self, rel, data):
        """Create or replace file ``rel`` with ``data`` (one HTTP PUT; missing folders are made)."""
        self.files.write(self.datastore, self.path(rel), data)

    def publish(self, rel, data, replace, temp_folder):
        """Make file ``rel`` hold ``data`` in one step: upload a temporary file into folder
        ``temp_folder``, then move it onto ``rel``, so a reader sees old or new content.

        ``replace`` False: FileAlreadyExists when ``rel`` exists. FileNotFoundOnDatastore
        when the folder of ``rel`` does not exist, provided ``temp_folder`` is another
        folder (an upload creates missing folders). The temporary file, named so that no
        other host picks the same, is deleted on failure.
        """
        temp_rel = f"{temp_folder}/.{rel.rpartition('/')[2]}-{secrets.token_hex(8)}.tmp".lstrip("/")
        self.write(temp_rel, data)
        try:
            self.move(temp_rel, rel, replace=replace)
        except BaseException:
            self.delete(temp_rel, quiet=True)
            raise

    # --- listings ---------------------------------------------------------------------

    def _browser(self):
        return self.inventory.datastore(self.datastore).browser

    def tree(self, rel=""):
        """{folder relative to ``rel``: {entry: browse.Entry}} of everything below ``rel``
        ("" for ``rel`` itself; {} when it does not exist): one search task."""
        return search_tree(self.session, self._browser(), self.ds(rel))

    def names(self, rel=""):
        """The names in folder ``rel`` ([] when it does not exist): one search task."""
        return list_folder(self.session, self._browser(), self.ds(rel))
