"""Two Docker hosts on one datastore store: a volume one host makes is the same volume on
the other at once (Get looks it up, Create is that volume), and the other's listing
follows it. Two plugin instances assembled as they run, as different VMs of the
simulator (the ``plugins`` fixture)."""

from datetime import UTC, datetime

from .assembled import CAPACITY
from .helpers import OTHER_VM


def test_a_volume_made_on_another_host_is_found_by_get_and_is_the_same_volume_at_create(plugins):
    a, b = plugins("a"), plugins("b", vm=OTHER_VM)
    a.driver.create("shared", {"Capacity": CAPACITY, "Backup": "daily"})
    assert "shared" not in [v["Name"] for v in b.driver.list()]      # b listed its stores before

    info = b.driver.get("shared")                                    # one lookup on the store
    assert info["Status"]["Options"]["Backup"] == "daily" and info["Status"]["Capacity"] == "16MB"
    assert "shared" in [v["Name"] for v in b.driver.list()]

    a.driver.create("swarm", {"Capacity": CAPACITY})
    b.driver.create("swarm", {"Capacity": CAPACITY})                 # as Swarm asks on every node
    b.driver.create("swarm", {})                                     # no options: that volume
    assert b.driver.get("swarm")["Status"]["Capacity"] == "16MB"


def test_the_listing_of_a_shared_store_follows_the_other_hosts_creates_and_removes(plugins):
    a, b = plugins("a"), plugins("b", vm=OTHER_VM)
    a.driver.create("one", {"Capacity": CAPACITY})
    assert b.driver.health.watcher.attempt("default")                       # b's periodic listing
    assert "one" in [v["Name"] for v in b.driver.list()]
    a.driver.remove("one")
    assert b.driver.health.watcher.attempt("default")
    assert "one" not in [v["Name"] for v in b.driver.list()]


def test_a_scheduled_backup_is_made_once_by_the_host_that_has_the_volume_attached(plugins, clock, vcsim):
    """Both hosts schedule the volume; at the planned time the host whose VM has its disk
    makes the backup (a snapshot of its VM), the other leaves it to that host and then
    finds it made. Detached, whichever host fires first makes it. The final backup of a
    remove works on the host that never had the volume."""
    # b's VM (the harness's host VM) has disk.EnableUUID: b makes and mounts the volume.
    a, b = plugins("a", vm=OTHER_VM), plugins("b")
    b.driver.create("db", {"Capacity": CAPACITY, "Backup": "daily@02:00"})
    assert a.driver.get("db")["Status"]["Backup"]["NextRun"] == "2026-11-23T02:00:00Z"
    b.driver.mount("db", "task-on-b")                 # the service's task runs on host b

    clock.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    a.service.scheduler.tick(clock())                 # a fires first: not its turn
    skipped = a.service.status("db")["LastBackup"]
    assert (skipped["Result"], skipped["Error"]) == ("skipped", (
        "the scheduled backup of volume db planned for 2026-11-23T02:00:00Z is made by the Docker host of VM "
        f"{vcsim.host_vm}, which has the volume attached; this host makes it at 2026-11-23T02:05:00Z if none was "
        "made by then"))
    assert a.service.status("db")["NextRun"] == "2026-11-23T02:05:00Z"
    b.service.scheduler.tick(clock())
    made = b.service.status("db")["LastBackup"]
    assert made["Result"] == "ok" and made["Method"] == "snapshot-clone"
    clock.now = datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
    a.service.scheduler.tick(clock())                 # a looks again: made already
    assert a.service.status("db")["LastBackup"]["Error"] == (
        f"the scheduled backup of volume db planned for 2026-11-23T02:00:00Z was made already: backup {made['Id']} "
        "(begun 2026-11-23T02:00:00Z)")

    b.driver.unmount("db", "task-on-b")               # the service is gone: the disk is detached
    clock.now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    a.service.scheduler.tick(clock())
    b.service.scheduler.tick(clock())
    second = a.service.status("db")["LastBackup"]
    assert second["Result"] == "ok" and second["Method"] == "direct-clone"
    assert b.service.status("db")["LastBackup"]["Result"] == "skipped"
    scheduled = [(x["Id"], x["Origin"]) for x in a.service.api_list("db")]
    assert scheduled == [(made["Id"], "schedule"), (second["Id"], "schedule")]

    clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    a.driver.remove("db")                             # the final backup, on the host that never had it
    assert [x["Origin"] for x in b.service.api_list("db")] == ["schedule", "schedule", "final"]
