"""Swarm: a service task's vSphere volume on several Docker hosts (issue 13).

The hosts are Docker engines in network namespaces of their own that form one swarm,
each with the plugin as a different VM of one vCenter simulator and the same datastore
store ``default`` at ``[LocalDS_0] swarm`` (the ``swarm`` fixture, tests/e2e/multihost.py).
Tasks run with ``--network host``; the data is checked in the task's container on its
node, and the disk's attachment in vCenter.

The drain test is the first finding of issue 13: a volume made on one node must be the
same volume on the other at once (the other node's plugin looks a name up on the store
when it does not know it, and a create of a name on the store is that volume), not
``create X: VolumeDriver.Create: volume X already exists in volume store default``.
"""

import uuid

from .multihost import Node, Swarm, Task
from .user import unique
from ..waiting import wait_until

SWARM_NODES = 2
WRITE_TIMEOUT = 60   # seconds for a started task to have written its file


def vsphere_mount(volume: str) -> str:
    """The ``--mount`` of a service's vSphere volume at /data, as a user writes it."""
    return f"type=volume,source={volume},target=/data,volume-driver=vsphere,volume-opt=Capacity=100M"


# The task's command ends with a wait that SIGTERM ends at once (a task stops quickly).
WAIT = "trap 'exit 0' TERM; sleep infinity & wait"


def file_in_task(node: Node, task: Task, path: str, holding: str = "") -> str:
    """The text of ``path`` in the task's container on ``node``, once it exists (and
    holds ``holding``)."""
    def read() -> str:
        done = node.docker("exec", task.container, "cat", path, check=False)
        return done.stdout if done.returncode == 0 and holding in done.stdout else ""
    return wait_until(read, WRITE_TIMEOUT,
                      lambda: f"{path} holding {holding!r} in task {task.id} on {node}:\n{node.plugin_log()}")


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


def test_drain_moves_the_task_and_its_volume_to_the_other_node(swarm: Swarm, test_image: str):
    """Drain the node of a task with a vSphere volume; the task runs on the other node
    with the data, and vCenter shows the disk on that node's VM and not on the first one's."""
    first_node, other = swarm.workers[0], swarm.manager
    volume, service = unique("mvol"), unique("msvc")
    # The other node drained first, so that the task starts on first_node.
    swarm.manager.docker("node", "update", "--availability", "drain", other.swarm_id)
    swarm.manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", service,
        "--network", "host", "--mount", vsphere_mount(volume), "--env", "TASK={{.Task.ID}}",
        test_image, "sh", "-c", f"echo $TASK >>/data/tasks && sync; {WAIT}")
    first = swarm.wait_for_task(service, on=first_node)
    assert file_in_task(first_node, first, "/data/tasks", holding=first.id) == f"{first.id}\n"
    assert swarm.vms_with_volume(volume) == [first_node.vm]

    swarm.manager.docker("node", "update", "--availability", "active", other.swarm_id)
    swarm.manager.docker("node", "update", "--availability", "drain", first_node.swarm_id)

    second = swarm.wait_for_task(service, on=other)
    # What the first task wrote is there for the second, which added its own line.
    assert file_in_task(other, second, "/data/tasks", holding=second.id) == f"{first.id}\n{second.id}\n"
    assert swarm.vms_with_volume(volume) == [other.vm]
