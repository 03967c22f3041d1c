"""Scrape time of /metrics with many volumes (not a test: it prints figures).

Starts the metrics server (plugin.ops: prometheus_client's HTTP server on its own
thread) over a state of N volumes with daily schedules and backups, 5 stores and event
series of every plugin endpoint and 20 vSphere methods, then scrapes /metrics over HTTP
from this process. The baseline measured in the same run is a scrape of the same
server with no volume: the HTTP round trip and the fixed series. Goal: a scrape of
1,000 volumes under 50 ms.

    python3 benchmarks/metrics_scrape.py [--volumes 1000] [--scrapes 50]
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from plugin.ops.metrics import KINDS, Metrics
from plugin.ops.serving import MetricsServer
from plugin.ops.stale import DeadlineCache
from plugin.ops.state import OpsState, StoreStatus, VolumeBackup

ENDPOINTS = ("Plugin.Activate", "VolumeDriver.Create", "VolumeDriver.Remove", "VolumeDriver.Mount",
             "VolumeDriver.Unmount", "VolumeDriver.Get", "VolumeDriver.List", "VolumeDriver.Path",
             "VolumeDriver.Capabilities", "Backup.Create", "Backup.List", "Backup.Restore")


def fake_state(volumes):
    now = datetime.now(UTC)
    entries = tuple(
        VolumeBackup(f"bench-{i:05d}", schedule=("daily", "hourly", "daily@02:30", "0 3 * * 1-5")[i % 4],
                     since=now - timedelta(days=30), last_success=now - timedelta(minutes=i % 1440),
                     last_duration=12.5 + i % 60, size=(1 << 30) + i, added=i * 4096,
                     last_result="failed" if i % 50 == 0 else "ok", last_error="", kept=7)
        for i in range(volumes))
    stores = tuple(StoreStatus(f"store{i}") for i in range(4)) + (StoreStatus("ds9", False, "unreachable"),)
    return OpsState(entries, stores, queued=3, running=2, mounted=volumes // 3)


def with_events(metrics):
    for endpoint in ENDPOINTS:
        metrics.plugin_call(endpoint, "ok", 0.001)
        metrics.plugin_call(endpoint, "error", 0.01)
    for i in range(20):
        metrics.vsphere_call(f"Method{i}_Task")
    for kind in KINDS:
        metrics.backup_finished("local", kind, "ok", 30.0, added=1 << 20)
    return metrics


def scrape_times(url, scrapes):
    session = requests.Session()
    samples, size = [], 0
    for _ in range(scrapes):
        started = time.perf_counter()
        response = session.get(url, timeout=10)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return samples, size


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class ChangingState:
    """Before every scrape one more volume's backup committed (a new OpsState each time)."""

    def __init__(self, state):
        self.state = state
        self.turn = 0

    def __call__(self):
        volumes = list(self.state.volumes)
        if volumes:
            self.turn += 1
            i = self.turn % len(volumes)
            volumes[i] = dataclasses.replace(volumes[i], last_success=datetime.now(UTC), kept=8)
        self.state = dataclasses.replace(self.state, volumes=tuple(volumes))
        return self.state


def measure(volumes, scrapes, changing=False):
    state = fake_state(volumes)
    metrics = with_events(Metrics(ChangingState(state) if changing else lambda: state, DeadlineCache()))
    server = MetricsServer(metrics.render, "127.0.0.1", 0).start()
    try:
        first, _ = scrape_times(server.url, 1)   # every deadline computed
        samples, size = scrape_times(server.url, scrapes)
        lines = sum(1 for line in metrics.render().splitlines() if not line.startswith(b"#"))
    finally:
        server.stop()
    return first[0], samples, size, lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    _, base, base_size, base_lines = measure(0, args.scrapes)
    base_p50 = statistics.median(base)
    print(f"baseline (0 volumes): p50 {base_p50:.2f} ms  p99 {percentile(base, 0.99):.2f} ms  "
          f"({base_lines} samples, {base_size / 1024:.0f} KiB)")
    for case, changing in (("state unchanged", False), ("a backup ended before each scrape", True)):
        first, samples, size, lines = measure(args.volumes, args.scrapes, changing)
        print(f"{args.volumes} volumes, {case}: first scrape {first:.2f} ms (deadlines computed), then p50 "
              f"{statistics.median(samples):.2f} ms  p99 {percentile(samples, 0.99):.2f} ms  "
              f"max {max(samples):.2f} ms  ({lines} samples, {size / 1024:.0f} KiB of text; "
              f"x{statistics.median(samples) / base_p50:.1f} of the baseline; goal < 50 ms)")


if __name__ == "__main__":
    main()
