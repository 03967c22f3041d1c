"""This host's side of a VMDK volume: finding its block device, making its filesystem.

Small injectable pieces, so that ``stores.vmdk.DatastoreStore`` runs the real
mkfs/mount path in tests and in production alike (mounting itself is
``plugin.mounter.Mounter``'s job):

- ``run(argv)``: the subprocess runner (stdout/stderr captured; MountError on failure).
- ``Formatter``: "does this device hold a filesystem" (blkid) and ``mkfs.ext4`` with a label.
- a device resolver, mapping an attached disk (``DiskInfo``) to a block device:
  ``wait_for_device(disk) -> "/dev/..."`` with a bounded wait, and ``release(disk)``
  after the disk was detached from the VM.

  * ``ByIdDeviceResolver`` (production): the guest sees a disk of a VM with
    ``disk.EnableUUID=TRUE`` as ``/dev/disk/by-id/wwn-0x<uuid>`` (and ``scsi-3<uuid>``),
    ``<uuid>`` being the 32 hex digits of the VMDK's UUID.
  * ``LoopDeviceResolver`` (TEST ONLY): the vCenter simulator attaches nothing to any
    kernel; this resolver maps the disk's ``-flat.vmdk`` in the simulator's local
    datastore folder, grown to the volume's capacity (as VIC sizes disks: Capacity x
    1024 KiB; the simulator makes the file empty), to a loop device. The filesystem
    is then really made, mounted and written, and its bytes are in the datastore file.
"""

import json
import logging
import os
import time
from dataclasses import dataclass

from .. import commands
from ..errors import ConfigError, MountError

log = logging.getLogger(__name__)


COMMAND_TIMEOUT = 300   # seconds for blkid, mkfs, e2label, fsfreeze, losetup


def run(argv):
    """Run ``argv``; return the CompletedProcess, or raise MountError with its stderr."""
    return commands.run(argv, timeout=COMMAND_TIMEOUT)


@dataclass(frozen=True)
class DiskInfo:
    """An attached VMDK, as the resolvers need it."""

    datastore: str          # datastore name
    path: str               # path of the .vmdk on the datastore
    uuid: str               # the disk's UUID, 32 lower-case hex digits ("" if unknown)
    capacity_mb: int        # the volume's Capacity in MB; VIC's MB on disk is a MiB

    @property
    def ds_path(self):
        return f"[{self.datastore}] {self.path}"

    @property
    def capacity_bytes(self):
        """The disk's size as VIC makes it: Capacity x 1024 KiB."""
        return self.capacity_mb * 1024 * 1024


class Formatter:
    """Filesystem signatures and ext4 creation on block devices (via ``runner``)."""

    def __init__(self, runner=run):
        self.runner = runner

    def has_filesystem(self, device):
        """True when ``device`` holds any filesystem signature (blkid exit 2: none)."""
        try:
            self.runner(["blkid", "-p", "-o", "value", "-s", "TYPE", device])
        except MountError as err:
            if "(exit 2)" in str(err):
                return False
            raise
        return True

    def make_ext4(self, device, label):
        """Make an ext4 filesystem labelled ``label`` on ``device``."""
        self.runner(["mkfs.ext4", "-q", "-F", "-L", label, device])


def rescan_scsi_hosts(sysfs="/sys/class/scsi_host"):
    """Ask every SCSI host to scan for new devices (best effort)."""
    try:
        hosts = os.listdir(sysfs)
    except OSError:
        return
    for host in hosts:
        try:
            with open(os.path.join(sysfs, host, "scan"), "w", encoding="ascii") as handle:
                handle.write("- - -")
        except OSError:
            continue


class ByIdDeviceResolver:
    """Production: find the disk's block device by its UUID in ``/dev/disk/by-id``."""

    def __init__(self, by_id="/dev/disk/by-id", timeout=30.0, poll=0.25,
                 clock=time.monotonic, sleep=time.sleep, rescan=rescan_scsi_hosts):
        self.by_id = by_id
        self.timeout = timeout
        self.poll = poll
        self._clock = clock
        self._sleep = sleep
        self._rescan = rescan

    def _names(self, disk):
        return [f"wwn-0x{disk.uuid}", f"scsi-3{disk.uuid}"]

    def wait_for_device(self, disk):
        if not disk.uuid:
            raise MountError(f"the UUID of {disk.ds_path} is unknown: its device cannot be found")
        deadline = self._clock() + self.timeout
        rescanned = False
        while True:
            for name in self._names(disk):
                link = os.path.join(self.by_id, name)
                if os.path.exists(link):
                    return os.path.realpath(link)
            if not rescanned:
                self._rescan()
                rescanned = True
            if self._clock() >= deadline:
                raise MountError(
                    f"{disk.ds_path} is attached but no block device with its UUID "
                    f"({self._names(disk)[0]}) appeared in {self.by_id} within {self.timeout:g}s: "
                    "check that the VM has disk.EnableUUID=TRUE and uses the pvscsi driver")
            self._sleep(self.poll)

    def release(self, disk):
        """Nothing to do: the device goes away with the detach."""


class LoopDeviceResolver:
    """TEST ONLY: the simulated disk's ``-flat.vmdk`` through a loop device.

    ``datastore_folders`` maps datastore names to the local folders that hold their
    files (the simulator's ``datastores`` map), as the plugin sees them.
    """

    def __init__(self, datastore_folders, runner=run):
        self.datastore_folders = dict(datastore_folders)
        self.runner = runner

    def flat_file(self, disk):
        """The local path of the disk's data file."""
        folder = self.datastore_folders.get(disk.datastore)
        if folder is None:
            raise MountError(
                f"no local folder is configured for datastore {disk.datastore!r} "
                f"(loop device test mode knows {', '.join(sorted(self.datastore_folders)) or 'none'})")
        base = disk.path.removesuffix(".vmdk")
        return os.path.join(folder, f"{base}-flat.vmdk")

    def _loops(self, flat):
        output = self.runner(["losetup", "-n", "-O", "NAME", "-j", flat]).stdout
        return [line.strip() for line in output.splitlines() if line.strip()]

    def wait_for_device(self, disk):
        flat = self.flat_file(disk)
        if not os.path.exists(flat):
            raise MountError(f"{disk.ds_path}: its data file {flat} does not exist")
        if os.path.getsize(flat) < disk.capacity_bytes:
            os.truncate(flat, disk.capacity_bytes)   # the simulator makes it empty
        existing = self._loops(flat)
        if existing:
            return existing[0]
        return self.runner(["losetup", "--find", "--show", flat]).stdout.strip()

    def release(self, disk):
        flat = self.flat_file(disk)
        if not os.path.exists(flat):
            return
        for device in self._loops(flat):
            self.runner(["losetup", "-d", device])


#: The test-only plugin setting that switches on LoopDeviceResolver.
LOOP_SETTING = "VSPHERE_TEST_ONLY_LOOP_DATASTORES"


def resolver_from_env(mapping=None, **by_id_options):
    """The device resolver the plugin settings ask for.

    ``VSPHERE_TEST_ONLY_LOOP_DATASTORES`` (off by default, for tests against the
    simulator only): a JSON object ``{"datastore name": "/local/folder"}``; when set,
    LoopDeviceResolver is used. Otherwise ByIdDeviceResolver.
    """
    mapping = os.environ if mapping is None else mapping
    text = str(mapping.get(LOOP_SETTING, "")).strip()
    if not text:
        return ByIdDeviceResolver(**by_id_options)
    try:
        folders = json.loads(text)
    except ValueError:
        folders = None
    if not isinstance(folders, dict) or not all(isinstance(v, str) and v.startswith("/")
                                                for v in folders.values()):
        raise ConfigError(
            f"{LOOP_SETTING} must be a JSON object mapping datastore names to absolute folders, "
            'such as {"LocalDS_0": "/tmp/vcsim/LocalDS_0"}')
    log.warning("%s is set: volumes are attached through loop devices over local datastore "
                "folders (a test mode for the vCenter simulator, never for production)", LOOP_SETTING)
    return LoopDeviceResolver(folders)
