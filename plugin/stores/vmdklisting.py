"""What a datastore store holds now: its volumes, their metadata and problems.

``VolumeListing`` answers a store's ``discover``, ``refresh`` and ``lookup`` from the
datastore: one search task lists ``volumes/`` with everything below it (or one volume's
folder), and the DockerMetaData files are read over HTTP, concurrently. A folder without
its disk or metadata, or metadata that does not parse, is listed with a ``problem``.
"""

import json
from dataclasses import dataclass

from ..errors import VolumeError
from ..options import CAPACITY, DEFAULT_CAPACITY_MB, option_value, parse_capacity_mb
from ..vsphere.browse import modified_rfc3339
from .base import METADATA_FILE, StoredVolume
from .vmdkfolders import METADATA_DIRS

NO_METADATA = "no imageMetadata/DockerMetaData file"


def parse_metadata(data, metadata_dir):
    """(DockerMetaData as a dict, problem text) from the bytes of the file."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except ValueError as err:
        return {}, f"its {metadata_dir}/{METADATA_FILE} is not valid JSON: {err}"
    if not isinstance(parsed, dict):
        return {}, f"its {metadata_dir}/{METADATA_FILE} is not a JSON object"
    return parsed, ""


def _parsed(document, metadata_dir):
    """(metadata, problem) of a read that gave bytes or a VolumeError."""
    if isinstance(document, VolumeError):
        return {}, f"its metadata could not be read: {document}"
    return parse_metadata(document, metadata_dir)


def metadata_capacity_mb(metadata):
    """The Capacity in a volume's DockerMetaData DriverOpts (any key case), else the default."""
    value = option_value((metadata or {}).get("DriverOpts"), CAPACITY)
    try:
        return DEFAULT_CAPACITY_MB if value is None else parse_capacity_mb(value)
    except VolumeError:
        return DEFAULT_CAPACITY_MB


def _spelling(tree, folder):
    """The metadata folder of ``folder`` (a folder of ``tree``, a search's answer) that
    holds DockerMetaData, or None."""
    return next((d for d in METADATA_DIRS if METADATA_FILE in tree.get(f"{folder}{d}", {})), None)


@dataclass(frozen=True)
class Listed:
    """A volume ``discover`` found, and the names of the VMs its disk is attached to ("" for none)."""

    volume: StoredVolume
    attached_to: str


class VolumeListing:
    """The volumes of one store (``layout``) as its datastore (``folder``, a
    vsphere.folders.DatastoreFolder) holds them; ``inventory`` says who has which disk;
    ``workers``: how many metadata files are read at once."""

    def __init__(self, layout, folder, inventory, workers=8):
        self.layout = layout
        self.folder = folder
        self.inventory = inventory
        self.workers = workers

    def discover(self, known=None):
        """A Listed for every entry of ``<root>/volumes``, with its metadata, creation time
        and problems: one search task, who has which disk, one GET per metadata file.

        The metadata of names in ``known`` ({name: StoredVolume}, with metadata) is
        reused, not read again.
        """
        known = known or {}
        tree = self.folder.tree(self.layout.volumes_dir)
        users = self.inventory.disk_users()
        names = sorted(tree.get("", {}))
        spelling = {name: _spelling(tree, f"{name}/") for name in names}
        reused = {n: known[n].metadata for n in names if spelling[n] and n in known and known[n].metadata}
        documents = self.folder.read_many(
            [self.layout.metadata_path(n, d) for n, d in spelling.items() if d and n not in reused],
            workers=self.workers)
        found = []
        for name in names:
            meta, problem = reused.get(name, {}), "" if name in reused else NO_METADATA
            if spelling[name] and name not in reused:
                meta, problem = _parsed(documents[self.layout.metadata_path(name, spelling[name])], spelling[name])
            if f"{name}.vmdk" not in tree.get(name, {}):
                problem = f"no disk {name}.vmdk in its folder"
            attached = ", ".join(vm.name for vm in users.users(self.layout.disk_path(name)))
            found.append(Listed(StoredVolume(name=name, metadata=meta, problem=problem,
                                             created_at=modified_rfc3339(tree[""][name])), attached))
        return found

    def names(self):
        """The names in ``<root>/volumes``: one search task, whatever their number."""
        return sorted(self.folder.names(self.layout.volumes_dir))

    def lookup(self, name):
        """Volume ``name`` as the datastore holds it now, or None: one listing of its
        folder and one GET of its metadata."""
        tree = self.folder.tree(self.layout.volume_folder(name))
        if not tree:
            return None
        disk = tree.get("", {}).get(f"{name}.vmdk")
        spelling = _spelling(tree, "")
        meta, problem = {}, NO_METADATA
        if spelling:
            path = self.layout.metadata_path(name, spelling)
            meta, problem = _parsed(self.folder.read_many([path])[path], spelling)
        if disk is None:
            problem = f"no disk {name}.vmdk in its folder"
        return StoredVolume(name=name, metadata=meta, problem=problem,
                            created_at=modified_rfc3339(disk) if disk is not None else "")

    def read_metadata(self, name):
        """The volume's parsed DockerMetaData from either spelling, or None (one or two GETs)."""
        for metadata_dir in METADATA_DIRS:
            data = self.folder.read(self.layout.metadata_path(name, metadata_dir))
            if data is not None:
                return parse_metadata(data, metadata_dir)[0]
        return None
