"""Fixtures shared by every tier: a driver over real directory stores in a temp folder."""

from datetime import UTC, datetime

import pytest

from plugin.assembly import build_driver
from plugin.protocol import create_app
from plugin.settings import from_env

from .fakes import FakeClock, FakeMounter, InlineExecutor


@pytest.fixture
def clock():
    """A FakeClock at Monday 2026-11-23 00:00 UTC."""
    return FakeClock(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))


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
    """Flask's test client of the plugin's app over ``driver``, ``/Backup.*`` included."""
    return create_app(driver, backup_api=driver.backups).test_client()
