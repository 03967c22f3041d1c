"""A volume's files as a folder: what an off-site copy reads, where a restore from one writes.

A copy reads a point-in-time view of the volume (a ``contract.Source``); a restore writes
into an empty folder that then becomes the volume's data (a ``contract.Sink``). ``Views``
makes the right ones for a volume's kind of store:

- **folder volumes** (file and NFS stores): with a local ``Backup`` policy, the copy run
  takes a local backup first (the local tier keeps it, as any backup of the volume) and
  copies that point-in-time copy, the rsync backup folder (whose unchanged files are hard
  links: compared by size and mtime). Without one, the volume's own folder is read, file
  by file as a folder backup reads it (a point-in-time copy would be a full copy each
  time). A restore fills a staging folder of the store that then replaces the volume's
  folder (``DirectoryStore.replace_data``: crash-safe);
- **VMDK volumes** (``diskviews``): the snapshot-then-clone of the local tier, attached
  read-only to this host's VM and mounted read-only; kept as a local backup with a local
  policy, dropped after the copy without one. A restore fills a new disk with VIC's
  filesystem that then replaces the volume's disk in one step.

Every view is released when its block ends, however it ends.
"""

import shutil
from contextlib import contextmanager

from ..backup.contract import Sink, Source, Tree
from ..backup.dircopy import data_folder
from ..policy.schedule import OFF
from ..storespec import DATASTORE


class LocalPointInTime:
    """A committed local backup of a volume as a copy's point in time: made by the local
    tier (``service.operations``), spared by retention on this host while it is read."""

    def __init__(self, service):
        self.service = service

    @contextmanager
    def backup(self, volume, origin):
        """Take a local backup of ``volume`` now; give ``(its data Manifest, where that
        data is)`` in the backup store's own terms while the block runs. A scheduled copy's
        backup is not held back by the local tier's turns: the copy run followed its own."""
        manifest = self.service.operations.backup(volume, origin, one_per_run=False)
        repository = self.service.targets.get(volume.options.backup_store).repository
        data = repository.data_manifest(manifest)
        with self.service.board.reading(data.volume, data.backup_id):
            yield manifest, repository.location(data.volume, data.backup_id), data


class FolderSource(Source):
    def __init__(self, volume, store, local, origin, clock):
        self.volume, self.store = volume, store
        self._local, self._origin, self._clock = local, origin, clock

    @contextmanager
    def tree(self):
        if self.volume.options.backup.kind == OFF:
            yield Tree(self.store.data_path(self.volume.name), self._clock())
            return
        with self._local.backup(self.volume, self._origin) as (manifest, location, _):
            yield Tree(str(data_folder(location)), manifest.created, ctime_kept=False)


class FolderSink(Sink):
    def __init__(self, volume, store):
        self.volume, self.store = volume, store

    @contextmanager
    def tree(self):
        staged = self.store.new_staging(self.volume.name)
        try:
            yield staged
            self.store.replace_data(self.volume.name, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise


class Views:
    """Sources and sinks of the volumes of ``service`` (a bound BackupService)."""

    def __init__(self, service):
        self.service = service
        self.local = LocalPointInTime(service)

    def _store(self, volume):
        self.service.volumes.store(volume.store)          # it answers (or this says why not)
        return self.service.stores[volume.store]

    def source(self, volume, origin):
        """The Source a copy of ``volume`` made for ``origin`` reads."""
        store = self._store(volume)
        if store.spec.kind == DATASTORE:
            from .diskviews import DiskSource    # pyvmomi is loaded only when needed
            return DiskSource(volume, store, self.service, self.local, origin)
        return FolderSource(volume, store, self.local, origin, self.service.clock)

    def sink(self, volume):
        """The Sink a restore into ``volume`` writes to."""
        store = self._store(volume)
        if store.spec.kind == DATASTORE:
            from .diskviews import DiskSink
            return DiskSink(volume, store, self.service.engines[DATASTORE])
        return FolderSink(volume, store)

    def cleanup(self, label):
        """What a killed copy of a volume of store ``label`` left on this host: its
        clone's read-only mount and attachment."""
        store = self.service.stores[label]
        if store.spec.kind == DATASTORE and DATASTORE in self.service.engines:
            from .diskviews import cleanup_clones
            return cleanup_clones(store, self.service.engines[DATASTORE])
        return []
