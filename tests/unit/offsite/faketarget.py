"""A backup target in memory (``contract.Target``) for the tests of the copies' logic: a
copy reads the files of the point in time its source gives (so what is copied is real),
keeps them as a Record, and counts every call; ``fail`` makes the next calls raise it.
As restic's, its repository is made by the first copy: until then a listing raises
RepositoryMissing. Shared by several plugin instances, it is the one target two hosts
copy to."""

import os
import threading
from contextlib import contextmanager

from plugin.backup.contract import DAMAGED, OK, Found, Record, Target, Verification
from plugin.errors import NotFound
from plugin.offsite.errors import RepositoryMissing
from plugin.policy import ids


class FakeTarget(Target):
    kind = "s3"

    def __init__(self, label, clock):
        self.label = label
        self.clock = clock
        self.kept = []               # Records, oldest first
        self.files = {}              # copy id -> {path: bytes}
        self.calls = []
        self.fail = None             # an error the next calls raise
        self.damaged = ()            # what the next verification finds
        self.made = False            # its repository: made by the first copy
        self._lock = threading.Lock()

    def _called(self, what):
        self.calls.append(what)
        if self.fail is not None:
            raise self.fail

    def put(self, source, origin, progress=None):
        self._called("put")
        with source.tree() as tree:
            files = {os.path.relpath(os.path.join(folder, name), tree.path):
                     open(os.path.join(folder, name), "rb").read()
                     for folder, _, names in os.walk(tree.path) for name in names}
            taken = {r.id for r in self.kept}
            copy_id = next(i for i in ids.candidates(self.clock()) if i not in taken)
            record = Record(self.label, source.volume.name, copy_id, tree.taken, origin,
                            size=sum(len(b) for b in files.values()), added=7, facts={"Host": "fake"},
                            kept=1 + sum(r.volume == source.volume.name for r in self.kept))
        self.kept.append(record)
        self.files[copy_id] = files
        self.made = True
        return record

    def records(self, volume=None):
        self._called("records")
        if not self.made:
            raise RepositoryMissing(f"backup target {self.label}: there is no restic repository there")
        return [r for r in self.kept if volume in (None, r.volume)]

    def find(self, volume, ref):
        found = self.records(volume)
        if not found:
            raise NotFound(f"backup target {self.label} has no copy of volume {volume}")
        return Found(found[-1], "latest")

    def restore(self, record, sink, include=None, progress=None):
        raise NotImplementedError

    def delete(self, volume, backup_id):
        self.kept = [r for r in self.kept if (r.volume, r.id) != (volume, backup_id)]

    def retain(self, volume, keep):
        self._called("retain")
        return []

    def verify(self, scratch, read=None):
        self._called("verify")
        if self.damaged:
            return Verification(self.label, self.clock(), DAMAGED, "5%", problems=tuple(self.damaged))
        return Verification(self.label, self.clock(), OK, "5%")

    @contextmanager
    def lock(self, volume, purpose):
        with self._lock:
            yield

    def describe(self):
        return {"Label": self.label, "Kind": self.kind, "Location": f"fake:{self.label}"}


class SeenFromAnotherHost:
    """``target`` as another host's plugin sees it: the same copies, but a lock of its own
    (the lock of a restic target is one process's)."""

    def __init__(self, target):
        self._target = target
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._target, name)

    @contextmanager
    def lock(self, volume, purpose):
        with self._lock:
            yield
