"""Builds the plugin's object graph from Settings: stores, driver, backup service.

The one place that knows which concrete class serves which kind of store. Everything
is passed in, so tests assemble the same graph with their own collaborators.
"""

import logging
import os

from .driver import VolumeDriver
from .errors import ConfigError
from .mounts import Mounter
from .mountstate import MountTable
from .storespec import DATASTORE, FILE, NFS
from .stores.base import VolumeStore
from .stores.directory import DirectoryStore

log = logging.getLogger(__name__)

# Where datastore stores mount their filesystems, inside the propagated mount. Volume
# names cannot start with a dot, so this never clashes with a volume's bind mount.
DISKS_DIR = ".disks"


class UnavailableStore(VolumeStore):
    """A declared store that cannot be served; every call says why."""

    def __init__(self, spec, reason):
        super().__init__(spec)
        self.reason = reason

    def _fail(self, *_):
        raise ConfigError(self.reason)

    open = discover = create = remove = attach = detach = _fail


def build_store(spec, settings, mounter, vsphere=None):
    if spec.kind == FILE:
        return DirectoryStore(spec, spec.path)
    if spec.kind == NFS:
        return DirectoryStore(spec, os.path.join(settings.state_dir, "nfs", spec.label), mounter)
    if spec.kind == DATASTORE:
        if vsphere is None:
            return UnavailableStore(spec, (
                f"volume store {spec.label} ({spec.spec}) is on a vSphere datastore, but no vCenter "
                "is configured: set VSPHERE_URL, VSPHERE_USER and VSPHERE_PASSWORD"))
        return vsphere(spec)
    raise ConfigError(f"volume store {spec.spec}: unknown kind {spec.kind}")


def vsphere_factory(settings, mounter):
    """``factory(spec) -> DatastoreStore`` when vCenter is configured, else None.

    Invalid VSPHERE_* settings make every datastore store unavailable with the reason;
    folder stores are served all the same.
    """
    if not settings.env.get("VSPHERE_URL", "").strip():
        return None
    from .stores.vmdk import datastore_store_factory  # pyvmomi is loaded only when needed
    try:
        return datastore_store_factory(settings.env, mounter, os.path.join(settings.mount_root, DISKS_DIR))
    except ConfigError as err:
        log.error("vCenter settings are invalid: %s", err)
        return lambda spec: UnavailableStore(spec, f"volume store {spec.label}: {err}")


def build_driver(settings, mounter=None, vsphere=None, backups=None):
    """The VolumeDriver for ``settings``. ``vsphere(spec)`` builds datastore stores
    (default: ``vsphere_factory``)."""
    mounter = mounter or Mounter()
    if vsphere is None:
        vsphere = vsphere_factory(settings, mounter)
    stores = {spec.label: build_store(spec, settings, mounter, vsphere) for spec in settings.volume_stores}
    default = "default" if "default" in stores else next(iter(stores))
    mounts = MountTable(os.path.join(settings.state_dir, "mounts.json"))
    return VolumeDriver(stores, mounts, mounter, settings.mount_root, default_store=default,
                        backups=backups)
