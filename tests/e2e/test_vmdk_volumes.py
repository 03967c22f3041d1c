"""The plugin as a user meets it on vSphere datastores: the real Docker engine, the
vCenter simulator (tests/vcsim) as vCenter.

The plugin has a folder store (``default``) and two datastore stores: ``ds0`` at
``[LocalDS_0] volumes/e2e`` and ``ds1`` at ``[LocalDS_1] VIC`` (a bare datastore, as
vic-machine names it). The simulator's datastores are host folders; the plugin runs in
its test-only loop-device mode, so a mounted volume is a real ext4 filesystem in the
disk's ``-flat.vmdk`` and the tests find the containers' bytes there.

Each test drives the docker CLI and checks what a user (or a VCH next to the plugin)
would see: the files in VIC's layout on the datastore, the bytes in the disk, the
bytes a container reads, `docker volume inspect`, the error text.
"""

import json
import os
import subprocess
import time
import uuid

import pytest

from tests.simulator import make_vic_volume, vic_label

from .dockercli import docker
from .user import inspect, run_on as run, running_on, unique, volume_names

DS0, DS1 = "LocalDS_0", "LocalDS_1"
ROOT0, ROOT1 = "volumes/e2e", "VIC"          # the stores' root folders on the datastores
LOG_WAIT = 15                                # seconds the engine may take to log a plugin line


# Every test here runs with the datastore stores ds0 and ds1 configured.
pytestmark = pytest.mark.usefixtures("datastore_stores")


def volume_dir(plugin, datastore, root, name):
    """The host folder of ``[datastore] root/volumes/name``."""
    return plugin.datastores[datastore] / root / "volumes" / name


def in_filesystem(image_file, path):
    """Text of ``path`` inside the ext4 filesystem held by ``image_file`` (debugfs)."""
    result = subprocess.run(["debugfs", "-R", f"cat {path}", str(image_file)],
                            capture_output=True, text=True, check=True)
    return result.stdout


def blkid(image_file, tag):
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, str(image_file)],
                          capture_output=True, text=True, check=True).stdout.strip()


def wait_for_log(plugin, *words):
    """The plugin's log lines holding every one of ``words``, polled for a bounded time
    (the engine copies the plugin's output into its log asynchronously)."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        lines = [line for line in plugin.log_lines() if all(w in line for w in words)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_create_lays_the_volume_out_like_vic_on_the_datastore(plugin, volume):
    name = volume("laid-out")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)

    folder = volume_dir(plugin, DS0, ROOT0, name)
    assert set(os.listdir(folder)) == {f"{name}.vmdk", f"{name}-flat.vmdk", "imageMetadata"}
    assert os.listdir(folder / "imageMetadata") == ["DockerMetaData"]
    meta = json.loads((folder / "imageMetadata" / "DockerMetaData").read_text())
    assert meta["Name"] == name and meta["Driver"] == "vsphere"
    assert meta["DriverOpts"] == {"VolumeStore": "ds0", "Capacity": "64MB"}
    # A VCH lists every entry of volumes/ as a volume: nothing but volumes is there.
    entries = os.listdir(folder.parent)
    assert name in entries and all((folder.parent / e / f"{e}.vmdk").is_file() for e in entries)
    staging = plugin.datastores[DS0] / ROOT0 / "vsphere-volume-staging"
    assert not staging.exists() or os.listdir(staging) == []

    info = inspect(name)
    assert info["Driver"] == plugin.ref and info["Options"] == {"VolumeStore": "ds0", "Capacity": "64MB"}
    status = info["Status"]
    assert status["VolumeStore"] == "ds0" and status["Capacity"] == "64MB"
    assert status["Disk"] == f"[{DS0}] {ROOT0}/volumes/{name}/{name}.vmdk"
    assert status["AttachedTo"] == "" and status["Mounts"] == 0


def test_default_capacity_and_bare_datastore_store(plugin, volume):
    name = volume("bare")
    docker("volume", "create", "-d", plugin.name, "--opt", "volumestore=ds1", name)
    assert (volume_dir(plugin, DS1, ROOT1, name) / f"{name}.vmdk").is_file()
    status = inspect(name)["Status"]
    assert status["VolumeStore"] == "ds1" and status["Capacity"] == "1024MB"
    assert status["Disk"] == f"[{DS1}] VIC/volumes/{name}/{name}.vmdk"


def test_container_bytes_land_in_the_flat_file_and_a_second_container_reads_them(plugin, volume, test_image):
    name = volume("payload")
    marker = f"written-by-a-container-{uuid.uuid4().hex}"
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)
    disk = f"[{DS0}] {ROOT0}/volumes/{name}/{name}.vmdk"
    with running_on(test_image, name, f"echo {marker} > /data/marker.txt", "writer") as writer:
        assert docker("exec", writer, "cat", "/data/marker.txt").stdout == marker + "\n"
        status = inspect(name)["Status"]
        assert status["Mounts"] == 1 and status["AttachedTo"] == plugin.simulator.host_vm
        assert disk in plugin.simulator.disks_of()
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0 and "in use" in refused.stderr

    # Detached: unmounted, removed from the VM, and the bytes are in the datastore file.
    status = inspect(name)["Status"]
    assert status["Mounts"] == 0 and status["AttachedTo"] == ""
    assert disk not in plugin.simulator.disks_of()
    flat = volume_dir(plugin, DS0, ROOT0, name) / f"{name}-flat.vmdk"
    assert os.path.getsize(flat) == 64 * 1024 * 1024          # Capacity=64MB as VIC sizes it
    assert marker.encode() in flat.read_bytes()
    assert blkid(flat, "TYPE") == "ext4" and blkid(flat, "LABEL") == vic_label(name)
    # Containers see the filesystem's .vic.vol.data folder, as a VCH's containers do.
    assert in_filesystem(flat, "/.vic.vol.data/marker.txt") == marker + "\n"

    assert run(test_image, name, "ls -A /data; cat /data/marker.txt") == f"marker.txt\n{marker}\n"


def test_a_volume_made_by_a_vch_is_listed_after_a_restart_and_mountable(plugin, volume, test_image):
    name = volume("from-vch")
    make_vic_volume(plugin.simulator, DS1, ROOT1, name, capacity_mb=64,
                    files={".vic.vol.data/hello.txt": "hello from a VCH container\n"})
    assert name not in volume_names()
    # Made meanwhile by a VCH (or another Docker host), unknown here until the store is
    # listed again: a create of that name finds it on the store (one lookup) and is that
    # volume, left as the VCH made it.
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds1", name)
    assert name in volume_names() and inspect(name)["Status"]["Capacity"] == "64MB"
    assert os.listdir(volume_dir(plugin, DS1, ROOT1, name) / "ImageMetadata") == ["DockerMetaData"]
    assert os.listdir(plugin.datastores[DS1] / ROOT1 / "vsphere-volume-staging") == []

    plugin.restart()                      # start-up discovery finds it

    listed = docker("volume", "ls", "-q", "--filter", f"driver={plugin.ref}").stdout.split()
    assert name in listed
    info = inspect(name)
    status = info["Status"]
    assert status["VolumeStore"] == "ds1" and status["Capacity"] == "64MB" and "Problem" not in status
    assert status["Disk"] == f"[{DS1}] VIC/volumes/{name}/{name}.vmdk" and info["CreatedAt"]
    read = run(test_image, name, "cat /data/hello.txt && echo reply > /data/reply")
    assert read == "hello from a VCH container\n"
    flat = volume_dir(plugin, DS1, ROOT1, name) / f"{name}-flat.vmdk"
    # The VCH's filesystem was used as it was, and the reply is where a VCH looks.
    assert blkid(flat, "LABEL") == vic_label(name)
    assert in_filesystem(flat, "/.vic.vol.data/reply") == "reply\n"

    docker("volume", "rm", name)
    assert not volume_dir(plugin, DS1, ROOT1, name).exists()


def test_a_mounted_volume_survives_a_plugin_restart(plugin, volume, test_image):
    name = volume("sticky")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds1", "--opt", "Capacity=64MB", name)
    with running_on(test_image, name, "echo before > /data/f", "survivor") as user:
        docker("exec", user, "test", "-f", "/data/f")
        plugin.restart()
        status = inspect(name)["Status"]
        assert status["Mounts"] == 1 and status["AttachedTo"] == plugin.simulator.host_vm
        docker("exec", user, "sh", "-c", "echo during >> /data/f")
        assert run(test_image, name, "cat /data/f") == "before\nduring\n"
    assert inspect(name)["Status"]["AttachedTo"] == ""
    flat = volume_dir(plugin, DS1, ROOT1, name) / f"{name}-flat.vmdk"
    assert in_filesystem(flat, "/.vic.vol.data/f") == "before\nduring\n"


def test_a_volume_attached_to_another_vm_is_refused_clearly(plugin, volume, test_image):
    name = volume("elsewhere")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)
    disk = f"[{DS0}] {ROOT0}/volumes/{name}/{name}.vmdk"
    other = next(vm for vm in plugin.simulator.info["vms"] if vm != plugin.simulator.host_vm)
    says = f"volume {name} is in use by VM {other} (powered on): its disk {disk} is attached there"
    with plugin.simulator.disk_attached_to(other, disk):      # another Docker host uses it
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0 and says in refused.stderr
        container = unique("blocked")
        try:
            started = docker("run", "--name", container, "--network", "none", "-v", f"{name}:/data",
                             test_image, "true", check=False)
            assert started.returncode != 0 and says in started.stderr
        finally:
            docker("rm", "-f", container, check=False)
        assert disk not in plugin.simulator.disks_of() and inspect(name)["Status"]["Mounts"] == 0
    docker("volume", "rm", name)
    assert not volume_dir(plugin, DS0, ROOT0, name).exists()


def test_remove_deletes_the_volume_folder(plugin, volume):
    name = volume("doomed")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)
    folder = volume_dir(plugin, DS0, ROOT0, name)
    assert folder.is_dir()
    docker("volume", "rm", name)
    assert not folder.exists()
    assert name not in volume_names()


@pytest.mark.parametrize("args, says", [
    (["--opt", "VolumeStore=ds9"], "No volume store named (ds9) exists; known volume stores: default, ds0, ds1"),
    (["--opt", "VolumeStore=ds0", "--opt", "Capacity=1GiB"], "bad driver value - invalid size: '1GiB'"),
    (["--opt", "VolumeStore=ds0", "--opt", "Capacity=9223372036854775808"],
     "bad driver value - Capacity value too large: 9223372036854775808"),
])
def test_bad_options_are_refused_and_create_nothing_on_the_datastores(plugin, args, says):
    name = unique("bad")
    result = docker("volume", "create", "-d", plugin.name, *args, name, check=False)
    assert result.returncode != 0 and says in result.stderr
    assert name not in volume_names()
    assert not volume_dir(plugin, DS0, ROOT0, name).exists()


def test_a_wrong_password_is_a_clear_error(plugin, volume):
    name = volume("locked-out")
    simulator = plugin.simulator
    wrong = f"not-{simulator.password}"
    right_file = plugin.settings["VSPHERE_PASSWORD_FILE"]
    wrong_file = simulator.write_secret("wrong-password", wrong)
    plugin.configure(VSPHERE_PASSWORD_FILE=simulator.plugin_path(wrong_file))
    try:
        result = docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", name, check=False)
        says = (f"volume store ds0 is unavailable: logging in to vCenter {simulator.host_port} as "
                f"'{simulator.user}' failed: wrong user name or password")
        assert result.returncode != 0 and says in result.stderr
        assert wrong not in result.stderr
        assert name not in volume_names() and not volume_dir(plugin, DS0, ROOT0, name).exists()
        assert wait_for_log(plugin, "volume store ds0 is unavailable", "wrong user name or password")
        # The folder store is served all the same.
        docker("volume", "create", "-d", plugin.name, name)
        assert inspect(name)["Status"]["VolumeStore"] == "default"
        docker("volume", "rm", name)
    finally:
        plugin.configure(VSPHERE_PASSWORD_FILE=right_file)
    assert not any(wrong in line for line in plugin.log_lines())


def test_the_password_is_never_shown(plugin, volume, test_image):
    name = volume("secret")
    password = plugin.simulator.password
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)
    run(test_image, name, "true")
    # The plugin's settings are shown by `docker plugin inspect`: they name the file only.
    settings = docker("plugin", "inspect", plugin.name).stdout
    assert password not in settings
    env = json.loads(settings)[0]["Settings"]["Env"]
    assert f"VSPHERE_PASSWORD_FILE={plugin.settings['VSPHERE_PASSWORD_FILE']}" in env
    assert "VSPHERE_PASSWORD=" in env
    assert password not in docker("volume", "inspect", name).stdout
    logged_in = wait_for_log(plugin, "logged in to vCenter", plugin.simulator.host_port)
    assert logged_in
    assert not any(password in line for line in plugin.log_lines())


def test_a_volume_made_here_is_whole_for_a_vch_mounted_by_label_with_vics_size(plugin, volume, test_image, tmp_path):
    name = volume("for-a-vch")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=10000", name)
    flat = volume_dir(plugin, DS0, ROOT0, name) / f"{name}-flat.vmdk"
    assert os.path.getsize(flat) == 10000 * 1024 * 1024                 # VIC's Capacity x 1024 KiB
    assert blkid(flat, "TYPE") == "ext4" and blkid(flat, "LABEL") == vic_label(name)
    assert inspect(name)["Status"]["AttachedTo"] == ""
    assert not [disk for disk in plugin.simulator.disks_of() if name in disk]   # nothing left attached

    # Never mounted by the plugin: a VCH's container VM sees the disk and mounts it by label.
    device = subprocess.run(["losetup", "--find", "--show", str(flat)], capture_output=True, text=True,
                            check=True).stdout.strip()
    target = tmp_path / "container-vm"
    target.mkdir()
    try:
        subprocess.run(["mount", f"LABEL={vic_label(name)}", str(target)], check=True)
        try:
            assert sorted(os.listdir(target)) == [".vic.vol.data", "lost+found"]
            (target / ".vic.vol.data" / "from-a-vch.txt").write_text("written by a VCH container\n")
        finally:
            subprocess.run(["umount", str(target)], check=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)

    # And a container here sees the same folder, on a filesystem of VIC's size: VIC's suite
    # reads 9.5G from busybox's df -h for this volume.
    out = run(test_image, name, "cat /data/from-a-vch.txt && df -B1 --output=size /data | tail -1")
    text, size = out.splitlines()
    assert text == "written by a VCH container" and round(int(size) / 2**30, 1) == 9.5
