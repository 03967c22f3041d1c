"""Fixtures for the vSphere tests: govmomi's simulator (tests/simulator.py) and clients of it.

``vcsim`` is one simulator for the whole session (built by scripts/build-vcsim, started
on a free port with TLS, a user and password, two datastores); tests keep out of each
other's way by using their own store folder (``store_path``). ``start_vcsim`` starts a
private one with extra flags (delays) for tests that stop or kill it. ``plugins`` makes
whole plugin instances (tests/vsphere/assembled.py). The helpers the tests share are in
tests/vsphere/helpers.py.

Sessions get a recording ``sleep``: nothing in these tests really waits for a backoff.
These tests need root (losetup, mkfs.ext4, mount), as the machine recipe provides.
"""

import contextlib
import os
import subprocess
import uuid

import pytest
from pyVmomi import vim

from plugin.mounter import Mounter, mounted_targets
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.vmdk import DatastoreStore
from plugin.storespec import parse_store_spec
from plugin.vsphere.hostvm import HostVM
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.retry import Backoff
from plugin.vsphere.session import Session
from tests import simulator as simulators

from .assembled import Plugin, assemble, plugin_env
from .helpers import OTHER_VM, cleanup, delta_over, snapshots, vm_ref


@pytest.fixture(scope="session")
def vcsim_binary():
    return simulators.build_harness()


@pytest.fixture(scope="session")
def vcsim(vcsim_binary, tmp_path_factory):
    simulator = simulators.start(vcsim_binary, tmp_path_factory.mktemp("vcsim"))
    yield simulator
    simulator.stop()
    assert simulator.process.returncode == 0


@pytest.fixture
def start_vcsim(vcsim_binary, tmp_path):
    """start_vcsim(*flags) -> a private Simulator, stopped after the test."""
    started = []

    def start(*flags):
        simulator = simulators.start(vcsim_binary, tmp_path / f"vcsim{len(started)}", *flags)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


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

    def make(simulator, backoff=None, **overrides):
        session = Session(simulator.settings(**overrides), sleep=sleeps, backoff=backoff or Backoff(attempts=3))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        with contextlib.suppress(Exception):        # the simulator may be gone on purpose
            session.close()


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


@pytest.fixture
def make_store(vcsim, make_session, store_path, mount_root):
    """make_store(host_vm=None, session=None, path=store_path, simulator=vcsim) -> an open
    DatastoreStore labelled ``s`` on LocalDS_1 with the loop-device resolver; cleaned up
    after the test."""
    roots = []

    def make(host_vm=None, session=None, path=store_path, simulator=vcsim):
        session = session or make_session(simulator)
        host = HostVM(session, Inventory(session), name=host_vm or simulator.host_vm)
        spec = parse_store_spec(f"LocalDS_1/{path}:s")
        store = DatastoreStore(spec, session, host, LoopDeviceResolver(simulator.datastore_folders),
                               Mounter(), str(mount_root))
        store.open()
        roots.append((simulator, path))
        return store

    yield make
    done = set()
    for simulator, path in roots:
        if (id(simulator), path) not in done:
            done.add((id(simulator), path))
            cleanup(simulator, path, mount_root)


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


@pytest.fixture
def plugins(vcsim, tmp_path, store_path, clock):
    """plugins(instance="a", vm=the harness's host VM, **settings) -> a started
    assembled.Plugin (``settings``: more plugin settings). The same ``instance`` again is
    a restart of that instance; everything is undone after the test."""
    started = []

    def make(instance="a", vm=None, **settings):
        folder = tmp_path / f"plugin-{instance}"
        env = {**plugin_env(vcsim, folder, store_path, vm or vcsim.host_vm), **settings}
        plugin = Plugin(assemble(env, clock, f"docker-{instance}"), env, folder, f"docker-{instance}")
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.driver.stop()
    for folder in {plugin.folder for plugin in started}:
        for target in sorted(t for t in mounted_targets() if t.startswith(f"{folder}/")):
            subprocess.run(["fsfreeze", "--unfreeze", target], capture_output=True, check=False)
        cleanup(vcsim, store_path, folder)      # mounts, loop devices, attached disks
    cleaner = Session(vcsim.settings(), sleep=lambda _: None)
    try:
        for vm_name in (vcsim.host_vm, OTHER_VM):       # the simulator is shared: leave no snapshot
            if snapshots(cleaner, vm_name):
                cleaner.call_task(vm_ref(cleaner, vm_name), "RemoveAllSnapshots_Task")
    finally:
        cleaner.close()
    for plugin in started:
        plugin.session.close()


@pytest.fixture(autouse=True, scope="session")
def _root_required():
    assert os.geteuid() == 0, "the vSphere tests need root (losetup, mkfs.ext4, mount)"
