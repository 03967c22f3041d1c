"""Session fixtures of the end-to-end tests: a Docker engine, the test image,
the vCenter simulator (tests/simulator.py), and the vsphere-volume plugin
built from this checkout and enabled in it, once per session.

The plugin's settings name the simulator (VSPHERE_URL, VSPHERE_USER,
VSPHERE_PASSWORD_FILE, VSPHERE_CA_FILE, VSPHERE_VM and the test-only loop-device
mode over its datastore folders); its VOLUME_STORES is the folder store
``default``. The module fixture ``datastore_stores`` adds the datastore stores
ds0 and ds1 (a plugin restart) for the tests of VMDK volumes. The module
fixture ``swarm_cluster`` (and ``swarm``, reset after each test) is a swarm of
Docker hosts of its own, with their own simulator (tests/e2e/multihost.py).

``scripts/test`` starts the private engine and exports DOCKER_HOST before
pytest runs; these fixtures also work from a bare ``pytest tests/e2e``.

Environment knobs:
  BASE_IMAGE     image to build on and run test containers from (default
                 local/debian-python:bookworm, made by scripts/base-image)
  VV_KEEP_STATE  set to 1 to keep the plugin's host state folder after the run
                 (the simulator removes its datastore folders when it stops)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator

import pytest

from tests import simulator
from tests.simulator import Simulator

from . import multihost, user
from .dockercli import docker, run
from .leftovers import unmount_below
from .project import (
    BUILD_TIMEOUT,
    DATASTORES_SUBDIR,
    DEFAULT_IMAGE,
    PLUGIN_DATA_DIR,
    PLUGIN_DATASTORES_DIR,
    PLUGIN_NAME,
    SCRIPTS,
    SECRETS_SUBDIR,
    script,
)

# Stands for the fresh host folder the ``plugin`` fixture creates under /tmp
# for each session: STATE_DIR in a setting's value is replaced by its path.
STATE_DIR = "<fresh host state dir>"

# The folder store every session has (config.json's default, spelled out).
FOLDER_STORES = f"file://{PLUGIN_DATA_DIR}/default:default"

# The datastore stores on the simulator (its datastores are LocalDS_0, LocalDS_1):
# ds0 has a store path, ds1 is a bare datastore (root folder VIC, as vic-machine).
DATASTORE_STORES = "LocalDS_0/volumes/e2e:ds0;LocalDS_1:ds1"

# `docker plugin set` settings applied before the plugin is enabled
# (KEY=VALUE: env variables, mount sources such as data.source, ...).
# config.json's settable mount "data" is the plugin's host data folder. The
# fixture adds the simulator's connection settings (``Simulator.plugin_settings``).
PLUGIN_SETTINGS: dict[str, str] = {
    "data.source": STATE_DIR,
    # config.json's test-only mount: the simulator's datastore folders.
    "test-only-datastores.source": f"{STATE_DIR}/{DATASTORES_SUBDIR}",
    # config.json's mount of node_exporter's textfile folder (its default, the data
    # folder, need not exist on this host): the data folder too, unused but by its tests.
    "metrics-textfile.source": STATE_DIR,
    # The folder store only: the tests of directory volumes count on it being the
    # only one (the message for an unknown VolumeStore lists every label). The
    # ``datastore_stores`` fixture adds DATASTORE_STORES for the tests that use them.
    "VOLUME_STORES": FOLDER_STORES,
}

# Time a restarted plugin may take to try each of its stores once (a hang guard).
READY_TIMEOUT = 120


@dataclass
class Plugin:
    """The plugin installed for this session."""

    name: str  # what `docker volume create -d NAME` takes
    state_dir: str  # host folder given for STATE_DIR settings
    settings: dict[str, str] = field(default_factory=dict)
    simulator: Simulator | None = None  # the vCenter the VSPHERE_* settings name

    @property
    def ref(self) -> str:
        """Full reference (NAME:latest): `docker volume ls` shows it as the
        driver, and `--filter driver=` needs it."""
        return self.name if ":" in self.name else f"{self.name}:latest"

    @property
    def datastores(self) -> dict[str, Path]:
        """{simulator datastore name: its folder on the host}."""
        return self.simulator.datastores if self.simulator else {}

    @property
    def id(self) -> str:
        """The plugin's id: the engine tags the plugin's log lines with it."""
        return docker("plugin", "inspect", "-f", "{{.Id}}", self.name).stdout.strip()

    def configure(self, **settings: str) -> None:
        """Restart the plugin with new `docker plugin set` values, as an operator does:
        disable (forced: volumes exist), set, enable; then wait until it has tried each of
        its stores once (``vsphere-volume status``: Ready), as an operator would before
        looking at its volumes."""
        docker("plugin", "disable", "-f", self.name, timeout=60)
        if settings:
            docker("plugin", "set", self.name, *(f"{k}={v}" for k, v in settings.items()))
            self.settings.update(settings)
        docker("plugin", "enable", "--timeout", "60", self.name, timeout=90)
        deadline = time.monotonic() + READY_TIMEOUT
        while not json.loads(user.vv(self, "status", "--json")[1]).get("Ready"):
            assert time.monotonic() < deadline, f"the plugin did not try its stores within {READY_TIMEOUT} s"
            time.sleep(0.2)

    def restart(self) -> None:
        """`docker plugin disable -f` then `enable`, settings unchanged."""
        self.configure()

    def log_lines(self) -> list[str]:
        """The plugin's output so far, as the engine logged it (scripts/engine's dockerd.log)."""
        host = os.environ.get("DOCKER_HOST", "")
        assert host.startswith("unix://"), f"DOCKER_HOST={host!r}: the engine's log is unknown"
        log = Path(host[len("unix://"):]).parent / "dockerd.log"
        assert log.is_file(), f"no engine log at {log}: run the tests with scripts/test"
        tag = f"plugin={self.id}"
        with open(log, errors="replace") as handle:
            return [line for line in handle if tag in line]


def _engine_answers() -> bool:
    try:
        return run(["docker", "info"], check=False, timeout=30).returncode == 0
    except AssertionError:  # timed out
        return False


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """DOCKER_HOST of a Docker engine that answers."""
    started = False
    if not _engine_answers():
        if os.environ.get("DOCKER_HOST"):
            pytest.fail(
                f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}"
                " (run the tests with scripts/test, or start scripts/engine)"
            )
        script("engine", "start", timeout=120)
        env_line = script("engine", "env", timeout=30).stdout.strip()
        # "export DOCKER_HOST=unix://... DOCKER_EXEC_ROOT=..."
        for pair in env_line.split()[1:]:
            key, _, value = pair.partition("=")
            os.environ[key] = value
        started = True
    info = docker("info", timeout=60)
    assert "Server Version" in info.stdout, info.stdout
    yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if started:
        run([str(SCRIPTS / "engine"), "stop"], check=False, timeout=300)


@pytest.fixture(scope="session")
def test_image(engine: str) -> str:
    """An image with Python 3, pip and the filesystem tools, present in the engine."""
    image = os.environ.get("BASE_IMAGE") or DEFAULT_IMAGE
    if image == DEFAULT_IMAGE:
        script("base-image", timeout=900)
    else:
        docker("image", "inspect", image)
    return image


def _remove_plugin(plugin: Plugin) -> None:
    """Best effort: its volumes (and containers using them), then the plugin."""
    volumes = docker("volume", "ls", "-q", "--filter", f"driver={plugin.ref}", check=False)
    for volume in volumes.stdout.split():
        users = docker("ps", "-aq", "--filter", f"volume={volume}", check=False).stdout.split()
        if users:
            docker("rm", "-f", *users, check=False, timeout=60)
        docker("volume", "rm", "-f", volume, check=False, timeout=60)
    docker("plugin", "disable", "-f", plugin.name, check=False, timeout=60)
    docker("plugin", "rm", "-f", plugin.name, check=False, timeout=60)


@pytest.fixture(scope="session")
def plugin(engine: str, test_image: str) -> Iterator[Plugin]:
    """The plugin built from this checkout and enabled, once per session, with the
    vCenter simulator started first and named by its VSPHERE_* settings."""
    state_dir = tempfile.mkdtemp(prefix="vsphere-volume-state-", dir="/tmp")
    settings = {k: str(v).replace(STATE_DIR, state_dir) for k, v in PLUGIN_SETTINGS.items()}
    installed = Plugin(name=PLUGIN_NAME, state_dir=state_dir, settings=settings)
    try:
        installed.simulator = simulator.start_for_plugin(
            simulator.build_harness(),
            host_root=Path(state_dir) / DATASTORES_SUBDIR, plugin_root=PLUGIN_DATASTORES_DIR,
            secrets_host=Path(state_dir) / SECRETS_SUBDIR,
            secrets_plugin=f"{PLUGIN_DATA_DIR}/{SECRETS_SUBDIR}")
        settings.update(installed.simulator.plugin_settings())
        script(
            "build-plugin",
            PLUGIN_NAME,
            *(f"{k}={v}" for k, v in settings.items()),
            timeout=BUILD_TIMEOUT,
        )
        yield installed
    finally:
        _remove_plugin(installed)
        if installed.simulator is not None:
            installed.simulator.release_loop_devices()
            installed.simulator.stop()
        if os.environ.get("VV_KEEP_STATE") != "1":
            unmount_below(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def datastore_stores(plugin: Plugin) -> Iterator[Plugin]:
    """The session's plugin with the simulator's datastore stores (ds0, ds1) added to
    its folder store, for the tests of one module; the folder store alone again after."""
    plugin.configure(VOLUME_STORES=f"{FOLDER_STORES};{DATASTORE_STORES}")
    try:
        yield plugin
    finally:
        plugin.configure(VOLUME_STORES=FOLDER_STORES)


@pytest.fixture
def volume(plugin):
    """``volume(prefix)`` gives a fresh volume name; what still exists is removed at the end."""
    names = []

    def make(prefix="vol"):
        names.append(user.unique(prefix))
        return names[-1]
    yield make
    for name in names:
        docker("volume", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def swarm_cluster(request, engine: str, test_image: str) -> Iterator[multihost.Swarm]:
    """A swarm of several Docker hosts on this machine, each in its own network namespace
    with the plugin as a different VM of one simulator (tests/e2e/multihost.py), for the
    tests of one module: ``SWARM_NODES`` nodes (a module attribute, default 2), the first
    the manager, their plugins with ``SWARM_SETTINGS`` (a module attribute, default none)
    besides their own. The session's engine builds the plugin; the nodes install it."""
    count = getattr(request.module, "SWARM_NODES", 2)
    settings = getattr(request.module, "SWARM_SETTINGS", {})
    with multihost.swarm_cluster(count, build_host=engine, image=test_image, settings=settings) as cluster:
        yield cluster


@pytest.fixture
def swarm(swarm_cluster: multihost.Swarm) -> Iterator[multihost.Swarm]:
    """The module's swarm, reset after the test (nodes restarted and VMs powered on,
    services and vsphere volumes removed, every node active)."""
    yield swarm_cluster
    swarm_cluster.reset()
