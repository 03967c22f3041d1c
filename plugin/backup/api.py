"""The ``/Backup.*`` calls, behind the endpoints ``protocol.create_app`` serves.

``BackupApi`` has one method per endpoint: it checks every name and id it was given
before it looks anything up (a refusal says what is accepted), has the work done by
``BackupOperations``, and answers with the plain values the protocol sends:

==================  ========================================  ================================
endpoint            method                                    answer
==================  ========================================  ================================
/Backup.Create      api_create(name)                          the backup's summary
/Backup.List        api_list(name)                            every backup, oldest first
/Backup.Restore     api_restore(name, backup, target, force)  Volume, Backup, Why (SafetyBackup)
/Backup.Delete      api_delete(name, backup_id)               nothing
/Backup.Prune       api_prune(name)                           the ids deleted
/Backup.Progress    api_progress(name)                        what the running work does, or {}
==================  ========================================  ================================
"""

from ..errors import InUse, NotFound
from ..options import validate_name
from ..policy import ids
from ..policy.retention import MANUAL
from .volumes import existing


class BackupApi:
    """operations: BackupOperations; targets: BackupTargets; volumes: volumes.Volumes;
    board: StatusBoard."""

    def __init__(self, operations, targets, volumes, board):
        self.operations = operations
        self.targets = targets
        self.volumes = volumes
        self.board = board

    def api_create(self, name):
        """Back volume ``name`` up now; its summary (``Manifest.summary``)."""
        return self.operations.backup(existing(self.volumes, validate_name(name)), MANUAL).summary()

    def api_list(self, name):
        """Every backup of ``name``, oldest first: the usable ones (State ok) and the
        damaged ones (State damaged or unreadable, with the Problem)."""
        validate_name(name)
        scans = [scan for _, scan in self.targets.catalogs(name)]
        if not scans and self.volumes.find(name) is None:
            raise NotFound(f"no volume named {name} and no backups of one")
        usable = [(m.backup_id, dict(m.summary(), State="ok")) for scan in scans for m in scan.backups]
        damaged = [(d.backup_id, d.summary()) for scan in scans for d in scan.damaged]
        # By id: the time each began (a damaged one has no other time left).
        return [shown for _, shown in sorted(usable + damaged, key=lambda entry: ids.sort_key(entry[0]))]

    def api_restore(self, name, backup="latest", target="", force=False):
        """Restore backup ``backup`` of volume ``name``.

        As a new volume when ``target`` is another name (it gets the backed-up volume's
        options); in place when ``target`` is empty or ``name``: that needs ``force``,
        is refused while the volume is mounted, and first backs up the current data.
        """
        validate_name(name)
        if target:
            validate_name(target)
        if backup != "latest":
            ids.check_id(backup)
        found = self.targets.find(name, backup)
        done = {"Volume": target or name, "Backup": found.manifest.backup_id, "Why": found.why}
        if (target or name) != name or self.volumes.find(name) is None:
            self.operations.restore_as_new(name, target or name, found)
            return done
        if not force:
            raise InUse(f"restoring volume {name} in place replaces its data: add --force "
                        "(a backup of the current data is taken first), or restore --as a new volume")
        safety = self.operations.restore_in_place(name, found)
        return dict(done, SafetyBackup=safety.backup_id)

    def api_delete(self, name, backup_id):
        """Delete one backup, usable or damaged (unless others record their data in it)."""
        validate_name(name)
        ids.check_id(backup_id)
        self.operations.delete(name, backup_id)

    def api_prune(self, name):
        """Apply the volume's BackupKeep now; the ids deleted."""
        return self.operations.prune(validate_name(name))

    def api_progress(self, name):
        """What the running backup or restore of ``name`` is doing; {} when none runs."""
        return self.board.progress(validate_name(name))
