"""Get/List latency at the plugin socket while /metrics is scraped every second, against
no scraper, in the same run (not a test: it prints figures).

Starts the real plugin server (``python3 -m plugin.server``: gunicorn, one worker with
threads, as plugin_socket.py does) with ``METRICS_ADDRESS`` set: the metrics are the
product's own wiring (``plugin.monitoring``: every plugin call counted by the protocol's
observer, the state read from the driver's memory by ``plugin.opsstate``). It creates N
volumes with ``Backup=daily`` and backs each up once through ``/Backup.Create`` (so every
volume has its full set of series), then measures Get and List in rounds: without a
scraper, then with a scraper process polling /metrics every second (gzip, as
Prometheus asks). Goal: p99 unchanged within noise.

    python3 benchmarks/plugin_socket_scraped.py [--volumes 1000] [--calls 5000] [--rounds 3]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from plugin_socket import (  # the same measuring as the socket benchmark
    measure,
    percentile,
)

from plugin.client import PluginClient

SCRAPE_EVERY = 1.0


# --- the scraper: another process, as Prometheus is -------------------------------------------

def scrape(url):
    import requests
    times, stopping = [], []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    session = requests.Session()
    while not stopping:
        started = time.perf_counter()
        session.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
        if len(times) == 1:
            print("ready", flush=True)
        time.sleep(max(0.0, SCRAPE_EVERY - (time.perf_counter() - started)))
    print(" ".join(f"{t:.3f}" for t in times), flush=True)


class Scraper:
    def __init__(self, url):
        self.process = subprocess.Popen([sys.executable, __file__, "--scrape", url], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready", "the scraper did not start"

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return [float(t) for t in out.split()]


# --- the measurement ----------------------------------------------------------------------------

def wait_answering(client, deadline_s=15):
    launched = time.perf_counter()
    while True:
        try:
            client.call("/Plugin.Activate", timeout=1)
            return
        except Exception:
            if time.perf_counter() - launched > deadline_s:
                raise
            time.sleep(0.01)


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


IDLE_SCRAPES = 20


def timed_scrape(url):
    """Milliseconds of one plain /metrics scrape."""
    import requests
    started = time.perf_counter()
    requests.get(url, timeout=60).raise_for_status()
    return (time.perf_counter() - started) * 1000


def summary(samples):
    return f"p50 {statistics.median(samples):.3f} ms  p99 {percentile(samples, 0.99):.3f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scrape", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape:
        return scrape(args.scrape)

    work = tempfile.mkdtemp(prefix="vv-bench-scraped-")
    socket_path = os.path.join(work, "plugin.sock")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = dict(os.environ, DATA_DIR=os.path.join(work, "data"), MOUNT_ROOT=os.path.join(work, "mnt"),
               SOCKET=socket_path, LOG_LEVEL="WARNING", METRICS_ADDRESS=f"127.0.0.1:{port}")
    server = subprocess.Popen([sys.executable, "-m", "plugin.server"], env=env,
                              cwd=os.path.join(os.path.dirname(__file__), ".."),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phases = {"no scraper": {"Get": [], "List": []}, "scraper every 1 s": {"Get": [], "List": []}}
    scrapes = []
    try:
        client = PluginClient(socket_path)
        wait_answering(client)
        started = time.perf_counter()
        for i in range(args.volumes):
            client.call("/VolumeDriver.Create", {"Name": f"bench-{i:05d}", "Opts": {"Backup": "daily"}})
            client.call("/Backup.Create", {"Name": f"bench-{i:05d}"}, timeout=60)
        setup_s = time.perf_counter() - started
        import requests
        started = time.perf_counter()
        requests.get(url, timeout=60).raise_for_status()
        cold_ms = (time.perf_counter() - started) * 1000
        idle = {"unchanged": [], "a backup ended before it": []}
        for i in range(IDLE_SCRAPES):
            idle["unchanged"].append(timed_scrape(url))
            client.call("/Backup.Create", {"Name": f"bench-{i % args.volumes:05d}"}, timeout=60)
            idle["a backup ended before it"].append(timed_scrape(url))
        def names(i):
            return {"Name": f"bench-{i % args.volumes:05d}"}
        for _ in range(args.rounds):
            for phase, results in phases.items():
                scraper = Scraper(url) if phase != "no scraper" else None
                try:
                    results["Get"] += measure(client, "/VolumeDriver.Get", names, args.calls)
                    results["List"] += measure(client, "/VolumeDriver.List", lambda i: {}, max(200, args.calls // 5))
                finally:
                    if scraper is not None:
                        scrapes += scraper.stop()
        body = requests.get(url, timeout=10).text
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["rm", "-rf", work], check=False)
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    counted = {line.split("{")[0] + "{" + line.split("{")[1].split("}")[0] + "}": float(line.rsplit(" ", 1)[1])
               for line in body.splitlines() if line.startswith(("vsphere_volume_plugin_calls_total{",
                                                                  "vsphere_volume_backups_total{"))}
    gets = counted.get('vsphere_volume_plugin_calls_total{endpoint="VolumeDriver.Get",result="ok"}', 0)
    made = counted.get('vsphere_volume_backups_total{kind="manual",result="ok",target="local"}', 0)
    kept = body.count("vsphere_volume_backups_kept{")
    print(f"volumes: {args.volumes}, each created with Backup=daily and backed up once ({setup_s:.1f} s); "
          f"the product's metrics counted {gets:.0f} Gets and {made:.0f} manual backups, {kept} volumes' series")
    print(f"/metrics: {series} samples, {len(body) / 1024:.0f} KiB; first scrape {cold_ms:.1f} ms (every "
          f"deadline computed, all formatted); scrapes while measuring: {len(scrapes)}, {summary(scrapes)} "
          "(gzip, from another process; no backup ran meanwhile: the state's text is reused)")
    for case, times in idle.items():
        print(f"/metrics with the plugin otherwise idle, state {case}: {summary(times)} ({len(times)} scrapes, "
              "plain text; goal < 50 ms)")
    for call in ("Get", "List"):
        quiet, scraped = phases["no scraper"][call], phases["scraper every 1 s"][call]
        print(f"{call:4s} no scraper: {summary(quiet)}   scraper every 1 s: {summary(scraped)}   "
              f"(p99 x{percentile(scraped, 0.99) / percentile(quiet, 0.99):.2f}; {len(quiet)} calls each, "
              f"{args.rounds} rounds)")


if __name__ == "__main__":
    main()
