"""Off-site copies of VMDK volumes, with the whole plugin assembled on the simulator and
its embedded default target (a restic repository in the plugin's data folder): the
snapshot-then-clone attached read-only to this host's VM, mounted read-only, copied by
real restic, then unmounted, detached and dropped (or kept as a local backup when the
volume has a local schedule); restores fill a new disk that replaces the volume's."""

import os
from pathlib import Path

from plugin.mounter import mounted_targets
from plugin.offsite.diskviews import COPY_MOUNT_PREFIX
from plugin.vsphere.vmdisks import READ_ONLY

from .assembled import CAPACITY, DS
from .helpers import disk_devices, vm_ref
from .test_backup_service_vmdk import our_snapshots, read_tree, write


def attached(plugin, vcsim, store_path):
    """{disk file of the store: disk mode} of what is attached to the Docker host's VM."""
    session = plugin.session
    return {d.backing.fileName: d.backing.diskMode for d in disk_devices(session, vm_ref(session, vcsim.host_vm))
            if f"] {store_path}/" in d.backing.fileName}


def mount_options(path):
    """The options of the mount that ``path`` is on (the deepest mount point above it)."""
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    found = max((m for m in mounts if path == m[1] or path.startswith(m[1].rstrip("/") + "/")),
                key=lambda m: len(m[1]))
    return found[3]


def copy_mounts(plugin):
    return [t for t in mounted_targets() if os.path.basename(t).startswith(COPY_MOUNT_PREFIX)]


def test_a_mounted_volume_is_copied_from_its_clone_and_restored_as_new_and_in_place(plugins, vcsim, store_path):
    plugin = plugins()
    driver, service = plugin.driver, plugin.service
    driver.create("mydata", {"Capacity": CAPACITY, "BackupCopy": "offsite@daily"})
    folder = driver.mount("mydata", "c1")
    original = {"a.txt": b"version 1", "sub/b.bin": os.urandom(200_000)}
    write(folder, original)
    seen = {}
    real_backup = service.copies.targets["offsite"].restic.backup

    def backup(path, *args, **kwargs):
        # While restic reads: the clone is mounted read-only here, attached beside the volume.
        seen["files"] = read_tree(path)
        seen["options"] = mount_options(path)
        seen["attached"] = attached(plugin, vcsim, store_path)
        return real_backup(path, *args, **kwargs)
    service.copies.targets["offsite"].restic.backup = backup

    [copy] = service.api_copy("mydata")

    assert seen["files"] == original
    assert "ro" in seen["options"].split(",")
    [clone] = [path for path in seen["attached"] if "/backups/mydata/" in path]
    assert seen["attached"] == {clone: READ_ONLY, f"[{DS}] {store_path}/volumes/mydata/mydata.vmdk": "persistent"}
    assert copy["Target"] == "offsite" and copy["BytesAdded"] > 200_000
    # Afterwards nothing of the copy is left: no snapshot, no clone attached or mounted, and
    # without a local schedule the clone is not kept as a local backup.
    assert our_snapshots(plugin.session, vcsim.host_vm) == []
    assert list(attached(plugin, vcsim, store_path)) == [f"[{DS}] {store_path}/volumes/mydata/mydata.vmdk"]
    assert copy_mounts(plugin) == []
    assert service.api_list("mydata") == []
    backups_folder = vcsim.file(DS, f"{store_path}/backups/mydata")
    assert not backups_folder.exists() or list(backups_folder.iterdir()) == []
    status = driver.get("mydata")["Status"]["Backup"]["Copies"]["offsite"]
    assert status["LastCopy"]["Id"] == copy["Id"] and status["LastCopy"]["Result"] == "ok"
    assert status["Policy"] == "offsite@daily" and status["NextRun"]

    write(folder, {"a.txt": b"version 2"})
    driver.unmount("mydata", "c1")
    driver.create("again", {"RestoreFrom": "offsite:mydata@latest"})
    assert driver.get("again")["Status"]["Capacity"] == "16MB"
    assert read_tree(driver.mount("again", "c2")) == original
    driver.unmount("again", "c2")

    done = service.api_restore("mydata", "latest", force=True, backup_target="offsite")
    assert done["Backup"] == copy["Id"] and done["SafetyBackup"]
    assert read_tree(driver.mount("mydata", "c3")) == original
    driver.unmount("mydata", "c3")
    [safety] = service.api_list("mydata")
    assert safety["Origin"] == "pre-restore"


def test_with_a_local_schedule_the_clone_stays_a_local_backup_and_one_path_restores(plugins, vcsim, store_path):
    plugin = plugins()
    driver, service = plugin.driver, plugin.service
    driver.create("logs", {"Capacity": CAPACITY, "Backup": "daily", "BackupCopy": "offsite@daily"})
    folder = driver.mount("logs", "c1")
    write(folder, {"2026/jan.log": b"january", "2026/feb.log": b"february", "other.txt": b"x"})
    driver.unmount("logs", "c1")            # detached: a direct clone, then the copy of it

    [copy] = service.api_copy("logs")

    [local] = service.api_list("logs")
    assert local["Method"] == "direct-clone" and local["Origin"] == "manual"
    assert copy["Created"] == local["Created"]         # the copy is of that point in time
    assert attached(plugin, vcsim, store_path) == {}
    driver.create("jan", {"RestoreFrom": "offsite:logs@latest", "RestorePath": "2026"})
    assert read_tree(driver.mount("jan", "c2")) == {"jan.log": b"january", "feb.log": b"february"}
    driver.unmount("jan", "c2")
