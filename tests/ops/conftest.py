"""Fixtures of the operations tests: a state the test changes, the real peers."""

from datetime import UTC, datetime

import pytest

from plugin.ops.state import OpsState, StoreStatus, VolumeBackup

from .peers import Receiver

LAST_SUCCESS = datetime(2026, 11, 23, 2, 0, 7, tzinfo=UTC)


class ChangingState:
    """The product's state callable, as a test changes it: ``volume(name, **fields)``
    replaces one volume's status; ``store(name, ...)`` one store's."""

    def __init__(self):
        self.volumes = {}
        self.stores = {"default": StoreStatus("default")}

    def volume(self, name, **fields):
        self.volumes[name] = VolumeBackup(name, **fields)

    def store(self, name, available=True, reason="", error=""):
        self.stores[name] = StoreStatus(name, available, reason, error)

    def __call__(self):
        return OpsState(volumes=tuple(self.volumes.values()), stores=tuple(self.stores.values()), mounted=1)


@pytest.fixture
def state():
    return ChangingState()


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.stop()
