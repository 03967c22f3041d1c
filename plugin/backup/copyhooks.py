"""What the backup service asks of off-site copies, and ``NoCopies``: the same, doing nothing.

``BackupService`` calls its ``copies`` (``plugin.offsite.service.OffsiteCopies`` when the
plugin is assembled; ``NoCopies`` otherwise) at the same moments it acts itself: a
volume's policy is checked, a volume comes and goes or is unmounted for the last time, a
store answers, the service starts and stops, inspect wants a status. A ``RestoreFrom``
naming a backup target (``offsite:mydata@latest``) is the copies' to restore.
"""

from ..errors import BackendError


class NoCopies:
    """No off-site copies: every hook does nothing; a restore from a target is refused."""

    api = None      # the /Backup.* calls that name a target (offsite.api.CopyApi)
    offsite = ()    # the labels of the off-site targets (operations has series for them)

    def bind(self, volumes, service):
        pass

    def check_policy(self, options):
        if options.copies:
            raise BackendError("BackupCopy is not available in this plugin build: it has no backup targets")

    def volume_added(self, volume):
        pass

    def volume_removed(self, volume):
        pass

    def last_unmount(self, volume):
        pass

    def store_opened(self, label):
        pass

    def started(self):
        pass

    def stop(self):
        pass

    def status(self, name):
        return {}

    def next_run(self, name, label):
        return None

    def resolve(self, ref):
        return ref

    def find(self, ref):
        raise BackendError(f"RestoreFrom={ref}: this plugin build has no backup target {ref.target}")

    def restore_defaults(self, ref, given):
        self.find(ref)

    def restore_into(self, volume, ref):
        self.find(ref)
