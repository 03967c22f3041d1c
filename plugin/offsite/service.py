"""Off-site copies of the driver's volumes: the part of the backup service that copies
volumes to backup targets other than the local tier, restores from them, verifies them.

``OffsiteCopies`` is what ``backup.service.BackupService`` calls for everything that
names a backup target (``copyhooks.NoCopies`` is the same seam doing nothing):

- a volume's ``BackupCopy``/``BackupCopyKeep`` are validated against the targets before
  it is created (``check_policy``), then scheduled (``volume_added``): one run per volume
  and target, ``copy_schedule`` keyed ``<volume>@<target>``, its plan kept in
  ``state/copy-schedule.json``. ``Backup=on-unmount``-style copies run at the last unmount;
- each restic target is verified by its ``VERIFY`` schedule (``verify_schedule``, keyed by
  label, ``state/verify-schedule.json``);
- both schedulers run their work on the backup scheduler's executor: copies, checks and
  local backups together are bounded by ``BACKUP_CONCURRENCY``, off Docker's request path;
- ``RestoreFrom=<target>:<volume>@<ref>`` (``restore_defaults``, ``restore_into``), the
  ``/Backup.*`` calls that name a target (``api``) and what inspect shows (``status``);
- operations: every copy, verification and count of copies on an off-site target is the
  volume's backup health on that target (the backup service's ``StatusBoard``, told by the
  ``CopyBoard``), its schedule the copy's (``volume_added``); at start, the copies on each
  off-site target are counted from its listing, off the request path (``count_copies``).

A target that does not answer makes its copies and checks fail with the reason in
Status; nothing here waits for one on start, and the other targets go on.
"""

import logging
import os

from ..backup.localtier import LocalTier
from ..backup.scheduler import BackupScheduler, JsonFileStateStore
from ..errors import VolumeError
from ..options import CAPACITY, VOLUME_STORE, RestoreRef, canonical_keys
from ..policy.retention import SCHEDULE
from ..policy.schedule import ON_UNMOUNT
from .api import CopyApi
from .board import CopyBoard
from .copypolicy import parse_copies
from .errors import RepositoryMissing
from .runs import CopyRuns
from .views import Views

log = logging.getLogger(__name__)

STATUS_FILE, COPY_PLAN, VERIFY_PLAN = "offsite-status.json", "copy-schedule.json", "verify-schedule.json"
SCRATCH_DIR = "verify-scratch"
COPY_LEASES = ".copies-"     # + a target's label: the folder of its copy leases, beside the backup leases


def copy_key(volume, label):
    return f"{volume}@{label}"


class OffsiteCopies:
    """``targets``: {label: contract.Target} (the usable ones); ``specs``: the parsed
    targetspec.Targets (what BackupCopy is checked against); ``state_dir``: the plugin's
    state folder; ``clock``: aware now; ``tz``: the plugin's TZ; ``concurrency``: at most
    this many copies at once (the executor shared with local backups bounds all of them).
    Call ``bind`` (the backup service does) before use."""

    def __init__(self, targets, specs, state_dir, clock, tz="UTC", concurrency=2):
        self.targets = dict(targets)
        self.specs = specs
        self.unavailable = {u.label: u.reason for u in specs.unavailable}
        self.state_dir = state_dir
        self.clock = clock
        self.tz = tz
        self.concurrency = concurrency
        self.offsite = tuple(label for label, target in self.targets.items() if not isinstance(target, LocalTier))
        self.service = self.volumes = self.board = self.runs = self.api = None
        self.copy_schedule = self.verify_schedule = None
        self._parsed = {}          # (BackupCopy, BackupCopyKeep, BackupKeep) -> its CopyPolicy tuple
        self._threads = False

    def bind(self, volumes, service):
        """Work on ``volumes`` (the driver's) through ``service`` (its BackupService)."""
        self.volumes, self.service = volumes, service
        for target in self.targets.values():
            if isinstance(target, LocalTier):
                target.bind(service)
        where = {label: target.describe().get("Location", "") for label, target in self.targets.items()}
        self.board = CopyBoard(os.path.join(self.state_dir, STATUS_FILE), self.clock, where, service.board,
                               self.offsite)
        self.board.load()
        self.runs = CopyRuns(self.targets, self.unavailable, self.board, Views(service), service.board,
                             os.path.join(self.state_dir, SCRATCH_DIR), self.clock, service.operations.turns,
                             service.operations.holder, self._copy_leases)
        executor = service.scheduler.executor
        self.copy_schedule = BackupScheduler(self.clock, self._scheduled_copy, self.concurrency,
                                             JsonFileStateStore(os.path.join(self.state_dir, COPY_PLAN)), self.tz,
                                             executor=executor)
        self.verify_schedule = BackupScheduler(self.clock, self._scheduled_verify, self.concurrency,
                                               JsonFileStateStore(os.path.join(self.state_dir, VERIFY_PLAN)), self.tz,
                                               executor=executor)
        for label, target in self.targets.items():
            verify = getattr(getattr(target, "spec", None), "verify", None)
            if verify is not None and verify.scheduled:
                self.verify_schedule.set(label, verify)
        self.api = CopyApi(self, volumes, service)
        self._threads = service.scheduler_thread

    def _copy_leases(self, volume, label):
        """The Leases of ``volume``'s copies to ``label``: beside its backup leases."""
        return self.service.targets.get(volume.options.backup_store).leases.within(COPY_LEASES + label)

    # --- policies ------------------------------------------------------------------------
    def policies(self, options):
        """The CopyPolicy tuple of ``options`` (InvalidOption when it cannot be followed);
        parsed once per distinct policy (Get shows them: it must not parse them each time)."""
        key = (options.copies, options.copy_keep, options.keep.text)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = parse_copies(options.copies or None, options.copy_keep or None, self.specs,
                                                      options.keep)
        return parsed

    def check_policy(self, options):
        """Refuse a BackupCopy that names no usable off-site target, or a bad BackupCopyKeep."""
        self.policies(options)

    def volume_added(self, volume):
        try:
            copies = self.policies(volume.options)
        except VolumeError as err:
            self.board.problem(volume.name, f"its BackupCopy cannot be followed: {err}")
            log.error("volume %s: its BackupCopy cannot be followed: %s", volume.name, err)
            copies = ()
        else:
            self.board.problem(volume.name, "")
        wanted = {copy_key(volume.name, copy.target): copy for copy in copies}
        for key in self._keys_of(volume.name):
            if key not in wanted:
                self.copy_schedule.remove(key)
        for key, copy in wanted.items():
            self.copy_schedule.set(key, copy.schedule)
        self.service.board.copy_schedules(volume.name, {copy.target: (copy.schedule, key)
                                                        for key, copy in wanted.items() if copy.target in self.offsite})

    def volume_removed(self, volume):
        for key in self._keys_of(volume.name):
            self.copy_schedule.remove(key)
        self.board.removed(volume.name)

    def last_unmount(self, volume):
        for copy in self._copies_of(volume):
            if copy.schedule.kind == ON_UNMOUNT:
                self.copy_schedule.request(copy_key(volume.name, copy.target))

    def _keys_of(self, name):
        return [key for key in self.copy_schedule.names() if key.rpartition("@")[0] == name]

    def _copies_of(self, volume):
        try:
            return self.policies(volume.options)
        except VolumeError:
            return ()

    # --- the scheduled runs --------------------------------------------------------------
    def _scheduled_copy(self, key):
        name, _, label = key.rpartition("@")
        volume = self.volumes.find(name)
        copy = next((c for c in self._copies_of(volume) if c.target == label), None) if volume else None
        if copy is None:
            return None
        planned = self.service.operations.turns.planned(volume, SCHEDULE, copy.schedule, key)
        return self.runs.copy(volume, label, SCHEDULE, keep=copy.keep, planned=planned).id

    def _scheduled_verify(self, label):
        self.runs.verify(label)

    # --- RestoreFrom naming a target -------------------------------------------------------
    def resolve(self, ref):
        """``ref`` without its target when that target is the local tier."""
        if ref.target and isinstance(self.targets.get(ref.target), LocalTier):
            return RestoreRef(ref.volume, ref.backup)
        return ref

    def find(self, ref):
        return self.runs.target(ref.target).find(ref.volume, ref.backup)

    def restore_defaults(self, ref, given):
        """``given`` completed with the copied volume's Capacity and store, when absent."""
        labels = getattr(self.find(ref).record.handle, "labels", {})
        keys, completed = canonical_keys(given), dict(given)
        if CAPACITY not in keys and labels.get("capacity", "").isdigit():
            completed[CAPACITY] = labels["capacity"]
        if VOLUME_STORE not in keys and labels.get("store") in self.service.stores:
            completed[VOLUME_STORE] = labels["store"]
        return completed

    def restore_into(self, volume, ref):
        """Fill the new, empty ``volume`` from copy ``ref`` (the driver holds its lock)."""
        self.runs.restore(volume, self.find(ref), ref.target, include=volume.options.restore_path or None)

    # --- start and stop --------------------------------------------------------------------
    def store_opened(self, label):
        try:
            self.runs.views.cleanup(label)
        except VolumeError as err:
            log.error("volume store %s: could not undo what an interrupted off-site copy left: %s", label, err)

    def started(self):
        self.copy_schedule.forget_others()
        if self._threads:
            self.copy_schedule.start()
            self.verify_schedule.start()
            self.service.scheduler.executor.submit(self.count_copies)

    def count_copies(self):
        """Count the copies of every volume on each off-site target, from its listing (one
        per target): the copies kept there, and the newest, for operations (not recorded
        for Status: the listing holds volumes this host may never know). A target that
        cannot list them is logged; its counts come with its next copies."""
        for label in self.offsite:
            try:
                records = self.targets[label].records()
            except RepositoryMissing:
                continue                        # nothing was copied there yet
            except VolumeError as err:
                log.warning("backup target %s: cannot count its copies now: %s", label, err)
                continue
            by_volume = {}
            for record in records:
                by_volume.setdefault(record.volume, []).append(record)
            for name, found in by_volume.items():
                self.service.board.copies_counted(name, label, len(found), max(r.created for r in found))

    def stop(self):
        """Stop scheduling (before the backup scheduler stops the executor they share)."""
        if self._threads:
            self.copy_schedule.stop()
            self.verify_schedule.stop()

    # --- what docker volume inspect and vsphere-volume status show ------------------------------
    def next_run(self, name, label):
        """When the next scheduled copy of volume ``name`` to target ``label`` runs (None: none)."""
        return self.copy_schedule.status(copy_key(name, label)).get("NextRun")

    def status(self, name):
        """``{"Copies": {target: ...}}`` of volume ``name`` (memory only); {} without copies."""
        volume = self.volumes.find(name)
        copies = {c.target: c for c in self._copies_of(volume)} if volume else {}
        shown = {}
        for label in sorted(set(copies) | set(self.board.targets_of(name))):
            entry = {}
            if label in copies:
                entry.update(Policy=copies[label].text, Keep=copies[label].keep.text)
                scheduled = self.copy_schedule.status(copy_key(name, label))
                entry.update({k: scheduled[k] for k in ("NextRun", "Running", "ScheduleError") if k in scheduled})
            entry.update(self.board.shown(name, label))
            shown[label] = entry
        result = {"Copies": shown} if shown else {}
        problem = self.board.problem_of(name)
        if problem:
            result["CopyProblem"] = problem
        return result
