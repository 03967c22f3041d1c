"""Fixtures shared by every tier: a driver over real directory stores in a temp folder."""

import os

import pytest

from plugin.assembly import build_driver
from plugin.protocol import create_app
from plugin.settings import from_env


class FakeMounter:
    """Records bind mounts instead of making them (unit tier only)."""

    def __init__(self):
        self.mounted = {}  # target -> source
        self.fail_next_bind = None

    def is_mounted(self, target):
        return target in self.mounted

    def bind(self, source, target):
        if self.fail_next_bind:
            error, self.fail_next_bind = self.fail_next_bind, None
            raise error
        os.makedirs(target, exist_ok=True)
        self.mounted[target] = source

    def mount(self, device, target, options=(), fstype=None):
        self.mounted[target] = device

    def unmount(self, target):
        self.mounted.pop(target, None)


class InlineExecutor:
    """Runs each scheduled backup at once, in the caller's thread."""

    def submit(self, fn, *args):
        fn(*args)


@pytest.fixture
def env(tmp_path):
    """Plugin settings for a data folder and two file stores under tmp_path."""
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "MOUNT_ROOT": str(tmp_path / "mnt"),
        "VOLUME_STORES": f"file://{tmp_path}/fast:default;file://{tmp_path}/slow?uid=1234&gid=4321:slow",
    }


@pytest.fixture
def mounter():
    return FakeMounter()


@pytest.fixture
def make_driver(env, mounter):
    """Build (and start) a driver over ``env``; call again to simulate a plugin restart."""
    started = []

    def make(clock=None, **overrides):
        extra = {"clock": clock, "executor": InlineExecutor(), "scheduler_thread": False} if clock else {}
        driver = build_driver(from_env({**env, **overrides}), mounter=mounter, **extra)
        driver.start()
        started.append(driver)
        return driver
    yield make
    for driver in started:
        driver.stop()


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def client(driver):
    return create_app(driver).test_client()
