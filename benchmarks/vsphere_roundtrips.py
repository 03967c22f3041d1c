"""Benchmark: vCenter round trips and latency of the datastore (VMDK) volume store.

Against govmomi's simulator (tests/vcsim, built by scripts/build-vcsim), with the real
mkfs/mount path through loop devices (needs root):

1. round trips per store operation (SOAP calls by method, plus HTTP file requests):
   open, create, attach (first and repeated), detach, remove, status, and start-up
   discovery of N existing volumes (made in VIC's layout in the simulator's datastore
   folder);
2. create and attach (Mount) latency with the simulator delaying every SOAP method the
   plugin calls by --delay-ms (50), against the sum of the delays of the calls each
   operation cannot do without, as a ratio, with absolute numbers (median of --repeat).

   The delays are set per method (``-delay``), not with ``-delay-all``: the simulator's
   own ``/folder`` file handler looks the datastore up with about five internal
   ``RetrieveProperties`` calls, which ``-delay-all`` would delay too (a quirk of the
   simulator: a metadata PUT would cost 250 ms). The plugin never calls
   ``RetrieveProperties`` (it uses ``RetrievePropertiesEx``).

Prints; it is not a test.

    python benchmarks/vsphere_roundtrips.py [--volumes 1000] [--delay-ms 50] [--repeat 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

# The SOAP calls each operation cannot do without (the HTTP PUT of the metadata is not
# delayed by the simulator and is left out of both sides).
UNAVOIDABLE = {
    "create": ["MakeDirectory (the volume's folder)", "CreateVirtualDisk_Task",
               "RetrievePropertiesEx (its completion)",
               "QueryVirtualDiskUuid (to find the new disk's device: its filesystem is made at create)",
               "RetrievePropertiesEx (the VM's devices: a free SCSI unit)", "ReconfigVM_Task (attach)",
               "RetrievePropertiesEx (its completion)", "RetrievePropertiesEx (the VM's devices: the disk's key)",
               "ReconfigVM_Task (detach)", "RetrievePropertiesEx (its completion)",
               "MoveDatastoreFile_Task (publish the finished folder atomically)",
               "RetrievePropertiesEx (its completion)"],
    "attach": ["RetrievePropertiesEx (who has the disk; free SCSI unit)",
               "ReconfigVM_Task", "RetrievePropertiesEx (its completion)"],   # its UUID: known since create
}
#: Every SOAP method the store and session call: each is delayed in the latency run.
PLUGIN_METHODS = (
    "RetrieveServiceContent", "Login", "Logout", "FindByInventoryPath", "FindByUuid",
    "CreateContainerView", "DestroyView", "RetrievePropertiesEx", "ContinueRetrievePropertiesEx",
    "MakeDirectory", "CreateVirtualDisk_Task", "MoveDatastoreFile_Task", "DeleteDatastoreFile_Task",
    "QueryVirtualDiskUuid", "ReconfigVM_Task", "SearchDatastore_Task", "SearchDatastoreSubFolders_Task",
)
# The least a VIC-layout create could do, without the atomic publish: for comparison
# (the folder, the disk, attach and detach to make its filesystem, the disk's key).
VIC_MINIMUM_CREATE = 5


def start_simulator(binary, folder, *flags):
    argv = [binary, "-user", USER, "-password", PASSWORD, "-dir", str(folder), *flags]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return process, json.loads(process.stdout.readline())


def make_store(info, mount_root, label="bench"):
    settings = VSphereSettings(url=info["url"], user=USER, password=PASSWORD, ca_file=info["ca_file"])
    session = Session(settings)
    host = HostVM(session, Inventory(session), name=info["host_vm"]["name"])
    store = DatastoreStore(parse_store_spec(f"LocalDS_1/{label}:{label}"), session, host,
                           LoopDeviceResolver(info["datastores"]), Mounter(), str(mount_root))
    return store


def counted(store, function):
    with store.session.counting() as trips:
        start = time.perf_counter()
        function()
        elapsed = time.perf_counter() - start
    return trips, elapsed


def describe(trips):
    soap = sum(v for k, v in trips.items() if not k.startswith("http."))
    http = sum(v for k, v in trips.items() if k.startswith("http."))
    detail = ", ".join(f"{k} {v}" for k, v in sorted(trips.items())) or "none"
    return soap, http, detail


def seed_volumes(folder, root, count):
    """``count`` volumes in VIC's layout, written straight into a datastore folder."""
    volumes = Path(folder) / root / "volumes"
    for index in range(count):
        name = f"seeded-{index:05d}"
        meta = volumes / name / "imageMetadata"
        meta.mkdir(parents=True)
        (volumes / name / f"{name}.vmdk").touch()
        (volumes / name / f"{name}-flat.vmdk").touch()
        (meta / "DockerMetaData").write_text(json.dumps(docker_metadata(name, {"Capacity": "1G"})))


def round_trip_table(binary, work, volumes):
    process, info = start_simulator(binary, work / "sim-counts")
    try:
        store = make_store(info, work / "mnt")
        opts = parse_options({"VolumeStore": "bench", "Capacity": "64M"}, ["bench"])
        rows = [("open (first use: login, datastore, host VM)", *counted(store, store.open))]
        rows.append(("create", *counted(store, lambda: store.create("v1", opts, docker_metadata("v1", opts.given)))))
        rows.append(("attach (first; UUID known since the create)", *counted(store, lambda: store.attach("v1"))))
        rows.append(("attach again (mounted)", *counted(store, lambda: store.attach("v1"))))
        rows.append(("status", *counted(store, lambda: store.status("v1"))))
        rows.append(("detach", *counted(store, lambda: store.detach("v1"))))
        rows.append(("attach (steady state)", *counted(store, lambda: store.attach("v1"))))
        store.detach("v1")
        rows.append(("remove", *counted(store, lambda: store.remove("v1"))))
        for count in (0, 10, volumes):
            label = f"disc{count}"
            seed_volumes(info["datastores"]["LocalDS_1"], label, count)
            other = make_store(info, work / "mnt", label)
            other.open()
            trips, elapsed = counted(other, other.discover)
            rows.append((f"discover, {count} volumes", trips, elapsed))
        print("Round trips per operation (SOAP calls / HTTP requests), simulator without delays")
        for name, trips, elapsed in rows:
            soap, http, detail = describe(trips)
            print(f"  {name:48s} {soap:3d} SOAP {http:5d} HTTP  {elapsed * 1000:8.1f} ms   {detail}")
    finally:
        process.terminate()
        process.wait()


def latency_table(binary, work, delay_ms, repeat):
    delays = ",".join(f"{method}={delay_ms}" for method in PLUGIN_METHODS)
    process, info = start_simulator(binary, work / "sim-delay", "-delay", delays)
    try:
        store = make_store(info, work / "mnt")
        store.open()
        opts = parse_options({"VolumeStore": "bench", "Capacity": "64M"}, ["bench"])
        store.create("warm", opts, docker_metadata("warm", opts.given))
        store.attach("warm")
        store.detach("warm")
        samples = {"create": [], "attach": []}
        calls = {}
        for index in range(repeat):
            name = f"lat{index}"
            metadata = docker_metadata(name, opts.given)
            trips, elapsed = counted(store, lambda name=name, metadata=metadata: store.create(name, opts, metadata))
            samples["create"].append(elapsed)
            calls["create"] = describe(trips)[0]
            trips, elapsed = counted(store, lambda name=name: store.attach(name))
            samples["attach"].append(elapsed)
            calls["attach"] = describe(trips)[0]
            store.detach(name)
        print(f"\nLatency with every SOAP call the plugin makes delayed {delay_ms} ms (median of {repeat})")
        for operation, values in samples.items():
            median = statistics.median(values) * 1000
            floor = len(UNAVOIDABLE[operation]) * delay_ms
            print(f"  {operation:7s} {median:7.1f} ms; {calls[operation]} SOAP calls; unavoidable "
                  f"{len(UNAVOIDABLE[operation])} x {delay_ms} ms = {floor} ms; ratio {median / floor:.2f}")
            for call in UNAVOIDABLE[operation]:
                print(f"            - {call}")
        vic_floor = VIC_MINIMUM_CREATE * delay_ms
        print(f"  create against a VIC-style create without the atomic publish "
              f"({VIC_MINIMUM_CREATE} calls, {vic_floor} ms): ratio "
              f"{statistics.median(samples['create']) * 1000 / vic_floor:.2f}")
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=1000, help="volumes for the discovery run")
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: attach uses loop devices, mkfs.ext4 and mount")
    binary = subprocess.run([str(REPO / "scripts" / "build-vcsim")], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory(prefix="vsphere-bench-") as temp:
        work = Path(temp)
        (work / "mnt").mkdir()
        round_trip_table(binary, work, args.volumes)
        latency_table(binary, work, args.delay_ms, args.repeat)


if __name__ == "__main__":
    main()
