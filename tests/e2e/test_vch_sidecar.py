"""VCH sidecar mode as a user meets it: the session's plugin, in the session's engine,
forwards volume create and remove to a VCH and serves the VCH's volumes on this host.

The VCH is the stand-in of ``tests/e2e/vch.py``: a second private Docker engine
serving the Docker API over TCP with verified TLS on 127.0.0.1, with this plugin
enabled in it as ``vsphere`` in direct mode against the same vCenter simulator and
the stores ds0 and ds1. The sidecar declares those two and ``spare``, a store the VCH
does not have (to see the VCH's own refusal). Everything is driven with the docker CLI:
on the sidecar's engine as the user of this Docker host, and against the VCH over TCP
with the client certificate, as a VIC user.
"""

import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.simulator import vic_label

from .conftest import DATASTORE_STORES, FOLDER_STORES, PLUGIN_DATA_DIR, SECRETS_SUBDIR
from .dockercli import docker
from .user import backups, inspect, run_on, unique, volume_names, vv
from .vch import make_tls, stand_in_settings, start_stand_in

DS0, DS1 = "LocalDS_0", "LocalDS_1"
ROOT0 = "volumes/e2e"                          # ds0's folder on LocalDS_0
SIDECAR_STORES = f"{DATASTORE_STORES};{DS1}/spare:spare"
EMPTY_IMAGE = "vch-stand-in/empty:1"           # enough for `docker create` on the VCH
TLS_SUBDIR = "vch-tls"                         # below the sidecar's data folder


class SidecarSetup:
    """The module's set-up: the sidecar (the session's plugin), the stand-in VCH, the TLS
    files, and the simulator VM that plays a container VM of the VCH."""

    def __init__(self, plugin, vch, tls, container_vm):
        self.plugin, self.vch, self.tls, self.container_vm = plugin, vch, tls, container_vm

    def inside(self, host_path):
        """Where the sidecar plugin sees a file below its host data folder."""
        return f"{PLUGIN_DATA_DIR}/{Path(host_path).relative_to(self.plugin.state_dir)}"

    def vch_settings(self, ca=None):
        client = self.tls.client
        return {"VCH_URL": self.vch.url, "VCH_TLS_CA": self.inside(ca or client / "ca.pem"),
                "VCH_TLS_CERT": self.inside(client / "cert.pem"), "VCH_TLS_KEY": self.inside(client / "key.pem")}

    def folder(self, name, datastore=DS0, root=ROOT0):
        return self.plugin.datastores[datastore] / root / "volumes" / name

    def policies(self):
        return json.loads((Path(self.plugin.state_dir) / "state" / "vch-policies.json").read_text())["volumes"]


@pytest.fixture(scope="module")
def sidecar(plugin):
    simulator = plugin.simulator
    tls = make_tls(Path(plugin.state_dir) / TLS_SUBDIR)
    engine_dir = Path(os.environ.get("VV_ENGINE_DIR", "/tmp/vsphere-volume-engine") + "-vch")
    vch = start_stand_in(engine_dir, tls)
    try:
        others = [vm for vm in simulator.info["vms"] if vm != simulator.host_vm]
        # The stand-in makes a volume's filesystem at create, as a VCH does, on its own VM.
        simulator.enable_disk_uuid(others[0])
        vch.install_plugin(os.environ["DOCKER_HOST"], stand_in_settings(
            vch, plugin.settings, Path(plugin.state_dir) / SECRETS_SUBDIR, DATASTORE_STORES, vm=others[0]))
        with tempfile.TemporaryDirectory() as folder:
            empty = Path(folder) / "empty.tar"
            tarfile.open(empty, "w").close()
            vch.docker("import", str(empty), EMPTY_IMAGE)
        parts = SidecarSetup(plugin, vch, tls, container_vm=others[1])
        plugin.configure(VOLUME_STORES=SIDECAR_STORES, **parts.vch_settings())
        try:
            yield parts
        finally:
            plugin.configure(VOLUME_STORES=FOLDER_STORES, VCH_URL="", VCH_TLS_CA="", VCH_TLS_CERT="",
                             VCH_TLS_KEY="")
    finally:
        vch.stop(keep=False)
        vch.remove_state()


pytestmark = pytest.mark.usefixtures("sidecar")


def create(name, *opts, check=True):
    """`docker volume create -d vsphere --opt ... name` on the sidecar's engine."""
    args = [arg for opt in opts for arg in ("--opt", opt)]
    return docker("volume", "create", "-d", "vsphere", *args, name, check=check)


def test_a_volume_created_on_the_sidecar_is_the_vchs_in_vics_layout(sidecar, volume):
    name = volume("orders")
    create(name, "Backup=daily", "VolumeStore=ds0", "Capacity=64MB")

    assert name in sidecar.vch.volume_names()
    on_vch = json.loads(sidecar.vch.docker("volume", "inspect", name).stdout)[0]
    assert on_vch["Driver"] == "vsphere:latest"
    assert on_vch["Options"] == {"VolumeStore": "ds0", "Capacity": "64MB"}       # never Backup
    folder = sidecar.folder(name)
    assert set(os.listdir(folder)) == {f"{name}.vmdk", f"{name}-flat.vmdk", "imageMetadata"}
    metadata = json.loads((folder / "imageMetadata" / "DockerMetaData").read_text())
    assert metadata["Name"] == name and metadata["DriverOpts"] == {"VolumeStore": "ds0", "Capacity": "64MB"}
    assert sidecar.policies()[name] == {"Backup": "daily"}                    # the sidecar's own, elsewhere

    status = inspect(name)["Status"]
    assert status["VolumeStore"] == "ds0" and status["Capacity"] == "64MB"
    assert status["Options"]["Backup"] == "daily"
    assert status["Disk"] == f"[{DS0}] {ROOT0}/volumes/{name}/{name}.vmdk"
    assert status["VCH"]["URL"] == sidecar.vch.url
    assert status["VCH"]["Reachable"] is True and status["VCH"]["Stale"] is False


def test_a_container_here_writes_and_a_backup_restores_as_a_new_vch_volume(sidecar, volume, test_image):
    name, copy = volume("ledger"), volume("ledger-copy")
    create(name, "Backup=daily", "VolumeStore=ds1", "Capacity=64MB")
    marker = unique("entry")
    run_on(test_image, name, f"echo {marker} > /data/ledger.txt")
    _, out, _ = vv(sidecar.plugin, "backup", name)
    assert "committed" in out
    run_on(test_image, name, "echo later > /data/ledger.txt")

    create(copy, f"RestoreFrom={name}@latest")
    on_vch = json.loads(sidecar.vch.docker("volume", "inspect", copy).stdout)[0]
    assert on_vch["Options"] == {"VolumeStore": "ds1", "Capacity": "64MB"}    # the backed-up volume's
    assert sidecar.folder(copy, DS1, "VIC").is_dir()
    assert run_on(test_image, copy, "cat /data/ledger.txt") == f"{marker}\n"
    assert run_on(test_image, name, "cat /data/ledger.txt") == "later\n"
    # The filesystem has the label VIC looks for under the new name: the VCH's containers find it.
    flat = sidecar.folder(copy, DS1, "VIC") / f"{copy}-flat.vmdk"
    label = subprocess.run(["blkid", "-p", "-o", "value", "-s", "LABEL", str(flat)], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert label == vic_label(copy)


def test_the_vchs_refusals_reach_the_user_verbatim(sidecar, volume):
    vch = sidecar.vch
    taken = volume("taken")
    vch.docker("volume", "create", taken)                   # the VCH has that name (another driver)
    try:
        vch_says = vch.says("volume", "create", "-d", "vsphere", "--opt", "VolumeStore=ds0", taken)
        refused = create(taken, "Backup=daily", "VolumeStore=ds0", check=False)
        assert refused.returncode != 0
        assert f"the VCH at {vch.url} refused to create volume {taken}: {vch_says}" in refused.stderr
        assert taken not in volume_names() and taken not in sidecar.policies()
    finally:
        vch.docker("volume", "rm", taken)

    odd = volume("odd")
    vch_says = vch.says("volume", "create", "-d", "vsphere", "--opt", "VolumeStore=spare", odd)
    refused = create(odd, "VolumeStore=spare", check=False)
    assert refused.returncode != 0
    assert f"the VCH at {vch.url} refused to create volume {odd}: {vch_says}" in refused.stderr
    assert odd not in vch.volume_names() and odd not in volume_names()
    assert not sidecar.folder(odd, DS1, "spare").exists()


def test_remove_is_forwarded_and_the_vchs_refusal_shown_as_is(sidecar, volume):
    vch, name = sidecar.vch, volume("held")
    create(name, "Backup=daily", "VolumeStore=ds0", "Capacity=64MB")
    holder = unique("holder")
    vch.docker("create", "--name", holder, "-v", f"{name}:/data", EMPTY_IMAGE, "/nothing")
    try:
        vch_says = vch.says("volume", "rm", name)
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0
        assert f"the VCH at {vch.url} refused to remove volume {name}: {vch_says}" in refused.stderr
        assert name in volume_names() and name in vch.volume_names()
    finally:
        vch.docker("rm", holder)

    docker("volume", "rm", name)
    assert name not in vch.volume_names() and name not in volume_names()
    assert not sidecar.folder(name).exists() and name not in sidecar.policies()
    finals = [b for b in backups(sidecar.plugin, name) if b["Origin"] == "final"]
    assert len(finals) == 2                 # taken before each attempt; kept after the removal


def test_a_disk_held_by_a_container_vm_is_not_mounted_here(sidecar, volume, test_image):
    name, simulator = volume("busy"), sidecar.plugin.simulator
    create(name, "VolumeStore=ds0", "Capacity=64MB")
    disk = f"[{DS0}] {ROOT0}/volumes/{name}/{name}.vmdk"
    with simulator.disk_attached_to(sidecar.container_vm, disk):
        refused = docker("run", "--rm", "--network", "none", "-v", f"{name}:/data", test_image, "true",
                         check=False)
        assert refused.returncode != 0
        assert (f"volume {name} is in use by container VM {sidecar.container_vm}: its disk {disk} is "
                "attached there") in refused.stderr
        assert disk not in simulator.disks_of()
    assert run_on(test_image, name, "echo mine > /data/f; cat /data/f") == "mine\n"


def test_with_the_vch_stopped_volumes_are_listed_inspected_and_mounted_and_create_fails_clearly(
        sidecar, volume, test_image):
    vch, name, other = sidecar.vch, volume("steady"), volume("meanwhile")
    create(name, "Backup=daily", "VolumeStore=ds0", "Capacity=64MB")
    run_on(test_image, name, "echo kept > /data/f")
    vch.stop()
    try:
        refused = create(other, "VolumeStore=ds0", check=False)
        assert refused.returncode != 0
        assert f"cannot look up volume {other} on the VCH at {vch.url}: [Errno 111] Connection refused" \
            in refused.stderr
        assert name in volume_names() and other not in volume_names()
        status = inspect(name)["Status"]
        assert status["Options"]["Backup"] == "daily" and status["VolumeStore"] == "ds0"
        assert status["VCH"]["Reachable"] is False and status["VCH"]["Stale"] is True
        assert "Connection refused" in status["VCH"]["Error"] and status["VCH"]["ListedAt"]
        assert run_on(test_image, name, "cat /data/f") == "kept\n"      # mounting needs vCenter only
    finally:
        vch.start()
    create(other, "VolumeStore=ds0")
    assert other in vch.volume_names()
    assert inspect(name)["Status"]["VCH"]["Reachable"] is True


def test_a_vch_certificate_from_another_ca_is_refused(sidecar, volume):
    name = volume("untrusted")
    sidecar.plugin.configure(**sidecar.vch_settings(ca=sidecar.tls.wrong_ca))
    try:
        refused = create(name, "VolumeStore=ds0", check=False)
        assert refused.returncode != 0
        assert (f"cannot look up volume {name} on the VCH at {sidecar.vch.url}: the TLS handshake failed "
                "([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed") in refused.stderr
        assert "Check VCH_TLS_CA" in refused.stderr
    finally:
        sidecar.plugin.configure(**sidecar.vch_settings())
    assert name not in sidecar.vch.volume_names()
