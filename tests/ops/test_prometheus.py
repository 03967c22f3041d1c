"""A real Prometheus server scrapes the metrics server and evaluates the shipped rules."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugin.ops.runtime import Ops
from plugin.ops.settings import OpsSettings

from .conftest import LAST_SUCCESS
from .peers import Prometheus, wait_for

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "alerts.yml"


@pytest.fixture
def served(state):
    ops = Ops(OpsSettings(metrics_address=("127.0.0.1", 0)), state, tz="UTC").start()
    assert ops.errors == {}
    yield ops
    ops.stop()


@pytest.fixture
def prometheus(tmp_path, served):
    server = Prometheus(tmp_path, [f"127.0.0.1:{served.server.port}"], rule_files=[RULES])
    yield server
    server.stop()


def alert_states(prometheus, name):
    return {(a["labels"].get("volume"), a["state"]) for a in prometheus.alerts() if a["labels"]["alertname"] == name}


def test_prometheus_sees_the_last_success_then_the_failure_alerts_and_removal(state, served, prometheus):
    state.volume("db", schedule="daily@02:00", last_success=LAST_SUCCESS, last_result="ok", kept=3,
                 size=1 << 20, added=4096, last_duration=2.5)
    (labels, value), = wait_for(lambda: prometheus.query(
        'vsphere_volume_backup_last_success_timestamp_seconds{volume="db"}'), "the last-success series of db")
    assert value == LAST_SUCCESS.timestamp()
    assert labels["job"] == "vsphere-volume" and labels["target"] == "local"

    # a backup fails (the store became unavailable): the product records it, then reports it
    state.store("default", available=False, reason="mount", error="cannot mount the store")
    state.volume("db", schedule="daily@02:00", last_success=LAST_SUCCESS, last_result="failed",
                 last_error="volume store default is unavailable", kept=3)
    served.metrics.backup_finished("local", "scheduled", "failed", 0.2)
    wait_for(lambda: prometheus.query(
        'vsphere_volume_backups_total{kind="scheduled",result="failed",target="local"} == 1'),
        "the failure counter at 1")
    states = wait_for(lambda: alert_states(prometheus, "VsphereVolumeBackupFailing"),
                      "VsphereVolumeBackupFailing to be pending or firing")
    assert states <= {("db", "pending"), ("db", "firing")}
    stores = wait_for(lambda: [a for a in prometheus.alerts()
                               if a["labels"]["alertname"] == "VsphereVolumeStoreUnavailable"],
                      "VsphereVolumeStoreUnavailable")
    assert {(a["labels"]["store"], a["labels"]["reason"]) for a in stores} == {("default", "mount")}
    # its newest good backup is days old for a daily schedule: stale too
    assert datetime.now(UTC) > LAST_SUCCESS + timedelta(days=3)
    stale = wait_for(lambda: alert_states(prometheus, "VsphereVolumeBackupStale"), "VsphereVolumeBackupStale")
    assert {volume for volume, _ in stale} == {"db"}


    # a removed volume: the next scrape has no series of it, and Prometheus marks them stale
    state.volume("gone", schedule="off", last_success=LAST_SUCCESS, last_result="ok", kept=1)
    wait_for(lambda: prometheus.query('vsphere_volume_backups_kept{volume="gone"}'), "the series of gone")
    del state.volumes["gone"]
    wait_for(lambda: not prometheus.query('{volume="gone"}'), "the series of gone to end")
    assert prometheus.query('vsphere_volume_backups_kept{volume="db"}')[0][1] == 3
