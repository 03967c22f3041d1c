"""Plugin socket latency and memory with many volumes (not a test: it prints figures).

Starts the real plugin server (gunicorn, one worker with threads) on a temporary socket
and data folder, creates N volumes through the socket, then measures Get, List and
Path latency (p50, p99) and the worker's RSS. The baseline measured in the same run is
the latency of /Plugin.Activate, a call that does no work: the ratio shows what the
driver adds over the HTTP round trip itself.

    python3 benchmarks/plugin_socket.py [--volumes 1000] [--calls 2000]
"""

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from plugin.client import PluginClient


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(client, path, body_for, calls):
    """Milliseconds of ``calls`` calls. The collector of this measuring process is off
    meanwhile: it stands for dockerd, and its own pauses (decoding 1,000-volume Lists
    makes garbage) are not the plugin's latency."""
    samples = []
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            started = time.perf_counter()
            client.call(path, body_for(i))
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        gc.enable()
    return samples


def rss_mb(server_pid):
    children = subprocess.run(["pgrep", "-P", str(server_pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in [str(server_pid)] + children:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    worker = int(children[0]) if children else server_pid
    with open(f"/proc/{worker}/status") as handle:
        worker_kb = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    return worker_kb / 1024, total / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="vv-bench-")
    socket_path = os.path.join(work, "plugin.sock")
    env = dict(os.environ, DATA_DIR=os.path.join(work, "data"), MOUNT_ROOT=os.path.join(work, "mnt"),
               SOCKET=socket_path, LOG_LEVEL="WARNING")
    launched = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "plugin.server"], env=env,
                              cwd=os.path.join(os.path.dirname(__file__), ".."),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = PluginClient(socket_path)
        while True:  # poll until the socket answers (bounded: 10 s)
            try:
                client.call("/Plugin.Activate", timeout=1)
                break
            except Exception:
                if time.perf_counter() - launched > 10:
                    raise
                time.sleep(0.01)
        answering_s = time.perf_counter() - launched
        started = time.perf_counter()
        for i in range(args.volumes):
            client.call("/VolumeDriver.Create", {"Name": f"bench-{i:05d}", "Opts": {"Capacity": "1G"}})
        create_s = time.perf_counter() - started
        def names(i):
            return {"Name": f"bench-{i % args.volumes:05d}"}
        baseline = measure(client, "/Plugin.Activate", lambda i: {}, args.calls)
        results = {
            "Get": measure(client, "/VolumeDriver.Get", names, args.calls),
            "Path": measure(client, "/VolumeDriver.Path", names, args.calls),
            "List": measure(client, "/VolumeDriver.List", lambda i: {}, max(200, args.calls // 10)),
        }
        worker_mb, total_mb = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["rm", "-rf", work])
    base_p50, base_p99 = statistics.median(baseline), percentile(baseline, 0.99)
    print(f"start: the socket answered {answering_s:.2f} s after launch (goal < 2 s)")
    print(f"volumes: {args.volumes} (created in {create_s:.2f} s, {create_s / args.volumes * 1000:.2f} ms each)")
    print(f"baseline /Plugin.Activate: p50 {base_p50:.3f} ms  p99 {base_p99:.3f} ms")
    for call, samples in results.items():
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        print(f"{call:5s} p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
              f"(x{p50 / base_p50:.2f} / x{p99 / base_p99:.2f} of the baseline; goal p99 < 2 ms)")
    print(f"RSS: worker {worker_mb:.1f} MB, worker + gunicorn master {total_mb:.1f} MB (goal < 80 MB)")


if __name__ == "__main__":
    main()
