"""A volume's backup health in one word, and what it rests on (ops.health)."""

from datetime import UTC, datetime, timedelta

import pytest

from plugin.ops.health import backup_health
from plugin.ops.state import VolumeBackup

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD = NOW - timedelta(hours=3, minutes=5)


@pytest.mark.parametrize("fields, deadline, state", [
    ({"schedule": "daily", "last_success": GOOD, "last_result": "ok"}, NOW + timedelta(days=1), "ok"),
    ({"schedule": "daily", "last_success": GOOD, "last_result": "skipped"}, NOW + timedelta(days=1), "ok"),
    ({"schedule": "daily", "last_success": GOOD, "last_result": "failed", "last_error": "full"}, None, "failed"),
    ({"schedule": "daily", "last_success": GOOD, "last_result": "ok"}, NOW - timedelta(seconds=1), "stale"),
    ({"schedule": "daily", "last_success": GOOD, "verification_ok": False}, NOW + timedelta(days=1),
     "verification-failed"),
    ({"schedule": "daily"}, NOW + timedelta(hours=1), "never"),
    ({"schedule": "on-unmount"}, None, "never"),
    ({"schedule": "off", "last_success": GOOD, "last_result": "ok"}, None, "off"),
    ({"schedule": "off", "last_success": GOOD, "last_result": "failed"}, None, "failed"),
])
def test_the_word_for_each_case(fields, deadline, state):
    assert backup_health(VolumeBackup("v", **fields), NOW, deadline)["State"] == state


def test_what_it_rests_on():
    entry = VolumeBackup("v", schedule="daily", last_success=GOOD, last_result="failed", last_error="the store is full",
                         kept=4, verified_at=GOOD, verification_ok=True)
    assert backup_health(entry, NOW, NOW + timedelta(hours=2)) == {
        "Target": "local", "Schedule": "daily", "State": "failed", "LastSuccess": "2026-11-25T08:55:00Z",
        "AgeSeconds": 3 * 3600 + 300,
        "LastResult": "failed", "LastError": "the store is full", "StaleAt": "2026-11-25T14:00:00Z", "Backups": 4,
        "Verification": "passed 2026-11-25T08:55:00Z"}
    never = backup_health(VolumeBackup("v", schedule="daily"), NOW, None)
    assert (never["LastSuccess"], never["AgeSeconds"], never["LastError"]) == (None, None, "")
