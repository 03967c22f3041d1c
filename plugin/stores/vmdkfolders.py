"""Where a datastore store keeps its volumes, in VIC's layout, and how a volume folder
appears there whole.

``VolumeLayout`` names the paths. A store with root ``[ds] path``
(``storespec.StoreSpec.datastore_root``) keeps volume ``NAME`` as::

    [ds] path/volumes/NAME/NAME.vmdk                        thin VMDK of Capacity x 1024 KiB
    [ds] path/volumes/NAME/imageMetadata/DockerMetaData     JSON, as VIC writes it

which is what a VCH creates and lists. Metadata is read from ``imageMetadata`` or
``ImageMetadata`` (VIC's documentation spells it so) and written to ``imageMetadata``.
Nothing else is ever placed under ``volumes/``: a VCH lists every entry there as a volume.

``StagingArea`` is how a volume folder gets there: it is built in
``[ds] path/vsphere-volume-staging/<host tag>-<random>/`` and moved to ``volumes/NAME``
in one MoveDatastoreFile, which also detects a volume of that name made meanwhile
(FileAlreadyExists -> Conflict). A staging folder that a crash left is this host's
(``leftovers``, by its host tag) to undo and delete at the next start.
"""

import hashlib
import secrets

from ..errors import Conflict, FileAlreadyExists
from .base import METADATA_FILE, metadata_bytes

VOLUMES = "volumes"
STAGING = "vsphere-volume-staging"
METADATA_DIRS = ("imageMetadata", "ImageMetadata")   # read in this order; write the first


class VolumeLayout:
    """The paths of the store of ``spec`` on its datastore; see the module docstring.

    Paths are relative to the datastore (``path/...``); ``ds`` makes them ``[ds] path/...``.
    ``host_vm`` (vsphere.hostvm.HostVM) names this host in its staging folders.
    """

    def __init__(self, spec, host_vm):
        self.spec = spec
        self.host_vm = host_vm

    @property
    def datastore(self):
        return self.spec.datastore

    def ds(self, path):
        """``[datastore] path`` for a path relative to the datastore."""
        return f"[{self.datastore}] {path}"

    @property
    def volumes_dir(self):
        return f"{self.spec.path}/{VOLUMES}"

    def volume_folder(self, name):
        """The folder of volume ``name`` (``path/volumes/NAME``)."""
        return f"{self.volumes_dir}/{name}"

    def disk(self, name):
        """The disk of volume ``name``, ``path/volumes/NAME/NAME.vmdk``."""
        return f"{self.volume_folder(name)}/{name}.vmdk"

    def disk_path(self, name):
        """The disk of volume ``name`` as a datastore path, ``[ds] path/volumes/NAME/NAME.vmdk``."""
        return self.ds(self.disk(name))

    def metadata_path(self, name, metadata_dir=METADATA_DIRS[0]):
        """The DockerMetaData of volume ``name`` in one of ``METADATA_DIRS``."""
        return f"{self.volume_folder(name)}/{metadata_dir}/{METADATA_FILE}"

    @property
    def staging_dir(self):
        return f"{self.spec.path}/{STAGING}"

    def staging_prefix(self):
        """What the paths of this host's staging folders start with (finds the host's VM)."""
        host_tag = hashlib.sha1(self.host_vm.name.encode("utf-8")).hexdigest()[:12]  # noqa: S324 - a name, not security
        return f"{self.staging_dir}/{host_tag}-"


class StagingArea:
    """This host's staging folders of one store (``layout``), on its datastore (``folder``,
    a vsphere.folders.DatastoreFolder of the whole datastore); see the module docstring."""

    def __init__(self, layout, folder):
        self.layout = layout
        self.folder = folder

    def new(self, purpose="a staging folder"):
        """Make a new staging folder of this host; return its path (relative to the datastore).

        ``publish`` moves a complete one into ``volumes/``, ``discard`` deletes one.
        """
        staging = f"{self.layout.staging_prefix()}{secrets.token_hex(6)}"
        self.folder.make(staging, parents=True, what=f"making {purpose} ({self.layout.ds(staging)})")
        return staging

    def write_metadata(self, staging, metadata):
        """Write DockerMetaData (a dict) into volume folder ``staging`` (one PUT)."""
        self.folder.write(f"{staging}/{METADATA_DIRS[0]}/{METADATA_FILE}", metadata_bytes(metadata))

    def name_taken(self, name):
        """The Conflict of a create whose volume ``name`` exists in the store."""
        return Conflict(f"volume {name} already exists in volume store {self.layout.spec.label} "
                        f"({self.layout.ds(self.layout.volume_folder(name))})")

    def publish(self, name, staging):
        """Move complete staging folder ``staging`` to ``volumes/<name>`` in one step;
        Conflict when a volume of that name exists."""
        target = self.layout.volume_folder(name)
        try:
            self.folder.move(staging, target, what=f"moving volume {name} into place ({self.layout.ds(target)})")
        except FileAlreadyExists:
            raise self.name_taken(name) from None

    def discard(self, staging):
        """Delete staging folder ``staging`` and what it holds; a failure is logged only."""
        self.folder.delete(staging, quiet=True)

    def leftovers(self):
        """The staging folders of this host on the datastore: what crashed creates and
        restores left (none is in use before the store is opened)."""
        prefix = self.layout.staging_prefix()
        found = [f"{self.layout.staging_dir}/{entry}" for entry in self.folder.names(self.layout.staging_dir)]
        return [path for path in found if path.startswith(prefix)]
