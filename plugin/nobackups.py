"""The backup seam of the driver when no backup service is wired: every hook does nothing,
and a restore is refused."""

from .errors import BackendError


class NoBackups:
    """What the driver calls on the backup service, doing nothing."""

    def check_policy(self, options):
        pass

    def store_opened(self, label):
        pass

    def started(self):
        pass

    def stop(self):
        pass

    def volume_added(self, volume):
        pass

    def before_remove(self, volume, wait=None):
        pass

    def volume_removed(self, volume):
        pass

    def last_unmount(self, volume):
        pass

    def check_restorable(self, ref):
        raise BackendError("restoring from a backup is not available in this plugin build")

    def restore_defaults(self, ref, given):
        self.check_restorable(ref)

    def restore_into(self, volume, ref):
        self.check_restorable(ref)

    def status(self, name):
        return {}
