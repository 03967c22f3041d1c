"""Several Docker hosts on this one machine, forming a Swarm, each with the plugin as
a different VM of one vCenter simulator: the harness of the multi-host tests.

``swarm_cluster(count, build_host=...)`` (a context manager) makes, and removes again
whatever happens in between:

- a test network (tests/e2e/netns.py): a bridge, one network namespace per node, the
  node addresses only in those namespaces, one address on the bridge;
- the vCenter simulator in the root namespace, listening at the bridge's address (its
  certificate names it), so every node's plugin reaches it; each node gets a VM of its
  own (DC0_H0_VM0, DC0_H0_VM1, ...; disk.EnableUUID=TRUE set where missing);
- one dockerd per node inside its namespace (tests/e2e/nodeengine.py), started in
  parallel, each with the base image imported from scripts/base-image's cached tarball
  and the plugin built by scripts/build-plugin (the steps that need PyPI run in
  ``build_host``, the root namespace's engine; the nodes have no way out) and enabled
  with per-node settings: its own data folder and VSPHERE_VM, the same simulator, the
  same datastore store ``default`` at ``[LocalDS_0] swarm`` (STORE), the loop-device
  test mode over the simulator's datastore folders;
- a Swarm: the first node its manager (``swarm init --advertise-addr``), the others
  workers (``swarm join``).

The ``Swarm`` it yields gives the nodes (``manager``, ``workers``; each ``Node`` runs
docker commands against its own engine), the tasks of a service and where they run,
the simulator's view (which VMs hold a volume's disk; VM power off and on), and a crash
(``kill``: SIGKILL of a node's engine, then what it leaves behind ended by pid, unmounted
and detached) with ``restart``. ``reset`` brings it back to a fresh swarm between tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests import simulator
from tests.simulator import Simulator

from . import leftovers
from .dockercli import run
from .netns import NetnsHost, TestNetwork
from .nodeengine import NodeEngine
from .project import (
    BUILD_TIMEOUT,
    DEFAULT_IMAGE,
    PLUGIN_DATA_DIR,
    PLUGIN_DATASTORES_DIR,
    PLUGIN_NAME,
    REPO_ROOT,
    SECRETS_SUBDIR,
    script,
)
from ..waiting import wait_until

# The one volume store of every node: datastore LocalDS_0, folder swarm.
STORE_DATASTORE, STORE_ROOT = "LocalDS_0", "swarm"
STORE = f"{STORE_DATASTORE}/{STORE_ROOT}:default"
# The VMs the simulator's VPX model has, in the order nodes get them.
NODE_VMS = ("DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1")

SWARM_TIMEOUT = 120     # seconds for nodes to be Ready, tasks to start or to go
IMAGE_TIMEOUT = 900     # seconds for scripts/base-image (a debootstrap when nothing is cached)
CLI_TIMEOUT = 300       # seconds for a vsphere-volume command

T = TypeVar("T")
R = TypeVar("R")


def each(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``function`` applied to every item at once (threads); the results in order, or
    the first item's exception once all are done."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(function, item) for item in items]
    return [future.result() for future in futures]


@dataclass
class Node:
    """One Docker host of the swarm: its namespace, its engine, its VM."""

    host: NetnsHost
    engine: NodeEngine
    vm: str               # its VM in the simulator (the plugin's VSPHERE_VM)
    state_dir: Path       # the plugin's data folder (setting data.source)
    swarm_id: str = ""    # its swarm node id

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def running(self) -> bool:
        return self.engine.running

    @property
    def constraint(self) -> str:
        """A ``--constraint`` that places tasks on this node only."""
        return f"node.id=={self.swarm_id}"

    def docker(self, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        """``docker ARGS`` against this node's engine (dockercli.docker's keywords)."""
        return self.engine.docker(*args, **kwargs)

    def docker_json(self, *args: Any, timeout: float = 120) -> Any:
        return self.engine.docker_json(*args, timeout=timeout)

    def vsphere_volume(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The vsphere-volume command on this node (it finds this engine's plugin)."""
        return run([sys.executable, "-m", "plugin.cli", "--plugin", PLUGIN_NAME, *args], check=check,
                   env=self.engine.env, cwd=REPO_ROOT, timeout=CLI_TIMEOUT)

    def volume_status(self, volume: str) -> dict:
        """``Status`` of ``docker volume inspect VOLUME`` on this node."""
        return self.docker_json("volume", "inspect", volume)[0]["Status"]

    def backups(self, volume: str) -> list[dict]:
        """``vsphere-volume backups VOLUME --json`` on this node."""
        return json.loads(self.vsphere_volume("backups", volume, "--json").stdout)

    def plugin_log(self, lines: int = 40) -> str:
        """The end of its dockerd log: its plugin's lines and the errors (for messages)."""
        try:
            text = self.engine.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join([line for line in text if "plugin=" in line or "level=error" in line][-lines:])

    def __repr__(self) -> str:
        return f"Node({self.name}, {self.address}, VM {self.vm})"


@dataclass(frozen=True)
class Task:
    """A task of a service, as the manager reports it."""

    id: str
    node: Node | None  # None until the scheduler assigns it
    state: str        # running, preparing, rejected, ...
    container: str    # its container's id on ``node`` ("" before it has one)
    error: str


class Swarm:
    """The running nodes, their simulator and network; see the module's docstring."""

    def __init__(self, network: TestNetwork, sim: Simulator, nodes: list[Node]):
        self.network = network
        self.simulator = sim
        self.nodes = nodes

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node_by_id(self, swarm_id: str) -> Node:
        for node in self.nodes:
            if node.swarm_id == swarm_id:
                return node
        raise AssertionError(f"no node has swarm id {swarm_id!r} (the nodes: {self.nodes})")

    # --- the swarm -------------------------------------------------------------

    def form(self) -> None:
        """``swarm init`` on the manager, ``swarm join`` of the workers; wait until all are Ready."""
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.address, timeout=60)
        token = self.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        each(lambda node: node.docker("swarm", "join", "--token", token, f"{self.manager.address}:2377",
                                      timeout=SWARM_TIMEOUT), self.workers)
        for node in self.nodes:
            node.swarm_id = node.docker("info", "-f", "{{.Swarm.NodeID}}").stdout.strip()
        self.wait_until_ready(self.nodes)

    def node_states(self) -> dict[str, tuple[str, str]]:
        """{node name: (state, availability)} as the manager reports them."""
        info = self.manager.docker_json("node", "inspect", *(n.swarm_id for n in self.nodes))
        return {self.node_by_id(n["ID"]).name: (n["Status"]["State"], n["Spec"]["Availability"]) for n in info}

    def wait_until_ready(self, nodes: list[Node]) -> None:
        wait_until(lambda: all(self.node_states()[n.name][0] == "ready" for n in nodes), SWARM_TIMEOUT,
                   lambda: f"nodes {[n.name for n in nodes]} Ready; the manager sees {self.node_states()}")

    def tasks(self, service: str) -> list[Task]:
        """The tasks of ``service`` meant to run (desired state running), where and how they are."""
        ids = self.manager.docker("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running",
                                  service).stdout.split()
        if not ids:
            return []
        return [Task(id=t["ID"], node=self.node_by_id(t["NodeID"]) if t.get("NodeID") else None,
                     state=t["Status"]["State"], error=t["Status"].get("Err", ""),
                     container=t["Status"].get("ContainerStatus", {}).get("ContainerID", ""))
                for t in self.manager.docker_json("inspect", "--type", "task", *ids)]

    def wait_for_history(self, service: str, *texts: str, timeout: float = SWARM_TIMEOUT) -> str:
        """``service_history`` once it shows every one of ``texts`` (a task's error, say)."""
        def shown() -> str:
            history = self.service_history(service)
            return history if all(text in history for text in texts) else ""
        return wait_until(shown, timeout, lambda: f"{texts} in the history of {service}; "
                                                  f"{self.service_history(service)}", poll=1)

    def service_history(self, service: str) -> str:
        """``docker service ps --no-trunc``: every task, its node and error (for messages)."""
        done = self.manager.docker("service", "ps", "--no-trunc", service, check=False)
        return f"docker service ps --no-trunc {service}:\n{done.stdout}{done.stderr}"

    def wait_for_task(self, service: str, on: Node | None = None, timeout: float = SWARM_TIMEOUT,
                      poll: float = 0.5) -> Task:
        """The running task of ``service`` (on node ``on`` if given), waited for (looked at
        every ``poll`` seconds)."""
        def running() -> Task | None:
            return next((t for t in self.tasks(service)
                         if t.state == "running" and t.container and (on is None or t.node is on)), None)
        where = f" on {on}" if on else ""
        return wait_until(running, timeout, lambda: f"a running task of {service}{where}; "
                                                    f"{self.service_history(service)}", poll=poll)

    def remove_services(self) -> None:
        """Remove every service, then wait until their containers are gone from every node."""
        services = self.manager.docker("service", "ls", "-q").stdout.split()
        if services:
            self.manager.docker("service", "rm", *services)

        def containers() -> dict[str, list[str]]:
            return {n.name: n.docker("ps", "-aq", "--filter", "label=com.docker.swarm.service.id").stdout.split()
                    for n in self.nodes}
        wait_until(lambda: not any(containers().values()), SWARM_TIMEOUT,
                   lambda: f"service containers gone; left: {containers()}")

    # --- vCenter's view ---------------------------------------------------------

    @staticmethod
    def volume_disk(volume: str) -> str:
        """The datastore path of volume ``volume``'s disk in the store of every node."""
        return f"[{STORE_DATASTORE}] {STORE_ROOT}/volumes/{volume}/{volume}.vmdk"

    def vms_with_volume(self, volume: str) -> list[str]:
        """Names of the VMs that have ``volume``'s disk attached, as vCenter says."""
        return self.simulator.vms_with_disk(self.volume_disk(volume))

    def volume_folder(self, volume: str) -> Path:
        """The host folder of ``volume`` on the simulator's datastore."""
        return self.simulator.file(STORE_DATASTORE, f"{STORE_ROOT}/volumes/{volume}")

    def power_off(self, node: Node) -> None:
        self.simulator.power_off(node.vm)

    def power_on(self, node: Node) -> None:
        self.simulator.power_on(node.vm)

    def power_state(self, node: Node) -> str:
        return self.simulator.power_state(node.vm)

    # --- losing a node ----------------------------------------------------------

    def kill(self, node: Node) -> None:
        """A crash of ``node``: SIGKILL its dockerd, then end what it leaves (containerd,
        shims, task and plugin processes, by pid), unmount its mounts (propagated ones
        too), and detach the loop devices of the disks its VM has attached (a dead guest
        has no devices). vCenter still shows the disks on its VM, as it would."""
        node.engine.kill()
        self.simulator.release_loops_of(node.vm)

    def restart(self, node: Node) -> None:
        """Start ``node``'s engine again (same state: it rejoins the swarm, its plugin
        comes back enabled) and wait until the manager sees it Ready."""
        node.engine.start()
        self.wait_until_ready([node])

    def reset(self) -> None:
        """A fresh swarm for the next test: killed nodes restarted, VMs powered on, no
        services, every node active, no vsphere volume left."""
        for node in self.nodes:
            if self.power_state(node) != "poweredOn":
                self.power_on(node)
        stopped = [node for node in self.nodes if not node.running]
        each(lambda node: node.engine.start(), stopped)
        self.wait_until_ready(self.nodes)
        self.remove_services()
        for name, (_, availability) in self.node_states().items():
            if availability != "active":
                node = next(n for n in self.nodes if n.name == name)
                self.manager.docker("node", "update", "--availability", "active", node.swarm_id)
        for node in self.nodes:
            volumes = node.docker("volume", "ls", "-q", "--filter", f"driver={PLUGIN_NAME}:latest").stdout.split()
            if volumes:
                node.docker("volume", "rm", "-f", *volumes, check=False, timeout=120)


# --- assembly -----------------------------------------------------------------------

def _copy_secrets(source: Path, node: Node) -> None:
    """The simulator's CA and password files into the node's data folder, at the place
    the plugin settings name (the same inside every node's plugin)."""
    target = node.state_dir / SECRETS_SUBDIR
    shutil.copytree(source, target)
    os.chmod(target, 0o700)


def plugin_settings(node: Node, sim: Simulator, datastores_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The `docker plugin set` values of ``node``'s plugin (``extra``: more of them)."""
    return {**sim.plugin_settings(),
            "data.source": str(node.state_dir),
            "test-only-datastores.source": str(datastores_dir),
            "metrics-textfile.source": str(node.state_dir),
            "VOLUME_STORES": STORE,
            "VSPHERE_VM": node.vm,
            **extra}


def _import_image(node: Node, image: str, build_host: str) -> None:
    """The test image in the node's engine: scripts/base-image (it imports its cached
    tarball) for the default image, else ``docker save`` from ``build_host`` and
    ``docker load``."""
    if image == DEFAULT_IMAGE:
        script("base-image", env=node.engine.env, timeout=IMAGE_TIMEOUT)
        return
    archive = node.engine.folder / "image.tar"
    run(["docker", "save", "-o", str(archive), image], env={"DOCKER_HOST": build_host}, timeout=IMAGE_TIMEOUT)
    try:
        node.docker("load", "-q", "-i", str(archive), timeout=IMAGE_TIMEOUT)
    finally:
        archive.unlink(missing_ok=True)


def _provision(node: Node, settings: dict[str, str], image: str, build_host: str) -> None:
    """Image and plugin in the node's engine (the plugin's build steps in ``build_host``)."""
    _import_image(node, image, build_host)
    script("build-plugin", PLUGIN_NAME, *(f"{k}={v}" for k, v in settings.items()),
           env={**node.engine.env, "PLUGIN_BUILD_HOST": build_host}, timeout=BUILD_TIMEOUT)
    node.engine.plugin_ids.append(node.docker("plugin", "inspect", "-f", "{{.Id}}", PLUGIN_NAME).stdout.strip())


@contextmanager
def swarm_cluster(count: int = 2, *, build_host: str, image: str = DEFAULT_IMAGE,
                  settings: dict[str, str] | None = None) -> Iterator[Swarm]:
    """A swarm of ``count`` nodes (see the module's docstring), their plugins with
    ``settings`` besides their own; everything it made is stopped and removed when the
    block ends, however it ends."""
    assert 2 <= count <= len(NODE_VMS), f"{count} nodes: the simulator has VMs for 2 to {len(NODE_VMS)}"
    run_dir = Path(tempfile.mkdtemp(prefix="vvs-", dir="/tmp"))   # short: socket paths stay short
    with ExitStack() as cleanup:
        # (Undone in reverse: nodes, loops, simulator, network, folder.)
        cleanup.callback(shutil.rmtree, run_dir, ignore_errors=True)
        cleanup.callback(leftovers.unmount_below, str(run_dir))
        network = TestNetwork.create(count)
        cleanup.callback(network.remove)
        datastores_dir, secrets_dir = run_dir / "datastores", run_dir / "secrets"
        sim = simulator.start_for_plugin(simulator.build_harness(), host_root=datastores_dir,
                              plugin_root=PLUGIN_DATASTORES_DIR, secrets_host=secrets_dir,
                              secrets_plugin=f"{PLUGIN_DATA_DIR}/{SECRETS_SUBDIR}",
                              address=network.bridge_address)
        cleanup.callback(sim.stop)
        cleanup.callback(sim.release_loop_devices)
        nodes = [Node(host=host, engine=NodeEngine(run_dir / host.name, host.netns_path), vm=vm,
                      state_dir=run_dir / host.name / "state")
                 for host, vm in zip(network.hosts, NODE_VMS, strict=False)]
        cleanup.callback(each, lambda node: node.engine.remove(), nodes)
        for node in nodes:
            sim.enable_disk_uuid(node.vm)
            _copy_secrets(secrets_dir, node)
        each(lambda node: node.engine.start(), nodes)
        # The first node alone first: its build fills build_host's cache (and the base
        # image's tarball, if missing) that the others' builds then reuse at once.
        def provision(node: Node) -> None:
            _provision(node, plugin_settings(node, sim, datastores_dir, settings or {}), image, build_host)
        provision(nodes[0])
        each(provision, nodes[1:])
        swarm = Swarm(network, sim, nodes)
        swarm.form()
        yield swarm
