"""Backup leases: of several Docker hosts sharing storage, one backs a volume up at a time.

A lease is a folder named after the volume, made atomically (it either is made, or
exists already), holding one small owner file: who holds it, what for (a backup, a
restore reading one of its backups, a prune, a delete: so that a refusal says what is
really going on), a random token, and until when. The holder renews it while it works
and removes it when done. A lease whose holder died expires; the next taker breaks it:
it moves the folder aside under a unique name (atomic too), checks that what it moved is
the expired lease it read, and deletes it.

The lease times come from each host's clock: hosts sharing storage must keep their
clocks in step (NTP) to well within the time to live (10 minutes by default).

Holding a lease is checked, not enforced: in the rare race where two hosts break the
same expired lease at once, one may move aside a lease the other has just taken. The
loser finds out at its next ``renew``, which raises LeaseLost, so a backup must renew
(``HeldLease.check``) right before it commits.

``LeaseFolder`` is the storage contract; ``LocalLeaseFolder`` implements it on a host
folder. On a datastore: MakeDirectory (atomic), an HTTP upload of the owner file,
MoveDatastoreFile, DeleteDatastoreFile.
"""

import abc
import json
import logging
import os
import shutil
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import BackupError, VolumeError
from ..fsutil import atomic_write
from ..options import validate_name
from .failures import storage_errors, storage_failure
from .repository import BACKUPS_DIR

log = logging.getLogger(__name__)

LEASES_DIR = ".leases"  # under <backup root>/backups/; no volume name starts with "."
OWNER_FILE = "owner.json"
DEFAULT_TTL = timedelta(minutes=10)
BACKING_UP = "backing it up"   # the default purpose; others are the caller's own phrases


class LeaseHeld(BackupError):
    """Another host (or another backup on this one) holds the volume's lease."""


class LeaseLost(BackupError):
    """A lease this host took is no longer its own (expired and taken over)."""


@dataclass(frozen=True)
class Lease:
    """One lease as stored: the volume, the holder, a random token, and its times (aware)."""

    volume: str
    owner: str
    token: str
    taken: datetime
    expires: datetime
    host: str = ""      # the taking host's stable identity (owner names the process too)
    purpose: str = ""   # what the holder does, as "<owner> is <purpose>": "backing it up"

    def expired(self, now):
        return now >= self.expires

    def encode(self):
        obj = asdict(self)
        obj["taken"], obj["expires"] = self.taken.isoformat(), self.expires.isoformat()
        return json.dumps(obj, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, data):
        """A Lease from an owner file's bytes, or None when they are not one."""
        try:
            obj = json.loads(data)
            return cls(volume=obj["volume"], owner=obj["owner"], token=obj["token"],
                       taken=datetime.fromisoformat(obj["taken"]),
                       expires=datetime.fromisoformat(obj["expires"]), host=obj.get("host", ""),
                       purpose=obj.get("purpose") if isinstance(obj.get("purpose"), str) else "")
        except (ValueError, KeyError, TypeError):
            return None

    def busy(self):
        """Why a volume cannot be leased now, for a LeaseHeld message."""
        until = f"{self.expires.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        if self.purpose:
            return (f"volume {self.volume!r} is busy: {self.owner} is {self.purpose}; "
                    f"its backup lease runs until {until}; try again later")
        return f"volume {self.volume!r} is busy: {self.owner} holds its backup lease until {until}; try again later"


class LeaseFolder(abc.ABC):
    """Where leases are kept: one folder per volume, by name, each with one owner file."""

    # make creates the folder name atomically: True when this call made it, False when
    # it existed already.
    @abc.abstractmethod
    def make(self, name):
        """Create a lease folder; False when it exists."""

    # write replaces the owner file in folder name with data (bytes) so that a reader
    # sees the old or the new content; FileNotFoundError when the folder does not exist.
    @abc.abstractmethod
    def write(self, name, data):
        """Replace the owner file of a lease folder."""

    # read returns the owner file of folder name, or None when the folder or the file
    # does not exist.
    @abc.abstractmethod
    def read(self, name):
        """The owner file's bytes, or None."""

    # made returns when folder name was last changed, as an aware datetime, or None
    # when it does not exist. Used only for a folder with no owner file.
    @abc.abstractmethod
    def made(self, name):
        """The folder's modification time, or None."""

    # move renames folder name to new_name atomically: True when moved, False when name
    # did not exist. new_name does not exist.
    @abc.abstractmethod
    def move(self, name, new_name):
        """Rename a lease folder; False when it is gone."""

    # remove deletes folder name and its content; no error when it does not exist.
    @abc.abstractmethod
    def remove(self, name):
        """Delete a lease folder."""

    # names lists the lease folders (leases held, being taken, or moved aside), [] when
    # there are none.
    @abc.abstractmethod
    def names(self):
        """Names of the lease folders."""

    # within is the LeaseFolder of the subfolder name (beginning with "."), for leases on
    # another kind of work than backups; the subfolder is made with its first lease.
    @abc.abstractmethod
    def within(self, name):
        """The LeaseFolder below this one's subfolder ``name``."""


class LocalLeaseFolder(LeaseFolder):
    """Leases in ``<backup root>/backups/.leases/`` on a folder this host sees.

    Failures of the folder (full, read-only, I/O) raise BackupStorageError.
    """

    def __init__(self, backup_root, root=None):
        self.root = Path(root) if root is not None else Path(backup_root) / BACKUPS_DIR / LEASES_DIR

    def within(self, name):
        return LocalLeaseFolder(None, root=self.root / subfolder(name))

    def make(self, name):
        with storage_errors(f"cannot make the backup lease folder {self.root / name}"):
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                (self.root / name).mkdir()
            except FileExistsError:
                return False
        return True

    def write(self, name, data):
        with storage_errors(f"cannot write the backup lease {self.root / name / OWNER_FILE}",
                            passing=(FileNotFoundError,)):
            atomic_write(str(self.root / name / OWNER_FILE), data)

    def read(self, name):
        with storage_errors(f"cannot read the backup lease {self.root / name / OWNER_FILE}"):
            try:
                return (self.root / name / OWNER_FILE).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None

    def made(self, name):
        with storage_errors(f"cannot look at the backup lease folder {self.root / name}"):
            try:
                return datetime.fromtimestamp(os.stat(self.root / name).st_mtime, UTC)
            except FileNotFoundError:
                return None

    def move(self, name, new_name):
        with storage_errors(f"cannot move the backup lease folder {self.root / name} aside"):
            try:
                os.rename(self.root / name, self.root / new_name)
            except FileNotFoundError:
                return False
        return True

    def remove(self, name):
        shutil.rmtree(self.root / name, ignore_errors=True)

    def names(self):
        with storage_errors(f"cannot list the backup leases in {self.root}"):
            try:
                return sorted(os.listdir(self.root))
            except FileNotFoundError:
                return []


def subfolder(name):
    """``name``, checked to be a lease subfolder: beginning with "." (no volume's name
    does, so the backup leases' listing passes over it), one folder deep."""
    if not name.startswith(".") or "/" in name:
        raise ValueError(f"{name!r} is no lease subfolder: a name beginning with '.', without '/'")
    return name


def _new_token():
    return uuid.uuid4().hex


class Leases:
    """Takes, renews, releases and breaks the backup leases of one backup store.

    ``owner`` says who this host is, for messages (``host docker-3, plugin pid 41``);
    ``host`` is this host's stable identity (the same after a plugin restart);
    ``clock()`` returns the aware current time; ``ttl`` is how long a lease lasts
    unless renewed.
    """

    def __init__(self, folder, owner, clock, ttl=DEFAULT_TTL, new_token=_new_token, host=""):
        self.folder = folder
        self.owner = owner
        self.host = host
        self.clock = clock
        self.ttl = ttl
        self.new_token = new_token

    def within(self, name):
        """The Leases of the same host kept in subfolder ``name`` (``LeaseFolder.within``):
        leases on other work than backups, taken apart from the backup leases."""
        return Leases(self.folder.within(name), self.owner, self.clock, self.ttl, self.new_token, self.host)

    def holder(self, volume):
        """The lease on ``volume`` as stored, or None when there is none.

        A lease folder without a readable owner file (being taken right now, or left by
        a crash between the two steps) counts as held by an unknown owner from the time
        the folder was made, for ``ttl``.
        """
        data = self.folder.read(volume)
        lease = Lease.decode(data) if data is not None else None
        if lease is not None:
            return lease
        made = self.folder.made(volume)
        if made is None:
            return None
        return Lease(volume, "an unknown owner (a lease being taken, or left unfinished)", "", made, made + self.ttl)

    def take(self, volume, purpose=BACKING_UP):
        """Take the lease on ``volume`` for ``purpose``; return the Lease.

        ``purpose`` says what this host does with it, as a phrase that follows "<owner>
        is": ``backing it up``, ``restoring its backup X into volume y``. An expired lease
        is broken first. Raises LeaseHeld naming the holder, what it is doing, and when
        its lease expires.
        """
        validate_name(volume)
        for _ in range(2):
            now = self.clock()
            lease = Lease(volume, self.owner, self.new_token(), now, now + self.ttl, self.host, purpose)
            if self._make(volume):
                self._write_new(lease)
                return lease
            current = self.holder(volume)
            if current is not None and not current.expired(now):
                raise LeaseHeld(current.busy())
            if current is not None:
                self._break(volume, current)
        raise LeaseHeld(f"the backup lease of volume {volume!r} was taken by another host "
                        "at the same moment; try again")

    def _make(self, volume):
        try:
            return self.folder.make(volume)
        except OSError as err:   # a LeaseFolder that let one through
            raise storage_failure(f"cannot take the backup lease of volume {volume!r}", err) from None

    def _write_new(self, lease):
        """Write the owner file of the lease folder just made. On any failure the folder
        is removed again: a half-taken lease would refuse every backup of the volume
        (the final one of ``docker volume rm`` too) until it expired."""
        volume = lease.volume
        try:
            self.folder.write(volume, lease.encode())
        except FileNotFoundError:
            raise LeaseHeld(f"the backup lease of volume {volume!r} was taken over "
                            "while this host was taking it; try again") from None
        except BaseException as err:
            self._remove_unfinished(volume)
            if isinstance(err, OSError):
                raise storage_failure(f"cannot take the backup lease of volume {volume!r}", err) from None
            raise

    def _remove_unfinished(self, volume):
        """Remove the folder of a lease this host made but could not write (no owner
        file: no other host can hold it before it expires). Moved aside first, as a
        release does, so a crash in between leaves nothing under the volume's name."""
        aside = f".unfinished-{self.new_token()}"
        try:
            if self.folder.move(volume, aside):
                self.folder.remove(aside)
        except (VolumeError, OSError) as err:
            log.error("could not remove the unfinished backup lease of volume %s (it counts as held "
                      "until %s): %s", volume, (self.clock() + self.ttl).isoformat(), err)

    def _break(self, volume, expired):
        aside = f".broken-{self.new_token()}"
        if not self.folder.move(volume, aside):
            return  # released or broken by someone else meanwhile
        moved = self.folder.read(aside)
        moved_lease = Lease.decode(moved) if moved is not None else None
        if (moved_lease.token if moved_lease else "") != expired.token:
            log.warning("breaking the expired backup lease of volume %s moved a newer lease of %s aside; "
                        "that holder will find its lease lost", volume,
                        moved_lease.owner if moved_lease else "an unknown owner")
        log.info("broke the expired backup lease of volume %s held by %s (expired %s)",
                 volume, expired.owner, expired.expires.isoformat())
        self.folder.remove(aside)

    def break_left_by_this_host(self):
        """At start: break the leases this host's previous plugin process left (it died
        holding them; no backup of this host runs yet). Returns the volumes freed."""
        if not self.host:
            return []
        freed = []
        for name in self.folder.names():
            if name.startswith("."):
                continue            # moved aside: being released or broken
            current = self.holder(name)
            if current is not None and current.host == self.host:
                log.info("breaking the backup lease of volume %s left by this host's previous plugin "
                         "process (%s)", name, current.owner)
                self._break(name, current)
                freed.append(name)
        return freed

    def _verify(self, lease):
        data = self.folder.read(lease.volume)
        current = Lease.decode(data) if data is not None else None
        if current is None or current.token != lease.token:
            holder = f"it is now held by {current.owner}" if current else "it is gone"
            raise LeaseLost(f"the backup lease of volume {lease.volume!r} is no longer this host's: "
                            f"{holder} (it expired at {lease.expires.isoformat()} or was broken)")

    def renew(self, lease):
        """Extend ``lease`` by ``ttl`` from now; return the new Lease. Raises LeaseLost."""
        self._verify(lease)
        renewed = replace(lease, expires=self.clock() + self.ttl)
        self.folder.write(lease.volume, renewed.encode())
        return renewed

    def release(self, lease):
        """Remove ``lease`` if it is still this one (never another holder's); True when removed."""
        data = self.folder.read(lease.volume)
        current = Lease.decode(data) if data is not None else None
        if current is None or current.token != lease.token:
            log.warning("the backup lease of volume %s was no longer ours at release", lease.volume)
            return False
        aside = f".released-{self.new_token()}"
        if self.folder.move(lease.volume, aside):
            self.folder.remove(aside)
        return True

    @contextmanager
    def hold(self, volume, purpose=BACKING_UP, renew_every=None, waiter=None):
        """Take the lease for ``purpose`` (see ``take``), keep it renewed from a thread,
        and release it at the end.

        Yields a HeldLease; call its ``check()`` right before committing. ``renew_every``
        defaults to a third of ``ttl``; ``waiter`` (an object with ``wait(seconds)`` and
        ``set()``, a ``threading.Event`` by default) paces the renewals.
        """
        held = HeldLease(self, self.take(volume, purpose), renew_every or self.ttl / 3, waiter or threading.Event())
        held.start()
        try:
            yield held
        finally:
            held.stop()
            try:
                self.release(held.lease)
            except (VolumeError, OSError) as err:
                # Never hides the outcome of the work: the lease expires on its own.
                log.error("could not release the backup lease of volume %s (it expires at %s): %s",
                          volume, held.lease.expires.isoformat(), err)


class HeldLease:
    """A lease kept renewed by a background thread while a backup runs."""

    def __init__(self, leases, lease, every, waiter):
        self.leases = leases
        self.lease = lease
        self.every = every
        self.error = None
        self._waiter = waiter
        self._stopped = False
        self._lock = threading.Lock()  # one renewal at a time: check() runs beside the thread
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.volume}", daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while True:
            self._waiter.wait(self.every.total_seconds())
            if self._stopped:
                return
            try:
                with self._lock:
                    self.lease = self.leases.renew(self.lease)
            except (VolumeError, OSError) as err:
                # BackupError (LeaseLost) as it is; a storage failure (OSError of a host
                # folder, VSphereError of a datastore one) means the lease cannot be kept.
                self.error = err if isinstance(err, BackupError) else LeaseLost(
                    f"cannot renew the backup lease of volume {self.lease.volume!r}: {err}")
                return

    def stop(self):
        self._stopped = True
        self._waiter.set()
        self._thread.join()

    def check(self):
        """Renew now; raise LeaseLost (or the renewal thread's error) when the lease is lost."""
        with self._lock:
            if self.error is not None:
                raise self.error
            self.lease = self.leases.renew(self.lease)
            return self.lease
