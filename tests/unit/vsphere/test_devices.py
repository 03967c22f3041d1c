"""Device resolvers and the formatter with fakes (the loop-device path runs in test_store)."""

import subprocess

import pytest

from plugin.errors import ConfigError, MountError
from plugin.stores.devices import (
    LOOP_SETTING,
    ByIdDeviceResolver,
    DiskInfo,
    Formatter,
    LoopDeviceResolver,
    resolver_from_env,
)
from tests.fakes import SleepClock

DISK = DiskInfo("LocalDS_1", "vols/volumes/a/a.vmdk", "6000c29d4a1b2c3d4e5f60718293a4b5", 64)


def test_the_device_is_found_by_its_uuid_once_it_appears(tmp_path):
    clock, rescans = SleepClock(), []
    device = tmp_path / "sdc"
    device.touch()

    def sleep(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:          # the kernel publishes the link meanwhile
            (tmp_path / f"wwn-0x{DISK.uuid}").symlink_to(device)

    resolver = ByIdDeviceResolver(by_id=str(tmp_path), timeout=10, poll=0.5, clock=clock, sleep=sleep,
                                  rescan=lambda: rescans.append(1))
    assert resolver.wait_for_device(DISK) == str(device)
    assert clock.sleeps == [0.5, 0.5, 0.5] and rescans == [1]


def test_a_device_that_never_appears_is_a_clear_error_after_the_bound(tmp_path):
    clock = SleepClock()
    resolver = ByIdDeviceResolver(by_id=str(tmp_path), timeout=2, poll=0.5, clock=clock, sleep=clock.sleep,
                                  rescan=lambda: None)
    with pytest.raises(MountError) as raised:
        resolver.wait_for_device(DISK)
    assert f"wwn-0x{DISK.uuid}" in str(raised.value) and "disk.EnableUUID=TRUE" in str(raised.value)
    assert clock.now == 2


class Runner:
    def __init__(self, *results):
        self.results = list(results)
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return subprocess.CompletedProcess(argv, 0, stdout=result, stderr="")


def test_the_formatter_asks_blkid_and_labels_new_filesystems():
    runner = Runner(MountError("blkid -p ... failed (exit 2): "), "", "ext4\n")
    formatter = Formatter(runner)
    assert not formatter.has_filesystem("/dev/loop3")
    formatter.make_ext4("/dev/loop3", "0123456789abcdef")
    assert formatter.has_filesystem("/dev/loop3")
    assert runner.calls[1] == ["mkfs.ext4", "-q", "-F", "-L", "0123456789abcdef", "/dev/loop3"]


def test_the_loop_resolver_grows_the_flat_file_and_reuses_its_loop_device(tmp_path):
    flat = tmp_path / "vols/volumes/a/a-flat.vmdk"
    flat.parent.mkdir(parents=True)
    flat.touch()
    runner = Runner("/dev/loop7\n", "/dev/loop7\n", "")
    resolver = LoopDeviceResolver({"LocalDS_1": str(tmp_path)}, runner)
    assert resolver.wait_for_device(DISK) == "/dev/loop7"
    assert flat.stat().st_size == 64 * 1024 * 1024        # Capacity=64 as VIC sizes it: 64 x 1024 KiB
    resolver.release(DISK)
    assert runner.calls == [["losetup", "-n", "-O", "NAME", "-j", str(flat)],
                            ["losetup", "-n", "-O", "NAME", "-j", str(flat)],
                            ["losetup", "-d", "/dev/loop7"]]


def test_the_loop_resolver_needs_the_datastore_folder():
    with pytest.raises(MountError) as raised:
        LoopDeviceResolver({"LocalDS_0": "/x"}).wait_for_device(DISK)
    assert "no local folder is configured for datastore 'LocalDS_1'" in str(raised.value)


def test_the_test_only_setting_selects_the_loop_resolver():
    assert isinstance(resolver_from_env({}), ByIdDeviceResolver)
    resolver = resolver_from_env({LOOP_SETTING: '{"LocalDS_1": "/srv/ds1"}'})
    assert isinstance(resolver, LoopDeviceResolver) and resolver.datastore_folders == {"LocalDS_1": "/srv/ds1"}
    with pytest.raises(ConfigError) as raised:
        resolver_from_env({LOOP_SETTING: "LocalDS_1=/srv"})
    assert LOOP_SETTING in str(raised.value)
