"""Two Docker hosts on one datastore store: a volume one host makes is the same volume on
the other at once (Get looks it up, Create is that volume), and the other's listing
follows it. Two plugin instances assembled as they run, as different VMs of the
simulator (the ``plugins`` fixture)."""

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
