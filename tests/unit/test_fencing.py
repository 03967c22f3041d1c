"""The fencing rule (plugin/stores/fencing.py) with a fake inventory: who holds a volume's
disk, when it is taken, waited for, refused or detached by hand."""

import threading
from dataclasses import dataclass

import pytest

from plugin.errors import Conflict, InUse
from plugin.stores.fencing import DiskFence
from tests.fakes import SleepClock

DISK = "[LocalDS_0] swarm/volumes/db/db.vmdk"
ON, OFF, SUSPENDED = "poweredOn", "poweredOff", "suspended"


@dataclass(frozen=True)
class VM:
    name: str
    ref: str


HERE, A, B = VM("docker-0", "vm-0"), VM("docker-1", "vm-1"), VM("docker-2", "vm-2")


class Users:
    """An inventory.DiskUsers snapshot of {VM: power state} holding DISK."""

    def __init__(self, holding):
        self.holding = dict(holding)

    def users(self, ds_path):
        return list(self.holding) if ds_path == DISK else []

    def power_state(self, vm):
        return self.holding[vm]

    def disk(self, vm, ds_path):
        return f"the disk on {vm.name}"


class Inventory:
    """disk_users() reads ``holding`` (the test changes it; ``release_after`` reads
    release a VM: the other host detaching meanwhile)."""

    def __init__(self, holding, release_after=None):
        self.holding = dict(holding)
        self.release_after = release_after or {}
        self.reads = 0

    def disk_users(self):
        self.reads += 1
        for vm, reads in self.release_after.items():
            if self.reads > reads:
                self.holding.pop(vm, None)
        return Users(self.holding)


class HostVM:
    def __init__(self, inventory):
        self.inventory = inventory
        self.lock = threading.RLock()
        self.removed = []

    def same_as(self, vm):
        return vm.ref == HERE.ref

    def remove_disk_from(self, vm, disk):
        assert vm != HERE
        self.removed.append((vm.name, disk))
        self.inventory.holding.pop(vm)


def fence(holding, release_after=None):
    inventory = Inventory(holding, release_after)
    clock = SleepClock()
    return DiskFence(inventory, HostVM(inventory), clock=clock, sleep=clock.sleep, poll=1.0), clock


def attach_records(into):
    """An attach that records whether this VM had the disk, and who still holds it."""
    def attach(users, here):
        into.append((sorted(vm.name for vm in users.holding if users.holding[vm] != OFF), here))
        return "attached"
    return attach


def test_a_free_disk_is_attached_at_once():
    disks, clock = fence({})
    attached = []
    assert disks.claim("db", DISK, 60, attach_records(attached)) == "attached"
    assert attached == [([], False)] and clock.sleeps == [] and disks.host_vm.removed == []


def test_the_disk_of_a_powered_off_vm_is_taken_from_it_without_waiting():
    disks, clock = fence({A: OFF})
    attached = []
    disks.claim("db", DISK, 60, attach_records(attached))
    assert disks.host_vm.removed == [("docker-1", "the disk on docker-1")]
    assert attached == [([], False)] and clock.sleeps == []


def test_this_hosts_own_attachment_needs_no_attach_and_a_stopped_one_is_still_taken():
    disks, _ = fence({HERE: ON, A: OFF})
    attached = []
    disks.claim("db", DISK, 60, attach_records(attached))
    assert disks.host_vm.removed == [("docker-1", "the disk on docker-1")]
    assert attached == [(["docker-0"], True)]


def test_mount_waits_while_a_running_vm_holds_the_disk_until_its_host_releases_it():
    disks, clock = fence({A: ON}, release_after={A: 4})   # released after four looks
    attached = []
    disks.claim("db", DISK, 60, attach_records(attached))
    assert attached == [([], False)]
    assert disks.host_vm.removed == []                      # never taken from a running VM
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0] and disks.inventory.reads == 5


@pytest.mark.parametrize("power, shown", [(ON, "powered on"), (SUSPENDED, "suspended")])
def test_a_disk_a_running_or_suspended_vm_keeps_is_refused_after_the_wait(power, shown):
    disks, clock = fence({A: power})
    attached = []
    with pytest.raises(InUse) as refused:
        disks.claim("db", DISK, 2.5, attach_records(attached))
    assert str(refused.value) == (
        f"volume db is in use by VM docker-1 ({shown}): its disk {DISK} is attached there; waited 2 s for its "
        "Docker host to release it. If that Docker host is down (its Docker engine does not run), detach the "
        "disk from its VM by hand: vsphere-volume detach --force db")
    assert attached == [] and disks.host_vm.removed == []
    assert clock.sleeps == [1.0, 1.0, 0.5] and clock.now == 2.5


def test_without_a_wait_the_refusal_is_immediate_and_names_every_holder():
    disks, clock = fence({A: ON, B: OFF})
    with pytest.raises(InUse) as refused:
        disks.claim("db", DISK, 0, attach_records([]))
    assert str(refused.value).startswith(
        f"volume db is in use by VM docker-1 (powered on), VM docker-2 (powered off): its disk {DISK} is attached "
        "there. If that Docker host is down")
    assert clock.sleeps == [] and disks.host_vm.removed == []   # nothing taken while one keeps it


def test_release_by_hand_takes_powered_off_vms_and_this_hosts_attachment():
    disks, _ = fence({HERE: ON, A: OFF})
    assert disks.release("db", DISK) == (["docker-1"], True)
    assert disks.host_vm.removed == [("docker-1", "the disk on docker-1")]   # here: the caller's detach


def test_release_from_a_running_vm_needs_force():
    disks, _ = fence({A: ON})
    with pytest.raises(InUse) as refused:
        disks.release("db", DISK)
    assert str(refused.value) == (
        f"volume db is in use by VM docker-1 (powered on): its disk {DISK} is attached there; a disk is detached "
        "from a running VM only with --force, once that Docker host is down: vsphere-volume detach --force db")
    assert disks.host_vm.removed == []
    assert disks.release("db", DISK, force=True, only=["docker-1"]) == (["docker-1"], False)
    assert disks.host_vm.removed == [("docker-1", "the disk on docker-1")]


def test_release_never_detaches_from_a_vm_that_was_not_confirmed():
    disks, _ = fence({A: ON, B: ON})
    with pytest.raises(Conflict) as refused:
        disks.release("db", DISK, force=True, only=["docker-1"])
    assert str(refused.value) == ("volume db is now attached to VM docker-2 (powered on), which was not confirmed: "
                                  "nothing was detached; run the command again")
    assert disks.host_vm.removed == []
