"""Operations through the real Docker engine: the plugin enabled with METRICS_ADDRESS, a
real Prometheus (Debian's, started here on loopback with the shipped alert rules)
scraping it, a webhook receiver getting its notifications (NOTIFY_URLS_FILE in the
plugin's data folder), node_exporter's textfile written through the plugin's mount, a
datastore store made unavailable (vCenter cut off) and available again, and an off-site
copy to the embedded target with that target's verification failing (a pack damaged)."""

import collections
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.ops.peers import Prometheus, Receiver, free_port

from ..waiting import wait_until
from .conftest import FOLDER_STORES, Plugin
from .dockercli import docker
from .project import PLUGIN_DATA_DIR, REPO_ROOT
from .tcpproxy import TcpRelay
from .test_vmdk_volumes import wait_for_log
from .user import backups, inspect, run_on, vv

STORES = f"{FOLDER_STORES};LocalDS_0/volumes/monitored:ds0"
RULES = REPO_ROOT / "monitoring" / "alerts.yml"
TEXTFILE_IN_PLUGIN = "/var/lib/vsphere-volume-metrics"        # config.json's mount metrics-textfile
TOKEN = "hook-token-7f3a9c1e"                                  # the webhook URL's secret
DEADLINE = 120        # seconds a condition may take to show (a hang guard, not a figure)
BODY_KEYS = {"source", "host", "event", "cause", "volume", "store", "target", "time", "error", "count"}


@dataclass
class Monitored:
    plugin: Plugin
    relay: TcpRelay           # between the plugin and vCenter: stop() cuts vCenter off
    receiver: Receiver        # the webhook
    prometheus: Prometheus
    metrics_url: str
    textfiles: Path           # the host folder node_exporter would read

    def query(self, expression):
        return self.prometheus.query(expression)

    def value(self, expression):
        """The one value of an instant query, once Prometheus has one (a comparison in the
        expression, ``x == 1``, waits for that value)."""
        [(_, value)] = wait_until(lambda: self.query(expression), DEADLINE, f"Prometheus to answer {expression}")
        return value

    def alerting(self, alert, **labels):
        """The states of ``alert`` for ``labels``, once it is pending or firing."""
        def states():
            return {a["state"] for a in self.prometheus.alerts() if a["labels"]["alertname"] == alert
                    and all(a["labels"].get(k) == v for k, v in labels.items())}
        return wait_until(states, DEADLINE, f"{alert} {labels} to be pending or firing")

    def notifications(self, count):
        """The JSON bodies of the first ``count`` notifications, once that many arrived."""
        self.receiver.wait_count(count, timeout=DEADLINE)
        return self.receiver.json_bodies()


@pytest.fixture
def monitored(plugin, tmp_path):
    """The plugin with metrics on a free loopback port, notifications to a receiver, the
    textfile in a folder of this test, and the datastore store ds0 reached through a
    relay; Prometheus scraping it every second. The session's settings again after."""
    host, port = plugin.simulator.host_port.split(":")
    relay = TcpRelay(host, int(port)).start()
    receiver = Receiver()
    (Path(plugin.state_dir) / "notify-urls").write_text(
        f"# the team's webhook (its token is a secret)\n{receiver.url('/vsphere-volume?token=' + TOKEN)}\n")
    textfiles = tmp_path / "textfile-collector"
    textfiles.mkdir()
    address = f"127.0.0.1:{free_port()}"
    url = plugin.settings["VSPHERE_URL"]
    prometheus = None
    try:
        plugin.configure(VOLUME_STORES=STORES, VSPHERE_URL=url.replace(plugin.simulator.host_port, relay.address),
                         STORE_REFRESH_INTERVAL="2", METRICS_ADDRESS=address,
                         NOTIFY_URLS_FILE=f"{PLUGIN_DATA_DIR}/notify-urls",
                         METRICS_TEXTFILE_DIR=TEXTFILE_IN_PLUGIN, METRICS_TEXTFILE_INTERVAL="5",
                         **{"metrics-textfile.source": str(textfiles)})
        prometheus = Prometheus(tmp_path, [address], rule_files=[RULES])
        yield Monitored(plugin, relay, receiver, prometheus, f"http://{address}/metrics", textfiles)
    finally:
        if prometheus is not None:
            prometheus.stop()
        plugin.configure(VOLUME_STORES=FOLDER_STORES, VSPHERE_URL=url, STORE_REFRESH_INTERVAL="30",
                         METRICS_ADDRESS="", NOTIFY_URLS_FILE="", METRICS_TEXTFILE_DIR="",
                         METRICS_TEXTFILE_INTERVAL="30", **{"metrics-textfile.source": plugin.state_dir})
        receiver.stop()
        relay.stop()


def health_rows(plugin, name):
    """The status table's rows of volume ``name`` (one per backup target), its JSON
    Health, and the whole text."""
    _, out, _ = vv(plugin, "status")
    rows = [line for line in out.splitlines() if line.split()[:1] == [name]]
    [volume] = [v for v in json.loads(vv(plugin, "status", "--json")[1])["Volumes"] if v["Name"] == name]
    return rows, volume["Health"], out


def health_row(plugin, name):
    """The status table's one row of volume ``name``, its JSON Health, the whole text."""
    [row], health, out = health_rows(plugin, name)
    return row, health, out


def test_prometheus_sees_the_backup_then_the_failure_alerts_and_one_notification_each_way(
        monitored, volume, test_image):
    plugin = monitored.plugin
    name = volume("watched")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB",
           "--opt", "Backup=daily", name)
    run_on(test_image, name, "echo 'version 1' > /data/doc && sync")
    vv(plugin, "backup", name)
    [backup] = backups(plugin, name)
    series = f'{{volume="{name}",target="local"}}'

    # Prometheus has the backup's time as the volume's last success
    assert monitored.value(f"vsphere_volume_backup_last_success_timestamp_seconds{series}") \
        == datetime.fromisoformat(backup["Created"]).timestamp()
    assert monitored.value(f"vsphere_volume_backup_last_status{series}") == 1
    assert monitored.value('vsphere_volume_backups_total{kind="manual",result="ok",target="local"} == 1') == 1
    assert monitored.value('vsphere_volume_store_up{store="ds0",reason=""}') == 1
    assert monitored.value('vsphere_volume_plugin_calls_total{endpoint="VolumeDriver.Create",result="ok"} >= 1')
    assert monitored.value('vsphere_volume_vsphere_calls_total{method="CopyVirtualDisk_Task"} >= 1')
    # node_exporter's folder gets the same series
    textfile = monitored.textfiles / "vsphere_volume.prom"
    wait_until(lambda: textfile.is_file() and f'vsphere_volume_backups_kept{{target="local",volume="{name}"}} 1.0'
               in textfile.read_text(), DEADLINE, "the textfile with the volume's series")
    row, [health], out = health_row(plugin, name)
    assert row.split()[5:7] == ["ok", backup["Created"][:19] + "Z"] and health["State"] == "ok"
    assert f"metrics at {monitored.metrics_url}; textfile {TEXTFILE_IN_PLUGIN}/vsphere_volume.prom; " \
           "notifications to 1 destination" in out

    # vCenter cut off: the store becomes unavailable, the backups fail, twice
    monitored.relay.stop()
    for attempt in (1, 2):
        code, _, err = vv(plugin, "backup", name, check=False)
        assert code == 1 and "cannot be reached" in err, err
        assert monitored.value(f'vsphere_volume_backups_total{{kind="manual",result="failed",target="local"}} '
                               f'== {attempt}') == attempt
    assert monitored.value(f"vsphere_volume_backup_last_status{series} == 0") == 0
    assert monitored.alerting("VsphereVolumeBackupFailing", volume=name) <= {"pending", "firing"}
    assert monitored.alerting("VsphereVolumeStoreUnavailable", store="ds0", reason="unreachable") \
        <= {"pending", "firing"}
    row, [health], _ = health_row(plugin, name)
    assert row.split()[5] == "failed" and "cannot be reached" in row and "cannot be reached" in health["LastError"]
    assert health["LastSuccess"] == backup["Created"][:19] + "Z"          # the newest good backup stays
    failures = monitored.notifications(2)

    # vCenter back: the backup works again
    monitored.relay.start()
    vv(plugin, "backup", name)
    assert monitored.value(f"vsphere_volume_backup_last_status{series} == 1") == 1
    bodies = monitored.notifications(4)
    assert monitored.value('vsphere_volume_notifications_total{result="sent"} == 4') == len(bodies) == 4
    seen = collections.Counter((b["event"], b["cause"], b["volume"] or b["store"]) for b in bodies)
    assert seen == {("backup-failed", "backup-failed", name): 1, ("store-unavailable", "store-unavailable", "ds0"): 1,
                    ("recovered", "backup-failed", name): 1, ("recovered", "store-unavailable", "ds0"): 1}
    assert bodies[:2] == failures                                            # the failures first, then recoveries
    for body in bodies:
        assert set(body) == BODY_KEYS and body["source"] == "vsphere-volume" and body["count"] == 1
        assert datetime.fromisoformat(body["time"]).tzinfo is not None and body["time"].endswith("Z")
        text = json.dumps(body)
        assert TOKEN not in text and plugin.simulator.password not in text
        if body["event"] == "recovered":
            assert body["error"] == ""
        elif body["volume"] is not None:
            assert (body["store"], body["target"]) == (None, "local") and "cannot be reached" in body["error"]
        else:
            assert (body["volume"], body["target"]) == (None, None) and "cannot be reached" in body["error"]
    assert not [line for line in plugin.log_lines() if TOKEN in line]

    # An off-site copy (to the embedded target offsite) is the volume's health on that target
    copied = volume("watched-copy")
    docker("volume", "create", "-d", plugin.name, "--opt", "BackupCopy=offsite@daily", copied)
    run_on(test_image, copied, "echo 'copied off-site' > /data/doc && sync")
    vv(plugin, "copy", copied)
    last = inspect(copied)["Status"]["Backup"]["Copies"]["offsite"]["LastCopy"]
    offsite = f'{{volume="{copied}",target="offsite"}}'
    assert monitored.value(f"vsphere_volume_backup_last_success_timestamp_seconds{offsite}") \
        == datetime.fromisoformat(last["Time"]).timestamp()
    assert monitored.value(f"vsphere_volume_backup_last_status{offsite}") == 1
    assert monitored.value(f"vsphere_volume_backups_kept{offsite}") == 1
    assert monitored.value('vsphere_volume_backups_total{kind="manual",result="ok",target="offsite"} == 1') == 1
    rows, health, _ = health_rows(plugin, copied)
    assert [(h["Target"], h["State"]) for h in health] == [("local", "off"), ("offsite", "ok")]
    assert [row.split()[5:7] for row in rows] == [["local", "off"], ["offsite", "ok"]]     # a TARGET column

    # that target damaged: its verification fails, for every volume copied there (one notification:
    # the target's)
    pack = max((p for p in (Path(plugin.state_dir) / "offsite" / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    original = pack.read_bytes()
    try:
        pack.write_bytes(original[:len(original) // 2] + bytes(64) + original[len(original) // 2 + 64:])
        code, _, err = vv(plugin, "verify", "offsite", "--read", "100%", check=False)
        assert code == 1 and "verification of backup target offsite damaged" in err
        assert monitored.value(f"vsphere_volume_verification_last_status{offsite}") == 0
    finally:
        pack.write_bytes(original)
    assert monitored.value('vsphere_volume_verifications_total{target="offsite",result="failed"} == 1') == 1
    assert monitored.alerting("VsphereVolumeVerificationFailed", volume=copied, target="offsite") \
        <= {"pending", "firing"}
    [damaged] = monitored.notifications(5)[4:]
    assert (damaged["event"], damaged["volume"], damaged["target"]) == ("verification-failed", None, "offsite")
    assert "damaged" in damaged["error"]
    vv(plugin, "verify", "offsite", "--read", "100%")                      # whole again
    assert monitored.value(f"vsphere_volume_verification_last_status{offsite} == 1") == 1
    [recovered] = monitored.notifications(6)[5:]
    assert (recovered["event"], recovered["cause"], recovered["target"]) == \
        ("recovered", "verification-failed", "offsite")


def test_a_bad_monitoring_setting_leaves_the_plugin_serving_and_status_says_why(plugin, volume, test_image):
    try:
        plugin.configure(METRICS_ADDRESS="metrics.example", NOTIFY_URLS_FILE=f"{PLUGIN_DATA_DIR}/no-such-file")
        name = volume("served")
        docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", name)
        assert run_on(test_image, name, "echo works > /data/f && cat /data/f") == "works\n"
        _, out, _ = vv(plugin, "status")
        assert "Operations: no metrics endpoint; no notifications" in out
        assert "  METRICS_ADDRESS: METRICS_ADDRESS='metrics.example' is not valid: use host:port" in out
        assert (f"  NOTIFY_URLS_FILE: NOTIFY_URLS_FILE='{PLUGIN_DATA_DIR}/no-such-file' cannot be read: "
                "FileNotFoundError") in out
        assert wait_for_log(plugin, "METRICS_ADDRESS='metrics.example' is not valid")
    finally:
        plugin.configure(METRICS_ADDRESS="", NOTIFY_URLS_FILE="")
