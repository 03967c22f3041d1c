"""`docker volume ls` with N plugin volumes against N `local` driver volumes (prints figures).

Needs an engine with the plugin enabled (scripts/build-plugin). Times `docker volume ls`
(median of R runs) with N `local` volumes only, then with N plugin volumes only, in the
same run, and prints the ratio; removes what it created.

    python3 benchmarks/docker_volume_ls.py [--volumes 500] [--runs 5] [--plugin vsphere]
"""

import argparse
import statistics
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def timed_ls(runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        docker("volume", "ls", "-q")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def create_many(prefix, count, driver):
    names = [f"{prefix}-{i:04d}" for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: docker("volume", "create", "-d", driver, n), names))
    return names


def remove_all(names):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: docker("volume", "rm", n), names))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plugin", default="vsphere")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    empty = timed_ls(args.runs)
    local = create_many(f"bench-local-{tag}", args.volumes, "local")
    try:
        with_local = timed_ls(args.runs)
    finally:
        remove_all(local)
    plugin = create_many(f"bench-plugin-{tag}", args.volumes, args.plugin)
    try:
        with_plugin = timed_ls(args.runs)
    finally:
        remove_all(plugin)
    print(f"docker volume ls, median of {args.runs}: no volumes {empty * 1000:.1f} ms; "
          f"{args.volumes} local volumes {with_local * 1000:.1f} ms; "
          f"{args.volumes} {args.plugin} volumes {with_plugin * 1000:.1f} ms")
    print(f"{args.plugin} / local: x{with_plugin / with_local:.2f} (goal within 2x); "
          f"above an empty ls: {(with_plugin - empty) * 1000:.1f} ms vs {(with_local - empty) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
