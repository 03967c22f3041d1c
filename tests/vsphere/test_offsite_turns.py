"""Scheduled off-site copies of a datastore volume that two Docker hosts know: one copy
per planned run, by the host whose VM has the volume attached. Two plugin instances
assembled as they run (the ``plugins`` fixture), as different VMs of the simulator, on the
same datastore store and the same restic target (a repository in a folder both see, real
restic): the copy reads the clone of a snapshot of the attached VM, as in production."""

from datetime import UTC, datetime

from .assembled import CAPACITY
from .helpers import OTHER_VM
from .test_backup_service_vmdk import write

PLANNED = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def test_the_host_whose_vm_has_the_volume_makes_each_scheduled_copy_once(plugins, vcsim, clock, tmp_path):
    target = {"BACKUP_TARGETS": f"file://{tmp_path}/vault:vault", "BACKUP_TARGET_VAULT_PASSWORD": "vault-pass"}
    # b's VM (the harness's host VM) has disk.EnableUUID: b makes and mounts the volume.
    a, b = plugins("a", vm=OTHER_VM, **target), plugins("b", **target)
    b.driver.create("db", {"Capacity": CAPACITY, "BackupCopy": "vault@daily@03:00"})
    assert a.driver.get("db")["Status"]["Backup"]["Copies"]["vault"]["NextRun"] == "2026-11-23T03:00:00Z"
    folder = b.driver.mount("db", "task-on-b")        # the service's task runs on host b
    write(folder, {"orders.db": b"order 1\n" * 1000})

    clock.now = PLANNED
    a.service.copies.copy_schedule.tick(clock())      # a fires first: not its turn
    skipped = a.driver.get("db")["Status"]["Backup"]["Copies"]["vault"]
    assert (skipped["LastCopy"]["Result"], skipped["LastCopy"]["Error"]) == ("skipped", (
        "the scheduled copy of volume db to backup target vault planned for 2026-11-23T03:00:00Z is made by the "
        f"Docker host of VM {vcsim.host_vm}, which has the volume attached; this host makes it at "
        "2026-11-23T03:05:00Z if none was made by then"))
    assert skipped["NextRun"] == "2026-11-23T03:05:00Z"
    b.service.copies.copy_schedule.tick(clock())
    made = b.driver.get("db")["Status"]["Backup"]["Copies"]["vault"]["LastCopy"]
    assert (made["Result"], made["Origin"]) == ("ok", "schedule")

    clock.now = PLANNED.replace(minute=5)
    a.service.copies.copy_schedule.tick(clock())      # a looks again, in the target's catalog: made already
    again = a.driver.get("db")["Status"]["Backup"]["Copies"]["vault"]
    assert (again["LastCopy"]["Result"], again["LastCopy"]["Error"]) == ("skipped", (
        f"the scheduled copy of volume db to backup target vault planned for 2026-11-23T03:00:00Z was made "
        f"already: copy {made['Id']} (begun 2026-11-23T03:00:00Z)"))
    assert again["NextRun"] == "2026-11-24T03:00:00Z"
    listed = [(c["Id"], c["Origin"], c["Host"]) for c in a.service.api_list("db", "vault")]
    assert listed == [(made["Id"], "schedule", "docker-b")]
    # a's health on the target: not failed, and it knows b's copy
    [health] = [h for h in a.service.board.healths()[0]["db"] if h.target == "vault"]
    assert (health.last_result, health.last_success, health.kept) == ("skipped", PLANNED, 1)
