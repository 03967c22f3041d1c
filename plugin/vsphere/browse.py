"""Listing datastore folders with the HostDatastoreBrowser (one task per listing).

``list_folder`` lists one folder; ``search_tree`` lists a folder and everything below
it in one ``SearchDatastoreSubFolders`` task. Both ask for every name (``matchPattern
["*"]``: without it the simulator returns nothing) with type, size and modification
time, and return ``None``-free results: a folder that does not exist lists as empty.
What a listing found of an entry is an ``Entry`` (size, modification time), not
vSphere's FileInfo.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from pyVmomi import vim

from ..errors import FileNotFoundOnDatastore
from ..timefmt import rfc3339


@dataclass(frozen=True)
class Entry:
    """A file or folder as a listing found it: its size in bytes (0 when not given) and
    modification time (an aware UTC datetime; None when not given)."""

    size: int = 0
    modified: datetime | None = None


def _entry(info):
    modified = getattr(info, "modification", None)
    if modified is not None and modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return Entry(int(getattr(info, "fileSize", 0) or 0), modified)


def _search(session, browser, method, ds_path):
    details = vim.host.DatastoreBrowser.FileInfo.Details(
        fileType=True, fileSize=True, modification=True, fileOwner=False)
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"], details=details)
    try:
        return session.call_task(browser, method, datastorePath=ds_path, searchSpec=spec,
                                 what=f"listing {ds_path}")
    except FileNotFoundOnDatastore:
        return None


def list_folder(session, browser, ds_path):
    """Names of the entries of folder ``ds_path`` (``[ds] a/b``); [] if it does not exist."""
    result = _search(session, browser, "SearchDatastore_Task", ds_path)
    return [f.path for f in (result.file if result else None) or []]


def search_tree(session, browser, ds_path):
    """{folder relative to ``ds_path`` ("" for itself): {entry name: Entry}}."""
    results = _search(session, browser, "SearchDatastoreSubFolders_Task", ds_path) or []
    tree = {}
    for result in results:
        relative = _relative(result.folderPath, ds_path)
        if relative is not None:
            tree[relative] = {f.path: _entry(f) for f in result.file or []}
    return tree


def _relative(folder_path, prefix):
    """``[ds] a/volumes/x/`` relative to ``[ds] a/volumes`` -> ``x`` (None if outside)."""
    folder = folder_path.rstrip("/")
    if folder == prefix:
        return ""
    if folder.startswith(prefix + "/"):
        return folder[len(prefix) + 1:]
    return None


def modified_rfc3339(entry):
    """The modification time of an Entry as RFC 3339 UTC, or "" when not given."""
    if entry.modified is None:
        return ""
    return rfc3339(entry.modified)
