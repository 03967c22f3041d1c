"""Directory volume stores: a host folder (``file://``) or an NFS export (``nfs://``).

Layout, as VIC lays out NFS volume stores (``lib/portlayer/storage/volume/nfs/store.go``)::

    <root>/volumes/<name>/                         the volume's data, 0755, owned by uid:gid
    <root>/volumes_metadata/<name>/DockerMetaData  VIC's JSON metadata, as VIC writes it

**Who acts.** On an NFS store every file operation runs as the store's uid and gid
(``fsidentity.acting_as``), as VIC's own NFS client does, so an export that squashes
root works and what is made belongs to that user. On a folder store the plugin acts as
itself (root) and gives the data folder to uid:gid.

**Create: whole or not at all.** VIC and ``discover`` list ``volumes/``: a data folder
there is a volume. So a new volume is first built in this host's folder
``<root>/.vsphere-volume-creating/<host tag>-<random>/``, in the store's own layout
(``volumes/<name>/`` and ``volumes_metadata/<name>/DockerMetaData``), then published
by two renames:

1. its metadata folder into ``volumes_metadata/``: the claim on the name (renaming a
   folder onto a non-empty one fails, on NFS too; only an empty metadata folder, which
   holds nothing, can be replaced);
2. its data folder into ``volumes/``: the volume exists, with its metadata. A data
   folder that is not empty fails it (the claim is undone, Conflict); an empty one can
   only be a half-made volume without metadata (a VCH's interrupted create), and
   holds nothing.

A crash before 1 leaves only the building folder; a crash after 1 leaves the claimed
metadata and the building folder with the data folder. ``open`` deletes the first and
finishes the second (step 2), for this host's building folders, and for other hosts'
older than ``ORPHAN_AGE`` (a host that never came back); a younger one of another host
may be a create in progress.

**Remove** renames the data folder into ``<root>/.vsphere-volume-trash/`` (the volume is
gone at once), deletes its metadata folder, then the data. ``open`` empties the trash.

**Leftovers cleaned by open**: a metadata folder without a data folder (a crash
mid-remove; never listed by VIC or this plugin) is deleted, on a shared (NFS) store only
once it is ``ORPHAN_AGE`` old by the server's clock (younger, it may be a create of
another host between its two steps); ``.tmp-*`` files of interrupted atomic writes in
metadata folders, by the same rule. A data folder without metadata (made by a VCH or an
earlier version that crashed mid-create) is listed with a Problem; it may hold data,
so nothing is written or deleted there.

``<root>/.vsphere-volume-staging/`` holds data being restored in place: a folder is
filled there, renamed ``<name>.ready`` once complete, then swapped with the volume's
data (old data to the trash, ready folder into place). ``open`` finishes a swap that a
crash interrupted (ready folder, no data folder) before it empties the trash, and drops
staging folders that never became ready.
"""

import contextlib
import datetime
import errno
import hashlib
import logging
import os
import shutil
import socket
import threading
import uuid

from ..errors import BackendError, Conflict, NotFound
from ..fsidentity import acting_as
from ..fsutil import TEMP_PREFIX, fsync_folder, read_json
from ..storespec import NFS
from .base import METADATA_FILE, StoredVolume, VolumeStore, metadata_bytes
from ..timefmt import rfc3339

log = logging.getLogger(__name__)

TRASH = ".vsphere-volume-trash"
STAGING = ".vsphere-volume-staging"
CREATING = ".vsphere-volume-creating"
READY = ".ready"
VOLUMES, METADATA = "volumes", "volumes_metadata"
FOLDER_MODE, FILE_MODE = 0o755, 0o644
ORPHAN_AGE = 600                   # seconds before another host's leftover is taken for one


def _rfc3339(timestamp):
    return rfc3339(datetime.datetime.fromtimestamp(timestamp, datetime.UTC))


def kernel_has_nfs(filesystems="/proc/filesystems"):
    """True when this host's kernel has an NFS client."""
    with open(filesystems, encoding="ascii") as handle:
        return any(line.split()[-1:] == ["nfs"] for line in handle)


def _write_new(path, data):
    """Write ``data`` to the new file ``path`` (FILE_MODE, whatever the umask), fsync'd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(path):
    os.mkdir(path, FOLDER_MODE)
    os.chmod(path, FOLDER_MODE)          # not narrowed by the umask: VIC's 0755


class DirectoryStore(VolumeStore):
    """A volume store whose volumes are folders.

    ``root`` is the folder as this process sees it. For NFS stores it is where the
    export gets mounted by ``open`` (through ``mounter``; ``has_nfs`` tells whether the
    kernel can). ``host`` names this host in its building folders (default: the host
    name); ``orphan_age`` is ORPHAN_AGE.
    """

    def __init__(self, spec, root, mounter=None, host=None, has_nfs=kernel_has_nfs, orphan_age=ORPHAN_AGE):
        super().__init__(spec)
        self.root = root
        self._mounter = mounter
        self._has_nfs = has_nfs
        self.orphan_age = orphan_age
        self.volumes_dir = os.path.join(root, VOLUMES)
        self.metadata_dir = os.path.join(root, METADATA)
        self.trash_dir = os.path.join(root, TRASH)
        self.staging_dir = os.path.join(root, STAGING)
        self.creating_dir = os.path.join(root, CREATING)
        host = host or socket.gethostname()
        self._host_tag = hashlib.sha1(host.encode("utf-8")).hexdigest()[:12]  # noqa: S324 - a name, not security
        # This process's creates (never leftovers, whatever open finds meanwhile).
        self._mine = f"{self._host_tag}-{uuid.uuid4().hex[:8]}-"
        self._creating = set()
        self._creating_lock = threading.Lock()

    # --- who acts --------------------------------------------------------------------------
    def acting(self):
        """The context in which this store's file operations run (see the module docstring)."""
        if self.spec.kind == NFS:
            return acting_as(self.spec.uid, self.spec.gid)
        return contextlib.nullcontext()

    def _as_who(self):
        return f" as uid {self.spec.uid} gid {self.spec.gid}" if self.spec.kind == NFS else ""

    # --- paths ---------------------------------------------------------------------------
    def data_path(self, name):
        return os.path.join(self.volumes_dir, name)

    def _metadata_folder(self, name):
        return os.path.join(self.metadata_dir, name)

    def _metadata_path(self, name):
        return os.path.join(self.metadata_dir, name, METADATA_FILE)

    # --- contract --------------------------------------------------------------------------
    def open(self):
        if self.spec.kind == NFS:
            self._mount_export()
        with self.acting():
            try:
                os.makedirs(self.root, exist_ok=True)
                for folder in (self.volumes_dir, self.metadata_dir, self.trash_dir, self.staging_dir,
                               self.creating_dir):
                    if not os.path.isdir(folder):
                        _make_folder(folder)
            except OSError as err:
                raise BackendError(f"volume store {self.label}: cannot prepare {self.root}{self._as_who()}: "
                                   f"{err.strerror}") from None
            now = self._store_now()
            self._finish_creates(now)
            self._finish_swaps()
            self._empty_trash()
            self._clean_metadata(now)

    def _mount_export(self):
        if not self._has_nfs():
            raise BackendError(
                f"volume store {self.label}: this host's kernel has no NFS client, "
                f"so {self.spec.spec} cannot be mounted")
        options = ["vers=3", f"proto={self.spec.proto}", "nolock"]
        if self.spec.port:
            options.append(f"port={self.spec.port}")
        self._mounter.mount(f"{self.spec.host}:{self.spec.path}", self.root, fstype="nfs", options=options)

    def _store_now(self):
        """The store's clock (the NFS server's, which stamps its files): touch and read back."""
        os.utime(self.creating_dir)
        return os.stat(self.creating_dir).st_mtime

    def _leftover(self, path, now):
        """True when ``path`` is old enough to be a leftover rather than work in progress
        of another host: always on a store of this host alone, else after orphan_age."""
        if not self.shared:
            return True
        try:
            return now - os.lstat(path).st_ctime >= self.orphan_age
        except FileNotFoundError:
            return False

    def _finish_creates(self, now):
        for entry in sorted(os.listdir(self.creating_dir)):
            building = os.path.join(self.creating_dir, entry)
            if entry.startswith(self._mine):
                continue            # a create of this process, running now
            if not entry.startswith(f"{self._host_tag}-") and not self._leftover(building, now):
                continue            # another host's create, maybe still running
            for name in self._listed(os.path.join(building, VOLUMES)):
                self._finish_create(name, building)
            shutil.rmtree(building, ignore_errors=True)

    def _finish_create(self, name, building):
        if os.path.lexists(os.path.join(building, METADATA, name)):
            log.info("volume store %s: dropping the interrupted create of %s (it was not claimed)", self.label, name)
        elif os.path.isdir(self._metadata_folder(name)) and not os.path.lexists(self.data_path(name)):
            os.rename(os.path.join(building, VOLUMES, name), self.data_path(name))
            log.info("volume store %s: finished the interrupted create of volume %s", self.label, name)

    @staticmethod
    def _listed(folder):
        try:
            return sorted(os.listdir(folder))
        except FileNotFoundError:
            return []

    def _finish_swaps(self):
        for entry in os.listdir(self.staging_dir):
            path = os.path.join(self.staging_dir, entry)
            name = entry[:-len(READY)] if entry.endswith(READY) else None
            if name and not os.path.exists(self.data_path(name)):
                log.info("volume store %s: finishing the interrupted restore of %s", self.label, name)
                os.rename(path, self.data_path(name))
            else:
                shutil.rmtree(path, ignore_errors=True)

    def _empty_trash(self):
        for entry in os.listdir(self.trash_dir):
            path = os.path.join(self.trash_dir, entry)
            log.info("volume store %s: finishing an interrupted delete of %s", self.label, entry)
            shutil.rmtree(path, ignore_errors=True)

    def _clean_metadata(self, now):
        with self._creating_lock:
            creating = set(self._creating)
        for entry in sorted(os.scandir(self.metadata_dir), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False) or entry.name in creating:
                continue
            if os.path.lexists(self.data_path(entry.name)):
                for leftover in self._listed(entry.path):
                    path = os.path.join(entry.path, leftover)
                    if leftover.startswith(TEMP_PREFIX) and self._leftover(path, now):
                        log.info("volume store %s: deleting %s, left by an interrupted write", self.label, path)
                        os.unlink(path)
            elif self._leftover(entry.path, now):
                log.info("volume store %s: deleting the metadata of %s, whose volume is gone "
                         "(an interrupted remove)", self.label, entry.name)
                shutil.rmtree(entry.path, ignore_errors=True)

    def discover(self, known=None):
        with self.acting():
            found = []
            for entry in sorted(os.scandir(self.volumes_dir), key=lambda e: e.name):
                if not entry.is_dir(follow_symlinks=False):
                    continue
                found.append(self._read_volume(entry.name, entry.stat().st_mtime))
            return found

    def lookup(self, name):
        with self.acting():
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
            return StoredVolume(name, {}, _rfc3339(mtime), problem=(
                f"it has no metadata ({METADATA}/{name}/{METADATA_FILE} is missing: a create that did not "
                "finish, of a VCH or an earlier plugin version); its options are unknown"))
        except (OSError, ValueError) as err:
            return StoredVolume(name, {}, _rfc3339(mtime), problem=f"unreadable metadata: {err}")

    def create(self, name, options, metadata):
        with self.acting(), self._creating_now(name):
            if os.path.lexists(self.data_path(name)):
                raise self._exists(name)
            try:
                building = os.path.join(self.creating_dir, f"{self._mine}{uuid.uuid4().hex[:12]}")
                _make_folder(building)
            except OSError as err:
                raise BackendError(f"volume store {self.label}: cannot create volume {name} in {self.root}"
                                   f"{self._as_who()}: {err.strerror}") from None
            try:
                data, meta = self._build(building, name, metadata)
                self._claim(name, meta)
                try:
                    self._publish(name, data)
                except BaseException:
                    shutil.rmtree(self._metadata_folder(name), ignore_errors=True)   # the claim just made
                    raise
            except OSError as err:
                raise BackendError(f"volume store {self.label}: cannot create volume {name}{self._as_who()}: "
                                   f"{err.strerror or err}") from None
            finally:
                shutil.rmtree(building, ignore_errors=True)

    @contextlib.contextmanager
    def _creating_now(self, name):
        with self._creating_lock:
            self._creating.add(name)
        try:
            yield
        finally:
            with self._creating_lock:
                self._creating.discard(name)

    def _build(self, building, name, metadata):
        """The volume's data and metadata folders, complete, in ``building``."""
        data = os.path.join(building, VOLUMES, name)
        meta = os.path.join(building, METADATA, name)
        for folder in (os.path.dirname(data), data, os.path.dirname(meta), meta):
            _make_folder(folder)
        if self.spec.kind != NFS:
            os.chown(data, self.spec.uid, self.spec.gid)
        _write_new(os.path.join(meta, METADATA_FILE), metadata_bytes(metadata))
        fsync_folder(meta)
        return data, meta

    def _claim(self, name, meta):
        """Step 1: the metadata folder into place; Conflict when the name is taken."""
        target = self._metadata_folder(name)
        for attempt in (1, 2):
            try:
                os.rename(meta, target)
                fsync_folder(self.metadata_dir)
                return
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            if os.path.lexists(self.data_path(name)):
                raise self._exists(name)
            if attempt == 1 and self._leftover(target, self._store_now()):
                log.info("volume store %s: deleting the metadata of %s left without its volume", self.label, name)
                shutil.rmtree(target, ignore_errors=True)
                continue
            raise Conflict(
                f"volume {name} is being created in volume store {self.label} by another host: its metadata "
                f"({target}) is there, its folder not yet. Try again in a moment; if no host is creating it, "
                f"it is cleaned up {self.orphan_age // 60} minutes after it was made")

    def _publish(self, name, data):
        """Step 2: the data folder into ``volumes/``; the volume exists."""
        try:
            os.rename(data, self.data_path(name))
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise self._exists(name) from None
            raise
        fsync_folder(self.volumes_dir)

    def _exists(self, name):
        return Conflict(f"volume {name} already exists in volume store {self.label}")

    def remove(self, name):
        with self.acting():
            data = self.data_path(name)
            trash = os.path.join(self.trash_dir, f"{name}-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(data, trash)
            except FileNotFoundError:
                raise NotFound(f"volume {name} is not in volume store {self.label}") from None
            shutil.rmtree(self._metadata_folder(name), ignore_errors=True)
            shutil.rmtree(trash, ignore_errors=True)

    def new_staging(self, name):
        """An empty folder, outside ``volumes/``, to fill with ``name``'s new data."""
        with self.acting():
            path = os.path.join(self.staging_dir, f"{name}-{uuid.uuid4().hex[:8]}")
            _make_folder(path)
            return path

    def replace_data(self, name, staged):
        """Make the complete folder ``staged`` the data of ``name``; the old data is deleted.

        Crash-safe with ``open``: the staged folder is first marked ready, then the old
        data goes to the trash and the ready folder takes its place.
        """
        with self.acting():
            ready = os.path.join(self.staging_dir, name + READY)
            shutil.rmtree(ready, ignore_errors=True)
            os.rename(staged, ready)
            trash = os.path.join(self.trash_dir, f"{name}-{uuid.uuid4().hex[:8]}")
            os.rename(self.data_path(name), trash)
            os.rename(ready, self.data_path(name))
            shutil.rmtree(trash, ignore_errors=True)

    def attach(self, name, wait=0.0):
        data = self.data_path(name)
        with self.acting():
            if not os.path.isdir(data):
                raise NotFound(f"volume {name}'s folder is missing from volume store {self.label}")
        return data

    def detach(self, name):
        """Nothing to undo: a folder needs no attaching."""

    def status(self, name):
        return {"Path": self.data_path(name)}
