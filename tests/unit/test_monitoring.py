"""Operations wired into the plugin (plugin.monitoring, plugin.opsstate): the driver and
its backup service on real folder stores, the metrics read back with prometheus_client's
own parser, notifications handed to a recording sender."""

import os
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin.assembly import build_driver, build_monitored
from plugin.errors import BackupError
from plugin.ops.delivery import WEBHOOK
from plugin.protocol import create_app
from plugin.settings import from_env
from tests.fakes import InlineExecutor

WEBHOOK_URL = "https://hooks.example.com/vv?token=s3cret-token"


def samples(monitoring):
    """{(name, frozenset(labels.items())): value} of every sample /metrics serves."""
    text = monitoring.metrics.render().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(monitoring, name, **labels):
    return samples(monitoring).get(("vsphere_volume_" + name, frozenset(labels.items())))


class Sent(list):
    """The notifications a webhook destination was handed, as their JSON bodies."""

    def __call__(self, destination, notification):
        self.append(notification.body())


@pytest.fixture
def sent():
    return Sent()


@pytest.fixture
def monitored(env, mounter, clock, tmp_path, sent):
    """``monitored(**settings)``: a started driver with operations watching it, as the
    server assembles them (stopped after)."""
    made = []

    def make(**settings):
        urls = tmp_path / "notify-urls"
        urls.write_text(f"# the team's hook\n{WEBHOOK_URL}\n")
        values = {**env, "NOTIFY_URLS_FILE": str(urls), **settings}
        driver, monitoring = build_monitored(
            from_env(values), mounter=mounter, clock=clock, executor=InlineExecutor(), scheduler_thread=False,
            ops_args={"host": "docker-host-1", "senders": {WEBHOOK: sent}, "wait": lambda seconds: None})
        driver.start()
        made.append((driver, monitoring))
        return driver, monitoring
    yield make
    for driver, monitoring in made:
        monitoring.stop()
        driver.stop()


def write(tmp_path, name, text, store="fast"):
    folder = tmp_path / store / "volumes" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f").write_text(text)


def notified(monitoring, sent):
    """Have the watcher look now; the bodies delivered so far."""
    monitoring.ops.watcher.check()
    assert monitoring.ops.delivery.drained(10)
    return [(body["event"], body["cause"], body["volume"] or body["store"] or body["target"]) for body in sent]


def test_a_backup_is_its_volumes_last_success_and_counted_by_kind(monitored, tmp_path, clock):
    driver, monitoring = monitored()
    driver.create("db", {"Backup": "daily"})
    write(tmp_path, "db", "x" * 1000)
    clock.advance(seconds=30)
    backup = driver.backups.api_create("db")
    created = datetime.fromisoformat(backup["Created"])
    assert value(monitoring, "backup_last_success_timestamp_seconds", volume="db", target="local") \
        == created.timestamp()
    assert value(monitoring, "backups_total", target="local", kind="manual", result="ok") == 1
    assert value(monitoring, "backup_last_status", volume="db", target="local") == 1
    assert value(monitoring, "backup_size_bytes", volume="db", target="local") == 1000
    assert value(monitoring, "backup_added_bytes", volume="db", target="local") == 1000   # all copied
    assert value(monitoring, "backup_written_bytes_total", target="local") == 1000
    assert value(monitoring, "backups_kept", volume="db", target="local") == 1
    assert value(monitoring, "volumes") == 1
    # unchanged since: nothing copied, one more kept
    clock.advance(minutes=1)
    driver.backups.api_create("db")
    assert value(monitoring, "backup_added_bytes", volume="db", target="local") == 0
    assert value(monitoring, "backups_kept", volume="db", target="local") == 2


def test_a_failed_backup_is_its_last_attempt_the_newest_success_stays(monitored, tmp_path, clock, sent):
    driver, monitoring = monitored()
    driver.create("db", {"Backup": "daily"})
    write(tmp_path, "db", "data")
    good = datetime.fromisoformat(driver.backups.api_create("db")["Created"])
    copier = driver.backups.engines["file"].copier
    copier.rsync = "/nonexistent/rsync"
    write(tmp_path, "db", "changed")
    for _ in range(2):   # failing at every retry: notified once
        clock.advance(minutes=15)
        with pytest.raises(BackupError, match="needs rsync"):
            driver.backups.api_create("db")
        assert notified(monitoring, sent) == [("backup-failed", "backup-failed", "db")]
    assert value(monitoring, "backups_total", target="local", kind="manual", result="failed") == 2
    assert value(monitoring, "backup_last_status", volume="db", target="local") == 0
    assert value(monitoring, "backup_last_success_timestamp_seconds", volume="db", target="local") == good.timestamp()
    [health] = next(v for v in monitoring.describe()["Volumes"] if v["Name"] == "db")["Health"]
    assert health["State"] == "failed" and "needs rsync" in health["LastError"]
    assert health["LastSuccess"] == good.strftime("%Y-%m-%dT%H:%M:%SZ") and health["AgeSeconds"] == 30 * 60
    [body] = sent
    assert body["volume"] == "db" and body["target"] == "local" and body["host"] == "docker-host-1"
    assert "needs rsync" in body["error"] and "s3cret" not in str(body)

    copier.rsync = "rsync"
    driver.backups.api_create("db")
    assert notified(monitoring, sent)[1:] == [("recovered", "backup-failed", "db")]
    [health] = next(v for v in monitoring.describe()["Volumes"] if v["Name"] == "db")["Health"]
    assert health["State"] == "ok" and health["LastError"] == "" and health["AgeSeconds"] == 0


def test_every_kind_of_backup_and_restore_is_counted(monitored, tmp_path, clock):
    driver, monitoring = monitored()
    service = driver.backups
    driver.create("timed", {"Backup": "daily@02:00"})
    driver.create("leaving", {"Backup": "on-unmount"})
    for name in ("timed", "leaving"):
        write(tmp_path, name, name)
    clock.now = clock.now.replace(hour=2)
    assert service.scheduler.tick(clock()) == ["timed"]
    driver.mount("leaving", "c1")
    driver.unmount("leaving", "c1")
    assert service.scheduler.tick(clock()) == ["leaving"]
    service.api_restore("timed", "latest", force=True)               # a pre-restore backup, then the restore
    driver.remove("leaving")                                          # its final backup
    write(tmp_path, "timed", "changed")
    copy = driver.backups.api_create("timed")
    held = tmp_path / "fast" / "backups" / "timed" / copy["Id"] / "data"
    os.rename(held, held.with_name("gone"))                           # its data is lost: the restore fails
    with pytest.raises(BackupError):
        driver.create("copy", {"RestoreFrom": f"timed@{copy['Id']}"})
    counts = {kind: value(monitoring, "backups_total", target="local", kind=kind, result="ok")
              for kind in ("scheduled", "on-unmount", "pre-restore", "final", "manual")}
    assert counts == {"scheduled": 1, "on-unmount": 1, "pre-restore": 1, "final": 1, "manual": 1}
    assert value(monitoring, "restores_total", result="ok") == 1
    assert value(monitoring, "restores_total", result="failed") == 1
    assert value(monitoring, "backup_duration_seconds_count", target="local", kind="scheduled") == 1


def test_plugin_calls_are_counted_by_endpoint_and_result(monitored):
    driver, monitoring = monitored()
    client = create_app(driver, backup_api=driver.backups, observe=monitoring.plugin_call).test_client()
    assert client.post("/VolumeDriver.Create", json={"Name": "v"}).status_code == 200
    assert client.post("/VolumeDriver.Get", json={"Name": "missing"}).status_code == 500
    assert value(monitoring, "plugin_calls_total", endpoint="VolumeDriver.Create", result="ok") == 1
    assert value(monitoring, "plugin_calls_total", endpoint="VolumeDriver.Get", result="error") == 1
    assert value(monitoring, "plugin_call_duration_seconds_count", endpoint="VolumeDriver.Get") == 1


def test_an_unavailable_store_has_a_short_reason_and_is_notified(monitored, tmp_path, sent):
    stores = f"file://{tmp_path}/fast:default;LocalDS_0/volumes:ds"
    driver, monitoring = monitored(VOLUME_STORES=stores)
    assert value(monitoring, "store_up", store="ds", reason="config") == 0
    assert value(monitoring, "store_up", store="default", reason="") == 1
    assert notified(monitoring, sent) == [("store-unavailable", "store-unavailable", "ds")]
    assert "no vCenter is configured" in sent[0]["error"] and sent[0]["volume"] is None


def test_bad_operations_settings_leave_the_plugin_serving_and_say_why(monitored, tmp_path):
    driver, monitoring = monitored(METRICS_ADDRESS="localhost", NOTIFY_URLS_FILE=str(tmp_path / "none"),
                                   METRICS_TEXTFILE_INTERVAL="1")
    driver.create("v", {})
    assert [v["Name"] for v in driver.list()] == ["v"]
    errors = monitoring.describe()["Operations"]["Errors"]
    assert set(errors) == {"METRICS_ADDRESS", "NOTIFY_URLS_FILE", "METRICS_TEXTFILE_INTERVAL"}
    assert errors["METRICS_ADDRESS"].startswith("METRICS_ADDRESS='localhost' is not valid: use host:port")
    assert "cannot be read: FileNotFoundError" in errors["NOTIFY_URLS_FILE"]
    assert monitoring.describe()["Operations"]["Metrics"] == ""


def test_the_metrics_port_in_use_is_a_reason_not_a_failure(monitored):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        driver, monitoring = monitored(METRICS_ADDRESS=f"127.0.0.1:{taken.getsockname()[1]}")
        assert "cannot listen there" in monitoring.describe()["Operations"]["Errors"]["METRICS_ADDRESS"]
        driver.create("v", {})


def test_the_state_is_built_again_only_when_something_changed(monitored, tmp_path):
    driver, monitoring = monitored()
    first = monitoring.snapshot()
    assert monitoring.snapshot() is first
    driver.create("v", {"Backup": "daily"})
    second = monitoring.snapshot()
    assert second is not first and [e.volume for e in second.volumes] == ["v"]
    driver.mount("v", "c1")
    assert monitoring.snapshot().mounted == 1


def test_after_a_restart_volumes_wait_for_their_catalog_and_keep_their_last_run(env, mounter, clock, tmp_path,
                                                                               monitored):
    driver, monitoring = monitored()
    driver.create("db", {"Backup": "daily@02:00"})
    write(tmp_path, "db", "data")
    good = datetime.fromisoformat(driver.backups.api_create("db")["Created"])
    driver.backups.engines["file"].copier.rsync = "/nonexistent/rsync"
    write(tmp_path, "db", "changed")
    clock.now = clock.now.replace(hour=2)
    driver.backups.scheduler.tick(clock())
    driver.backups.scheduler.stop()          # the plan is saved
    monitoring.stop()
    # the restarted plugin: the persisted listing is loaded, the store not answered yet
    again, watching = build_monitored(from_env(env), mounter=mounter, clock=clock, executor=InlineExecutor(),
                                      scheduler_thread=False)
    try:
        assert [v["Name"] for v in again.list()] == ["db"]
        assert watching.snapshot().volumes == ()          # not "never backed up": not known yet
        [health] = watching.describe()["Volumes"][0]["Health"]
        assert health["State"] == "unknown"
        again.start()
        [entry] = watching.snapshot().volumes
        assert entry.last_success == good and entry.kept == 1
        assert entry.last_result == "failed" and "needs rsync" in entry.last_error   # the scheduler's last run
    finally:
        watching.stop()
        again.stop()


def test_a_volume_never_backed_up_is_stale_from_its_creation(monitored, clock, sent):
    driver, monitoring = monitored()
    driver.create("new", {"Backup": "daily@02:00"})
    clock.advance(days=1, hours=2, minutes=59)   # its first run, 02:00, missed; the second due by 03:00 next day
    assert notified(monitoring, sent) == []
    [health] = monitoring.describe()["Volumes"][0]["Health"]
    assert health["State"] == "never" and health["StaleAt"] == "2026-11-24T03:00:00Z"
    clock.advance(minutes=2)
    assert notified(monitoring, sent) == [("backup-stale", "backup-stale", "new")]
    assert "no backup since the policy was set (2026-11-23T00:00:00Z)" in sent[0]["error"]
    assert monitoring.describe()["Volumes"][0]["Health"][0]["State"] == "stale"


def test_a_driver_without_backups_has_volumes_without_backup_series(env, mounter):
    driver = build_driver(from_env(env), mounter=mounter, backups=False)
    from plugin.opsstate import DriverSnapshot
    driver.start()
    try:
        driver.create("v", {})
        state = DriverSnapshot(driver)()
        assert state.volumes == () and [s.store for s in state.stores] == ["default", "slow"]
    finally:
        driver.stop()


def test_verification_results_are_ready_for_the_verifier(monitored, clock, sent):
    driver, monitoring = monitored()
    driver.create("db", {"Backup": "daily"})
    driver.backups.board.verified("db", "local", clock() + timedelta(minutes=5), False, "checksum mismatch")
    assert value(monitoring, "verifications_total", target="local", result="failed") == 1
    assert value(monitoring, "verification_last_status", volume="db", target="local") == 0
    assert notified(monitoring, sent) == [("verification-failed", "verification-failed", "db")]
    [health] = monitoring.describe()["Volumes"][0]["Health"]
    assert health["State"] == "verification-failed" and "checksum mismatch" in health["Verification"]


# --- off-site copies: the volume's backup health on each target -------------------------------

TARGETS = {"BACKUP_TARGETS": "local:local;file:///srv/vault:vault", "BACKUP_TARGET_VAULT_PASSWORD": "p"}


def copying(monitored, clock, **settings):
    """A monitored driver whose target ``vault`` is a FakeTarget (copies in memory)."""
    from tests.unit.offsite.faketarget import FakeTarget
    driver, monitoring = monitored(**TARGETS, **settings)
    target = FakeTarget("vault", clock)
    driver.backups.copies.targets["vault"] = target
    return driver, monitoring, target


def health_of(monitoring, name, target):
    [volume] = [v for v in monitoring.describe()["Volumes"] if v["Name"] == name]
    return next(h for h in volume["Health"] if h["Target"] == target)


def test_a_copy_is_the_volumes_last_success_on_its_target_by_the_copys_own_schedule(monitored, tmp_path, clock):
    driver, monitoring, target = copying(monitored, clock)
    assert value(monitoring, "backups_total", target="vault", kind="scheduled", result="failed") == 0  # from start
    driver.create("db", {"Backup": "daily", "BackupCopy": "vault@weekly"})
    write(tmp_path, "db", "x" * 1000)
    clock.advance(seconds=30)
    [copy] = driver.backups.api_copy("db")
    series = {"volume": "db", "target": "vault"}
    assert value(monitoring, "backup_last_success_timestamp_seconds", **series) == \
        datetime.fromisoformat(copy["Created"]).timestamp() == clock().timestamp()
    assert value(monitoring, "backup_last_status", **series) == 1
    assert value(monitoring, "backup_size_bytes", **series) == 1000
    assert value(monitoring, "backup_added_bytes", **series) == 7              # what the target says it added
    assert value(monitoring, "backups_kept", **series) == 1
    assert value(monitoring, "backup_last_duration_seconds", **series) == 0
    assert value(monitoring, "backups_total", target="vault", kind="manual", result="ok") == 1
    assert value(monitoring, "backup_written_bytes_total", target="vault") == 7
    # the local backup the copy run took first (Backup=daily) is the local tier's, counted there once
    assert value(monitoring, "backups_total", target="local", kind="manual", result="ok") == 1
    assert value(monitoring, "backups_kept", volume="db", target="local") == 1
    # stale by the copy's schedule, weekly, timed by db@vault as the copies are scheduled
    from plugin.ops.stale import backup_deadline
    from plugin.policy.schedule import parse_schedule
    deadline = backup_deadline(parse_schedule("weekly"), clock(), "db@vault", grace=timedelta(hours=1))
    assert value(monitoring, "backup_deadline_timestamp_seconds", **series) == deadline.timestamp()
    assert deadline != backup_deadline(parse_schedule("weekly"), clock(), "db", grace=timedelta(hours=1))
    health = health_of(monitoring, "db", "vault")
    assert (health["State"], health["Schedule"], health["Backups"]) == ("ok", "weekly", 1)
    assert health["NextRun"] == driver.get("db")["Status"]["Backup"]["Copies"]["vault"]["NextRun"]
    assert health_of(monitoring, "db", "local")["State"] == "ok"


def test_a_failed_copy_and_a_damaged_target_notify_per_target_and_recover(monitored, tmp_path, clock, sent):
    from plugin.offsite.errors import TargetUnreachable
    driver, monitoring, target = copying(monitored, clock)
    for name in ("db", "web"):
        driver.create(name, {"BackupCopy": "vault@daily"})
        write(tmp_path, name, name)
    driver.backups.api_copy("db")
    driver.backups.api_copy("web")
    target.fail = TargetUnreachable("backup target vault: the server cannot be reached")
    clock.advance(minutes=10)
    with pytest.raises(BackupError, match="cannot be reached"):
        driver.backups.api_copy("db")
    assert value(monitoring, "backup_last_status", volume="db", target="vault") == 0
    assert value(monitoring, "backups_total", target="vault", kind="manual", result="failed") == 1
    assert notified(monitoring, sent) == [("backup-failed", "backup-failed", "db")]
    assert sent[0]["target"] == "vault" and "cannot be reached" in sent[0]["error"]
    assert health_of(monitoring, "db", "vault")["State"] == "failed"
    assert "LastBackup" not in driver.get("db")["Status"]["Backup"]          # the local tier's status untouched

    target.fail, target.damaged = None, ("pack 3f2a is damaged",)
    with pytest.raises(BackupError, match="verification of backup target vault damaged"):
        driver.backups.api_verify("vault")
    for name in ("db", "web"):
        assert value(monitoring, "verification_last_status", volume=name, target="vault") == 0
        assert value(monitoring, "verification_last_timestamp_seconds", volume=name, target="vault") == \
            clock().timestamp()
    assert value(monitoring, "verifications_total", target="vault", result="failed") == 1
    # restic check verifies the whole target: one notification for it, not one per volume
    assert notified(monitoring, sent)[1:] == [("verification-failed", "verification-failed", "vault")]
    assert "pack 3f2a is damaged" in sent[1]["error"] and (sent[1]["volume"], sent[1]["target"]) == (None, "vault")

    target.damaged = ()
    driver.backups.api_copy("db")
    driver.backups.api_verify("vault")
    assert value(monitoring, "verification_last_status", volume="web", target="vault") == 1
    assert sorted(notified(monitoring, sent)[2:]) == [("recovered", "backup-failed", "db"),
                                                      ("recovered", "verification-failed", "vault")]


def test_a_volume_never_copied_is_stale_by_its_copy_schedule(monitored, clock, sent):
    driver, monitoring, _ = copying(monitored, clock)
    driver.create("new", {"Backup": "daily@02:00", "BackupCopy": "vault@daily@03:00"})
    clock.advance(days=1, hours=4, minutes=1)          # the copies' second run, 03:00 the next day, plus grace
    driver.backups.api_create("new")                   # the local tier is fine
    assert notified(monitoring, sent) == [("backup-stale", "backup-stale", "new")]
    assert sent[0]["target"] == "vault" and sent[0]["error"] == (
        "no copy since the policy was set (2026-11-23T00:00:00Z); BackupCopy=vault@daily@03:00 wanted a newer one "
        "by 2026-11-24T04:00:00Z")
    assert health_of(monitoring, "new", "vault")["State"] == "stale"
    assert health_of(monitoring, "new", "local")["State"] == "ok"


def test_after_a_restart_a_copied_volume_is_not_never_copied(env, mounter, clock, tmp_path, monitored):
    driver, monitoring, target = copying(monitored, clock)
    driver.create("db", {"BackupCopy": "vault@daily"})
    write(tmp_path, "db", "data")
    [copy] = driver.backups.api_copy("db")
    target.damaged = ("pack 1 is damaged",)
    with pytest.raises(BackupError):
        driver.backups.api_verify("vault")
    clock.advance(minutes=5)
    target.fail = BackupError("backup target vault: the server cannot be reached")
    with pytest.raises(BackupError):
        driver.backups.api_copy("db")
    monitoring.stop()
    driver.stop()

    again, watching = build_monitored(from_env({**env, **TARGETS}), mounter=mounter, clock=clock,
                                      executor=InlineExecutor(), scheduler_thread=False)
    try:
        offsite = [e for e in watching.snapshot().volumes if e.target == "vault"]   # before the store answered
        assert [(e.volume, e.last_success, e.kept, e.size) for e in offsite] == \
            [("db", datetime.fromisoformat(copy["Created"]), 1, 4)]
        [entry] = offsite
        assert (entry.last_result, entry.verification_ok, entry.schedule.text) == ("failed", False, "daily")
        assert "cannot be reached" in entry.last_error and "pack 1 is damaged" in entry.verification_error
    finally:
        watching.stop()
        again.stop()


def test_the_copies_on_a_target_are_counted_from_its_listing(monitored, tmp_path, clock):
    driver, monitoring, target = copying(monitored, clock)
    for name in ("db", "web"):
        driver.create(name, {"BackupCopy": "vault@daily"} if name == "db" else {})
        write(tmp_path, name, "data")
    for name in ("db", "db", "db", "web"):              # copies made (by another host, say)
        target.put(driver.backups.copies.runs.views.source(driver.find(name), "schedule"), "schedule")
        clock.advance(hours=1)
    assert value(monitoring, "backups_kept", volume="db", target="vault") == 0

    driver.backups.copies.count_copies()                # at start, off the request path

    assert value(monitoring, "backups_kept", volume="db", target="vault") == 3
    assert value(monitoring, "backup_last_success_timestamp_seconds", volume="db", target="vault") == \
        target.kept[2].created.timestamp()
    assert value(monitoring, "backups_kept", volume="web", target="vault") == 1
    assert "Copies" not in driver.get("web")["Status"]["Backup"]       # counted for operations, not for Status


def test_verifying_the_local_tier_is_each_volumes_last_verification_there(monitored, clock, sent, tmp_path):
    driver, monitoring = monitored()
    for name in ("db", "web"):
        driver.create(name, {"Backup": "daily"})
        driver.backups.api_create(name)
    [damaged] = (tmp_path / "fast" / "backups" / "db").iterdir()
    (damaged / "manifest.json").write_text("{ not json")
    clock.advance(minutes=1)

    with pytest.raises(BackupError, match="verification of backup target local damaged"):
        driver.backups.api_verify("local")

    assert value(monitoring, "verification_last_status", volume="db", target="local") == 0
    assert value(monitoring, "verification_last_status", volume="web", target="local") == 1
    assert value(monitoring, "verification_last_timestamp_seconds", volume="web", target="local") == \
        clock().timestamp()
    assert value(monitoring, "verifications_total", target="local", result="failed") == 1   # one verification
    assert notified(monitoring, sent) == [("verification-failed", "verification-failed", "db")]
    assert "is damaged" in sent[0]["error"] and sent[0]["target"] == "local"
