"""The work of off-site copies: copy a volume to a target, restore one from it, verify a target.

Each reports to the ``CopyBoard`` (what runs, what happened; it tells operations) and
says what it did in the log; a failure is a ``VolumeError`` that names the volume and the
target, recorded in the board before it is raised. A copy made by a schedule then applies
the copy's retention on the target; a retention that fails is the copy's last error, not
its failure (the copy stands). After a copy the copies of the volume on the target are
counted: from the listing the put made and what retention deleted, or listed again.

A scheduled copy of a volume other hosts know too is made once per planned run
(``backup.turns.ScheduledTurns``, the local tier's rules): while another running VM has
the volume attached its host makes it; under the target's lock for the volume, a
scheduled copy there begun at or after the planned run means it was made already. The
target's lock is this process's; across hosts a scheduled copy holds the volume's copy
lease for that target (``leases(volume, label)``: a lease beside the volume's backup
leases, on its backup store, which every host sharing the volume sees) from that check
to the end of the copy, so two hosts firing at once make one copy: the other finds the
lease held. All three are ``LeaseHeld``: recorded as ``skipped`` with the reason, never
as a failure. A backup store that cannot hold the lease now does not stop the copy (an
off-site copy is most needed when local storage fails): it goes on without, logged.
"""

import logging
import os
from contextlib import nullcontext

from ..backup.contract import EMPTY_RESULTS, OK
from ..backup.lease import LeaseHeld
from ..errors import BackupError, NotFound, VolumeError
from ..policy.retention import SCHEDULE
from .errors import CheckFailed, RepositoryMissing

log = logging.getLogger(__name__)


class CopyRuns:
    """``targets``: {label: contract.Target}; ``unavailable``: {label: why}; ``board``:
    CopyBoard; ``views``: views.Views; ``local_board``: the backup service's StatusBoard
    (a restore's RestoredFrom); ``scratch``: the folder test restores use; ``clock``;
    ``turns``: the ScheduledTurns; ``holder(volume)``: the running VM other than this
    host's that has the volume ("" for none); ``leases(volume, label)``: the Leases of the
    volume's copies to target ``label`` (BackupError when its store cannot hold them now)."""

    def __init__(self, targets, unavailable, board, views, local_board, scratch, clock, turns, holder,
                 leases):
        self.targets = targets
        self.unavailable = unavailable
        self.board = board
        self.views = views
        self.local_board = local_board
        self.scratch = scratch
        self.clock = clock
        self.turns = turns
        self.holder = holder
        self.leases = leases

    def target(self, label):
        """The target ``label``; BackupError saying why not when it cannot be used."""
        target = self.targets.get(label)
        if target is not None:
            return target
        if label in self.unavailable:
            raise BackupError(f"backup target {label} is unavailable: {self.unavailable[label]}")
        raise NotFound(f"no backup target is labelled {label} (targets: {', '.join(sorted(self.targets)) or 'none'}; "
                       "see BACKUP_TARGETS)")

    def copy(self, volume, label, origin, keep=None, planned=None):
        """Copy ``volume`` to target ``label`` now; with ``keep`` (a Retention), apply it to
        its scheduled copies there after. ``planned``: the planned run a scheduled copy is
        for (one per run, see the module docstring). Returns the Record."""
        target = self.target(label)
        started = self.clock()
        what = f"the scheduled copy of volume {volume.name} to backup target {label}"
        try:
            if planned is not None:
                self.turns.check_turn(volume, planned, self.holder(volume), what)
            with self._copy_lease(volume, label, planned), \
                    self.board.reporting(volume.name, label, "copy") as progress, \
                    target.lock(volume.name, "copying it"):
                if planned is not None:
                    self._check_not_made(volume, label, target, planned, what)
                record = target.put(self.views.source(volume, origin), origin, progress)
        except LeaseHeld as err:
            self.board.skipped(volume.name, label, started, origin, err)
            log.info("volume %s: %s copy to backup target %s skipped: %s", volume.name, origin, label, err)
            raise
        except VolumeError as err:
            self.board.failed(volume.name, label, started, origin, err)
            log.error("volume %s: %s copy to backup target %s failed: %s", volume.name, origin, label, err)
            raise
        deleted, failed = self._retain(target, volume.name, keep) if keep is not None and origin == SCHEDULE \
            else ((), None)
        seconds = max(0.0, (self.clock() - started).total_seconds())
        # once the run is over, retention included; the copies kept are those the put
        # counted less what retention deleted, else listed again
        known = record.kept is not None and failed is None
        kept = record.kept - len(deleted) if known else self._count(target, volume.name)
        self.board.copied(volume.name, label, record, seconds, kept)
        if failed:
            self.board.error(volume.name, label, f"the copy was made, but its retention failed: {failed}")
        return record

    def _copy_lease(self, volume, label, planned):
        """Hold the volume's copy lease for ``label`` while a scheduled copy runs (see the
        module docstring); nothing for a copy asked by hand."""
        if planned is None:
            return nullcontext()
        try:
            leases = self.leases(volume, label)
        except BackupError as err:
            log.warning("volume %s: the scheduled copy to backup target %s goes on without its copy lease "
                        "(another host may copy it too): %s", volume.name, label, err)
            return nullcontext()
        return leases.hold(volume.name, f"making its scheduled copy to backup target {label}")

    def _check_not_made(self, volume, label, target, planned, what):
        """AlreadyMade when ``target`` holds a scheduled copy of ``volume`` for ``planned``
        (its catalog, read under the volume's lock there); what it holds is counted."""
        try:
            records = target.records(volume.name)
        except RepositoryMissing:
            records = []                     # nothing was copied there yet: the copy makes it
        if records:
            self.board.counted(volume.name, label, len(records), max(r.created for r in records))
        self.turns.check_not_made(volume, planned, [(r.id, r.origin, r.created) for r in records], what, "copy")

    def _count(self, target, name):
        """How many copies of ``name`` ``target`` holds now (None: it could not say)."""
        try:
            with target.lock(name, "counting its copies"):
                return len(target.records(name))
        except VolumeError as err:
            log.warning("volume %s: cannot count its copies on backup target %s: %s", name, target.label, err)
            return None

    def _retain(self, target, name, keep):
        """Apply ``keep``: (the copies it deleted, None), or ((), the error) when it failed
        (the copy stands)."""
        try:
            with target.lock(name, "applying its retention"):
                deleted = target.retain(name, keep)
        except VolumeError as err:
            log.error("volume %s: retention on backup target %s failed: %s", name, target.label, err)
            return (), err
        if deleted:
            log.info("volume %s: retention deleted copies %s on backup target %s", name, ", ".join(deleted),
                     target.label)
        return deleted, None

    def restore(self, volume, found, label, include=None):
        """Fill ``volume`` (its lock held, unmounted) from Found copy ``found`` of target ``label``."""
        target = self.target(label)
        record = found.record
        with self.board.reporting(volume.name, label, "restore") as progress, \
                target.lock(record.volume, f"restoring its copy {record.id} into volume {volume.name}"):
            target.restore(record, self.views.sink(volume), include=include, progress=progress)
        self.local_board.restored(volume.name, record.volume, record.id, found.why)
        log.info("volume %s restored from copy %s of %s on backup target %s (%s)", volume.name, record.id,
                 record.volume, label, found.why)

    def verify(self, label, read=None):
        """Verify target ``label`` now; the Verification, recorded. CheckFailed (a
        BackupError) when it found damage or could not check."""
        target = self.target(label)
        verification = target.verify(os.path.join(self.scratch, label), read)
        self.board.verified(verification)
        if verification.result in (OK, *EMPTY_RESULTS):
            log.info("backup target %s verified: %s (%s)", label, verification.result, verification.read)
            return verification
        said = " / ".join(verification.problems) or verification.error
        log.error("backup target %s: verification %s: %s", label, verification.result, said)
        raise CheckFailed(f"verification of backup target {label} {verification.result}: {said}",
                          verification.problems)
