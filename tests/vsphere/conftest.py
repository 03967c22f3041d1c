"""Fixtures for the vSphere tests: govmomi's simulator (tests/vcsim) and clients of it.

``vcsim`` is one simulator for the whole session (built by scripts/build-vcsim, started
on a free port with TLS, a user and password, two datastores); tests keep out of each
other's way by using their own store folder (``store_path``). ``start_vcsim`` starts a
private one with extra flags (delays) for tests that stop or kill it.

Sessions get a recording ``sleep``: nothing in these tests really waits for a backoff.
These tests need root (losetup, mkfs.ext4, mount), as the machine recipe provides.
"""

import os
import re
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyVmomi import vim

from plugin.mounts import Mounter
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.vmdk import DatastoreStore
from plugin.storespec import parse_store_spec
from plugin.vsphere.hostvm import HostVM
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.retry import Backoff
from plugin.vsphere.session import Session
from plugin.vsphere.settings import VSphereSettings
from tests.harness import build_harness, start_harness
from plugin.vsphere.vmdisks import detach_spec

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "vcsim-user", "s3cret-Pa55word"


@pytest.fixture(scope="session")
def vcsim_binary():
    return build_harness()


@dataclass
class Simulator:
    """A running vcsim-harness and what it printed when ready."""

    process: subprocess.Popen
    info: dict
    folder: Path
    stderr_lines: list = field(default_factory=list)

    @property
    def url(self):
        return self.info["url"]

    @property
    def datastores(self):
        return self.info["datastores"]

    @property
    def host_vm(self):
        return self.info["host_vm"]["name"]

    def settings(self, **overrides):
        values = dict(url=self.url, user=USER, password=PASSWORD, ca_file=self.info["ca_file"])
        values.update(overrides)
        return VSphereSettings(**values)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=30)


def _start(binary, folder, *flags):
    folder.mkdir(parents=True, exist_ok=True)
    argv = [binary, "-listen", "127.0.0.1:0", "-user", USER, "-password", PASSWORD,
            "-dir", str(folder), "-datastores", "2", *flags]
    process, info, lines = start_harness(argv)
    return Simulator(process, info, folder, lines)


@pytest.fixture(scope="session")
def vcsim(vcsim_binary, tmp_path_factory):
    simulator = _start(vcsim_binary, tmp_path_factory.mktemp("vcsim"))
    yield simulator
    simulator.stop()
    assert simulator.process.returncode == 0


@pytest.fixture
def start_vcsim(vcsim_binary, tmp_path):
    """start_vcsim(*flags) -> a private Simulator, stopped after the test."""
    started = []

    def start(*flags):
        simulator = _start(vcsim_binary, tmp_path / f"vcsim{len(started)}", *flags)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


class Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


class Sleeps(list):
    """A recording sleep: the test sees the pauses, nobody waits."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def make_session(sleeps):
    """make_session(simulator, **setting overrides) -> a Session, closed after the test."""
    sessions = []

    def make(simulator, backoff=Backoff(attempts=3), **overrides):
        session = Session(simulator.settings(**overrides), sleep=sleeps, backoff=backoff)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        try:
            session.close()
        except Exception:  # noqa: BLE001 - the simulator may be gone on purpose
            pass


@pytest.fixture
def session(vcsim, make_session):
    return make_session(vcsim)


@pytest.fixture
def store_path():
    """A store folder of this test's own (datastore LocalDS_1)."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mount_root(tmp_path):
    root = tmp_path / "mnt"
    root.mkdir()
    return root


def local_file(simulator, datastore, path):
    """The local file behind ``[datastore] path``."""
    return Path(simulator.datastores[datastore]) / path


def vm_ref(session, name):
    return Inventory(session).find_vm(name).ref


def disks_of(session, vm):
    devices = session.get_properties(vm, ["config.hardware.device"]).get("config.hardware.device") or []
    return [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]


def _cleanup(simulator, root, mount_dir):
    """Undo what a store test may have left: mounts, loop devices, attached disks."""
    subprocess.run(["bash", "-c", f'. "{REPO}/scripts/lib.sh"; umount_under "{mount_dir}"'],
                   check=False, capture_output=True)
    listing = subprocess.run(["losetup", "-n", "-O", "NAME,BACK-FILE", "-l"], capture_output=True,
                             text=True, check=False).stdout
    for line in listing.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and str(simulator.folder) in parts[1]:
            subprocess.run(["losetup", "-d", parts[0]], check=False)
    if simulator.process.poll() is not None:
        return
    session = Session(simulator.settings(), sleep=lambda _: None)
    try:
        for vm in Inventory(session).disk_users()._devices:
            for disk in disks_of(session, vm):
                if f"] {root}/" in disk.backing.fileName:
                    session.call_task(vm, "ReconfigVM_Task", spec=detach_spec(disk))
    finally:
        session.close()


@pytest.fixture
def make_store(vcsim, make_session, store_path, mount_root):
    """make_store(label="s", host_vm=None, session=None, path=store_path) -> an open
    DatastoreStore on LocalDS_1 with the loop-device resolver; cleaned up after the test."""
    roots = []

    def make(host_vm=None, session=None, path=store_path, simulator=vcsim):
        session = session or make_session(simulator)
        host = HostVM(session, Inventory(session), name=host_vm or simulator.host_vm)
        spec = parse_store_spec(f"LocalDS_1/{path}:s")
        store = DatastoreStore(spec, session, host, LoopDeviceResolver(simulator.datastores),
                               Mounter(), str(mount_root))
        store.open()
        roots.append((simulator, path))
        return store

    yield make
    done = set()
    for simulator, path in roots:
        if (id(simulator), path) not in done:
            done.add((id(simulator), path))
            _cleanup(simulator, path, mount_root)


def delta_over(disk, number=1):
    """``disk`` as a real vCenter shows it while its VM has a snapshot: its backing is a
    delta disk ``<name>-00000N.vmdk`` whose ``parent`` is the backing it had."""
    base = disk.backing
    disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=re.sub(r"\.vmdk$", f"-{number:06d}.vmdk", base.fileName), diskMode=base.diskMode,
        thinProvisioned=base.thinProvisioned, parent=base)
    return disk


@pytest.fixture
def snapshot_deltas(monkeypatch):
    """snapshot_deltas(session, folder): from then on, ``session`` reads the disks that VMs
    have attached from below ``folder`` (a datastore path without ``[ds]``) as delta disks
    over their file, as a real vCenter shows them while a VM snapshot exists. The simulator
    makes no delta disks; the VMs' disks themselves are unchanged, and snapshots' own
    configurations are read as they are."""

    def patch(session, folder):
        real_retrieve = session.retrieve

        def retrieve(specs):
            contents = real_retrieve(specs)
            for content in contents:
                if not isinstance(content.obj, vim.VirtualMachine):
                    continue
                for prop in content.propSet or []:
                    if prop.name != "config.hardware.device":
                        continue
                    for device in prop.val or []:
                        if (isinstance(device, vim.vm.device.VirtualDisk) and device.backing.parent is None
                                and f"] {folder}/" in (device.backing.fileName or "")):
                            delta_over(device)
            return contents
        monkeypatch.setattr(session, "retrieve", retrieve)

    return patch


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture(autouse=True, scope="session")
def _root_required():
    assert os.geteuid() == 0, "the vSphere tests need root (losetup, mkfs.ext4, mount)"
