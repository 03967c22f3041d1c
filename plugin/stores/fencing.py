"""Who holds a datastore volume's disk, and when this Docker host may take it from them.

A volume of a store that several Docker hosts share (the nodes of a swarm) has one disk,
attached to one VM at a time. When this host needs it (Mount) and another VM has it:

- **powered off** (its ESXi host failed, vSphere HA or an operator powered it off): the
  disk is taken. It is detached from that VM (removed from its configuration, its files
  kept, so the VM still boots and does not look for it) and attached here. A powered-off
  VM writes nothing.
- **powered on, or suspended** (a suspended VM's memory has the disk open): never taken.
  Mount waits, up to ``wait`` seconds, for that host to release it (a drained swarm
  node: its task stops there while the new one starts here), then refuses: ``volume db
  is in use by VM docker-1 (powered on): ...``, saying how to fence by hand.
- **by hand** (``release``, ``vsphere-volume detach``): powered-off VMs and this host's
  own unused attachment are released; a running VM only with ``force``, which an
  operator gives once that Docker host is known to be down (its engine does not run),
  and only from the VMs the operator confirmed (``only``).

Each look is one round trip (``Inventory.disk_users``: devices and power states of every
VM), read under the host VM's lock so that what is decided still holds when the VM is
reconfigured; a wait polls every ``poll`` seconds without holding that lock. Taking the
disk from a powered-off VM costs one reconfiguration of that VM (2 round trips).
"""

import logging
import time
from dataclasses import dataclass

from ..errors import Conflict, InUse

log = logging.getLogger(__name__)

POWERED_OFF = "poweredOff"
POLL_SECONDS = 1.0      # between two looks at who holds a disk, while Mount waits
_POWER_WORDS = {"poweredOn": "powered on", "poweredOff": "powered off", "suspended": "suspended"}


@dataclass(frozen=True)
class Holder:
    """A VM that has a volume's disk attached: ``vm`` (an inventory.VMRef), its power
    state, whether it is this Docker host's VM, and the disk there (a vmdisks.AttachedDisk)."""

    vm: object
    power: str
    here: bool
    disk: object

    @property
    def name(self):
        return self.vm.name

    @property
    def stopped(self):
        """True for a powered-off VM: it writes nothing, the disk may be taken from it."""
        return self.power == POWERED_OFF

    def shown(self):
        """``VM docker-1 (powered on)``, ``VM docker-2 (this Docker host)``."""
        return shown_vm(self.name, self.power, self.here)

    def describe(self):
        """As ``/Volume.Detach`` shows it."""
        return {"VM": self.name, "PowerState": self.power, "ThisHost": self.here}


def shown_vm(name, power, here=False):
    """A VM holding a disk as messages name it: ``VM docker-1 (powered on)``."""
    state = "this Docker host" if here else _POWER_WORDS.get(power, power or "power state unknown")
    return f"VM {name} ({state})"


def holders(users, ds_path, host_vm):
    """The Holders of disk ``ds_path`` in ``users`` (an inventory.DiskUsers snapshot);
    ``host_vm``: this Docker host's VM (vsphere.hostvm.HostVM)."""
    return [Holder(vm, users.power_state(vm), host_vm.same_as(vm), users.disk(vm, ds_path))
            for vm in users.users(ds_path)]


def in_use_message(name, ds_path, found):
    """``volume NAME is in use by VM X (powered on): its disk [ds] ... is attached there``."""
    return (f"volume {name} is in use by {', '.join(h.shown() for h in found)}: its disk {ds_path} "
            "is attached there")


def _keeping(found):
    """The holders that keep the disk: other VMs that are not powered off."""
    return [h for h in found if not h.here and not h.stopped]


class DiskFence:
    """The decisions above for the disks of one datastore store, on this host's VM.

    ``inventory``: vsphere.inventory.Inventory; ``host_vm``: vsphere.hostvm.HostVM;
    ``clock``, ``sleep``: monotonic seconds and a pause (injected by tests); ``poll``:
    seconds between two looks while waiting.
    """

    def __init__(self, inventory, host_vm, clock=time.monotonic, sleep=time.sleep, poll=POLL_SECONDS):
        self.inventory = inventory
        self.host_vm = host_vm
        self.clock = clock
        self.sleep = sleep
        self.poll = poll

    def holders(self, ds_path):
        """The Holders of disk ``ds_path`` now (one round trip)."""
        return holders(self.inventory.disk_users(), ds_path, self.host_vm)

    def claim(self, name, ds_path, wait, attach):
        """Make disk ``ds_path`` of volume ``name`` this host's: wait up to ``wait``
        seconds while a running VM holds it, take it from powered-off ones, then call
        ``attach(users, here)`` under the VM's lock (``users``: the DiskUsers read;
        ``here``: this VM has the disk already) and return what it returns. Raises InUse
        naming the VMs that keep it."""
        end = self.clock() + wait
        said = False
        while True:
            with self.host_vm.lock:
                users = self.inventory.disk_users()
                found = holders(users, ds_path, self.host_vm)
                keeping = _keeping(found)
                if not keeping:
                    self._take(name, ds_path, [h for h in found if not h.here], "to attach it here")
                    return attach(users, any(h.here for h in found))
            left = end - self.clock()
            if left <= 0:
                raise InUse(self._refusal(name, ds_path, found, wait))
            if not said:
                log.info("volume %s: its disk is attached to %s; waiting up to %.0f s for that Docker host to "
                         "release it", name, ", ".join(h.shown() for h in keeping), left)
                said = True
            self.sleep(min(self.poll, left))

    def release(self, name, ds_path, force=False, only=None):
        """Detach disk ``ds_path`` of volume ``name`` from the other VMs that hold it:
        powered-off ones, and running ones too with ``force``; with ``only`` (VM names)
        from those alone: another holder is refused. Returns (the names of the VMs it
        was detached from, True when this host's VM holds it: the caller detaches it)."""
        with self.host_vm.lock:
            found = self.holders(ds_path)
            others = [h for h in found if not h.here]
            unconfirmed = [h for h in others if only is not None and h.name not in only]
            if unconfirmed:
                raise Conflict(f"volume {name} is now attached to {', '.join(h.shown() for h in unconfirmed)}, "
                               "which was not confirmed: nothing was detached; run the command again")
            keeping = _keeping(found)
            if keeping and not force:
                raise InUse(f"{in_use_message(name, ds_path, keeping)}; a disk is detached from a running VM only "
                            f"with --force, once that Docker host is down: vsphere-volume detach --force {name}")
            self._take(name, ds_path, others, "as asked (vsphere-volume detach)")
        return [h.name for h in others], any(h.here for h in found)

    def _take(self, name, ds_path, found, why):
        for holder in found:
            log.warning("volume %s: detaching its disk %s from %s %s; the disk's files are kept and that VM "
                        "no longer refers to it", name, ds_path, holder.shown(), why)
            self.host_vm.remove_disk_from(holder.vm, holder.disk)

    def _refusal(self, name, ds_path, found, wait):
        message = in_use_message(name, ds_path, found)
        if not _keeping(found):
            return message
        waited = f"; waited {wait:.0f} s for its Docker host to release it" if wait > 0 else ""
        return (f"{message}{waited}. If that Docker host is down (its Docker engine does not run), detach the "
                f"disk from its VM by hand: vsphere-volume detach --force {name}")
