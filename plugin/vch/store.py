"""VCH volume stores: a VIC volume store whose volumes the VCH owns and this plugin serves.

``VchStore`` implements the VolumeStore contract (``stores.base``) for one label of
``VOLUME_STORES``, which in sidecar mode equals the VCH's ``--volume-store`` list. It
wraps the store that serves that label directly (``inner``: a ``DatastoreStore``, or a
``DirectoryStore`` for an NFS store) and splits the work:

- **create** goes to the VCH: driver ``vsphere`` with VIC's options only, in VIC's key
  spelling (``VolumeStore``, always given, as the plugin resolved it, so both agree on the
  default store; ``Capacity`` when the user gave it, as given). The plugin's own options
  (``Backup``, ``BackupKeep``, ``BackupStore``, ``RestoreFrom``), validated by the driver
  before, are recorded in the ``PolicyBook`` and never sent. The VCH's errors reach the
  user verbatim (``client.VchRefused``). If the VCH already had a volume of that name
  (a Docker engine answers such a create without making anything) the create fails with
  Conflict and that volume is left alone. If the policy cannot be recorded, the volume the
  VCH just made is removed again, and the error says so; if that fails too, the error
  says the volume exists on the VCH without its policy.
- **remove** goes to the VCH (the driver has taken the final backup before); its refusal
  (409, a container uses the volume) is the error, verbatim. A VCH without that volume
  any more is taken as done. Then the policy is dropped.
- **discover** and the background refresh (``apply``, called by the connection's
  refresher) join the VCH's listing with the inner store's ``discover``: a volume is
  listed when the VCH lists it and its folder is in this store. The refresh reads the
  datastore again only when the VCH lists a name that no store shows yet. Its options are VIC's
  from its ``DockerMetaData`` plus its recorded policy. When the VCH does not answer, the
  last listing is used (``VchConnection``); when it was never listed, the datastore
  alone. Get and List are the driver's, from memory; a change made here wins over a
  listing that began before it (``registry.Touches``).
- **attach** and **detach** are the inner store's, on this Docker host's VM, after one
  check for datastore volumes: a disk attached to another VM (a container VM of the VCH)
  is refused with "in use by container VM X".
- **status** adds ``VCH`` (``VchConnection.status``: URL, reachable, listed at, stale,
  error) to the inner store's fields.

The backup engines copy VCH volumes through the inner store (``assembly`` gives the
backup service the stores that hold the volumes), exactly as they do a direct store's.
"""

import logging
import os
import threading

from ..errors import BackendError, Conflict, InUse, VolumeError
from ..options import VOLUME_STORE, split_vic_options
from ..storespec import DATASTORE, NFS
from ..stores.base import StoredVolume, VolumeStore, docker_metadata
from .client import VchClient, VchError, docker_api
from ..registry import Touches
from .connection import LISTING_FILE, VchConnection
from .policy import FILE_NAME as POLICY_FILE
from .policy import PolicyBook
from .settings import from_env
from ..timefmt import rfc3339, utc_now

log = logging.getLogger(__name__)

VCH_KINDS = (DATASTORE, NFS)            # the kinds of store a VCH has




class VchStore(VolumeStore):
    """See the module docstring. ``inner``: the VolumeStore serving this label directly;
    ``connection``: the shared VchConnection; ``policies``: the shared PolicyBook."""

    refreshes_itself = True   # the connection's refresher lists the VCH and calls sync_store

    def __init__(self, inner, connection, policies):
        super().__init__(inner.spec)
        self.inner = inner
        self.connection = connection
        self.policies = policies
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._view = {}                  # name -> StoredVolume, the VCH's volumes in this store
        self._touches = Touches()

    # --- the view ---------------------------------------------------------------------------
    def begin(self):
        """The token of a refresh that begins now (its listing is taken after)."""
        with self._lock:
            return self._touches.begin()

    def apply(self, start, names, rediscover=True):
        """Join the VCH's volume ``names`` (a listing begun at token ``start``; None: the
        VCH was never listed, trust the datastore) with the inner store's volumes.

        ``rediscover`` False: the listing names no volume that could be new here, so the
        datastore is not read again; volumes the VCH no longer lists are dropped.
        """
        with self._refreshing:
            if rediscover or names is None:
                found = self.inner.discover()
                listed = {v.name: self._with_policy(v) for v in found if names is None or v.name in names}
            else:
                with self._lock:
                    listed = {name: stored for name, stored in self._view.items() if name in names}
            with self._lock:
                self._view = self._touches.merge(start, listed, self._view)

    def names(self):
        with self._lock:
            return list(self._view)

    def lookup(self, name):
        """The StoredVolume of ``name`` as this store shows it now, or None."""
        with self._lock:
            return self._view.get(name)

    def _with_policy(self, stored):
        recorded = (stored.metadata or {}).get("DriverOpts") or {}
        vic, _ = split_vic_options({str(k): str(v) for k, v in recorded.items()})
        metadata = dict(stored.metadata or {}, DriverOpts={**vic, **self.policies.get(stored.name)})
        return StoredVolume(stored.name, metadata, stored.created_at, stored.problem)

    def _show(self, name, stored):
        with self._lock:
            if stored is None:
                self._view.pop(name, None)
            else:
                self._view[name] = stored
            self._touches.touch(name)

    # --- VolumeStore ------------------------------------------------------------------------
    def open(self):
        self.policies.load()
        self.connection.load()
        self.inner.open()

    def discover(self, known=None):
        start = self.begin()
        try:
            names = self.connection.list_names()
        except VchError:
            names = self.connection.last_names()
            log.warning("volume store %s: listing %s", self.label,
                        "as the VCH last listed it" if names is not None
                        else "every volume of its datastore folder (the VCH was never listed)")
        self.apply(start, names)
        self.connection.follow(self)
        with self._lock:
            return list(self._view.values())

    def create(self, name, options, metadata):
        vic, own = split_vic_options(options.given)
        vic[VOLUME_STORE] = options.store
        existed = self.connection.exists(name)
        self.connection.create(name, vic)
        if existed:
            raise Conflict(f"the VCH at {self.connection.url} already has a volume named {name}: it answered "
                           "the create without making a new one. Choose another name (that volume was left "
                           "as it is)")
        try:
            self.policies.set(name, own)
        except BackendError as err:
            self._undo_create(name, err)
        self._forget_disk(name)
        self._show(name, StoredVolume(name, docker_metadata(name, {**vic, **own}), rfc3339(utc_now())))
        log.info("volume %s created by the VCH at %s with %s", name, self.connection.url, vic)

    def _undo_create(self, name, err):
        try:
            self.connection.remove(name)
        except VolumeError as undo:
            raise BackendError(
                f"volume {name} was created by the VCH at {self.connection.url}, but its options could not be "
                f"recorded ({err}), and removing it from the VCH again failed ({undo}): it exists there "
                f"without its backup policy; remove it (docker volume rm {name}) or keep it so") from None
        raise BackendError(f"volume {name} was not created: its options could not be recorded ({err}); the "
                           "volume the VCH had made was removed again") from None

    def remove(self, name):
        if not self.connection.remove(name):
            log.info("volume %s: the VCH at %s has no such volume any more", name, self.connection.url)
        self.policies.discard(name)
        self._forget_disk(name)
        self._show(name, None)

    def _forget_disk(self, name):
        # DatastoreStore remembers a volume's capacity and disk UUID; the VCH made or
        # deleted the disk, so what it remembers of that name is of another disk.
        forget = getattr(self.inner, "forget", None)
        if forget is not None:
            forget(name)

    def attach(self, name, wait=0.0):
        inner = self.inner
        if self.spec.kind == DATASTORE and not inner.mounter.is_mounted(inner.mountpoint(name)):
            disk = inner.disk_path(name)
            others = [vm for vm in inner.inventory.disk_users().users(disk) if vm.ref != inner.host_vm.ref]
            if others:
                raise InUse(f"volume {name} is in use by container VM {', '.join(vm.name for vm in others)}: "
                            f"its disk {disk} is attached there; stop that container on the VCH to mount the "
                            "volume on this Docker host")
        return inner.attach(name)

    def detach(self, name):
        self.inner.detach(name)

    def holders(self, name):
        return self.inner.holders(name)

    def release(self, name, force=False, only=None):
        raise InUse(f"volume {name} is the VCH's: its disk is detached from a container VM by the VCH "
                    "(stop that container there), never by this plugin")

    def status(self, name):
        return dict(self.inner.status(name), VCH=self.connection.status())

    def describe(self):
        return dict(super().describe(), VCH=self.connection.status())


class Sidecar:
    """Sidecar mode's parts: one VchConnection and one PolicyBook for every VCH store.

    ``wrap(store)`` makes a store of a VIC kind (datastore, NFS) a VchStore and returns a
    folder store (``file://``, which a VCH does not have) as it is; ``bind(listener)`` lets
    the background refresh update the driver's volumes.
    """

    def __init__(self, connection, policies):
        self.connection = connection
        self.policies = policies

    def wrap(self, store):
        if store.spec.kind in VCH_KINDS:
            return VchStore(store, self.connection, self.policies)
        return store

    def bind(self, listener):
        """``listener(label, names, lookup)``: the driver's ``Discovery.sync_store``."""
        self.connection.bind(listener)


def sidecar_from_env(env, state_dir, api_factory=docker_api, **connection_args):
    """The Sidecar for the VCH_* settings in ``env``, or None when ``VCH_URL`` is empty.
    Raises ConfigError. Nothing connects here. ``connection_args`` go to VchConnection."""
    settings = from_env(env)
    if settings is None:
        return None
    log.info("VCH sidecar mode: volumes of the VCH at %s (%s)", settings.url, settings.trust)
    if settings.uses_tls and not settings.verify:
        log.warning("VCH_TLS_VERIFY=0: the VCH's certificate is not verified (not for production)")
    connection = VchConnection(VchClient(settings, api_factory), os.path.join(state_dir, LISTING_FILE),
                               **connection_args)
    return Sidecar(connection, PolicyBook(os.path.join(state_dir, POLICY_FILE)))

