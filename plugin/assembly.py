"""Builds the plugin's object graph from Settings: stores, driver, backup service, and
operations watching them (``build_monitored``: ``monitoring.Monitoring``).

The one place that knows which concrete class serves which kind of store. Everything
is passed in, so tests assemble the same graph with their own collaborators.

``STORE_KINDS`` says how each kind of store is served: the store, and, when it can hold
backups, its catalog and its leases (``Served``). ``TARGET_KINDS`` says how each kind of
backup target (``BACKUP_TARGETS``) is served: the local tier, or a restic repository
(``backup.contract.Target``); the off-site copies (``offsite.service``) work on them.
In VCH sidecar mode (``VCH_URL`` set)
every datastore and NFS store is built as in direct mode and then wrapped in a
``vch.store.VchStore`` (``vch_sidecar``) for Docker's calls; the backup service copies
from and into the store it wraps.
"""

import logging
import os
import socket
from dataclasses import dataclass

from .backup.direngine import DirectoryEngine
from .backup.lease import Leases, LocalLeaseFolder
from .backup.localtier import LOCAL, LocalTier
from .backup.repository import LocalBackupRepository
from .backup.scheduler import JsonFileStateStore
from .backup.service import BackupService
from .driver import VolumeDriver
from .errors import ConfigError
from .monitoring import Monitoring
from .mounter import Mounter
from .mounttable import MountTable
from .offsite.restic import Restic
from .offsite.service import OffsiteCopies
from .offsite.targetspec import FILE as FILE_TARGET
from .offsite.targetspec import S3, targets_from_env
from .offsite.tier import ResticTier
from .options import DEFAULT_STORE
from .registry import StoreListings, VolumeRegistry
from .restoremarks import RestoreMarks
from .stores.base import VolumeStore
from .stores.directory import DirectoryStore
from .storespec import DATASTORE, FILE, NFS
from .timefmt import utc_now

log = logging.getLogger(__name__)

# Where datastore stores mount their filesystems, inside the propagated mount. Volume
# names cannot start with a dot, so this never clashes with a volume's bind mount.
DISKS_DIR = ".disks"

# In the plugin's state folder: the stores' last listings, the unfinished restores, the
# caches of restic repositories.
LISTINGS_DIR = "listings"
RESTORES_FILE = "restores.json"
RESTIC_CACHE_DIR = "restic-cache"
# Seconds restic may keep retrying a backend that does not answer before the call fails.
RESTIC_RETRY_BUDGET = 30.0


class UnavailableStore(VolumeStore):
    """A declared store that cannot be served; every call says why."""

    def __init__(self, spec, reason):
        super().__init__(spec)
        self.reason = reason

    def _fail(self, *_, **__):
        raise ConfigError(self.reason)

    open = discover = lookup = create = remove = attach = detach = holders = release = _fail


@dataclass
class Served:
    """One declared store as the plugin serves it: the store that holds its volumes (and
    that the backup engines copy from and into), and, when it can hold backups, their
    catalog and the leases on them."""

    store: VolumeStore
    repository: object = None     # backup.repository.BackupRepository
    leases: object = None         # backup.lease.Leases


@dataclass
class Parts:
    """What building the stores of one plugin needs."""

    settings: object
    mounter: object
    vsphere: object               # stores.vmdk.DatastoreStores, BrokenVSphere or None
    clock: object
    host: str                     # this host, as leases name it

    @property
    def owner(self):
        return f"host {self.host}, plugin pid {os.getpid()}"

    def leases(self, folder):
        return Leases(folder, self.owner, self.clock, host=self.host)


def folder_store(spec, parts):
    """A ``file://`` folder, or an NFS export mounted below the state folder."""
    if spec.kind == NFS:
        root = os.path.join(parts.settings.state_dir, "nfs", spec.label)
        store = DirectoryStore(spec, root, parts.mounter)
    else:
        root = spec.path
        store = DirectoryStore(spec, root)
    return Served(store, LocalBackupRepository(root), parts.leases(LocalLeaseFolder(root)))


def datastore_store(spec, parts):
    """A datastore folder of VMDK volumes, through the plugin's one vSphere session."""
    if parts.vsphere is None:
        return Served(UnavailableStore(spec, (
            f"volume store {spec.label} ({spec.spec}) is on a vSphere datastore, but no vCenter "
            "is configured: set VSPHERE_URL, VSPHERE_USER and VSPHERE_PASSWORD")))
    store = parts.vsphere.store(spec)
    session = parts.vsphere.session
    if session is None:
        return Served(store)
    from .backup.dslease import DatastoreLeaseFolder
    from .backup.dsrepository import DatastoreBackupRepository
    inventory = parts.vsphere.inventory
    return Served(store, DatastoreBackupRepository(session, spec.datastore, spec.path, inventory=inventory),
                  parts.leases(DatastoreLeaseFolder(session, spec.datastore, spec.path, inventory=inventory)))


#: How each kind of store is served: kind -> factory(spec, Parts) -> Served.
STORE_KINDS = {FILE: folder_store, NFS: folder_store, DATASTORE: datastore_store}


def serve(spec, parts):
    """The Served store of ``spec`` (an UnavailableStore when its spec is bad)."""
    if spec.problem:
        return Served(UnavailableStore(spec, spec.problem))
    return STORE_KINDS[spec.kind](spec, parts)


def local_target(spec, parts):
    """The local tier (``local:label``): each volume's BackupStore, as today."""
    return LocalTier(spec.label)


def restic_target(spec, parts):
    """A restic repository (``s3:...``, ``file://...``), its cache in the state folder."""
    restic = Restic(spec.repository_config(), cache_dir=os.path.join(parts.settings.state_dir, RESTIC_CACHE_DIR,
                                                                     spec.label),
                    tz=parts.settings.tz, retry_budget=RESTIC_RETRY_BUDGET)
    return ResticTier(spec, restic, parts.host, parts.clock)


#: How each kind of backup target is served: kind -> factory(TargetSpec, Parts) -> contract.Target.
TARGET_KINDS = {LOCAL: local_target, S3: restic_target, FILE_TARGET: restic_target}


def build_copies(settings, parts):
    """The OffsiteCopies over the targets of BACKUP_TARGETS (unusable ones with their reason)."""
    specs = targets_from_env(settings.env, settings.data_dir)
    for problem in specs.problems:
        log.error("backup targets: %s", problem)
    for unavailable in specs.unavailable:
        log.error("backup target %s is unavailable: %s", unavailable.label, unavailable.reason)
    targets = {spec.label: TARGET_KINDS[spec.kind](spec, parts) for spec in specs.available}
    return OffsiteCopies(targets, specs, settings.state_dir, parts.clock, settings.tz, settings.backup_concurrency)


def engines_for(parts):
    """The backup engines: folder volumes always, VMDK volumes with a vSphere session."""
    engines = [DirectoryEngine(clock=parts.clock)]
    session = parts.vsphere.session if parts.vsphere is not None else None
    if session is not None:
        from .backup.vmdkengine import VmdkEngine
        engines.append(VmdkEngine(session, clock=parts.clock))
    return engines


def vsphere_factory(settings, mounter):
    """The ``stores.vmdk.DatastoreStores`` when vCenter is configured, else None.

    Invalid VSPHERE_* settings make every datastore store unavailable with the reason
    (``BrokenVSphere``); folder stores are served all the same.
    """
    if not settings.env.get("VSPHERE_URL", "").strip():
        return None
    # pyvmomi is loaded only when needed
    from .stores.vmdk import DatastoreStores
    try:
        return DatastoreStores.from_env(settings.env, mounter, os.path.join(settings.mount_root, DISKS_DIR))
    except ConfigError as err:
        log.error("vCenter settings are invalid: %s", err)
        return BrokenVSphere(str(err))


class BrokenVSphere:
    """Invalid VSPHERE_* settings: every datastore store says why; no session for backups."""

    session = None

    def __init__(self, reason):
        self.reason = reason

    def store(self, spec):
        return UnavailableStore(spec, f"volume store {spec.label}: {self.reason}")


class BrokenSidecar:
    """Sidecar mode with invalid VCH_* settings: every store a VCH would serve says why."""

    def __init__(self, reason, kinds):
        self.reason = reason
        self.kinds = kinds

    def wrap(self, store):
        if store.spec.kind not in self.kinds:
            return store
        return UnavailableStore(store.spec, f"volume store {store.label} (VCH sidecar mode): {self.reason}")

    def bind(self, listener):
        pass


def vch_sidecar(settings):
    """The ``vch.store.Sidecar`` when VCH_URL is set, else None.

    Invalid VCH_* settings make every store a VCH would serve unavailable with the
    reason (``BrokenSidecar``); folder stores are served all the same.
    """
    if not settings.vch_url:
        return None
    # the docker SDK is loaded only when needed
    from .vch.store import VCH_KINDS, sidecar_from_env
    try:
        return sidecar_from_env(settings.env, settings.state_dir)
    except ConfigError as err:
        log.error("VCH settings are invalid: %s", err)
        return BrokenSidecar(err, VCH_KINDS)


def build_backups(settings, served, parts, executor=None, scheduler_thread=True):
    """The BackupService over the ``served`` stores ({label: Served}): an engine per kind,
    a catalog and leases per store that can hold backups."""
    holding = {label: s for label, s in served.items() if s.repository is not None}
    state = JsonFileStateStore(os.path.join(settings.state_dir, "backup-schedule.json"))
    return BackupService({label: s.store for label, s in served.items()}, engines_for(parts),
                         {label: s.repository for label, s in holding.items()},
                         {label: s.leases for label, s in holding.items()}, state_store=state, clock=parts.clock,
                         tz=settings.tz, concurrency=settings.backup_concurrency, executor=executor,
                         scheduler_thread=scheduler_thread, copies=build_copies(settings, parts))


def build_driver(settings, mounter=None, vsphere=None, backups=True, clock=utc_now, sidecar=None,
                 budgets=None, **backup_args):
    """The VolumeDriver for ``settings``, with its BackupService unless ``backups`` is False.

    ``vsphere.store(spec)`` builds datastore stores (default: ``vsphere_factory``); ``sidecar``
    wraps stores for VCH sidecar mode (default: ``vch_sidecar``, None in direct mode);
    ``budgets``: the Docker calls' jobs.CallBudgets (default: ``settings.budgets``, inside
    Docker's limits and PLUGIN_ENABLE_TIMEOUT);
    ``backup_args`` go to ``build_backups`` (executor, scheduler_thread).
    """
    mounter = mounter or Mounter()
    if vsphere is None:
        vsphere = vsphere_factory(settings, mounter)
    if sidecar is None:
        sidecar = vch_sidecar(settings)
    parts = Parts(settings, mounter, vsphere, clock, host=socket.gethostname())
    served = {spec.label: serve(spec, parts) for spec in settings.volume_stores}
    # Docker's calls go to the stores as the driver serves them (wrapped by a VCH
    # sidecar); backups copy from and into the stores that hold the volumes.
    stores = {label: s.store for label, s in served.items()}
    if sidecar is not None:
        stores = {label: sidecar.wrap(store) for label, store in stores.items()}
    # As VIC: a create without VolumeStore goes to the store labelled "default"; without
    # one it is refused ("No volume store named (default) exists").
    default = DEFAULT_STORE
    mounts = MountTable(os.path.join(settings.state_dir, "mounts.json"))
    service = build_backups(settings, served, parts, **backup_args) if backups else None
    registry = VolumeRegistry(StoreListings(os.path.join(settings.state_dir, LISTINGS_DIR)))
    restores = RestoreMarks(os.path.join(settings.state_dir, RESTORES_FILE))
    driver = VolumeDriver(stores, mounts, mounter, settings.mount_root, default_store=default,
                          backups=service, clock=clock, registry=registry, marks=restores,
                          budgets=budgets or settings.budgets, watch={"refresh": settings.store_refresh})
    if service is not None:
        service.bind(driver)
    if sidecar is not None:
        sidecar.bind(driver.discovery.sync_store)
    return driver


def build_monitored(settings, mounter=None, clock=utc_now, ops_args=None, **driver_args):
    """The driver of ``build_driver`` with operations watching it: ``(driver, Monitoring)``.

    The driver is loaded (Get and List answer) but not started (its discovery is the
    caller's to run); operations (metrics, notifications) are started over its state and
    observe its backups and the vSphere session. ``ops_args`` go to ``ops.runtime.Ops``.
    """
    mounter = mounter or Mounter()
    vsphere = vsphere_factory(settings, mounter)
    driver = build_driver(settings, mounter=mounter, vsphere=vsphere, clock=clock, **driver_args)
    driver.load()
    session = getattr(vsphere, "session", None)
    return driver, Monitoring.start(driver, settings, session, clock=clock, **(ops_args or {}))
