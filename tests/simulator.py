"""govmomi's vCenter simulator for the tests, the one helper of every tier that uses it:
the simulator tier (tests/vsphere) and the end-to-end tier (tests/e2e).

``build_harness`` builds the project's harness (tests/vcsim/main.go, by
scripts/build-vcsim, cached). ``start`` runs it on a free port with TLS, one user and a
password of its own and its datastores as folders below a host folder, and returns a
``Simulator``: its URL, user, password and CA file, the VM that plays the Docker host's
VM, the host folders of the datastores (its files are real: a ``-flat.vmdk`` holds a
volume's bytes), sessions to it, and helpers on its VMs and disks. ``stop`` (SIGTERM)
makes the harness close its server and remove the datastore folders.

For a plugin running in Docker (the end-to-end tier) ``start_for_plugin`` also places
the CA certificate and a password file in a host folder the plugin sees, and the
Simulator then knows both views of every file (``PluginView``): the host path (what the
tests read) and the path inside the plugin (what ``docker plugin set`` values name). The
plugin gets ``VSPHERE_CA_FILE`` and ``VSPHERE_PASSWORD_FILE``, never the password
itself: ``docker plugin inspect`` shows every setting's value. It uses the host network,
so https://127.0.0.1:PORT/sdk is its vCenter too; for Docker hosts in network namespaces
of their own (tests/e2e/multihost.py) the harness listens at the address of their bridge
instead, which its certificate then names.

``make_vic_volume`` makes a volume the way a VIC virtual container host does (disk,
metadata, an ext4 filesystem with VIC's label), through the simulator's API and its
datastore folder, without the plugin's stores.

``python3 -m tests.simulator HOST_ROOT PLUGIN_ROOT SECRETS_HOST SECRETS_PLUGIN`` runs it
for scripts/demo --vsphere (``main``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.e2e import leftovers

REPO = Path(__file__).resolve().parents[1]
USER = "vcsim-operator@vsphere.local"
READY_TIMEOUT = 60          # seconds for the harness to print its ready line (a hang guard)
STOP_TIMEOUT = 30
ENABLE_UUID = "disk.EnableUUID"


def vic_label(name: str) -> str:
    """The ext4 label VIC gives volume ``name``: the first 16 hex digits of md5(name)."""
    return hashlib.md5(name.encode()).hexdigest()[:16]  # noqa: S324 - VIC's rule, stated apart from the plugin's


def build_harness() -> str:
    """Path of the harness binary (scripts/build-vcsim builds it once, then caches it)."""
    result = subprocess.run([str(REPO / "scripts" / "build-vcsim")], capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, f"scripts/build-vcsim failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def _launch(argv):
    """Start the harness with ``argv``; return (process, its ready line parsed, its stderr
    lines so far: a list that keeps filling). Fails with the harness's stderr when it
    prints no ready line within READY_TIMEOUT."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    lines = []
    # Drain stderr so the harness never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    timer = threading.Timer(READY_TIMEOUT, process.kill)
    timer.start()
    try:
        line = process.stdout.readline()
    finally:
        timer.cancel()
    assert line, f"vcsim-harness did not start: {''.join(lines)[-2000:]}"
    return process, json.loads(line), lines


@dataclass(frozen=True)
class PluginView:
    """Where a plugin running in Docker sees the simulator's files: the datastore folders
    (below ``host_root`` on the host) below ``plugin_root``, the folder of the CA and
    password files (``secrets_host``) at ``secrets_plugin``."""

    host_root: Path
    plugin_root: PurePosixPath
    secrets_host: Path
    secrets_plugin: PurePosixPath


@dataclass
class Simulator:
    """A running harness and its files; see the module docstring."""

    process: subprocess.Popen
    info: dict                      # the harness's ready line
    password: str = field(repr=False)
    log: list[str] = field(default_factory=list)   # the harness's stderr
    view: PluginView | None = None              # for a plugin in Docker (start_for_plugin)

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
    def ca_file(self) -> Path:
        return Path(self.info["ca_file"])

    @property
    def datastores(self) -> dict[str, Path]:
        """{datastore name: its folder on the host}."""
        return {name: Path(folder) for name, folder in self.info["datastores"].items()}

    @property
    def datastore_folders(self) -> dict[str, str]:
        """{datastore name: its folder on the host, as text}: what a plugin running on
        this host is given as VSPHERE_TEST_ONLY_LOOP_DATASTORES."""
        return {name: str(folder) for name, folder in self.datastores.items()}

    def file(self, datastore: str, path: str) -> Path:
        """The host file behind ``[datastore] path``."""
        return self.datastores[datastore] / path

    def settings(self, **overrides):
        """plugin.vsphere VSphereSettings for this simulator (the CA file verifies TLS)."""
        from plugin.vsphere.settings import VSphereSettings

        values = {"url": self.url, "user": self.user, "password": self.password, "ca_file": str(self.ca_file)}
        values.update(overrides)
        return VSphereSettings(**values)

    @contextmanager
    def session(self) -> Iterator[object]:
        """A plugin.vsphere Session to this simulator, closed after the block."""
        from plugin.vsphere.session import Session

        session = Session(self.settings())
        try:
            yield session
        finally:
            session.close()

    # --- VMs and their disks -------------------------------------------------------------

    def _vm(self, session, vm_name):
        from plugin.vsphere.inventory import Inventory

        return Inventory(session).find_vm(vm_name).ref

    def _devices(self, session, vm_name):
        vm = self._vm(session, vm_name)
        return vm, session.get_properties(vm, ["config.hardware.device"]).get("config.hardware.device") or []

    def enable_disk_uuid(self, vm_name: str) -> None:
        """Give VM ``vm_name`` disk.EnableUUID=TRUE unless it has it (the harness sets it on
        the Docker host's VM only): a plugin running on that VM can then find the disks it
        attaches (the plugin refuses a Docker host's VM without it)."""
        from pyVmomi import vim

        with self.session() as session:
            vm = self._vm(session, vm_name)
            options = session.get_properties(vm, ["config.extraConfig"]).get("config.extraConfig") or []
            if any(o.key == ENABLE_UUID and str(o.value).upper() == "TRUE" for o in options):
                return
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=ENABLE_UUID, value="TRUE")])
            session.call_task(vm, "ReconfigVM_Task", spec=spec)

    def disks_of(self, vm_name: str | None = None) -> list[str]:
        """Datastore paths (``[ds] path.vmdk``) of the disks attached to a VM (default:
        the Docker host's)."""
        from plugin.vsphere.vmdisks import attached_disks

        with self.session() as session:
            _, devices = self._devices(session, vm_name or self.host_vm)
            return [disk.files[0] for disk in attached_disks(devices)]

    def vms_with_disk(self, ds_path: str) -> list[str]:
        """Names of the VMs that have disk ``ds_path`` (``[ds] path.vmdk``) attached."""
        from plugin.vsphere.inventory import Inventory

        with self.session() as session:
            return sorted(vm.name for vm in Inventory(session).disk_users().users(ds_path))

    def power_state(self, vm_name: str) -> str:
        """``poweredOn``, ``poweredOff`` or ``suspended``."""
        with self.session() as session:
            return str(session.get_properties(self._vm(session, vm_name), ["runtime.powerState"])
                       ["runtime.powerState"])

    def power_off(self, vm_name: str) -> None:
        """Power VM ``vm_name`` off, as a failed ESXi host or vSphere HA would."""
        self._power(vm_name, "PowerOffVM_Task")

    def power_on(self, vm_name: str) -> None:
        self._power(vm_name, "PowerOnVM_Task")

    def _power(self, vm_name: str, method: str) -> None:
        with self.session() as session:
            session.call_task(self._vm(session, vm_name), method)

    @contextmanager
    def disk_attached_to(self, vm_name: str, ds_path: str, capacity_mb: int = 64) -> Iterator[None]:
        """Disk ``ds_path`` attached to VM ``vm_name`` (say, another Docker host's VM)
        for the duration of the block."""
        from plugin.vsphere.vmdisks import attach_spec

        with self.session() as session:
            vm, devices = self._devices(session, vm_name)
            spec, _ = attach_spec(devices, ds_path, capacity_mb * 1024, vm_name)
            session.call_task(vm, "ReconfigVM_Task", spec=spec)
        try:
            yield
        finally:
            self.detach_disk(vm_name, ds_path)

    def detach_disk(self, vm_name: str, ds_path: str) -> None:
        """Detach disk ``ds_path`` from VM ``vm_name`` if it has it (its files are kept), as
        that VM's Docker host does when its last container lets the volume go."""
        from plugin.vsphere.vmdisks import detach_spec, find_disk

        with self.session() as session:
            vm, devices = self._devices(session, vm_name)
            disk = find_disk(devices, ds_path)
            if disk is not None:
                session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(disk))

    # --- what it served ----------------------------------------------------------------

    def calls(self) -> dict[str, dict[str, int]]:
        """{client address: {SOAP method or http.GET, http.PUT...: count}} of every call it
        served so far (the harness counts them)."""
        import requests

        base = self.url.rsplit("/sdk", 1)[0]
        reply = requests.get(f"{base}/vcsim/calls", verify=str(self.ca_file), timeout=30)
        reply.raise_for_status()
        return reply.json()

    # --- loop devices ------------------------------------------------------------------

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

    # --- as a plugin in Docker sees it (start_for_plugin) ----------------------------------

    @property
    def plugin_datastores(self) -> dict[str, str]:
        """{datastore name: its folder inside the plugin}."""
        return {name: str(self.view.plugin_root / folder.relative_to(self.view.host_root))
                for name, folder in self.datastores.items()}

    @property
    def password_file(self) -> Path:
        return self.view.secrets_host / "password"

    def plugin_path(self, host_path: Path) -> str:
        """Where the plugin sees ``host_path`` (a file below the secrets folder)."""
        return str(self.view.secrets_plugin / Path(host_path).relative_to(self.view.secrets_host))

    def plugin_settings(self) -> dict[str, str]:
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
        path = self.view.secrets_host / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        return path

    # --- stopping ----------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM: the harness closes its server and removes the datastore folders."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: vCenter gone at once, as a crash or a network failure would have it."""
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)


def start(binary: str, folder: Path, *flags: str, datastores: int = 2, address: str = "127.0.0.1",
          cert_file: Path | None = None) -> Simulator:
    """Start the harness with its datastore folders below ``folder``, listening on a free
    port of ``address`` (an IPv4 address of this machine), which its certificate names
    besides loopback; ``flags``: more harness flags (``-delay Method=ms``...);
    ``cert_file``: where it writes its certificate (default: in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    password = f"vcsim-pw-{secrets.token_hex(12)}"
    hosts = ",".join(dict.fromkeys([address, "127.0.0.1", "::1", "localhost"]))
    argv = [binary, "-listen", f"{address}:0", "-hosts", hosts, "-user", USER, "-password", password,
            "-dir", str(folder), "-datastores", str(datastores),
            *(["-cert-file", str(cert_file)] if cert_file else []), *flags]
    process, info, log = _launch(argv)
    return Simulator(process, info, password, log)


def start_for_plugin(binary: str, host_root: Path, plugin_root: str, secrets_host: Path,
                     secrets_plugin: str, datastores: int = 2, address: str = "127.0.0.1") -> Simulator:
    """``start`` with the datastore folders below ``host_root`` (the plugin's
    ``plugin_root``), writing the CA and a password file into ``secrets_host`` (the
    plugin's ``secrets_plugin``)."""
    secrets_host.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_host, 0o700)
    simulator = start(binary, host_root, datastores=datastores, address=address,
                      cert_file=secrets_host / "vcsim-ca.pem")
    simulator.view = PluginView(host_root, PurePosixPath(plugin_root), secrets_host, PurePosixPath(secrets_plugin))
    simulator.write_secret("password", simulator.password)
    return simulator


def make_vic_volume(simulator: Simulator, datastore: str, root: str, name: str, *,
                    capacity_mb: int = 64, files: dict[str, str] | None = None,
                    metadata_dir: str = "ImageMetadata") -> dict:
    """Make volume ``name`` in store root ``[datastore] root`` the way a VCH does:

    ``root/volumes/NAME/NAME.vmdk`` (thin), ``root/volumes/NAME/<metadata_dir>/DockerMetaData``
    (VIC's JSON) and, unless ``files`` is None, an ext4 filesystem labelled like VIC's in
    the disk's flat file, holding ``files`` ({path in the filesystem: text}; VIC's
    containers see the filesystem's ``.vic.vol.data`` folder). Returns the metadata written.
    """
    from plugin.vsphere.disks import VirtualDisks
    from plugin.vsphere.folders import DatastoreFolder

    folder = f"{root}/volumes/{name}"
    metadata = {"Driver": "vsphere", "DriverOpts": {"Capacity": f"{capacity_mb}MB"}, "Name": name,
                "Labels": {}, "AttachHistory": [""], "Image": ""}
    with simulator.session() as session:
        files_there = DatastoreFolder(session, datastore)
        files_there.make(folder, parents=True)
        VirtualDisks(session).create(f"[{datastore}] {folder}/{name}.vmdk", capacity_mb * 1024)  # as VIC sizes it
        files_there.write(f"{folder}/{metadata_dir}/DockerMetaData", json.dumps(metadata).encode())
    if files is None:
        return metadata
    # What the VCH's own mkfs would have left in the disk (the simulator has no guest).
    flat = simulator.file(datastore, f"{folder}/{name}-flat.vmdk")
    os.truncate(flat, capacity_mb * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="vic-content-") as content:
        for relative, text in files.items():
            target = Path(content) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", vic_label(name), "-d", content, str(flat)],
                       check=True, capture_output=True, text=True)
    return metadata


def main(argv):
    """``python3 -m tests.simulator HOST_ROOT PLUGIN_ROOT SECRETS_HOST SECRETS_PLUGIN``:
    run the simulator for scripts/demo --vsphere. Prints the plugin settings as KEY=VALUE
    lines, then ``READY``; stops (removing its datastore folders) on SIGTERM or SIGINT."""
    host_root, plugin_root, secrets_host, secrets_plugin = argv
    simulator = start_for_plugin(build_harness(), Path(host_root), plugin_root, Path(secrets_host), secrets_plugin)

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
