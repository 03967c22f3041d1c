"""The local tier as a backup target (``contract.Target``): the backups this plugin has
always made, each in its volume's ``BackupStore`` (datastore clones of VMDK volumes,
folder copies of folder volumes), seen through the one contract every target has.

It does no work of its own: ``BackupOperations`` backs up, restores, deletes and prunes,
``BackupTargets`` finds the backups and holds the leases, as they do for the driver's
hooks and the ``/Backup.*`` calls. So a restore, a listing or a verification that names
a target works the same whether the target is the local tier or an off-site one.
Bind it to the ``BackupService`` (``bind``) before use.
"""

from ..errors import InvalidRequest, VolumeError
from .contract import DAMAGED, FAILED, OK, Found, Record, Target, Verification
from .repository import DamagedBackup

LOCAL = "local"


class LocalTier(Target):
    """The local tier labelled ``label`` (``local:label`` in BACKUP_TARGETS)."""

    kind = LOCAL

    def __init__(self, label=LOCAL):
        self.label = label
        self.service = None

    def bind(self, service):
        """Work through ``service`` (a bound BackupService)."""
        self.service = service

    # --- the contract -------------------------------------------------------------------
    def put(self, source, origin, progress=None):
        return self._record(self.service.operations.backup(source.volume, origin))

    def records(self, volume=None):
        names = [volume] if volume else sorted(v.name for v in self.service.volumes.all())
        found = [self._record(entry) for name in names
                 for _, scan in self.service.targets.catalogs(name) for entry in (*scan.backups, *scan.damaged)]
        return sorted(found, key=lambda record: (record.created, record.id))

    def find(self, volume, ref):
        found = self.service.targets.find(volume, ref)
        return Found(self._record(found.manifest, handle=found), found.why)

    def restore(self, record, sink, include=None, progress=None):
        if include:
            raise InvalidRequest(f"backup target {self.label} (the local tier) restores whole volumes: "
                                 "RestorePath is for off-site targets")
        self.service.operations.restore(record.handle, sink.volume)

    def delete(self, volume, backup_id):
        self.service.operations.delete(volume, backup_id)

    def retain(self, volume, keep):
        return self.service.operations.prune(volume, keep)

    def verify(self, scratch, read=None):
        """Every manifest of the known volumes' backups read and checked (a damaged one is
        damage); the copies themselves are read only by a restore. Each volume with
        backups gets the result of its own as its last verification (operations)."""
        now = self.service.clock()
        try:
            records = self.records()
        except VolumeError as err:
            return Verification(self.label, now, FAILED, error=str(err))
        said = {}
        for record in records:
            found = said.setdefault(record.volume, [])
            if record.state != OK:
                found.append(f"backup {record.id} of volume {record.volume} is {record.state}: {record.problem}")
        self.service.board.volumes_verified(LOCAL, now, {volume: "; ".join(found) for volume, found in said.items()})
        problems = tuple(problem for found in said.values() for problem in found)
        return Verification(self.label, now, DAMAGED if problems else OK, read="manifests", problems=problems)

    def lock(self, volume, purpose):
        known = self.service.volumes.find(volume)
        label = known.options.backup_store if known else next(
            (t.label for t, _ in self.service.targets.catalogs(volume)), None)
        if label is None:
            raise InvalidRequest(f"volume {volume} has no backups on the local tier")
        return self.service.targets.get(label).hold(volume, purpose)

    def describe(self):
        return {"Label": self.label, "Kind": self.kind,
                "Location": "each volume's BackupStore (datastore clones, folder copies)"}

    # --- records ------------------------------------------------------------------------
    def _record(self, entry, handle=None):
        if isinstance(entry, DamagedBackup):
            return Record(self.label, entry.volume, entry.backup_id, entry.created, entry.origin,
                          state=entry.state, problem=entry.reason)
        return Record(self.label, entry.volume, entry.backup_id, entry.created, entry.origin, size=entry.size,
                      facts={"Method": entry.method, "Store": entry.store}, handle=handle)
