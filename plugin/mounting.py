"""What containers have mounted on this host: the mount table, the bind mounts below the
plugin's propagated mount, and the attach and detach of each volume around them.

``HostMounts`` counts every Mount per caller ID (``MountTable``, persisted), bind-mounts a
volume at ``<mount root>/<name>`` on its first Mount after its store attached it, and
unbinds and detaches it on its last Unmount; attach and detach run as the volume's job,
awaited until the call's deadline (``jobs.run_job``). After a restart it mounts again,
store by store as each answers, what containers use (``restore``), and releases what is
mounted for no container (``release_unused``).
"""

import logging
import os

from .errors import InUse, VolumeError, cut
from .jobs import run_job

log = logging.getLogger(__name__)

ATTACH_RESERVE = 25.0   # seconds of a Mount's budget kept for the attach and mount themselves,
#                        at most half of the budget (the rest may wait for a release)


class HostMounts:
    """``table``: MountTable; ``mounter``: mounter.Mounter; ``mount_root``: the plugin's
    propagated mount; ``registry``: VolumeRegistry; ``stores``: {label: VolumeStore};
    ``health``: StoreHealth; ``clock``: aware now."""

    def __init__(self, table, mounter, mount_root, registry, stores, health, clock):
        self.table = table
        self.mounter = mounter
        self.mount_root = mount_root
        self.registry = registry
        self.stores = stores
        self.health = health
        self.clock = clock

    def mountpoint(self, name):
        return os.path.join(self.mount_root, name)

    def count(self, name):
        return self.table.count(name)

    def check_unmounted(self, name):
        """Raise InUse while any container has volume ``name`` mounted."""
        count = self.table.count(name)
        if count:
            callers = len(self.table.callers(name))
            raise InUse(f"volume {name} is in use: mounted {count} time(s) by {callers} "
                        "container(s); stop and remove them first")

    # --- Mount and Unmount (the caller holds the volume's lock) ----------------------------
    def mount(self, volume, caller, deadline):
        """Count a mount of ``volume`` by ``caller``; attach and bind it first when it is
        not mounted. Return the mountpoint."""
        target = self.mountpoint(volume.name)
        if self.table.count(volume.name) == 0 or not self.mounter.is_mounted(target):
            self._attach(volume, target, deadline)
        self.table.add(volume.name, caller or "")
        return target

    def _attach(self, volume, target, deadline):
        store = self.health.require(volume.store, retry=False)
        name = volume.name
        try:
            # What the budget leaves beyond the attach itself may go to waiting for another
            # Docker host to release the volume (a swarm task moving here).
            left = deadline.remaining()
            wait = max(0.0, left - min(ATTACH_RESERVE, left / 2))
            source = run_job(volume, f"attaching volume {name}", lambda: store.attach(name, wait=wait), deadline,
                             self.clock)
        except InUse:
            volume.unclaimed_attach = True   # it goes on: remove must detach it
            raise
        volume.unclaimed_attach = False
        try:
            self.mounter.bind(source, target)
        except BaseException:
            if self.table.count(name) == 0:
                store.detach(name)
            raise

    def unmount(self, volume, caller, deadline):
        """Release one mount of ``caller``; True when that was the last mount (then the
        volume is unbound and detached). False, changing nothing, for a caller with no
        mount recorded."""
        if not self.table.release(volume.name, caller or ""):
            log.warning("volume %s: unmount by %s, which has no mount recorded; nothing to do",
                        volume.name, cut(caller))
            return False
        if self.table.count(volume.name):
            return False
        self.release(volume.name, deadline)
        return True

    def release(self, name, deadline):
        """Unbind ``name`` and detach it (a detach slower than ``deadline`` goes on)."""
        self.mounter.unmount(self.mountpoint(name))
        volume = self.registry.get(name)
        if volume is not None:
            store = self.stores[volume.store]
            run_job(volume, f"detaching volume {name}", lambda: store.detach(name), deadline, self.clock,
                    required=False)

    # --- after a restart -----------------------------------------------------------------
    def restore(self, label):
        """Store ``label`` answered for the first time: mount again what containers use."""
        for name in self.table.names():
            volume = self.registry.get(name)
            if volume is None or volume.store != label:
                continue
            try:
                self.mounter.bind(self.stores[label].attach(name), self.mountpoint(name))
                log.info("volume %s: %d mount(s) restored", name, self.table.count(name))
            except Exception as err:  # noqa: BLE001 - one volume's failure must not stop the others
                log.error("volume %s: could not restore its mount: %s", name, err)

    def release_unused(self, budgets):
        """Forget mounts of volumes no store has (once every store answered); unmount
        what is mounted for no container (each detach within ``budgets``' Unmount)."""
        for name in self.table.names():
            if self.registry.get(name) is None and not self.health.errors:
                log.warning("mount state names volume %s, which no store has; forgetting it", name)
                self.table.forget(name)
        for entry in os.listdir(self.mount_root) if os.path.isdir(self.mount_root) else []:
            volume = self.registry.get(entry)
            if self.table.count(entry) == 0 and self.mounter.is_mounted(self.mountpoint(entry)) \
                    and (volume is None or self.health.available(volume.store)):
                log.info("volume %s: mounted but used by no container; unmounting", entry)
                try:
                    self.release(entry, budgets.deadline("unmount"))
                except VolumeError as err:
                    log.error("volume %s: %s", entry, err)
