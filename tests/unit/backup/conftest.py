"""Shared helpers for the backup unit tests: an injected clock and executors driven by hand."""

import pytest

from tests.fakes import FakeClock, InlineExecutor, ManualExecutor


@pytest.fixture
def make_clock():
    return FakeClock


@pytest.fixture
def manual_executor():
    return ManualExecutor()


@pytest.fixture
def inline_executor():
    return InlineExecutor()
