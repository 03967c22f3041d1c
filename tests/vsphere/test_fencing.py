"""A volume's disk held by another Docker host's VM, against the simulator: Mount waits for
that host to release it, takes it from a powered-off VM (which then still boots), refuses
it while a running VM keeps it, and ``release`` (``vsphere-volume detach``) frees it by hand."""

import os

import pytest

from plugin.errors import InUse
from tests.simulator import Simulator

from .helpers import DS, OTHER_VM, create, disk_devices, vm_ref


def disk_of(store, name):
    return f"[{DS}] {store.spec.path}/volumes/{name}/{name}.vmdk"


@pytest.fixture
def other_vm(vcsim: Simulator):
    """OTHER_VM (another Docker host's VM), powered on again after the test (the simulator
    is shared); ``attach(disk)`` gives it a disk, as its plugin would."""
    class Other:
        name = OTHER_VM

        @staticmethod
        def attach(disk):
            from plugin.vsphere.vmdisks import attach_spec

            with vcsim.session() as session:
                vm = vm_ref(session, OTHER_VM)
                devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
                spec, _ = attach_spec(devices, disk, 64 * 1024, OTHER_VM)
                session.call_task(vm, "ReconfigVM_Task", spec=spec)

        @staticmethod
        def detach(disk):
            from plugin.vsphere.vmdisks import detach_spec, find_disk

            with vcsim.session() as session:
                vm = vm_ref(session, OTHER_VM)
                devices = session.get_properties(vm, ["config.hardware.device"])["config.hardware.device"]
                session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(find_disk(devices, disk)))
    yield Other
    if vcsim.power_state(OTHER_VM) != "poweredOn":
        vcsim.power_on(OTHER_VM)


def test_mount_waits_until_the_other_host_has_detached_the_disk(vcsim, make_store, other_vm):
    store = make_store()
    create(store, "moving")
    disk = disk_of(store, "moving")
    other_vm.attach(disk)
    waits = []

    def other_host_detaches_meanwhile(seconds):
        waits.append(seconds)
        if len(waits) == 2:          # the other host's Unmount, while this host's Mount waits
            other_vm.detach(disk)
    store.fence.sleep = other_host_detaches_meanwhile
    folder = store.attach("moving", wait=30)
    assert waits == [1.0, 1.0]
    assert vcsim.vms_with_disk(disk) == [vcsim.host_vm]
    with open(os.path.join(folder, "here"), "w") as handle:
        handle.write("mounted after the other host let go\n")
    store.detach("moving")


def test_a_running_vm_keeps_the_disk_and_mount_says_so_after_waiting(vcsim, make_store, other_vm):
    store = make_store()
    create(store, "kept")
    disk = disk_of(store, "kept")
    other_vm.attach(disk)
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
    other_vm.detach(disk)


def test_the_disk_of_a_powered_off_vm_is_taken_and_that_vm_still_boots(vcsim, make_store, other_vm):
    store = make_store()
    create(store, "orphan")
    disk = disk_of(store, "orphan")
    other_vm.attach(disk)
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


def test_release_by_hand_detaches_from_a_running_vm_only_when_forced(vcsim, make_store, other_vm):
    store = make_store()
    create(store, "fenced")
    disk = disk_of(store, "fenced")
    other_vm.attach(disk)
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
