"""The backup engine of folder volumes (file and NFS stores), on top of ``dircopy``.

A backup is a folder copy in ``<backup>/data``, unchanged files hard-linked to the
previous backup's (which is a sibling folder in the same repository). A restore fills
an empty folder outside ``volumes/`` and swaps it in (``DirectoryStore.replace_data``).
"""

import os
import shutil

from ..storespec import FILE, NFS
from .dircopy import BACKUP_DATA_FOLDER, DirectoryCopier, data_folder
from .engine import BackupEngine, CopyOutcome
from .manifest import DIRECTORY, UNCHANGED
from ..timefmt import utc_now


class DirectoryEngine(BackupEngine):
    kinds = (FILE, NFS)

    def __init__(self, copier=None, clock=None):
        self.copier = copier or DirectoryCopier()
        self.clock = clock or utc_now

    def backup(self, volume, store, staging, previous, lock, progress=None):
        source = store.data_path(volume.name)
        previous_data = None
        if previous is not None:
            # The previous backup of this volume in this repository is a sibling folder.
            previous_data = data_folder(os.path.join(os.path.dirname(staging.location), previous.data_backup_id))
        created = self.clock()
        if progress:
            progress("copying files")
        result = self.copier.backup(source, data_folder(staging.location), previous_data)
        return CopyOutcome(
            method=DIRECTORY if result.changed else UNCHANGED,
            data=BACKUP_DATA_FOLDER if result.changed else "",
            created=created, source=source, size=result.size,
            extra={"files": result.files, "linked": result.linked, "added": result.added})

    def restore_replace(self, manifest, location, store, name, progress=None):
        if progress:
            progress("copying files")
        staged = store.new_staging(name)
        try:
            self.copier.restore(data_folder(location), staged)
            store.replace_data(name, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
