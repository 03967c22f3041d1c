"""Serving the series: /metrics over HTTP, the textfile for node_exporter, and settings
that cannot be served turning only their own part off."""

import logging
import os
import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from plugin.ops.metrics import Metrics
from plugin.ops.runtime import Ops
from plugin.ops.serving import TEXTFILE_NAME, TextfileWriter
from plugin.ops.settings import OpsSettings, ops_settings_from_env

from .conftest import LAST_SUCCESS
from .peers import wait_for


def parsed(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}


def test_metrics_over_http(state):
    state.volume("db", schedule="daily", last_success=LAST_SUCCESS, last_result="ok", kept=2)
    ops = Ops(OpsSettings(metrics_address=("127.0.0.1", 0)), state).start()
    try:
        response = requests.get(ops.server.url, timeout=5)
        plain = requests.get(ops.server.url, headers={"Accept-Encoding": "identity"}, timeout=5)
        other = requests.get(ops.server.url.replace("/metrics", "/other"), timeout=5)
    finally:
        ops.stop()
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert plain.text == response.text
    assert (other.status_code, other.text) == (404, "vsphere-volume serves /metrics only\n")
    series = parsed(response.text)
    assert series[("vsphere_volume_backups_kept", (("target", "local"), ("volume", "db")))] == 2
    assert series[("vsphere_volume_mounted_volumes", ())] == 1


def test_the_textfile_holds_the_same_series_written_atomically(state, tmp_path):
    state.volume("db", schedule="daily", last_success=LAST_SUCCESS, last_result="ok", kept=2)
    folder = tmp_path / "textfile"
    folder.mkdir()
    ops = Ops(OpsSettings(textfile_dir=str(folder), textfile_interval=3600), state).start()
    path = folder / TEXTFILE_NAME
    try:
        wait_for(path.exists, "the textfile")
        first = parsed(path.read_text())
        assert first[("vsphere_volume_backup_last_success_timestamp_seconds",
                      (("target", "local"), ("volume", "db")))] == LAST_SUCCESS.timestamp()
        state.volume("db", schedule="daily", last_success=LAST_SUCCESS, last_result="failed", kept=2)
        ops.metrics.backup_finished("local", "scheduled", "failed", 1.0)
        assert ops.textfile.write()
        second = parsed(path.read_text())
        assert second[("vsphere_volume_backup_last_status", (("target", "local"), ("volume", "db")))] == 0
        assert second[("vsphere_volume_backups_total",
                       (("kind", "scheduled"), ("result", "failed"), ("target", "local")))] == 1
    finally:
        ops.stop()
    assert os.listdir(folder) == [TEXTFILE_NAME]   # no temp file left behind
    assert path.stat().st_mode & 0o044 == 0o044, "node_exporter (another user) must be able to read it"


def test_a_textfile_folder_that_is_missing_is_logged_once_and_written_once_it_exists(state, tmp_path, caplog):
    folder = tmp_path / "later"
    writer = TextfileWriter(Metrics().registry, str(folder), interval=3600)
    assert not writer.write() and not writer.write()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"cannot write the metrics textfile {folder}/{TEXTFILE_NAME}: FileNotFoundError" in errors[0].getMessage()
    folder.mkdir()
    assert writer.write() and "vsphere_volume_vsphere_relogins_total 0.0" in (folder / TEXTFILE_NAME).read_text()


def test_an_address_in_use_is_an_error_and_the_rest_starts(state, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ops = Ops(OpsSettings(metrics_address=("127.0.0.1", port), textfile_dir=str(tmp_path)), state).start()
        try:
            assert ops.server is None and ops.textfile is not None
            assert ops.errors == {"METRICS_ADDRESS": f"METRICS_ADDRESS=127.0.0.1:{port}: cannot listen there: "
                                                     "Address already in use; metrics are not served"}
        finally:
            ops.stop()


def test_a_bad_address_setting_does_not_stop_the_rest(state, tmp_path, caplog):
    settings = ops_settings_from_env({"METRICS_ADDRESS": "localhost", "METRICS_TEXTFILE_DIR": str(tmp_path)})
    ops = Ops(settings, state).start()
    try:
        assert ops.server is None
        wait_for((tmp_path / TEXTFILE_NAME).exists, "the textfile")
    finally:
        ops.stop()
    assert "METRICS_ADDRESS: METRICS_ADDRESS='localhost' is not valid: use host:port" in caplog.text
