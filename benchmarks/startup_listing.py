"""Benchmark: a plugin start with 1,000 volumes on a datastore store, vCenter 20 ms away.

Against govmomi's simulator (tests/vcsim), reached through a relay that delays every
request the plugin sends by --delay-ms (a real vCenter's round trip; SOAP and the
datastore's HTTP file interface alike). --volumes volumes are seeded in VIC's layout in
the store's datastore folder. The plugin is assembled as it runs (``build_driver`` over
real settings) and started three times:

1. first start, no listing persisted yet: the time until the store's first listing
   from vCenter is complete (Get and List wait for it: nothing is known before);
2. restart: the time until Get and List answer with the full listing (from the listing
   persisted by the first run; goal < 2 s), and until the refresh from vCenter is
   complete (goal < 5 s; metadata already known is not read again);
3. a periodic refresh of the listing (what follows other hosts' creates and removes);
4. restart while vCenter does not answer (relay stopped): the time until Get and List
   answer with the full listing, stale.

Each listing is printed against the sum of the delays of the round trips it made
(round trips x delay: what the same calls one after another would cost), with absolute
numbers. Prints; it is not a test.

    python benchmarks/startup_listing.py [--volumes 1000] [--delay-ms 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.vsphere_roundtrips import PASSWORD, USER, seed_volumes, start_simulator
from plugin.assembly import build_driver
from plugin.settings import from_env
from tests.e2e.tcpproxy import TcpRelay
from tests.fakes import FakeMounter

REPO = Path(__file__).resolve().parent.parent
ROOT = "startup"


def plugin_env(work, info, relay):
    password = work / "password"
    password.write_text(PASSWORD)
    return {
        "DATA_DIR": str(work / "data"), "MOUNT_ROOT": str(work / "mnt"),
        "VOLUME_STORES": f"LocalDS_1/{ROOT}:default",
        "VSPHERE_URL": f"https://{relay.address}/sdk", "VSPHERE_USER": USER,
        "VSPHERE_PASSWORD_FILE": str(password), "VSPHERE_CA_FILE": info["ca_file"],
        "VSPHERE_VM": info["host_vm"]["name"],
    }


def wait(condition, limit=300):
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit:
            raise SystemExit("gave up waiting")
        time.sleep(0.002)
    return time.perf_counter() - start


def one_start(env, volumes, expect_listing=True):
    """Start a plugin; return (seconds to a full List and Get, seconds to the store's
    listing from vCenter or None, round trips of that listing, the driver)."""
    driver = build_driver(from_env(env), mounter=FakeMounter(), backups=False)
    session = driver.stores["default"].session
    before = sum(session.round_trips.total.values())
    started = time.perf_counter()
    driver.load()                      # as the plugin's server does before it serves Docker
    threading.Thread(target=driver.start, daemon=True).start()
    wait(lambda: len(driver.list()) == volumes and driver.get("seeded-00000"))
    answered = time.perf_counter() - started
    listed = None
    if expect_listing:
        wait(lambda: driver.health.available("default"))
        listed = time.perf_counter() - started
    trips = sum(session.round_trips.total.values()) - before
    return answered, listed, trips, driver


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=20)
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    binary = subprocess.run([str(REPO / "scripts" / "build-vcsim")], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory(prefix="vsphere-bench-") as temp:
        work = Path(temp)
        process, info = start_simulator(binary, work / "sim")
        host, port = info["url"].split("://")[1].split("/")[0].split(":")
        relay = TcpRelay(host, int(port), latency=delay).start()
        try:
            seed_volumes(info["datastores"]["LocalDS_1"], ROOT, args.volumes)
            env = plugin_env(work, info, relay)
            print(f"{args.volumes} volumes on [LocalDS_1] {ROOT}; every request to vCenter delayed {args.delay_ms} ms")

            answered, listed, trips, driver = one_start(env, args.volumes)
            driver.stop()
            print(f"  first start (nothing persisted): listed from vCenter in {listed:.2f} s, {trips} round trips; "
                  f"their delays one after another {trips * delay:.2f} s; ratio {listed / (trips * delay):.2f}")

            answered, listed, trips, driver = one_start(env, args.volumes)
            print(f"  restart: Get and List answer the full listing {answered:.3f} s after start (goal < 2 s)")
            print(f"  restart: refreshed from vCenter in {listed:.2f} s (goal < 5 s), {trips} round trips; "
                  f"their delays one after another {trips * delay:.2f} s; ratio {listed / (trips * delay):.2f}")
            session = driver.stores["default"].session
            before = sum(session.round_trips.total.values())
            started = time.perf_counter()
            driver.health.watcher.attempt("default")
            took, trips = time.perf_counter() - started, sum(session.round_trips.total.values()) - before
            driver.stop()
            print(f"  periodic refresh (STORE_REFRESH_INTERVAL): {took:.2f} s, {trips} round trips; "
                  f"their delays one after another {trips * delay:.2f} s; ratio {took / (trips * delay):.2f}")

            relay.stop()
            answered, _, _, driver = one_start(env, args.volumes, expect_listing=False)
            stale = driver.get("seeded-00000")["Status"].get("Stale", {})
            driver.stop()
            print(f"  restart, vCenter not answering: Get and List answer the full listing {answered:.3f} s "
                  f"after start (Stale: {json.dumps(stale)[:90]}...)")
        finally:
            relay.stop()
            process.terminate()
            process.wait()


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root (as the other vSphere benchmarks)")
    main()
