"""A restic repository as a backup target (``plugin.backup.contract.Target``).

A copy of a volume is one restic snapshot of a point-in-time view of the volume's files
(``Source.tree()``: a disk clone mounted read-only, a folder), its root the volume's
data. restic does the work: chunking, deduplication, encryption, the upload; its
snapshots are the catalog. Each snapshot is tagged with what a restore needs:

==============  ===========================================================================
``volume``      the volume's name
``backup``      the copy's id, in the plugin's id format (``20261123T020000Z``)
``kind``        why it was made: ``schedule``, ``manual``, ``pre-restore`` (retention
                forgets only ``schedule`` copies, whichever host made them: the nodes
                of a swarm copy a volume by turns)
``format``      ``vmdk`` or ``folder``: what kind of volume it was
``capacity``    the volume's Capacity in MB (a restore as a new volume takes it)
``store``       the volume store's label, when a tag can hold it
==============  ===========================================================================

and its host is this Docker host's name. The snapshot's time is the point in time of
its data. A second copy names the volume's newest snapshot as its parent, so restic
reads only the files that changed (``ignore_ctime`` for copies made with hard links).
restic refuses to save an empty snapshot: the copy of an empty volume holds one empty
folder, ``EMPTY_MARKER``, which a restore leaves out.

Locks: restic locks the repository itself (``check`` and ``backup`` share it, ``forget
--prune`` takes it alone); on this host, copies and checks share ``_repository`` and
deletes and retention take it alone, so they never refuse each other here. ``lock``
serializes the work on one volume. The repository is made on the first copy
(``ready``), its password file first when the target is the embedded default one.
"""

import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from ..backup.contract import DAMAGED, EMPTY, FAILED, OK, Found, Record, Target, Verification
from ..errors import NotFound, VolumeError, shown
from ..fsutil import atomic_write
from ..locks import NameLocks, SharedLock
from ..policy import ids
from ..policy.retention import SCHEDULE
from ..storespec import DATASTORE
from .errors import RepositoryMissing
from .progress import tree_size

log = logging.getLogger(__name__)

VOLUME, BACKUP, KIND, FORMAT, CAPACITY, STORE = "volume", "backup", "kind", "format", "capacity", "store"
EMPTY_MARKER = ".vsphere-volume-empty"
_TAGGABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,254}$")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def host_name(name):
    """``name`` as a restic snapshot's host (letters, digits, '_', '.', '-')."""
    cleaned = _HOST_UNSAFE.sub("-", name).strip("-.") or "docker-host"
    return cleaned if cleaned[0].isalnum() else f"h{cleaned}"


def ensure_password_file(path):
    """Make ``path`` (0600, a random password) unless it exists; the folder must exist."""
    if os.path.exists(path):
        return False
    atomic_write(path, secrets.token_urlsafe(32).encode() + b"\n")
    os.chmod(path, 0o600)
    log.info("made the password file %s of the embedded off-site target: keep a copy of it elsewhere, "
             "without it the copies cannot be read", path)
    return True


def count_entries(root):
    """Folders, files and links under ``root`` (not itself): what restic's restore size counts."""
    return sum(len(folders) + len(files) for _, folders, files in os.walk(root))


class ResticTier(Target):
    """Target ``spec`` (a targetspec.TargetSpec of kind s3 or file) over ``restic`` (a
    restic.Restic of its repository); ``host``: this Docker host's name; ``clock``: aware now."""

    def __init__(self, spec, restic, host, clock):
        self.label = spec.label
        self.kind = spec.kind
        self.spec = spec
        self.restic = restic
        self.host = host_name(host)
        self.clock = clock
        self._ready = False
        self._ready_lock = threading.Lock()
        self._repository = SharedLock()
        self._volumes = NameLocks()

    def ready(self):
        """Open the repository, making it (and the embedded target's password file) on
        first use; once per process."""
        with self._ready_lock:
            if self._ready:
                return
            if self.spec.generate_password:
                ensure_password_file(self.spec.repository.password_file)
            info = self.restic.ensure_initialised()
            if info.created:
                log.info("backup target %s: made the restic repository %s", self.label, self.spec.location)
            self._ready = True

    # --- the contract -------------------------------------------------------------------
    def put(self, source, origin, progress=None):
        self.ready()
        volume = source.volume
        started = self.clock()
        with self._repository.shared(), ThreadPoolExecutor(1, thread_name_prefix="listing") as beside:
            # The volume's copies (for a free id and the parent) are listed while its point in
            # time is made: a clone takes a while, and each restic call opens the repository.
            listing = beside.submit(self.records, volume.name)
            with source.tree() as tree, _not_empty(tree.path) as path:
                earlier = listing.result()
                taken = {record.id for record in earlier}
                copy_id = next(i for i in ids.candidates(started) if i not in taken)
                tags = {VOLUME: volume.name, BACKUP: copy_id, KIND: origin,
                        FORMAT: "vmdk" if source.store.spec.kind == DATASTORE else "folder",
                        CAPACITY: str(volume.options.capacity_mb)}
                if _TAGGABLE.match(volume.store):
                    tags[STORE] = volume.store
                done = self.restic.backup(
                    path, tags, self.host, progress=_reporting(progress, f"copying to {self.label}"),
                    parent=earlier[-1].handle.id if earlier else None, taken_at=tree.taken,
                    ignore_ctime=not tree.ctime_kept)
        log.info("volume %s: copy %s made on backup target %s (snapshot %s, %d bytes added of %d)", volume.name,
                 copy_id, self.label, done.snapshot_id, done.bytes_added, done.total_bytes)
        # The volume's copies were listed under its lock: with this one, one more.
        return Record(self.label, volume.name, copy_id, tree.taken, origin, size=done.total_bytes,
                      added=done.bytes_added, facts={"Snapshot": done.snapshot_id[:8], "Files": done.files,
                                                     "Host": self.host, "Capacity": f"{tags[CAPACITY]}MB"},
                      kept=len(earlier) + 1)

    def records(self, volume=None):
        snapshots = self.restic.snapshots(tags={VOLUME: volume} if volume else None)
        return [self._record(s) for s in snapshots if ids.is_backup_id(s.labels.get(BACKUP))
                and s.labels.get(VOLUME)]

    def find(self, volume, ref):
        records = self.records(volume)
        if not records:
            raise NotFound(f"backup target {self.label} has no copy of volume {volume} (see: vsphere-volume "
                           f"backups --target {self.label})")
        if ref == "latest":
            return Found(records[-1], f"latest copy {records[-1].id} on backup target {self.label}")
        record = next((r for r in records if r.id == ref), None)
        if record is None:
            raise NotFound(f"backup target {self.label} has no copy {ref} of volume {volume} (see: vsphere-volume "
                           f"backups {volume} --target {self.label})")
        return Found(record, f"copy {ref} on backup target {self.label}, as asked")

    def restore(self, record, sink, include=None, progress=None):
        report = _reporting(progress, f"restoring from {self.label}")
        with self._repository.shared(), sink.tree() as folder:
            self.restic.restore(record.handle.id, folder, include=include, progress=report)
            if include:
                _lift(folder, include)
            marker = os.path.join(folder, EMPTY_MARKER)
            if os.listdir(folder) == [EMPTY_MARKER] and os.path.isdir(marker) and not os.listdir(marker):
                os.rmdir(marker)            # the copy of an empty volume

    def delete(self, volume, backup_id):
        record = self.find(volume, backup_id).record
        with self._repository.exclusive():
            self.restic.delete(record.handle.id, prune=True)

    def retain(self, volume, keep):
        with self._repository.exclusive():
            by_snapshot = {r.handle.id: r.id for r in self.records(volume)}
            done = self.restic.forget(keep, tags={VOLUME: volume, KIND: SCHEDULE})
        return sorted((by_snapshot[s] for s in done.removed if s in by_snapshot), key=ids.sort_key)

    def verify(self, scratch, read=None):
        now, read = self.clock(), read or self.spec.verify_read
        try:
            with self._repository.shared():
                checked = self.restic.check(read)
                if not checked.ok:
                    return Verification(self.label, now, DAMAGED, read, problems=checked.problems)
                restored = self._test_restore(scratch) if self.spec.verify_restore else None
        except RepositoryMissing:
            return Verification(self.label, now, EMPTY, "nothing: no copy was made to it yet")
        except VolumeError as err:
            return Verification(self.label, now, FAILED, read, error=str(err))
        if restored and restored.get("Problem"):
            return Verification(self.label, now, DAMAGED, read, problems=(restored["Problem"],), restored=restored)
        return Verification(self.label, now, OK, read, restored=restored)

    def lock(self, volume, purpose):
        return self._volumes.hold(volume)

    def describe(self):
        public = self.spec.public()
        shown_ = {"Label": self.label, "Kind": self.kind, "Location": public.get("location", ""),
                  "Verify": public.get("verify", ""), "VerifyRead": public.get("verify_read", ""),
                  "VerifyRestore": public.get("verify_restore", False), "Password": public.get("password", "")}
        for key, name in (("limit_upload_kib", "LimitUploadKiB"), ("limit_download_kib", "LimitDownloadKiB"),
                          ("tls", "TLS"), ("s3_access_key_id", "S3AccessKeyId")):
            if key in public:
                shown_[name] = public[key]
        return shown_

    # --- helpers ------------------------------------------------------------------------
    def _record(self, snapshot):
        labels = snapshot.labels
        facts = {"Snapshot": snapshot.short_id, "Host": snapshot.host, "Format": labels.get(FORMAT, "")}
        if labels.get(CAPACITY, "").isdigit():
            facts["Capacity"] = f"{labels[CAPACITY]}MB"
        if labels.get(STORE):
            facts["VolumeStore"] = labels[STORE]
        return Record(self.label, labels[VOLUME], labels[BACKUP], snapshot.time, labels.get(KIND, ""),
                      facts=facts, handle=snapshot)

    def _test_restore(self, scratch):
        """Restore the newest copy into ``scratch`` and compare it with what the copy
        recorded (its entries and bytes); the folder is removed after."""
        records = self.records()
        if not records:
            return None
        newest = records[-1]
        expected_bytes, expected_entries = self.restic.restore_size(newest.handle.id)
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            self.restic.restore(newest.handle.id, scratch)
            size, _ = tree_size(scratch)
            entries = count_entries(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        shown_ = {"Volume": newest.volume, "Id": newest.id, "Entries": entries, "Bytes": size}
        if (entries, size) != (expected_entries, expected_bytes):
            shown_["Problem"] = (f"the test restore of copy {newest.id} of volume {newest.volume} gave {entries} "
                                 f"entries and {size} bytes; the copy recorded {expected_entries} and "
                                 f"{expected_bytes}")
        return shown_


@contextmanager
def _not_empty(path):
    """``path``, or for an empty folder one holding only an empty ``EMPTY_MARKER``."""
    if os.listdir(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="vsphere-volume-empty-") as scaffold:
        os.mkdir(os.path.join(scaffold, EMPTY_MARKER))
        yield scaffold


def _reporting(progress, phase):
    """restic's Progress as ``progress(phase, percent)`` calls (None: nobody watches)."""
    if progress is None:
        return None
    return lambda update: progress(phase, update.percent)


def _lift(folder, include):
    """Make what a restore of one path put at ``folder/include`` the content of ``folder``."""
    source = os.path.join(folder, include)
    held = os.path.join(folder, f".restore-{uuid.uuid4().hex}")
    os.rename(source, held)
    if "/" in include:
        shutil.rmtree(os.path.join(folder, include.split("/")[0]))
    if os.path.isdir(held) and not os.path.islink(held):
        for entry in os.listdir(held):
            os.rename(os.path.join(held, entry), os.path.join(folder, entry))
        os.rmdir(held)
    else:
        os.rename(held, os.path.join(folder, os.path.basename(include)))
    log.info("restored only %s of the copy", shown(include))

