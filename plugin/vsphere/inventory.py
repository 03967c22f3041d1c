"""Looking things up in the session's datacenter: datastores, VMs, and who uses which disk.

All reads go through the PropertyCollector of ``session.Session``. VMs are read through
one ContainerView of the datacenter, created on first use and again after a new login
(views belong to a session), so that "which VMs have this disk attached, and are they
running" costs one round trip: one ``RetrievePropertiesEx`` of ``name``,
``config.hardware.device`` and ``runtime.powerState`` of every VM in the datacenter.
"""

import threading
from dataclasses import dataclass

from pyVmomi import vim

from ..errors import ConfigError, VSphereError
from .session import props, view_filter
from .vmdisks import disk_path, find_attached, normalize_path

POWERED_ON = vim.VirtualMachine.PowerState.poweredOn


@dataclass(frozen=True)
class DatastoreRef:
    name: str
    ref: object          # vim.Datastore
    browser: object      # vim.host.DatastoreBrowser


@dataclass(frozen=True)
class VMRef:
    name: str
    ref: object          # vim.VirtualMachine


class DiskUsers:
    """A snapshot of the disks attached to the datacenter's VMs, and of their power states."""

    def __init__(self, contents):
        self._devices = {}
        self._users = {}
        self._power = {}
        for content in contents:
            values = props(content)
            vm = VMRef(values.get("name", content.obj._moId), content.obj)
            devices = list(values.get("config.hardware.device") or [])
            self._devices[content.obj] = devices
            self._power[content.obj] = str(values.get("runtime.powerState") or "")
            for device in devices:
                path = disk_path(device)
                if path:
                    self._users.setdefault(path, []).append(vm)

    def users(self, ds_path):
        """The VMRefs of the VMs that have disk ``ds_path`` attached."""
        return list(self._users.get(normalize_path(ds_path), []))

    def devices(self, vm_ref):
        """The device list of ``vm_ref`` at the time of the snapshot."""
        return list(self._devices.get(vm_ref, []))

    def disk(self, vm, ds_path):
        """The AttachedDisk of disk ``ds_path`` on VM ``vm`` (a VMRef), or None."""
        return find_attached(self.devices(vm.ref), ds_path)

    def power_state(self, vm):
        """``poweredOn``, ``poweredOff`` or ``suspended``: VM ``vm`` (a VMRef) at the time
        of the snapshot ("" when vCenter did not say)."""
        return self._power.get(vm.ref, "")

    def running(self, vm):
        """True when VM ``vm`` was powered on at the time of the snapshot."""
        return self.power_state(vm) == POWERED_ON


class Inventory:
    """Datastore and VM lookups in ``session``'s datacenter; datastores are cached."""

    def __init__(self, session):
        self.session = session
        self._lock = threading.Lock()
        self._datastores = None
        self._view = None              # (login generation, vim.view.ContainerView)

    def datastore(self, name):
        """The DatastoreRef called ``name``; ConfigError naming the ones that exist."""
        with self._lock:
            if self._datastores is None:
                refs = self.session.get_properties(self.session.datacenter.ref, ["datastore"]).get("datastore", [])
                found = self.session.get_properties(list(refs), ["name", "browser"])
                self._datastores = {p["name"]: DatastoreRef(p["name"], ref, p.get("browser"))
                                    for ref, p in zip(refs, found, strict=True) if "name" in p}
            datastores = self._datastores
        if name not in datastores:
            known = ", ".join(sorted(datastores)) or "none"
            raise ConfigError(
                f"datastore {name!r} does not exist in datacenter {self.session.datacenter.path} "
                f"(its datastores: {known})")
        return datastores[name]

    def _vm_view(self):
        generation = self.session.login_generation
        with self._lock:
            if self._view is None or self._view[0] != generation:
                view = self.session.invoke(
                    self.session.content.viewManager, "CreateContainerView",
                    self.session.datacenter.ref, [vim.VirtualMachine], True,
                    what="listing the datacenter's VMs")
                self._view = (self.session.login_generation, view)
            return self._view[1]

    def _read_vms(self, paths):
        """ObjectContents of ``paths`` for every VM; once more with a new view if a new
        login happened during the read (the old view died with the old session)."""
        for attempt in (1, 2):
            generation = self.session.login_generation
            view = self._vm_view()
            try:
                return self.session.retrieve([view_filter(view, vim.VirtualMachine, paths)])
            except VSphereError:
                if attempt == 2 or self.session.login_generation == generation:
                    raise
        raise AssertionError("unreachable")

    def disk_users(self):
        """DiskUsers of every VM in the datacenter, with their power states (one round trip)."""
        return DiskUsers(self._read_vms(["name", "config.hardware.device", "runtime.powerState"]))

    def powered_on(self, vms):
        """For each VMRef in ``vms``, True when that VM is powered on (one round trip)."""
        states = self.session.get_properties([vm.ref for vm in vms], ["runtime.powerState"])
        return [state.get("runtime.powerState") == POWERED_ON for state in states]

    def find_vm(self, name):
        """The VMRef of the only VM called ``name``; ConfigError if none or several."""
        matches = [VMRef(name, c.obj) for c in self._read_vms(["name"]) if props(c).get("name") == name]
        if len(matches) != 1:
            how = "no VM" if not matches else f"{len(matches)} VMs"
            raise ConfigError(
                f"VSPHERE_VM={name!r}: datacenter {self.session.datacenter.path} has {how} of that name")
        return matches[0]

    def find_vm_by_uuid(self, uuid):
        """The VMRef of the VM whose BIOS UUID (``config.uuid``) is ``uuid``, or None."""
        ref = self.session.invoke(self.session.content.searchIndex, "FindByUuid",
                                  datacenter=self.session.datacenter.ref, uuid=uuid, vmSearch=True,
                                  what=f"finding the VM with BIOS UUID {uuid}")
        if ref is None:
            return None
        return VMRef(self.session.get_properties(ref, ["name"]).get("name", ref._moId), ref)
