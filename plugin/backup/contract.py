"""The contract of a backup target: one place where backups of volumes are kept.

``BACKUP_TARGETS`` declares the targets by label; each is built, by kind, by the
registry in ``plugin.assembly`` (``TARGET_KINDS``): the local tier (``localtier``:
datastore clones of VMDK volumes, folder copies of folder volumes, in each volume's
``BackupStore``) and restic repositories (``plugin.offsite.tier``). Every target does
the same seven things, each its own way:

- ``put(source, origin, progress)``: back a volume up here; a tier that reads files
  takes them from the folder ``source.tree()`` gives (a point-in-time view of the
  volume), the local tier copies the volume itself (a disk clone, a folder copy);
- ``records(volume)``: the backups kept here (of one volume, or of every volume);
- ``find(volume, ref)``: the backup ``ref`` (an id or ``latest``) to restore, and why;
- ``restore(record, sink, include, progress)``: write a backup into ``sink``, whose
  ``tree()`` gives the empty folder that becomes the volume's data (the local tier
  replaces the volume's data its own way); ``include``: one path of the backup only;
- ``delete(volume, backup_id)``; ``retain(volume, keep)``: apply a ``BackupKeep`` to the
  scheduled backups of a volume;
- ``verify(scratch, read)``: check that what is kept is whole, reading ``read`` of the
  data (the target's own setting when None; and, where the target says so, restore one
  backup into the folder ``scratch`` and compare);
- ``lock(volume, purpose)``: keep other work on that volume's backups here out.

Every failure is a ``BackupError`` (or another ``VolumeError``) that names the target.
"""

import abc
from dataclasses import dataclass, field
from datetime import datetime

from ..timefmt import rfc3339_exact

OK, DAMAGED, FAILED = "ok", "damaged", "failed"
EMPTY = "empty"              # a verification of a target that holds nothing yet
EMPTY_RESULTS = (EMPTY,)


@dataclass(frozen=True)
class Tree:
    """A folder holding a volume's data at one point in time (``taken``, aware).

    ``ctime_kept``: False when the files are copies whose ctime says nothing of their
    content (hard links made by a folder backup): compare them by size and mtime only.
    """

    path: str
    taken: datetime
    ctime_kept: bool = True


class Source(abc.ABC):
    """What a ``put`` backs up: ``volume`` (a registry.Volume) in ``store`` (its VolumeStore)."""

    volume: object
    store: object

    @abc.abstractmethod
    def tree(self):
        """A context manager giving a Tree of the volume's data; released after."""


class Sink(abc.ABC):
    """Where a ``restore`` writes: ``volume`` in ``store``, unmounted, its lock held."""

    volume: object
    store: object

    @abc.abstractmethod
    def tree(self):
        """A context manager giving an empty folder; when the block ends without error,
        what it holds replaces the volume's data (else the volume is left as it was)."""


@dataclass(frozen=True)
class Record:
    """One backup held by a target.

    ``created``: the point in time of its data; ``origin``: schedule, manual, pre-restore,
    final; ``size``: bytes of the data (0: not known here); ``added``: bytes it added to
    the target (0: not known); ``facts``: what else the target knows of it, as shown
    (``Capacity``, ``VolumeStore``, ``Snapshot``, ``Method``...); ``state``: ok or damaged,
    with the ``problem``; ``handle``: the target's own reference to it; ``kept``: for a
    backup just put, how many the target holds of the volume with it, when the target
    knows without listing them again (None: not known).
    """

    target: str
    volume: str
    id: str
    created: datetime
    origin: str = ""
    size: int = 0
    added: int = 0
    facts: dict = field(default_factory=dict)
    state: str = OK
    problem: str = ""
    handle: object = field(default=None, compare=False, repr=False)
    kept: int = field(default=None, compare=False, repr=False)

    def summary(self):
        """As the ``/Backup.*`` calls and the CLI show it."""
        shown = {"Id": self.id, "Volume": self.volume, "Target": self.target,
                 "Created": rfc3339_exact(self.created), "Origin": self.origin, "State": self.state}
        if self.size:
            shown["Size"] = self.size
        if self.added:
            shown["BytesAdded"] = self.added
        shown.update(self.facts)
        if self.problem:
            shown["Problem"] = self.problem
        return shown


@dataclass(frozen=True)
class Found:
    """The backup chosen to restore, and why that one."""

    record: Record
    why: str


@dataclass(frozen=True)
class Verification:
    """What one verification of a target found. ``result``: ok, damaged (the data is not
    whole: ``problems`` say what), failed (it could not be checked: ``error``), empty
    (nothing to check: no backup was made to it yet); ``read``:
    how much data was read; ``restored``: the test restore (Volume, Id, Files, Bytes)."""

    target: str
    time: datetime
    result: str
    read: str = ""
    problems: tuple = ()
    error: str = ""
    restored: dict = None

    @property
    def ok(self):
        return self.result == OK

    def summary(self):
        shown = {"Target": self.target, "Time": rfc3339_exact(self.time), "Result": self.result}
        if self.read:
            shown["Read"] = self.read
        if self.problems:
            shown["Problems"] = list(self.problems)
        if self.error:
            shown["Error"] = self.error
        if self.restored:
            shown["TestRestore"] = dict(self.restored)
        return shown


class Target(abc.ABC):
    """One backup target; see the module docstring. ``label``: its label in
    BACKUP_TARGETS; ``kind``: local, s3 or file."""

    label = ""
    kind = ""

    @abc.abstractmethod
    def put(self, source, origin, progress=None):
        """Back ``source.volume`` up here; return its Record. ``progress(phase, percent)``."""

    @abc.abstractmethod
    def records(self, volume=None):
        """The Records here of ``volume`` (of every volume when None), oldest first."""

    @abc.abstractmethod
    def find(self, volume, ref):
        """The Found backup ``ref`` (an id or ``latest``) of ``volume``; NotFound otherwise."""

    @abc.abstractmethod
    def restore(self, record, sink, include=None, progress=None):
        """Write backup ``record`` (or its one path ``include``) into ``sink``."""

    @abc.abstractmethod
    def delete(self, volume, backup_id):
        """Delete one backup of ``volume``."""

    @abc.abstractmethod
    def retain(self, volume, keep):
        """Apply ``keep`` (a Retention) to the scheduled backups of ``volume``; the ids deleted."""

    @abc.abstractmethod
    def verify(self, scratch, read=None):
        """Check what is kept here; return a Verification (never raises for damage found)."""

    @abc.abstractmethod
    def lock(self, volume, purpose):
        """A context manager holding ``volume``'s lock here for ``purpose``."""

    def describe(self):
        """This target for ``vsphere-volume targets``: label, kind, where, nothing secret."""
        return {"Label": self.label, "Kind": self.kind}
