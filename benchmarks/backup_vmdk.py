"""Benchmark: a VMDK volume backup (snapshot, then clone) against slow vCenter tasks.

Against govmomi's simulator (tests/vcsim, built by scripts/build-vcsim) delaying
CreateSnapshot_Task by --snapshot-ms (1000), CopyVirtualDisk_Task by --copy-ms (5000) and
RemoveSnapshot_Task by --remove-ms (1000), with a real mounted volume (loop device,
mkfs.ext4, mount; needs root) holding --data-mb of written data:

1. a backup of the mounted volume (freeze, snapshot, thaw, clone of the snapshot's disk,
   snapshot removal), from ``begin`` to ``commit`` as the backup service runs it: its
   total time against the sum of the three delays (goal: within 10%), and how long the
   snapshot existed (from the end of its creation to the end of its removal) against the
   time of the copy, and how long the filesystem was frozen;
2. for comparison, a backup of the same volume detached (direct clone under the volume
   lock) against the copy's delay.

Median of --repeat runs; ratios and absolute numbers. Prints; it is not a test.

    python benchmarks/backup_vmdk.py [--repeat 3] [--data-mb 16]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin.backup import manifest as mf
from plugin.backup.dsrepository import DatastoreBackupRepository
from plugin.backup.vmdkengine import VmdkEngine
from plugin.driver import Volume
from plugin.locks import NameLocks
from plugin.mounter import Mounter
from plugin.options import parse_options
from plugin.stores.base import docker_metadata
from plugin.stores.devices import LoopDeviceResolver
from plugin.stores.vmdk import DatastoreStore
from plugin.storespec import parse_store_spec
from plugin.vsphere.hostvm import HostVM
from plugin.vsphere.inventory import Inventory
from plugin.vsphere.session import Session
from plugin.vsphere.settings import VSphereSettings

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-password"
DS, LABEL, VOLUME = "LocalDS_1", "bench", "bench-data"


def start_simulator(binary, folder, delays):
    argv = [binary, "-user", USER, "-password", PASSWORD, "-dir", str(folder),
            "-delay", ",".join(f"{method}={ms}" for method, ms in delays.items())]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return process, json.loads(process.stdout.readline())


def make_store(info, mount_root):
    session = Session(VSphereSettings(url=info["url"], user=USER, password=PASSWORD, ca_file=info["ca_file"]))
    host = HostVM(session, Inventory(session), name=info["host_vm"]["name"])
    store = DatastoreStore(parse_store_spec(f"{DS}/{LABEL}:{LABEL}"), session, host,
                           LoopDeviceResolver(info["datastores"]), Mounter(), str(mount_root))
    store.open()
    return store


def one_backup(store, repo, engine, locks, opts):
    """(seconds from begin to commit, CopyOutcome, SOAP round trips by method)."""
    with store.session.counting() as trips:
        start = time.perf_counter()
        began = datetime.now(UTC)
        staging = repo.begin(VOLUME, began)
        outcome = engine.backup(Volume(VOLUME, LABEL, opts), store, staging, None, locks.hold)
        repo.commit(mf.Manifest(volume=VOLUME, backup_id=staging.backup_id, method=outcome.method,
                                origin="manual", created=outcome.created, started=began,
                                finished=datetime.now(UTC), store=LABEL, source=outcome.source,
                                size=outcome.size, data=outcome.data, extra=outcome.extra))
        elapsed = time.perf_counter() - start
    return elapsed, outcome, {k: v for k, v in trips.items() if not k.startswith("http.")}


def median_of(runs, pick):
    return statistics.median(pick(run) for run in runs)


def report(title, runs, floor, floor_text):
    total = median_of(runs, lambda r: r[0])
    print(f"\n{title} (median of {len(runs)})")
    print(f"  total {total:6.2f} s   {floor_text} = {floor:.2f} s   ratio {total / floor:.3f} "
          f"(overhead {(total - floor) * 1000:.0f} ms, {(total / floor - 1) * 100:+.1f}%; goal within 10%)")
    trips = runs[-1][2]
    print(f"  SOAP round trips: {sum(trips.values())}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(trips.items())))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshot-ms", type=int, default=1000)
    parser.add_argument("--copy-ms", type=int, default=5000)
    parser.add_argument("--remove-ms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-mb", type=int, default=16, help="data written into the volume first")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the volume is mounted through a loop device")
    binary = subprocess.run([str(REPO / "scripts" / "build-vcsim")], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1]
    delays = {"CreateSnapshot_Task": args.snapshot_ms, "CopyVirtualDisk_Task": args.copy_ms,
              "RemoveSnapshot_Task": args.remove_ms}
    with tempfile.TemporaryDirectory(prefix="backup-vmdk-bench-") as temp:
        work = Path(temp)
        (work / "mnt").mkdir()
        process, info = start_simulator(binary, work / "sim", delays)
        store = None
        try:
            store = make_store(info, work / "mnt")
            opts = parse_options({"VolumeStore": LABEL, "Capacity": "64M"}, [LABEL])
            store.create(VOLUME, opts, docker_metadata(VOLUME, opts.given))
            folder = store.attach(VOLUME)
            with open(os.path.join(folder, "data.bin"), "wb") as handle:
                handle.write(os.urandom(args.data_mb * 1_000_000))
            repo = DatastoreBackupRepository(store.session, DS, store.spec.path, inventory=store.inventory)
            engine, locks = VmdkEngine(store.session), NameLocks()

            attached = [one_backup(store, repo, engine, locks, opts) for _ in range(args.repeat)]
            assert all(r[1].method == mf.SNAPSHOT_CLONE for r in attached)
            floor = sum(delays.values()) / 1000
            report(f"Backup of a mounted volume (snapshot-clone; {args.data_mb} MB written, 64 MB disk)",
                   attached, floor, "CreateSnapshot + CopyVirtualDisk + RemoveSnapshot delays")
            existed = median_of(attached, lambda r: r[1].extra["snapshot_seconds"])
            copy = median_of(attached, lambda r: r[1].extra["copy_seconds"])
            frozen = median_of(attached, lambda r: r[1].extra["frozen_seconds"])
            print(f"  snapshot existed {existed:6.2f} s   copy {copy:6.2f} s   ratio {existed / copy:.3f} "
                  f"(the rest is its removal: RemoveSnapshot delay {args.remove_ms / 1000:.2f} s)")
            print(f"  filesystem frozen {frozen:6.2f} s (the CreateSnapshot delay is "
                  f"{args.snapshot_ms / 1000:.2f} s)")

            store.detach(VOLUME)
            detached = [one_backup(store, repo, engine, locks, opts) for _ in range(args.repeat)]
            assert all(r[1].method == mf.DIRECT_CLONE for r in detached)
            report("Backup of the same volume detached (direct-clone)", detached, args.copy_ms / 1000,
                   "CopyVirtualDisk delay")
        finally:
            if store is not None:
                store.detach(VOLUME)
                store.session.close()
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
