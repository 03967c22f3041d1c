"""The ``/Backup.*`` calls that name a backup target, behind the endpoints of ``protocol``.

==================  ===================================================  =========================
endpoint            method                                               answer
==================  ===================================================  =========================
/Backup.Targets     api_targets()                                        every target, its state
/Backup.Copy        api_copy(name, target)                               the copies made
/Backup.Verify      api_verify(target, read)                             the verification
/Backup.List        api_list(name, target) (name "" : every volume)      the backups there
/Backup.Restore     api_restore(name, backup, new, force, target, path)  Volume, Backup, Why, ...
==================  ===================================================  =========================

Every name, id and label is checked before anything is looked up. A restore as a new
volume is a ``docker volume create`` with ``RestoreFrom=<target>:<volume>@<id>``; in
place it needs ``force``, is refused while mounted, and takes a local safety backup of
the current data first, as a restore from the local tier does.
"""

from ..errors import InUse, InvalidRequest, cut
from ..options import RESTORE_FROM, RESTORE_PATH, TARGET_LABEL_RE, parse_restore_path, validate_name
from ..policy import ids
from ..policy.retention import MANUAL
from ..backup.volumes import existing
from .restic import check_subset


def check_label(label):
    if not isinstance(label, str) or not TARGET_LABEL_RE.fullmatch(label):
        raise InvalidRequest(f"{cut(repr(label))} is not a backup target label: labels are 1 to 64 letters, "
                             "digits, '_', '.' or '-' (see vsphere-volume targets)")
    return label


class CopyApi:
    """``copies``: the OffsiteCopies; ``volumes``: the driver's; ``service``: the BackupService."""

    def __init__(self, copies, volumes, service):
        self.copies = copies
        self.volumes = volumes
        self.service = service

    def api_targets(self):
        shown = []
        for label, target in self.copies.targets.items():
            entry = dict(target.describe(), Available=True)
            verification = self.copies.board.verification(label)
            if verification:
                entry["LastVerification"] = verification
            planned = self.copies.verify_schedule.status(label)
            if planned.get("NextRun"):
                entry["NextVerification"] = planned["NextRun"]
            shown.append(entry)
        shown += [{"Label": label, "Available": False, "Reason": reason}
                  for label, reason in self.copies.unavailable.items()]
        return {"Targets": shown, "Problems": list(self.copies.specs.problems)}

    def api_copy(self, name, label=""):
        volume = existing(self.volumes, validate_name(name))
        labels = [check_label(label)] if label else [c.target for c in self.copies.policies(volume.options)]
        if not labels:
            raise InvalidRequest(f"volume {name} has no BackupCopy: name the target to copy it to (--target offsite)")
        return [self.copies.runs.copy(volume, one, MANUAL).summary() for one in labels]

    def api_verify(self, label, read=""):
        check_label(label)
        return self.copies.runs.verify(label, check_subset(read) if read else None).summary()

    def api_list(self, name, label):
        check_label(label)
        if name:
            validate_name(name)
        return [record.summary() for record in self.copies.runs.target(label).records(name or None)]

    def api_restore(self, name, backup="latest", new="", force=False, label="", path=""):
        """Restore backup ``backup`` of ``name`` from target ``label``: as a new volume when
        ``new`` is another name (or ``name`` does not exist here), else in place."""
        validate_name(name)
        check_label(label)
        if new:
            validate_name(new)
        if backup != "latest":
            ids.check_id(backup)
        path = parse_restore_path(path) if path else ""
        found = self.copies.runs.target(label).find(name, backup)
        done = {"Volume": new or name, "Backup": found.record.id, "Why": found.why, "Target": label}
        if (new or name) != name or self.volumes.find(name) is None:
            given = {RESTORE_FROM: f"{label}:{name}@{found.record.id}"}
            if path:
                given[RESTORE_PATH] = path
            self.volumes.create(new or name, given)
            return done
        if path:
            raise InvalidRequest(f"restoring one path ({path}) fills a new volume: add --as NEW")
        if not force:
            raise InUse(f"restoring volume {name} in place replaces its data: add --force "
                        "(a backup of the current data is taken first), or restore --as a new volume")
        safety = self.service.operations.restore_in_place(
            name, found, lambda found, volume: self.copies.runs.restore(volume, found, label))
        return dict(done, SafetyBackup=safety.backup_id)

    def api_progress(self, name):
        return self.copies.board.progress(validate_name(name))
