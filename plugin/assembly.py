"""Builds the plugin's object graph from Settings: stores, driver, backup service.

The one place that knows which concrete class serves which kind of store. Everything
is passed in, so tests assemble the same graph with their own collaborators.
"""

import logging
import os
import socket

from .backup.direngine import DirectoryEngine
from .backup.lease import Leases, LocalLeaseFolder
from .backup.repository import LocalBackupRepository
from .backup.scheduler import JsonFileStateStore
from .backup.service import BackupService, utc_now
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


def build_backups(settings, stores, vsphere=None, clock=utc_now, executor=None, scheduler_thread=True):
    """The BackupService over ``stores``: an engine per kind, a catalog and leases per store."""
    owner = f"host {socket.gethostname()}, plugin pid {os.getpid()}"
    engines = [DirectoryEngine(clock=clock)]
    repositories, leases = {}, {}
    for label, store in stores.items():
        if isinstance(store, DirectoryStore):
            repositories[label] = LocalBackupRepository(store.root)
            leases[label] = Leases(LocalLeaseFolder(store.root), owner, clock)
    session = getattr(vsphere, "session", None)
    if session is not None:
        from .backup.dslease import DatastoreLeaseFolder
        from .backup.dsrepository import DatastoreBackupRepository
        from .backup.vmdkengine import VmdkEngine
        from .stores.vmdk import DatastoreStore
        engines.append(VmdkEngine(session, clock=clock))
        for label, store in stores.items():
            if isinstance(store, DatastoreStore):
                repositories[label] = DatastoreBackupRepository(
                    session, store.datastore, store.spec.path, inventory=store.inventory)
                leases[label] = Leases(DatastoreLeaseFolder(
                    session, store.datastore, store.spec.path, inventory=store.inventory), owner, clock)
    state = JsonFileStateStore(os.path.join(settings.state_dir, "backup-schedule.json"))
    return BackupService(stores, engines, repositories, leases, state_store=state, clock=clock,
                         tz=settings.tz, concurrency=settings.backup_concurrency, executor=executor,
                         scheduler_thread=scheduler_thread)


def build_driver(settings, mounter=None, vsphere=None, backups=True, clock=utc_now, **backup_args):
    """The VolumeDriver for ``settings``, with its BackupService unless ``backups`` is False.

    ``vsphere(spec)`` builds datastore stores (default: ``vsphere_factory``);
    ``backup_args`` go to ``build_backups`` (executor, scheduler_thread).
    """
    mounter = mounter or Mounter()
    if vsphere is None:
        vsphere = vsphere_factory(settings, mounter)
    stores = {spec.label: build_store(spec, settings, mounter, vsphere) for spec in settings.volume_stores}
    default = "default" if "default" in stores else next(iter(stores))
    mounts = MountTable(os.path.join(settings.state_dir, "mounts.json"))
    service = build_backups(settings, stores, vsphere, clock, **backup_args) if backups else None
    driver = VolumeDriver(stores, mounts, mounter, settings.mount_root, default_store=default,
                          backups=service, clock=clock)
    if service is not None:
        service.bind(driver)
    return driver
