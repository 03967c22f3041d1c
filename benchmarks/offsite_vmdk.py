"""Benchmark: a VMDK volume's off-site copy against the sum of its steps.

The plugin is assembled as it runs (``build_driver`` over real settings, as
tests/vsphere/assembled.py does) on govmomi's simulator (tests/vcsim) delaying
CreateSnapshot_Task by --snapshot-ms (1000), CopyVirtualDisk_Task by --copy-ms (3000) and
RemoveSnapshot_Task by --remove-ms (1000); disks through loop devices (needs root). A
mounted volume holds --data-mb (64) of random data in --files (200) files. Timed:

- the off-site copy (``/Backup.Copy``'s path) to the embedded target, a restic
  repository in the plugin's data folder: snapshot, clone, snapshot removed, the clone
  attached read-only and mounted, restic, unmounted and detached, the clone dropped;
Before each run every file is written again with new random bytes, so that the copy
(whose parent is the last one) and restic by hand (into a fresh repository) both read
and upload all the data.

- the same steps one by one, each timed, and summed: the local snapshot-then-clone into
  a staging backup folder (the engine, as a local backup makes it), the clone attached
  and mounted read-only, ``restic backup`` run by hand of that tree into a fresh
  repository beside the plugin's, unmount and detach, the staging folder deleted.

The ratio of the copy to that sum (goal <= 1.10x), median of --repeat runs of each,
alternating; and how long the snapshot existed against the clone, and whether restic
began only after the snapshot was gone. Prints; it is not a test.

    python benchmarks/offsite_vmdk.py [--repeat 3] [--data-mb 64]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin.backup.vmdkengine import StoreAccess
from plugin.offsite.diskviews import split_ds_path
from plugin.stores.devices import DiskInfo
from tests import simulator as simulators
from tests.vsphere.assembled import DS, assemble, plugin_env

VOLUME = "bench-data"


class Clock:
    """The aware now (the scheduler's; nothing is scheduled here)."""

    def __call__(self):
        from datetime import UTC, datetime
        return datetime.now(UTC)


def record_tasks(session, seen):
    """Note when each snapshot and copy task of ``session`` began and ended."""
    real = session.call_task

    def call_task(obj, method, /, *args, **kwargs):
        began = time.perf_counter()
        try:
            return real(obj, method, *args, **kwargs)
        finally:
            seen.append((method, began, time.perf_counter()))
    session.call_task = call_task


def record_restic(target, seen):
    real = target.restic.backup

    def backup(*args, **kwargs):
        seen.append(("restic", time.perf_counter(), None))
        return real(*args, **kwargs)
    target.restic.backup = backup


def by_steps(driver, repo, env):
    """The copy's steps one by one; {step: seconds}."""
    service = driver.backups
    volume = driver.find(VOLUME)
    store = service.stores[volume.store]
    engine = service.engines["datastore"]
    target = service.targets.get(volume.options.backup_store)
    times = {}

    start = time.perf_counter()
    staging = target.repository.begin(VOLUME, Clock()())
    outcome = engine.backup(volume, store, staging, None, driver.lock)
    times["snapshot, clone, snapshot removed"] = time.perf_counter() - start
    clone = f"{staging.location}/{outcome.data}"
    access = StoreAccess(store)
    datastore, path = split_ds_path(clone)
    fresh = uuid.uuid4().hex
    start = time.perf_counter()
    engine.disks.set_uuid(clone, fresh)
    info = DiskInfo(datastore, path, fresh, volume.options.capacity_mb)
    mountpoint = os.path.join(access.host_disks.mount_root, ".bench-clone")
    with ExitStack() as mounted:
        folder = mounted.enter_context(access.host_disks.read_only(info, mountpoint))
        times["clone attached, mounted read-only"] = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["restic", f"--repo={repo}", "--no-cache", "backup", "--json", "--host=bench", "."],
                       cwd=folder, env=env, check=True, capture_output=True)
        times["restic backup by hand"] = time.perf_counter() - start
        start = time.perf_counter()
    times["unmounted, detached"] = time.perf_counter() - start
    start = time.perf_counter()
    target.repository.abort(staging)
    times["clone dropped"] = time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot-ms", type=int, default=1000)
    parser.add_argument("--copy-ms", type=int, default=3000)
    parser.add_argument("--remove-ms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-mb", type=int, default=64)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the volume and its clone are mounted through loop devices")
    delays = {"CreateSnapshot_Task": args.snapshot_ms, "CopyVirtualDisk_Task": args.copy_ms,
              "RemoveSnapshot_Task": args.remove_ms}
    with tempfile.TemporaryDirectory(prefix="offsite-vmdk-bench-") as temp:
        work = Path(temp)
        vcsim = simulators.start(simulators.build_harness(), work / "sim", "-delay",
                                 ",".join(f"{m}={ms}" for m, ms in delays.items()))
        driver = None
        try:
            env = plugin_env(vcsim, work / "plugin", "bench", vcsim.host_vm)
            driver = assemble(env, Clock(), "bench-host")
            driver.create(VOLUME, {"Capacity": "256M", "BackupCopy": "offsite@daily"})
            folder = driver.mount(VOLUME, "bench")
            per_file = args.data_mb * 10**6 // args.files

            def write_data():
                for index in range(args.files):
                    with open(os.path.join(folder, f"f{index:04d}.bin"), "wb") as handle:
                        handle.write(os.urandom(per_file))
                subprocess.run(["sync"], check=True)
            target = driver.backups.copies.targets["offsite"]
            target.ready()
            password = Path(target.spec.repository.password_file).read_text().strip()
            restic_env = {"PATH": os.environ.get("PATH", os.defpath), "RESTIC_PASSWORD": password}
            repos = [str(work / f"by-hand-{i}") for i in range(args.repeat)]
            for repo in repos:
                subprocess.run(["restic", f"--repo={repo}", "init"], env=restic_env, check=True, capture_output=True)
            seen = []
            record_tasks(driver.stores["default"].session, seen)
            record_restic(target, seen)

            copies, steps, lifetimes, ordered = [], [], [], []
            for index in range(args.repeat):
                write_data()
                seen.clear()
                start = time.perf_counter()
                [made] = driver.backups.api_copy(VOLUME)
                copies.append(time.perf_counter() - start)
                taken = next(end for method, _, end in seen if method == "CreateSnapshot_Task")
                copy = next((began, end) for method, began, end in seen if method == "CopyVirtualDisk_Task")
                removed = next(end for method, _, end in seen if method == "RemoveSnapshot_Task")
                restic_began = next(began for method, began, _ in seen if method == "restic")
                lifetimes.append((removed - taken, copy[1] - copy[0]))
                ordered.append(restic_began >= removed)
                steps.append(by_steps(driver, repos[index], restic_env))
            copy_time = statistics.median(copies)
            sums = [sum(s.values()) for s in steps]
            step_sum = statistics.median(sums)
            print(f"VMDK volume mounted, {args.data_mb} MB in {args.files} files, 256 MB disk; delays "
                  f"CreateSnapshot {args.snapshot_ms} ms, CopyVirtualDisk {args.copy_ms} ms, RemoveSnapshot "
                  f"{args.remove_ms} ms (median of {args.repeat})")
            print(f"  off-site copy through the plugin: {copy_time:6.2f} s   (runs "
                  + ", ".join(f"{c:.2f}" for c in copies) + f"); last {made.get('BytesAdded', 0) / 1e6:.1f} MB added")
            for name in steps[0]:
                print(f"    step {name:36s} {statistics.median(s[name] for s in steps):6.2f} s")
            runs = ", ".join(f"{s:.2f}" for s in sums)
            print(f"  sum of the steps:                 {step_sum:6.2f} s   (runs {runs}) ratio "
                  f"{copy_time / step_sum:.3f}x (goal <= 1.10x)")
            existed = statistics.median(life for life, _ in lifetimes)
            cloned = statistics.median(clone for _, clone in lifetimes)
            print(f"  snapshot existed {existed:6.2f} s; the clone took {cloned:6.2f} s (the rest is its removal, "
                  f"{args.remove_ms / 1000:.2f} s); restic began after the snapshot was gone: {all(ordered)}")
            listed = driver.backups.api_list(VOLUME)
            print(f"  local backups kept (no local schedule): {len(listed)}; disk store {DS}")
        finally:
            if driver is not None:
                driver.unmount(VOLUME, "bench")
                driver.stop()
            vcsim.release_loop_devices()
            vcsim.stop()


if __name__ == "__main__":
    main()
