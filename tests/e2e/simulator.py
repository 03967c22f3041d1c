"""The vCenter simulator of the end-to-end tier, seen from the host and from the plugin.

``start`` runs the project's harness (tests/vcsim, built by scripts/build-vcsim) on a
free port of 127.0.0.1 with TLS, one user and password and two datastores, whose
folders it makes below a host folder that the plugin mounts (config.json's test-only
mount ``test-only-datastores``). The plugin uses the host network, so the harness's
https://127.0.0.1:PORT/sdk is the plugin's vCenter too. For Docker hosts in network
namespaces of their own (tests/e2e/multihost.py) it listens at the address of their
bridge instead, which its certificate then names.

Two views of every file therefore exist, and ``Simulator`` keeps both: the host path
(what the tests read: the datastore's ``-flat.vmdk`` holds the volume's bytes) and the
path inside the plugin (what ``docker plugin set`` values name). The CA certificate
and a password file are written into a host folder the plugin sees (its data folder),
so the plugin gets ``VSPHERE_CA_FILE`` and ``VSPHERE_PASSWORD_FILE``, never the
password itself: ``docker plugin inspect`` shows every setting's value.

``make_vic_volume`` makes a volume the way a VIC virtual container host does (disk,
metadata, an ext4 filesystem with VIC's label), through the simulator's API and its
datastore folder, without the plugin.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List, Optional

from tests.harness import build_harness, start_harness

from . import leftovers

USER = "e2e-operator@vsphere.local"
DATACENTER = "DC0"
STOP_TIMEOUT = 30


def vic_label(name: str) -> str:
    """The ext4 label VIC gives volume ``name``: the first 16 hex digits of md5(name)."""
    return hashlib.md5(name.encode()).hexdigest()[:16]  # noqa: S324 - VIC's label, not security


@dataclass
class Simulator:
    """A running harness and its files, as the host and as the plugin see them."""

    process: subprocess.Popen
    info: dict                      # the harness's ready line
    host_root: Path                 # host folder holding the datastore folders
    plugin_root: PurePosixPath      # the same folder inside the plugin
    secrets_host: Path              # host folder of the CA and password files
    secrets_plugin: PurePosixPath   # the same folder inside the plugin
    password: str = field(repr=False)
    log: List[str] = field(default_factory=list)   # the harness's stderr

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``, as the plugin's messages name vCenter."""
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def user(self) -> str:
        return self.info["user"]

    @property
    def host_vm(self) -> str:
        """The VM that plays the Docker host's VM."""
        return self.info["host_vm"]["name"]

    @property
    def datastores(self) -> Dict[str, Path]:
        """{datastore name: its folder on the host}."""
        return {name: Path(folder) for name, folder in self.info["datastores"].items()}

    @property
    def plugin_datastores(self) -> Dict[str, str]:
        """{datastore name: its folder inside the plugin}."""
        return {name: str(self.plugin_root / folder.relative_to(self.host_root))
                for name, folder in self.datastores.items()}

    @property
    def ca_file(self) -> Path:
        return Path(self.info["ca_file"])

    @property
    def password_file(self) -> Path:
        return self.secrets_host / "password"

    def plugin_path(self, host_path: Path) -> str:
        """Where the plugin sees ``host_path`` (a file below the secrets folder)."""
        return str(self.secrets_plugin / Path(host_path).relative_to(self.secrets_host))

    def file(self, datastore: str, path: str) -> Path:
        """The host file behind ``[datastore] path``."""
        return self.datastores[datastore] / path

    def plugin_settings(self) -> Dict[str, str]:
        """The `docker plugin set` values that point the plugin at this simulator."""
        return {
            "VSPHERE_URL": self.url,
            "VSPHERE_USER": self.user,
            "VSPHERE_PASSWORD_FILE": self.plugin_path(self.password_file),
            "VSPHERE_CA_FILE": self.plugin_path(self.ca_file),
            "VSPHERE_VM": self.host_vm,
            "VSPHERE_TEST_ONLY_LOOP_DATASTORES": json.dumps(self.plugin_datastores, sort_keys=True),
        }

    def write_secret(self, name: str, text: str) -> Path:
        """A file only root may read, in the folder the plugin sees; returns its host path."""
        path = self.secrets_host / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        return path

    @contextmanager
    def session(self) -> Iterator["object"]:
        """A logged-in plugin.vsphere Session from the host (the CA file verifies TLS)."""
        from plugin.vsphere.session import Session
        from plugin.vsphere.settings import VSphereSettings

        session = Session(VSphereSettings(url=self.url, user=self.user, password=self.password,
                                          ca_file=str(self.ca_file)))
        try:
            yield session
        finally:
            session.close()

    def _devices(self, session, vm_name):
        from plugin.vsphere.inventory import Inventory

        vm = Inventory(session).find_vm(vm_name).ref
        return vm, session.get_properties(vm, ["config.hardware.device"]).get("config.hardware.device") or []

    def enable_disk_uuid(self, vm_name: str) -> None:
        """Give VM ``vm_name`` disk.EnableUUID=TRUE (the harness sets it on the Docker
        host's VM only): a plugin running on that VM can then find the disks it attaches."""
        from pyVmomi import vim

        with self.session() as session:
            vm, _ = self._devices(session, vm_name)
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="disk.EnableUUID", value="TRUE")])
            session.call_task(vm, "ReconfigVM_Task", spec=spec)

    def disks_of(self, vm_name: Optional[str] = None) -> List[str]:
        """Datastore paths (``[ds] path.vmdk``) of the disks attached to a VM (default:
        the Docker host's)."""
        from pyVmomi import vim

        with self.session() as session:
            _, devices = self._devices(session, vm_name or self.host_vm)
            return [d.backing.fileName for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]

    def vms_with_disk(self, ds_path: str) -> list[str]:
        """Names of the VMs that have disk ``ds_path`` (``[ds] path.vmdk``) attached."""
        from plugin.vsphere.inventory import Inventory

        with self.session() as session:
            return sorted(vm.name for vm in Inventory(session).disk_users().users(ds_path))

    def power_state(self, vm_name: str) -> str:
        """``poweredOn``, ``poweredOff`` or ``suspended``."""
        from plugin.vsphere.inventory import Inventory

        with self.session() as session:
            vm = Inventory(session).find_vm(vm_name).ref
            return str(session.get_properties(vm, ["runtime.powerState"])["runtime.powerState"])

    def power_off(self, vm_name: str) -> None:
        """Power VM ``vm_name`` off, as a failed ESXi host or vSphere HA would."""
        self._power(vm_name, "PowerOffVM_Task")

    def power_on(self, vm_name: str) -> None:
        self._power(vm_name, "PowerOnVM_Task")

    def _power(self, vm_name: str, method: str) -> None:
        from plugin.vsphere.inventory import Inventory

        with self.session() as session:
            session.call_task(Inventory(session).find_vm(vm_name).ref, method)

    def ensure_disk_uuid(self, vm_name: str) -> None:
        """Give VM ``vm_name`` the advanced setting disk.EnableUUID=TRUE unless it has it
        (the plugin refuses a Docker host's VM without it; the harness sets it on its
        ``host_vm`` only)."""
        from pyVmomi import vim

        from plugin.vsphere.hostvm import ENABLE_UUID
        from plugin.vsphere.inventory import Inventory

        with self.session() as session:
            vm = Inventory(session).find_vm(vm_name).ref
            options = session.get_properties(vm, ["config.extraConfig"]).get("config.extraConfig") or []
            if any(o.key == ENABLE_UUID for o in options):
                return
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=ENABLE_UUID, value="TRUE")])
            session.call_task(vm, "ReconfigVM_Task", spec=spec)

    @contextmanager
    def disk_attached_to(self, vm_name: str, ds_path: str, capacity_mb: int = 64) -> Iterator[None]:
        """Disk ``ds_path`` attached to VM ``vm_name`` (say, another Docker host's VM)
        for the duration of the block."""
        from plugin.vsphere.vmdisks import attach_spec, detach_spec, find_disk

        with self.session() as session:
            vm, devices = self._devices(session, vm_name)
            spec, _ = attach_spec(devices, ds_path, capacity_mb * 1024, vm_name)
            session.call_task(vm, "ReconfigVM_Task", spec=spec)
        try:
            yield
        finally:
            with self.session() as session:
                vm, devices = self._devices(session, vm_name)
                disk = find_disk(devices, ds_path)
                if disk is not None:
                    session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(disk))

    def release_loop_devices(self) -> None:
        """Detach loop devices left over datastore files (the plugin detaches its own; this
        is for a session that ended in the middle of a mount)."""
        names = {folder.name for folder in self.datastores.values()}
        leftovers.detach_loops(lambda backing: any(name in backing for name in names))

    def release_loops_of(self, vm_name: str) -> list[str]:
        """Detach the loop devices over the disks attached to VM ``vm_name``: what the
        plugin of a Docker host that died without unmounting leaves (its guest's devices
        are gone with it). Returns the devices detached."""
        # The kernel shows a loop's backing file as the attaching process saw it (inside
        # the plugin): match on the datastore's folder name and the path below it.
        flats = set()
        for ds_path in self.disks_of(vm_name):
            datastore, path = ds_path[1:].split("] ", 1)
            flats.add(f"{self.datastores[datastore].name}/{path.removesuffix('.vmdk')}-flat.vmdk")
        return leftovers.detach_loops(lambda backing: any(backing.endswith(flat) for flat in flats))

    def stop(self) -> None:
        """SIGTERM: the harness closes its server and removes the datastore folders."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def start(binary: str, host_root: Path, plugin_root: str, secrets_host: Path,
          secrets_plugin: str, datastores: int = 2, address: str = "127.0.0.1") -> Simulator:
    """Start the harness with its datastore folders below ``host_root`` (the plugin's
    ``plugin_root``) and write its CA and a password file into ``secrets_host`` (the
    plugin's ``secrets_plugin``). It listens on a free port of ``address`` (an IPv4
    address of this machine), which its certificate names besides loopback."""
    host_root.mkdir(parents=True, exist_ok=True)
    secrets_host.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_host, 0o700)
    password = f"e2e-pw-{secrets.token_hex(12)}"
    argv = [binary, "-listen", f"{address}:0", "-hosts", f"{address},127.0.0.1,::1,localhost",
            "-user", USER, "-password", password,
            "-dir", str(host_root), "-cert-file", str(secrets_host / "vcsim-ca.pem"),
            "-datastores", str(datastores)]
    process, info, log = start_harness(argv)
    simulator = Simulator(process, info, host_root, PurePosixPath(plugin_root),
                          secrets_host, PurePosixPath(secrets_plugin), password, log)
    simulator.write_secret("password", password)
    return simulator


def make_vic_volume(simulator: Simulator, datastore: str, root: str, name: str, *,
                    capacity_mb: int = 64, files: Optional[Dict[str, str]] = None,
                    metadata_dir: str = "ImageMetadata") -> dict:
    """Make volume ``name`` in store root ``[datastore] root`` the way a VCH does:

    ``root/volumes/NAME/NAME.vmdk`` (thin), ``root/volumes/NAME/<metadata_dir>/DockerMetaData``
    (VIC's JSON) and an ext4 filesystem labelled like VIC's in the disk's flat file,
    holding ``files`` ({path in the filesystem: text}; VIC's containers see the
    filesystem's ``.vic.vol.data`` folder). Returns the metadata written.
    """
    from pyVmomi import vim

    from plugin.vsphere.files import DatastoreFiles

    folder = f"{root}/volumes/{name}"
    metadata = {"Driver": "vsphere", "DriverOpts": {"Capacity": f"{capacity_mb}MB"}, "Name": name,
                "Labels": {}, "AttachHistory": [""], "Image": ""}
    with simulator.session() as session:
        datacenter = session.datacenter.ref
        session.invoke(session.content.fileManager, "MakeDirectory", name=f"[{datastore}] {folder}",
                       datacenter=datacenter, createParentDirectories=True)
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            diskType="thin", adapterType="lsiLogic", capacityKb=capacity_mb * 1024)   # as VIC sizes it
        session.call_task(session.content.virtualDiskManager, "CreateVirtualDisk_Task",
                          name=f"[{datastore}] {folder}/{name}.vmdk", datacenter=datacenter, spec=spec)
        DatastoreFiles(session).write(datastore, f"{folder}/{metadata_dir}/DockerMetaData",
                                      json.dumps(metadata).encode())
    # What the VCH's own mkfs would have left in the disk (the simulator has no guest).
    flat = simulator.file(datastore, f"{folder}/{name}-flat.vmdk")
    os.truncate(flat, capacity_mb * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="vic-content-") as content:
        for relative, text in (files or {}).items():
            target = Path(content) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", vic_label(name), "-d", content, str(flat)],
                       check=True, capture_output=True, text=True)
    return metadata


def main(argv):
    """``python3 -m tests.e2e.simulator HOST_ROOT PLUGIN_ROOT SECRETS_HOST SECRETS_PLUGIN``:
    run the simulator for scripts/demo --vsphere. Prints the plugin settings as KEY=VALUE
    lines, then ``READY``; stops (removing its datastore folders) on SIGTERM or SIGINT."""
    host_root, plugin_root, secrets_host, secrets_plugin = argv
    simulator = start(build_harness(), Path(host_root), plugin_root, Path(secrets_host), secrets_plugin)

    def finish(*_):
        simulator.release_loop_devices()
        simulator.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    for key, value in simulator.plugin_settings().items():
        print(f"{key}={value}")
    print(f"DATASTORES={json.dumps({k: str(v) for k, v in simulator.datastores.items()})}")
    print("READY", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
