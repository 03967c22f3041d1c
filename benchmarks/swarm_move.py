"""Benchmark: a swarm service with a vSphere volume moved to another node by a drain,
against the same service without a volume, in the same run; and the vSphere calls of the move.

A swarm of two Docker hosts as the end-to-end tests make it (tests/e2e/multihost.py:
network namespaces, one dockerd each, the plugin on each as a different VM of one vCenter
simulator, a shared datastore store). Each round starts the service on the worker, then
times ``docker node update --availability drain WORKER`` until the task runs on the
manager (``docker inspect`` of its tasks every 0.1 s): the same service with no volume and
with a vSphere volume, one after the other, ``--rounds`` times. The ratio of the medians is
what moving the disk (detach on one node, attach on the other) adds to Swarm's own move.

The simulator counts the calls it serves per client address (tests/vcsim/main.go), so the
calls of each node during the vSphere move are known: the worker's (its Unmount: the
detach) and the manager's (its Mount: the attach; polls while it waits for the worker are
more RetrievePropertiesEx). The plugins list their store only at start
(STORE_REFRESH_INTERVAL=0) so that nothing else falls in the window, and the manager has
looked the volume up before the drain (``docker volume inspect``), as its periodic listing
would have.

Needs root and a Docker engine at DOCKER_HOST to build the plugin (scripts/engine).

    python3 benchmarks/swarm_move.py [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.multihost import Swarm, swarm_cluster
from tests.e2e.project import DEFAULT_IMAGE, script

WAIT = "trap 'exit 0' TERM; sleep infinity & wait"
GOALS = {"detach": 3, "attach": 5}     # calls, as today's single-host figures


def start_on_worker(swarm: Swarm, service: str, mount: list[str]) -> None:
    manager, worker = swarm.manager, swarm.workers[0]
    manager.docker("node", "update", "--availability", "drain", manager.swarm_id)
    manager.docker("service", "create", "--detach", "--no-resolve-image", "--name", service, "--network", "host",
                   *mount, DEFAULT_IMAGE, "sh", "-c", f"date >>/tmp/started; {WAIT}")
    swarm.wait_for_task(service, on=worker)
    manager.docker("node", "update", "--availability", "active", manager.swarm_id)


def drain_worker(swarm: Swarm, service: str) -> float:
    """Seconds from the drain of the worker until the service's task runs on the manager."""
    started = time.perf_counter()
    swarm.manager.docker("node", "update", "--availability", "drain", swarm.workers[0].swarm_id)
    swarm.wait_for_task(service, on=swarm.manager, poll=0.1)
    return time.perf_counter() - started


def calls_of(swarm: Swarm, before: dict, node) -> Counter:
    after = swarm.simulator.calls()
    return Counter(after.get(node.address, {})) - Counter(before.get(node.address, {}))


def round_trip(swarm: Swarm, tag: str, with_volume: bool):
    """(seconds of the move, the worker's calls, the manager's calls) of one service."""
    service, volume = f"move-{tag}", f"movevol-{tag}"
    mount = ["--mount", f"type=volume,source={volume},target=/data,volume-driver=vsphere,"
                        "volume-opt=Capacity=100M"] if with_volume else []
    start_on_worker(swarm, service, mount)
    if with_volume:
        swarm.manager.docker("volume", "inspect", volume)         # known there, as a listing makes it
    before = swarm.simulator.calls()
    seconds = drain_worker(swarm, service)
    worker_calls, manager_calls = calls_of(swarm, before, swarm.workers[0]), calls_of(swarm, before, swarm.manager)
    if with_volume:
        assert swarm.vms_with_volume(volume) == [swarm.manager.vm], "the disk did not move"
    swarm.reset()
    return seconds, worker_calls, manager_calls


def shown(counter: Counter) -> str:
    return f"{sum(counter.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counter.items()))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build_host = os.environ.get("DOCKER_HOST", "")
    assert build_host, "set DOCKER_HOST to a Docker engine that builds the plugin (scripts/engine env)"
    script("base-image", timeout=900)
    plain, moved, detaches, attaches = [], [], [], []
    with swarm_cluster(2, build_host=build_host, settings={"STORE_REFRESH_INTERVAL": "0"}) as swarm:
        for number in range(args.rounds):
            plain.append(round_trip(swarm, f"p{number}", with_volume=False)[0])
            seconds, detach, attach = round_trip(swarm, f"v{number}", with_volume=True)
            moved.append(seconds)
            detaches.append(detach)
            attaches.append(attach)
            print(f"round {number + 1}: no volume {plain[-1]:.2f} s, vSphere volume {seconds:.2f} s; calls: "
                  f"worker {shown(detach)}, manager {shown(attach)}", flush=True)
    without, with_volume = statistics.median(plain), statistics.median(moved)
    print(f"drain until the task runs on the other node, median of {args.rounds}: no volume {without:.2f} s, "
          f"vSphere volume {with_volume:.2f} s: x{with_volume / without:.2f} "
          f"(detach + attach add {with_volume - without:.2f} s)")
    for what, counters in (("detach", detaches), ("attach", attaches)):
        totals = sorted(sum(c.values()) for c in counters)
        print(f"vSphere calls of the {what} ({'worker' if what == 'detach' else 'manager'}): "
              f"{', '.join(map(str, totals))} per round (goal <= {GOALS[what]})")


if __name__ == "__main__":
    main()
