"""A volume's disk held by another Docker host's VM, against the simulator: Mount waits for
that host to release it, takes it from a powered-off VM (which then still boots), refuses
it while a running VM keeps it, and ``release`` (``vsphere-volume detach``) frees it by hand."""

import os
from contextlib import ExitStack

import pytest

from plugin.errors import InUse
from tests.simulator import Simulator

from .helpers import DS, OTHER_VM, create, disk_devices, vm_ref


@pytest.fixture
def held(vcsim: Simulator, make_store):
    """``held(name)`` -> (a new store, the disk path of its new volume ``name``), the disk
    attached to OTHER_VM (another Docker host's VM); OTHER_VM powered on again and its
    disks let go after the test (the simulator is shared)."""
    def powered_on_again():
        if vcsim.power_state(OTHER_VM) != "poweredOn":
            vcsim.power_on(OTHER_VM)
    with ExitStack() as undo:
        undo.callback(powered_on_again)

        def make(name):
            store = make_store()
            create(store, name)
            disk = f"[{DS}] {store.spec.path}/volumes/{name}/{name}.vmdk"
            undo.enter_context(vcsim.disk_attached_to(OTHER_VM, disk))
            return store, disk
        yield make


def test_mount_waits_until_the_other_host_has_detached_the_disk(vcsim, held):
    store, disk = held("moving")
    waits = []

    def other_host_detaches_meanwhile(seconds):
        waits.append(seconds)
        if len(waits) == 2:          # the other host's Unmount, while this host's Mount waits
            vcsim.detach_disk(OTHER_VM, disk)
    store.fence.sleep = other_host_detaches_meanwhile
    folder = store.attach("moving", wait=30)
    assert waits == [1.0, 1.0]
    assert vcsim.vms_with_disk(disk) == [vcsim.host_vm]
    with open(os.path.join(folder, "here"), "w") as handle:
        handle.write("mounted after the other host let go\n")
    store.detach("moving")


def test_a_running_vm_keeps_the_disk_and_mount_says_so_after_waiting(vcsim, held):
    store, disk = held("kept")
    store.fence.sleep = lambda seconds: None
    clock = iter(range(1000))
    store.fence.clock = lambda: next(clock)      # one second per look
    with pytest.raises(InUse) as refused:
        store.attach("kept", wait=5)
    assert str(refused.value) == (
        f"volume kept is in use by VM {OTHER_VM} (powered on): its disk {disk} is attached there; waited 5 s for "
        "its Docker host to release it. If that Docker host is down (its Docker engine does not run), detach the "
        "disk from its VM by hand: vsphere-volume detach --force kept")
    assert vcsim.vms_with_disk(disk) == [OTHER_VM]


def test_the_disk_of_a_powered_off_vm_is_taken_and_that_vm_still_boots(vcsim, held):
    store, disk = held("orphan")
    vcsim.power_off(OTHER_VM)                      # its ESXi host failed
    with store.session.counting() as trips:
        store.attach("orphan")                     # at once: a powered-off VM writes nothing
    # Who holds it (1 read), the powered-off VM reconfigured, this one: each task awaited.
    assert dict(trips) == {"RetrievePropertiesEx": 3, "ReconfigVM_Task": 2}
    assert vcsim.vms_with_disk(disk) == [vcsim.host_vm]
    with vcsim.session() as session:             # its configuration no longer names the disk
        assert not [d for d in disk_devices(session, vm_ref(session, OTHER_VM)) if store.spec.path in
                    d.backing.fileName]
    vcsim.power_on(OTHER_VM)
    assert vcsim.power_state(OTHER_VM) == "poweredOn"
    store.detach("orphan")


def test_release_by_hand_detaches_from_a_running_vm_only_when_forced(vcsim, held):
    store, disk = held("fenced")
    assert store.holders("fenced") == [{"VM": OTHER_VM, "PowerState": "poweredOn", "ThisHost": False}]
    with pytest.raises(InUse, match=r"detached from a running VM only with --force"):
        store.release("fenced")
    assert vcsim.vms_with_disk(disk) == [OTHER_VM]
    assert store.release("fenced", force=True, only=[OTHER_VM]) == ([OTHER_VM], "")
    assert vcsim.vms_with_disk(disk) == []
    store.attach("fenced")
    assert store.holders("fenced") == [{"VM": vcsim.host_vm, "PowerState": "poweredOn", "ThisHost": True}]
    assert store.release("fenced") == ([], vcsim.host_vm)   # this host's own: the driver detaches it
    assert vcsim.vms_with_disk(disk) == [vcsim.host_vm]
    store.detach("fenced")


def test_detach_by_hand_through_the_driver_of_another_host(plugins, vcsim):
    """``vsphere-volume detach`` on host a, while host b (the harness's VM) has the volume:
    it says who holds it, refuses a running VM without force, detaches with force from the
    confirmed VM; host b refuses it while its container mounts the volume."""
    a, b = plugins("a", vm=OTHER_VM), plugins("b")
    b.driver.create("db", {"Capacity": "16M"})
    b.driver.mount("db", "task-on-b")
    with pytest.raises(InUse, match=r"^volume db is in use: mounted 1 time\(s\) by 1 container\(s\)"):
        b.driver.detach("db", force=True)
    disk = b.driver.get("db")["Status"]["Disk"]
    assert a.driver.detach("db", plan=True) == {
        "Disk": disk, "Holders": [{"VM": vcsim.host_vm, "PowerState": "poweredOn", "ThisHost": False}]}
    with pytest.raises(InUse, match="only with --force"):
        a.driver.detach("db")
    assert vcsim.vms_with_disk(disk) == [vcsim.host_vm]
    assert a.driver.detach("db", force=True, only=[vcsim.host_vm]) == {"Disk": disk, "Detached": [vcsim.host_vm]}
    assert vcsim.vms_with_disk(disk) == []
    b.driver.unmount("db", "task-on-b")               # what b's engine does once it is back
