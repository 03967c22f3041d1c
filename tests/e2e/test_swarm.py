"""Swarm: a service task's vSphere volume on several Docker hosts (issue 13).

The hosts are Docker engines in network namespaces of their own that form one swarm,
each with the plugin as a different VM of one vCenter simulator and the same datastore
store ``default`` at ``[LocalDS_0] swarm`` (the ``swarm`` fixture, tests/e2e/multihost.py).
Tasks run with ``--network host``; the data is checked in the task's container on its
node, and the disk's attachment in vCenter.

- A volume made on one node is the same volume on the other at once (Get looks a name up
  on the store, a create of a name on the store is that volume).
- Moving (drain): the task stops on one node, its plugin detaches the disk; the other
  node's Mount waits for that (bounded) and attaches it.
- A node lost: its engine killed without unmounting. With its VM powered off, the other
  node takes the disk from it; with its VM still on, the disk is never taken: Mount is
  refused saying so, until an operator fences it with ``vsphere-volume detach --force``.
- Backups: the node whose VM has the volume makes each scheduled backup, once; the final
  backup of ``docker volume rm`` works on any node.
"""

import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

from .multihost import Node, Swarm, Task
from .project import PLUGIN_NAME
from .user import unique
from ..waiting import wait_until

SWARM_NODES = 2
WRITE_TIMEOUT = 60    # seconds for a started task to have written its file
LOST_TIMEOUT = 180    # seconds for a lost node's task to run elsewhere (the manager sees it down first)
BACKUP_TIMEOUT = 150  # seconds for a scheduled backup (every minute) to be made


def vsphere_mount(volume: str, *options: str) -> str:
    """The ``--mount`` of a service's vSphere volume at /data, as a user writes it."""
    opts = "".join(f",volume-opt={option}" for option in ("Capacity=100M", *options))
    return f"type=volume,source={volume},target=/data,volume-driver=vsphere{opts}"


# The task's command ends with a wait that SIGTERM ends at once (a task stops quickly).
WAIT = "trap 'exit 0' TERM; sleep infinity & wait"
# Each task adds its id to /data/tasks: what the tasks before it wrote must be there.
RECORD_TASK = f"echo $TASK >>/data/tasks && sync; {WAIT}"


def file_in_task(node: Node, task: Task, path: str, holding: str = "") -> str:
    """The text of ``path`` in the task's container on ``node``, once it exists (and
    holds ``holding``)."""
    def read() -> str:
        done = node.docker("exec", task.container, "cat", path, check=False)
        return done.stdout if done.returncode == 0 and holding in done.stdout else ""
    return wait_until(read, WRITE_TIMEOUT,
                      lambda: f"{path} holding {holding!r} in task {task.id} on {node}:\n{node.plugin_log()}")


def service_on(swarm: Swarm, node: Node, service: str, mount: str, image: str, script: str = RECORD_TASK) -> Task:
    """Service ``service`` (one task, ``--network host``, ``mount``) started on ``node``:
    the other nodes drained meanwhile, then active again. Its running task."""
    others = [other for other in swarm.nodes if other is not node]
    for other in others:
        swarm.manager.docker("node", "update", "--availability", "drain", other.swarm_id)
    swarm.manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", service, "--network", "host",
        "--mount", mount, "--env", "TASK={{.Task.ID}}", image, "sh", "-c", script)
    task = swarm.wait_for_task(service, on=node)
    for other in others:
        swarm.manager.docker("node", "update", "--availability", "active", other.swarm_id)
    return task


def failed_tasks(swarm: Swarm, service: str) -> list[dict]:
    """The tasks of ``service`` that ended in an error (a rejected or failed start)."""
    ids = swarm.manager.docker("service", "ps", "-q", "--no-trunc", service).stdout.split()
    return [t for t in swarm.manager.docker_json("inspect", "--type", "task", *ids) if t["Status"].get("Err")]


# --- one volume on every node -------------------------------------------------------------

def test_a_task_on_the_worker_writes_its_vsphere_volume_on_the_worker_vm(swarm: Swarm, test_image: str):
    worker = swarm.workers[0]
    volume, service, token = unique("svol"), unique("svc"), uuid.uuid4().hex
    swarm.manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", service,
        "--constraint", worker.constraint, "--network", "host", "--mount", vsphere_mount(volume),
        test_image, "sh", "-c", f"echo {token} >/data/.new && mv /data/.new /data/written && sync; {WAIT}")

    task = swarm.wait_for_task(service, on=worker)
    assert file_in_task(worker, task, "/data/written") == f"{token}\n"
    # The volume is the plugin's, a disk on the datastore attached to the worker's VM
    # only (not a `local` volume that a mount without volume-driver would have made).
    info = worker.docker_json("volume", "inspect", volume)[0]
    assert info["Driver"] == "vsphere:latest", info
    assert (swarm.volume_folder(volume) / f"{volume}.vmdk").is_file()
    assert swarm.vms_with_volume(volume) == [worker.vm]
    # One volume everywhere: the manager, which never ran the task, shows the same one.
    seen = swarm.manager.docker_json("volume", "inspect", volume)[0]
    same = ("Name", "Driver", "Scope")
    assert {k: seen[k] for k in same} == {k: info[k] for k in same} and info["Scope"] == "global"
    same_status = ("VolumeStore", "Capacity", "Options", "Disk")
    assert {k: seen["Status"][k] for k in same_status} == {k: info["Status"][k] for k in same_status}


# --- moving -------------------------------------------------------------------------------

def test_drain_moves_the_task_and_its_volume_to_the_other_node(swarm: Swarm, test_image: str):
    """Drain the node of a task with a vSphere volume; the task runs on the other node
    with the data, at its first try, and vCenter shows the disk on that node's VM and not
    on the first one's."""
    first_node, other = swarm.workers[0], swarm.manager
    volume, service = unique("mvol"), unique("msvc")
    first = service_on(swarm, first_node, service, vsphere_mount(volume), test_image)
    assert file_in_task(first_node, first, "/data/tasks", holding=first.id) == f"{first.id}\n"
    assert swarm.vms_with_volume(volume) == [first_node.vm]

    swarm.manager.docker("node", "update", "--availability", "drain", first_node.swarm_id)

    second = swarm.wait_for_task(service, on=other)
    # What the first task wrote is there for the second, which added its own line.
    assert file_in_task(other, second, "/data/tasks", holding=second.id) == f"{first.id}\n{second.id}\n"
    assert swarm.vms_with_volume(volume) == [other.vm]
    assert failed_tasks(swarm, service) == []          # no start was refused on the way


def test_a_mount_waits_for_the_other_node_to_release_the_volume(swarm: Swarm, test_image: str):
    """A container on the manager asks for a volume while the worker's container still
    has it: its Mount waits, and succeeds as soon as the worker's container is gone."""
    holder, asker = swarm.workers[0], swarm.manager
    volume, container = unique("wvol"), unique("holder")
    holder.docker("volume", "create", "-d", PLUGIN_NAME, "--opt", "Capacity=100M", volume)
    holder.docker("run", "-d", "--name", container, "--network", "host", "-v", f"{volume}:/data", test_image,
                  "sh", "-c", f"echo written on the worker >/data/f && sync; {WAIT}")
    wait_until(lambda: swarm.vms_with_volume(volume) == [holder.vm], WRITE_TIMEOUT, "the worker's VM has the disk")
    reader = subprocess.Popen(
        ["docker", "run", "--rm", "--network", "host", "-v", f"{volume}:/data", test_image, "cat", "/data/f"],
        env={**asker.engine.env, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        waiting = f"volume {volume}: its disk is attached to VM {holder.vm} (powered on); waiting up to"
        wait_until(lambda: waiting in asker.plugin_log(200), WRITE_TIMEOUT,
                   lambda: f"the manager's Mount waiting: {asker.plugin_log()}")
        holder.docker("rm", "-f", container)            # its Unmount detaches the disk
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert (reader.returncode, out) == (0, "written on the worker\n"), err


# --- a node lost ----------------------------------------------------------------------------

def test_a_lost_node_whose_vm_is_off_gives_up_its_volume_to_the_task_elsewhere(swarm: Swarm, test_image: str):
    lost, other = swarm.workers[0], swarm.manager
    volume, service = unique("offvol"), unique("offsvc")
    first = service_on(swarm, lost, service, vsphere_mount(volume), test_image)
    assert file_in_task(lost, first, "/data/tasks", holding=first.id) == f"{first.id}\n"

    swarm.kill(lost)                  # its engine dies without unmounting ...
    swarm.power_off(lost)             # ... and its VM is off (its ESXi host failed)

    second = swarm.wait_for_task(service, on=other, timeout=LOST_TIMEOUT)
    assert file_in_task(other, second, "/data/tasks", holding=second.id) == f"{first.id}\n{second.id}\n"
    # Taken from the powered-off VM: gone from its configuration, so that VM still boots.
    assert swarm.vms_with_volume(volume) == [other.vm]
    assert f"from VM {lost.vm} (powered off) to attach it here" in other.plugin_log(200)
    swarm.power_on(lost)
    assert swarm.power_state(lost) == "poweredOn"


def test_a_lost_node_whose_vm_is_on_keeps_its_volume_until_an_operator_fences_it(swarm: Swarm, test_image: str):
    lost, other = swarm.workers[0], swarm.manager
    volume, service = unique("onvol"), unique("onsvc")
    first = service_on(swarm, lost, service, vsphere_mount(volume), test_image)
    assert file_in_task(lost, first, "/data/tasks", holding=first.id) == f"{first.id}\n"

    swarm.kill(lost)                  # its engine dies; its VM runs on (vCenter cannot tell)
    swarm.wait_for_history(service, f"volume {volume} is in use by VM {lost.vm} (powered on)",
                           "waited 20 s for its Docker host to release it", f"vsphere-volume detach --force {volume}",
                           timeout=LOST_TIMEOUT)
    assert swarm.vms_with_volume(volume) == [lost.vm]           # never taken from a running VM

    unconfirmed = other.vsphere_volume("detach", "--force", volume, check=False)   # no terminal, no --yes
    assert unconfirmed.returncode == 1, unconfirmed
    assert f"is attached to VM {lost.vm} (powered on)" in unconfirmed.stdout
    assert f"volume {volume} was not detached (not confirmed" in unconfirmed.stdout
    assert swarm.vms_with_volume(volume) == [lost.vm]

    fenced = other.vsphere_volume("detach", "--force", "--yes", volume)
    assert fenced.stdout.endswith(f"was detached from VM {lost.vm}\n"), fenced.stdout
    second = swarm.wait_for_task(service, on=other)
    assert file_in_task(other, second, "/data/tasks", holding=second.id) == f"{first.id}\n{second.id}\n"
    assert swarm.vms_with_volume(volume) == [other.vm]


# --- a stack file -----------------------------------------------------------------------------

STACK_FILE = """\
version: "3.8"
services:
  app:
    image: {image}
    command: ["sh", "-c", "echo from the stack >/data/f && sync; {wait}"]
    volumes: ["data:/data"]
    networks: [hostnet]
networks:
  hostnet:
    external: true
    name: host
volumes:
  data:
    driver: vsphere
    driver_opts:
      Capacity: 100M
"""


def test_a_stack_deploys_a_service_with_a_vsphere_volume(swarm: Swarm, test_image: str, tmp_path: Path):
    stack = unique("stk")
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(STACK_FILE.format(image=test_image, wait=WAIT))
    swarm.manager.docker("stack", "deploy", "--resolve-image", "never", "-c", str(stack_file), stack)
    service, volume = f"{stack}_app", f"{stack}_data"
    task = swarm.wait_for_task(service)
    assert file_in_task(task.node, task, "/data/f") == "from the stack\n"
    info = task.node.docker_json("volume", "inspect", volume)[0]
    assert (info["Driver"], info["Status"]["Capacity"]) == ("vsphere:latest", "100MB")
    assert swarm.vms_with_volume(volume) == [task.node.vm]
    swarm.manager.docker("stack", "rm", stack)


# --- backups --------------------------------------------------------------------------------------

def scheduled(node: Node, volume: str) -> list[dict]:
    return [b for b in node.backups(volume) if b["Origin"] == "schedule"]


def once_per_minute(backups: list[dict]) -> bool:
    """True when no planned run (every minute) has two backups: ids are their start times."""
    return all(count == 1 for count in Counter(b["Id"][:13] for b in backups).values())


def test_the_node_that_has_the_volume_makes_each_scheduled_backup_once(swarm: Swarm, test_image: str):
    """Backup every minute: both nodes schedule the volume; the node whose VM has it makes
    the backup, the other skips it saying why, before and after the task moves; the
    final backup of ``docker volume rm`` is made on the node that did not have it."""
    first_node, other = swarm.workers[0], swarm.manager
    volume, service = unique("bvol"), unique("bsvc")
    first = service_on(swarm, first_node, service, vsphere_mount(volume, "Backup=* * * * *"), test_image)
    file_in_task(first_node, first, "/data/tasks", holding=first.id)
    assert other.volume_status(volume)["Backup"]["Policy"] == "* * * * *"       # the other node schedules it too

    def turn_of(maker: Node, skipper: Node) -> dict:
        """The last scheduled backup ``maker`` made, once ``skipper`` left that run to it."""
        def made() -> dict | None:
            last, skip = (n.volume_status(volume)["Backup"].get("LastBackup", {}) for n in (maker, skipper))
            why = f"is made by the Docker host of VM {maker.vm}, which has the volume attached"
            return last if last.get("Result") == "ok" and last.get("Origin") == "schedule" \
                and skip.get("Result") == "skipped" and why in skip.get("Error", "") \
                and skip.get("Time", "") >= last.get("Created", "")[:16] else None
        return wait_until(made, BACKUP_TIMEOUT, lambda: f"a scheduled backup by {maker}, left to it by {skipper}: "
                          f"{[n.volume_status(volume)['Backup'] for n in (maker, skipper)]}", poll=2)

    before = turn_of(first_node, other)
    assert before["Method"] == "snapshot-clone"
    swarm.manager.docker("node", "update", "--availability", "drain", first_node.swarm_id)
    second = swarm.wait_for_task(service, on=other)
    file_in_task(other, second, "/data/tasks", holding=second.id)
    after = turn_of(other, first_node)
    assert after["Created"] > before["Created"]
    backups = scheduled(other, volume)
    assert {before["Id"], after["Id"]} <= {b["Id"] for b in backups} and once_per_minute(backups), backups

    swarm.manager.docker("service", "rm", service)
    wait_until(lambda: swarm.vms_with_volume(volume) == [], WRITE_TIMEOUT, "the disk detached")
    first_node.docker("volume", "rm", volume, timeout=120)     # its final backup, on the node without it
    listed = json.loads(other.vsphere_volume("backups", volume, "--json").stdout)
    assert [b["Origin"] for b in listed][-1] == "final" and once_per_minute(scheduled(other, volume))
