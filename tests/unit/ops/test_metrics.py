"""The series: event counters, and the state read at scrape time (rendered, parsed back)."""

from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plugin.errors import VSphereUnavailable
from plugin.ops.metrics import Metrics
from plugin.ops.stale import DeadlineCache
from plugin.ops.state import OpsState, StoreStatus, VolumeBackup, reason_of

LAST = datetime(2026, 11, 23, 2, 0, 7, tzinfo=UTC)


def samples(metrics):
    """{(name, frozenset(labels)): value} of a render."""
    return samples_of(metrics.render())


def value(metrics, name, **labels):
    return samples(metrics).get((name, frozenset(labels.items())))


class State:
    def __init__(self, state):
        self.state = state

    def __call__(self):
        return self.state


@pytest.fixture
def state():
    return State(OpsState(
        volumes=(VolumeBackup("db", schedule="daily@02:00", last_success=LAST, last_duration=12.5, size=10**9,
                              added=4096, last_result="failed", last_error="no space", kept=7,
                              verified_at=LAST, verification_ok=True),
                 VolumeBackup("web", schedule="off")),
        stores=(StoreStatus("default"), StoreStatus("ds1", False, "unreachable", "vCenter did not answer")),
        queued=3, running=2, mounted=5))


def test_state_series(state):
    metrics = Metrics(state)
    db = {"volume": "db", "target": "local"}
    assert value(metrics, "vsphere_volume_backup_last_success_timestamp_seconds", **db) == LAST.timestamp()
    assert value(metrics, "vsphere_volume_backup_last_status", **db) == 0
    assert value(metrics, "vsphere_volume_backup_last_duration_seconds", **db) == 12.5
    assert value(metrics, "vsphere_volume_backup_size_bytes", **db) == 10**9
    assert value(metrics, "vsphere_volume_backup_added_bytes", **db) == 4096
    assert value(metrics, "vsphere_volume_backups_kept", **db) == 7
    assert value(metrics, "vsphere_volume_backup_deadline_timestamp_seconds", **db) == \
        datetime(2026, 11, 25, 3, 0, tzinfo=UTC).timestamp()
    assert value(metrics, "vsphere_volume_verification_last_timestamp_seconds", **db) == LAST.timestamp()
    assert value(metrics, "vsphere_volume_verification_last_status", **db) == 1
    assert value(metrics, "vsphere_volume_store_up", store="default", reason="") == 1
    assert value(metrics, "vsphere_volume_store_up", store="ds1", reason="unreachable") == 0
    assert value(metrics, "vsphere_volume_scheduler_queued") == 3
    assert value(metrics, "vsphere_volume_scheduler_running") == 2
    assert value(metrics, "vsphere_volume_mounted_volumes") == 5
    assert value(metrics, "vsphere_volume_volumes") == 2
    web = {"volume": "web", "target": "local"}
    shown = samples(metrics)
    assert {name for name, labels in shown if labels == frozenset(web.items())} == {"vsphere_volume_backups_kept"}


def test_a_removed_volume_is_gone_from_the_next_scrape(state):
    metrics = Metrics(state)
    assert value(metrics, "vsphere_volume_backups_kept", volume="db", target="local") == 7
    state.state = OpsState(volumes=state.state.volumes[1:])
    shown = samples(metrics)
    assert not [key for key in shown if ("volume", "db") in key[1]]
    assert value(metrics, "vsphere_volume_volumes") == 1


def test_event_counters_and_histograms():
    metrics = Metrics()
    # present before the first event, so that increase() sees the first failure
    assert value(metrics, "vsphere_volume_backups_total", target="local", kind="final", result="failed") == 0
    metrics.backup_finished("local", "scheduled", "ok", 12.0, added=1000)
    metrics.backup_finished("local", "scheduled", "failed", 3.0)
    metrics.backup_finished("local", "manual", "ok", 4000.0, added=24)
    metrics.restore_finished("ok")
    metrics.verification_finished("local", "failed")
    metrics.plugin_call("VolumeDriver.Get", "ok", 0.0008)
    metrics.plugin_call("VolumeDriver.Mount", "error", 2.0)
    metrics.vsphere_call("RetrievePropertiesEx")
    metrics.vsphere_call("RetrievePropertiesEx")
    metrics.vsphere_fault("NotAuthenticated")
    metrics.relogin()
    assert value(metrics, "vsphere_volume_backups_total", target="local", kind="scheduled", result="ok") == 1
    assert value(metrics, "vsphere_volume_backups_total", target="local", kind="scheduled", result="failed") == 1
    assert value(metrics, "vsphere_volume_backup_duration_seconds_count", target="local", kind="scheduled") == 1
    assert value(metrics, "vsphere_volume_backup_duration_seconds_bucket", target="local", kind="manual",
                 le="3600.0") == 0
    assert value(metrics, "vsphere_volume_backup_duration_seconds_bucket", target="local", kind="manual",
                 le="7200.0") == 1
    assert value(metrics, "vsphere_volume_backup_written_bytes_total", target="local") == 1024
    assert value(metrics, "vsphere_volume_restores_total", result="ok") == 1
    assert value(metrics, "vsphere_volume_restores_total", result="failed") == 0
    assert value(metrics, "vsphere_volume_verifications_total", target="local", result="failed") == 1
    assert value(metrics, "vsphere_volume_plugin_calls_total", endpoint="VolumeDriver.Mount", result="error") == 1
    assert value(metrics, "vsphere_volume_plugin_call_duration_seconds_bucket", endpoint="VolumeDriver.Get",
                 le="0.001") == 1
    assert value(metrics, "vsphere_volume_vsphere_calls_total", method="RetrievePropertiesEx") == 2
    assert value(metrics, "vsphere_volume_vsphere_faults_total", fault="NotAuthenticated") == 1
    assert value(metrics, "vsphere_volume_vsphere_relogins_total") == 1


def test_unknown_kinds_and_results_are_refused():
    metrics = Metrics()
    with pytest.raises(ValueError, match="backup kind 'schedule' is not one of scheduled, manual"):
        metrics.backup_finished("local", "schedule", "ok", 1)
    with pytest.raises(ValueError, match="backup result 'broken'"):
        metrics.backup_finished("local", "manual", "broken", 1)
    with pytest.raises(ValueError, match="call result"):
        metrics.plugin_call("VolumeDriver.Get", "failed", 1)
    with pytest.raises(ValueError, match="last_result 'bad'"):
        VolumeBackup("v", last_result="bad")


def test_backups_and_verifications_tell_the_watcher():
    told = []
    metrics = Metrics(on_change=lambda: told.append(1))
    metrics.backup_finished("local", "manual", "failed", 1)
    metrics.verification_finished("local", "ok")
    metrics.plugin_call("VolumeDriver.Get", "ok", 0.001)
    assert told == [1, 1]


def test_registry_is_the_metrics_own():
    from prometheus_client import REGISTRY
    Metrics().relogin()
    assert REGISTRY.get_sample_value("vsphere_volume_vsphere_relogins_total") is None


@pytest.mark.parametrize("error, reason", [
    (VSphereUnavailable("vCenter at x did not answer"), "unreachable"),
    (RuntimeError("boom"), "error"),
    ("Volume store ds1 (datastore/x) is on a vSphere datastore, but no vCenter is configured",
     "volume-store-ds1-datastore-x-is"),
    ("", ""),
    ("!!!", "error"),
])
def test_reasons_are_short(error, reason):
    assert reason_of(error) == reason


class CountingDeadlines(DeadlineCache):
    def __init__(self):
        super().__init__()
        self.asked = 0

    def deadline(self, entry):
        self.asked += 1
        return super().deadline(entry)


def test_render_is_the_registrys_text_and_formats_the_state_only_when_it_changed(state):
    deadlines = CountingDeadlines()
    metrics = Metrics(state, deadlines)
    first = metrics.render()
    assert first == generate_latest(metrics.registry)   # the textfile writes the registry
    asked = deadlines.asked                              # each volume's, in render and in the registry's text
    assert asked == 4
    metrics.relogin()
    second = metrics.render()
    assert deadlines.asked == asked                      # the same state: its text is reused
    assert b"vsphere_volume_vsphere_relogins_total 1.0" in second
    state.state = OpsState(volumes=(VolumeBackup("db", schedule="daily@02:00", last_result="ok", kept=8),),
                           stores=state.state.stores)
    third = samples_of(metrics.render())
    assert third[("vsphere_volume_backups_kept", frozenset({"volume": "db", "target": "local"}.items()))] == 8
    assert deadlines.asked == asked + 1


def samples_of(text):
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_after_one_volume_changed_only_it_is_formatted_again_and_the_text_is_the_same(state, monkeypatch):
    from dataclasses import replace

    from plugin.ops.metrics import StateText
    metrics = Metrics(state)
    metrics.render()
    formatted = []
    original = StateText._format

    def counting(self, entry, deadline):
        formatted.append(entry.volume)
        return original(self, entry, deadline)
    monkeypatch.setattr(StateText, "_format", counting)
    db, web = state.state.volumes
    state.state = replace(state.state, volumes=(replace(db, kept=8), web), queued=0)
    text = metrics.render()
    assert formatted == ["db"]
    assert text == generate_latest(metrics.registry)          # what prometheus_client itself formats
    assert samples_of(text)[("vsphere_volume_backups_kept", frozenset({"volume": "db", "target": "local"}.items()))] \
        == 8
    state.state = replace(state.state, volumes=(web,))
    assert ("vsphere_volume_backups_kept", frozenset({"volume": "db", "target": "local"}.items())) \
        not in samples_of(metrics.render())
    assert formatted == ["db"]
