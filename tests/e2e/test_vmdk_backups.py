"""Backups of VMDK volumes through the real Docker engine and the vCenter simulator:
a VM snapshot, then a clone of the snapshot's disk, while a container writes."""

import pytest

from .dockercli import docker
from .user import backups, run_on as run, running_on, vv

DS0, ROOT0 = "LocalDS_0", "volumes/e2e"

pytestmark = pytest.mark.usefixtures("datastore_stores")


def our_snapshots(plugin):
    """Names of the snapshots on the Docker host's VM that this plugin takes."""
    from plugin.vsphere.snapshots import walk_snapshots
    from plugin.vsphere.inventory import Inventory

    simulator = plugin.simulator
    with simulator.session() as session:
        vm = Inventory(session).find_vm(simulator.host_vm).ref
        tree = session.get_properties(vm, ["snapshot"]).get("snapshot")
        trees = tree.rootSnapshotList if tree is not None else []
        return [s.name for s in walk_snapshots(trees) if s.name.startswith("vsphere-volume-backup-")]


def test_backup_while_a_container_writes_then_restore_as_a_new_volume(plugin, volume, test_image):
    name, copy = volume("vmdk-live"), volume("vmdk-copy")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB",
           "--opt", "Backup=daily", name)
    with running_on(test_image, name, "echo 'version 1' > /data/doc && sync") as app:
        docker("exec", app, "test", "-s", "/data/doc")
        _, out, _ = vv(plugin, "backup", name)
        assert "(snapshot-clone," in out                     # attached to a running VM: snapshot first
        [backup] = backups(plugin, name)
        folder = plugin.datastores[DS0] / ROOT0 / "backups" / name / backup["Id"]
        assert (folder / f"{name}.vmdk").is_file() and (folder / "manifest.json").is_file()
        assert our_snapshots(plugin) == []                   # the snapshot lived only for the clone
        docker("exec", app, "sh", "-c", "echo 'version 2' > /data/doc && sync")
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@{backup['Id']}", copy)
    assert run(test_image, copy, "cat /data/doc") == "version 1\n"
    assert run(test_image, name, "cat /data/doc") == "version 2\n"
    status = docker("volume", "inspect", copy, "--format", "{{json .Status}}").stdout
    assert '"VolumeStore":"ds0"' in status and '"Capacity":"64MB"' in status


def test_detached_volume_backup_restore_in_place_and_final_backup(plugin, volume, test_image):
    name = volume("vmdk-idle")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB",
           "--opt", "Backup=weekly", name)
    run(test_image, name, "echo good > /data/state")
    _, out, _ = vv(plugin, "backup", name)
    assert "(direct-clone," in out                           # attached to no VM: cloned directly
    run(test_image, name, "echo broken > /data/state")
    _, out, _ = vv(plugin, "restore", name, "--force")
    assert "its previous data is in backup" in out
    assert run(test_image, name, "cat /data/state") == "good\n"
    docker("volume", "rm", name)
    origins = [b["Origin"] for b in backups(plugin, name)]
    assert origins == ["manual", "pre-restore", "final"]
    back = volume("vmdk-back")
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={name}@latest", back)
    assert run(test_image, back, "cat /data/state") == "good\n"
