"""No silent data loss, no vanished volumes, as a user sees it through Docker: a restore
onto a name that exists, the plugin killed while it restores, vCenter unreachable while
the plugin restarts, a vCenter setting that makes one store fail."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import FOLDER_STORES
from .dockercli import docker
from .tcpproxy import TcpRelay
from .user import inspect, run_on, volume_names, vv
from ..waiting import wait_until

DS0 = "LocalDS_0"
STORES = f"{FOLDER_STORES};{DS0}/volumes/reliable:ds0"
HANG_GUARD = 120       # seconds a step may take before the test gives up (a hang guard, not a figure)


def plugin_processes(plugin):
    """Pids of every process of the plugin's container (its cgroup names the plugin's id)."""
    full_id = docker("plugin", "inspect", "-f", "{{.Id}}", plugin.name).stdout.strip()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and full_id in (entry / "cgroup").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def signal_all(pids, signum):
    """Send ``signum`` to each of ``pids`` that still exists (a child may end meanwhile)."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def checksums(test_image, name):
    return run_on(test_image, name, "cd /data && find . -type f | sort | xargs sha256sum")


# --- RestoreFrom onto a name that exists ----------------------------------------------------------

def test_a_restore_onto_an_existing_volume_never_overwrites_it(plugin, volume, test_image):
    source, existing = volume("mydata"), volume("yesterday")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", source)
    run_on(test_image, source, "echo backed up > /data/f")
    vv(plugin, "backup", source)
    docker("volume", "create", "-d", plugin.name, existing)
    run_on(test_image, existing, "echo mine > /data/mine")
    # The plugin's restore refuses it, saying how to restore in place.
    code, _, err = vv(plugin, "restore", source, "--as", existing, check=False)
    assert code == 1
    assert f"volume {existing} already exists: RestoreFrom={source}@" in err and "fills a new volume" in err
    assert f"vsphere-volume restore {existing} --backup ID --force" in err
    # Docker answers a create of a name it has itself, from its own state (moby asks the
    # driver's Get and never calls Create): the volume is left as it was.
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom={source}@latest", existing, check=False)
    assert run_on(test_image, existing, "ls /data; cat /data/mine") == "mine\nmine\n"


# --- the plugin killed while it restores -----------------------------------------------------------

def test_a_plugin_killed_while_it_restores_never_leaves_a_volume_that_looks_whole(plugin, volume, test_image):
    source, copy = volume("big"), volume("big-copy")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", source)
    run_on(test_image, source, "for i in $(seq 1 300); do head -c 1048576 /dev/urandom > /data/f$i; done")
    expected = checksums(test_image, source)
    vv(plugin, "backup", source)
    create = subprocess.Popen(["docker", "volume", "create", "-d", plugin.name, "--opt",
                               f"RestoreFrom={source}@latest", copy], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # The restore's copy runs as rsync into a staging folder: stop it there, then kill
        # the whole plugin, as a crash would.
        def restoring():
            return [pid for pid in plugin_processes(plugin)
                    if "rsync" in command_line(pid) and ".vsphere-volume-staging" in command_line(pid)]
        copying = wait_until(restoring, HANG_GUARD, "the restore's copy", poll=0.005)
        signal_all(copying, signal.SIGSTOP)
        signal_all(plugin_processes(plugin), signal.SIGKILL)
        _, err = create.communicate(timeout=HANG_GUARD)
    finally:
        if create.poll() is None:
            create.kill()
    # Docker restarts the plugin (and retries the Create whose connection broke); the
    # plugin goes on with the restore it had marked as unfinished.
    wait_until(lambda: docker("volume", "ls", check=False).returncode == 0, HANG_GUARD, "the plugin to answer again")
    state = wait_until(lambda: inspect(copy)["Status"]["Restore"]["State"] != "running" and
                       inspect(copy)["Status"]["Restore"]["State"], HANG_GUARD, "the resumed restore to end")
    assert state == "done", state
    assert checksums(test_image, copy) == expected             # never a volume that looks whole but is not
    assert create.returncode == 0 or "VolumeDriver.Create" in err


# --- vCenter unreachable while the plugin restarts ----------------------------------------------------

@pytest.fixture
def relayed(plugin):
    """The plugin's vCenter reached through a TcpRelay the test can stop and start; the
    datastore store ds0; the session's settings again after."""
    host, port = plugin.simulator.host_port.split(":")
    relay = TcpRelay(host, int(port)).start()
    url = plugin.settings["VSPHERE_URL"]
    plugin.configure(VOLUME_STORES=STORES, VSPHERE_URL=url.replace(plugin.simulator.host_port, relay.address))
    try:
        yield relay
    finally:
        plugin.configure(VOLUME_STORES=FOLDER_STORES, VSPHERE_URL=url)
        relay.stop()


def test_a_restart_while_vcenter_is_unreachable_keeps_the_volumes_and_picks_vcenter_up_again(
        plugin, relayed, volume, test_image):
    name = volume("kept")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB", name)
    run_on(test_image, name, "echo kept > /data/f")

    relayed.stop()                                                   # vCenter does not answer
    plugin.restart()
    assert name in volume_names()
    status = inspect(name)["Status"]
    assert status["VolumeStore"] == "ds0" and status["Capacity"] == "64MB"
    assert status["Stale"]["ListedAt"] and "volume store ds0 is unavailable" in status["Stale"]["Error"]
    assert "cannot be reached" in status["Stale"]["Error"]
    refused = docker("run", "--rm", "--network", "none", "-v", f"{name}:/data", test_image, "cat", "/data/f",
                     check=False)
    assert refused.returncode != 0 and "volume store ds0 is unavailable" in refused.stderr

    relayed.start()                                                  # vCenter answers again
    assert run_on(test_image, name, "cat /data/f") == "kept\n"        # no plugin restart
    assert "Stale" not in inspect(name)["Status"]


# --- one store's failure is that store's ---------------------------------------------------------------

def test_a_wrong_vcenter_path_makes_the_datastore_store_unavailable_and_the_folder_store_works(
        plugin, volume, test_image):
    url = plugin.settings["VSPHERE_URL"]
    plugin.configure(VOLUME_STORES=STORES, VSPHERE_URL=url.replace("/sdk", "/not-the-sdk"))
    try:
        on_folder, on_datastore = volume("works"), volume("refused")
        docker("volume", "create", "-d", plugin.name, on_folder)
        assert run_on(test_image, on_folder, "echo ok > /data/f && cat /data/f") == "ok\n"
        refused = docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", on_datastore,
                         check=False)
        assert refused.returncode != 0 and "volume store ds0 is unavailable" in refused.stderr
        status = json.loads(vv(plugin, "status", "--json")[1])
        [ds0] = [s for s in status["Stores"] if s["Label"] == "ds0"]
        assert ds0["Error"] and [s["Error"] for s in status["Stores"] if s["Label"] == "default"] == [""]
    finally:
        plugin.configure(VOLUME_STORES=FOLDER_STORES, VSPHERE_URL=url)
