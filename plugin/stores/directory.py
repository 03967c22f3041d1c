"""Directory volume stores: a host folder (``file://``) or an NFS export (``nfs://``).

Layout, as VIC lays out NFS volume stores::

    <root>/volumes/<name>/                         the volume's data, owned by uid:gid
    <root>/volumes_metadata/<name>/DockerMetaData  VIC's JSON metadata

``<root>/.vsphere-volume-trash/`` holds volumes being deleted: ``remove`` first renames
the data folder there (atomic: the volume is gone at once), then deletes. ``open``
empties it, so a crash mid-delete is finished at the next start. A data folder without
metadata (a crash mid-create) gets default metadata written at discovery.

``<root>/.vsphere-volume-staging/`` holds data being restored in place: a folder is
filled there, renamed ``<name>.ready`` once complete, then swapped with the volume's
data (old data to the trash, ready folder into place). ``open`` finishes a swap that a
crash interrupted (ready folder, no data folder) before it empties the trash, and drops
staging folders that never became ready.
"""

import datetime
import logging
import os
import shutil
import uuid

from ..errors import BackendError, Conflict, NotFound
from ..fsutil import atomic_write_json, read_json
from ..storespec import NFS
from .base import METADATA_FILE, StoredVolume, VolumeStore, docker_metadata

log = logging.getLogger(__name__)

TRASH = ".vsphere-volume-trash"
STAGING = ".vsphere-volume-staging"
READY = ".ready"


def _rfc3339(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


class DirectoryStore(VolumeStore):
    """A volume store whose volumes are folders.

    ``root`` is the folder as this process sees it. For NFS stores it is where the
    export gets mounted by ``open`` (through ``mounter``).
    """

    def __init__(self, spec, root, mounter=None):
        super().__init__(spec)
        self.root = root
        self._mounter = mounter
        self.volumes_dir = os.path.join(root, "volumes")
        self.metadata_dir = os.path.join(root, "volumes_metadata")
        self.trash_dir = os.path.join(root, TRASH)
        self.staging_dir = os.path.join(root, STAGING)

    # --- paths ---------------------------------------------------------------------------
    def data_path(self, name):
        return os.path.join(self.volumes_dir, name)

    def _metadata_path(self, name):
        return os.path.join(self.metadata_dir, name, METADATA_FILE)

    # --- contract --------------------------------------------------------------------------
    def open(self):
        if self.spec.kind == NFS:
            self._mount_export()
        try:
            for folder in (self.volumes_dir, self.metadata_dir, self.trash_dir, self.staging_dir):
                os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise BackendError(f"volume store {self.label}: cannot prepare {self.root}: {err.strerror}") from None
        self._finish_swaps()
        self._empty_trash()

    def _finish_swaps(self):
        for entry in os.listdir(self.staging_dir):
            path = os.path.join(self.staging_dir, entry)
            name = entry[:-len(READY)] if entry.endswith(READY) else None
            if name and not os.path.exists(self.data_path(name)):
                log.info("volume store %s: finishing the interrupted restore of %s", self.label, name)
                os.rename(path, self.data_path(name))
            else:
                shutil.rmtree(path, ignore_errors=True)

    def _mount_export(self):
        with open("/proc/filesystems", encoding="ascii") as handle:
            if not any(line.split()[-1:] == ["nfs"] for line in handle):
                raise BackendError(
                    f"volume store {self.label}: this host's kernel has no NFS client, "
                    f"so {self.spec.spec} cannot be mounted")
        self._mounter.mount(f"{self.spec.host}:{self.spec.path}", self.root, fstype="nfs",
                            options=("vers=3", f"proto={self.spec.proto}", "nolock"))

    def _empty_trash(self):
        for entry in os.listdir(self.trash_dir):
            path = os.path.join(self.trash_dir, entry)
            log.info("volume store %s: finishing an interrupted delete of %s", self.label, entry)
            shutil.rmtree(path, ignore_errors=True)

    def discover(self, known=None):
        found = []
        for entry in sorted(os.scandir(self.volumes_dir), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                continue
            found.append(self._read_volume(entry.name, entry.stat().st_mtime))
        return found

    def lookup(self, name):
        try:
            mtime = os.stat(self.data_path(name)).st_mtime
        except FileNotFoundError:
            return None
        return self._read_volume(name, mtime)

    def _read_volume(self, name, mtime):
        path = self._metadata_path(name)
        try:
            metadata = read_json(path)
            return StoredVolume(name, metadata, _rfc3339(os.stat(path).st_mtime))
        except FileNotFoundError:
            # A crash between the data folder and its metadata: repair with defaults.
            log.warning("volume store %s: volume %s had no metadata; writing defaults", self.label, name)
            metadata = docker_metadata(name, {})
            self._write_metadata(name, metadata)
            return StoredVolume(name, metadata, _rfc3339(mtime))
        except (OSError, ValueError) as err:
            return StoredVolume(name, {}, _rfc3339(mtime), problem=f"unreadable metadata: {err}")

    def _write_metadata(self, name, metadata):
        os.makedirs(os.path.dirname(self._metadata_path(name)), exist_ok=True)
        atomic_write_json(self._metadata_path(name), metadata)

    def create(self, name, options, metadata):
        data = self.data_path(name)
        try:
            os.mkdir(data, 0o755)  # the atomic claim on the name
        except FileExistsError:
            raise Conflict(f"volume {name} already exists in volume store {self.label}") from None
        try:
            os.chown(data, self.spec.uid, self.spec.gid)
            self._write_metadata(name, metadata)
        except BaseException:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(os.path.dirname(self._metadata_path(name)), ignore_errors=True)
            raise

    def remove(self, name):
        data = self.data_path(name)
        trash = os.path.join(self.trash_dir, f"{name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(data, trash)
        except FileNotFoundError:
            raise NotFound(f"volume {name} is not in volume store {self.label}") from None
        shutil.rmtree(os.path.join(self.metadata_dir, name), ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)

    def new_staging(self, name):
        """An empty folder, outside ``volumes/``, to fill with ``name``'s new data."""
        path = os.path.join(self.staging_dir, f"{name}-{uuid.uuid4().hex[:8]}")
        os.mkdir(path, 0o755)
        return path

    def replace_data(self, name, staged):
        """Make the complete folder ``staged`` the data of ``name``; the old data is deleted.

        Crash-safe with ``open``: the staged folder is first marked ready, then the old
        data goes to the trash and the ready folder takes its place.
        """
        ready = os.path.join(self.staging_dir, name + READY)
        shutil.rmtree(ready, ignore_errors=True)
        os.rename(staged, ready)
        trash = os.path.join(self.trash_dir, f"{name}-{uuid.uuid4().hex[:8]}")
        os.rename(self.data_path(name), trash)
        os.rename(ready, self.data_path(name))
        shutil.rmtree(trash, ignore_errors=True)

    def attach(self, name):
        data = self.data_path(name)
        if not os.path.isdir(data):
            raise NotFound(f"volume {name}'s folder is missing from volume store {self.label}")
        return data

    def detach(self, name):
        """Nothing to undo: a folder needs no attaching."""

    def status(self, name):
        return {"Path": self.data_path(name)}

