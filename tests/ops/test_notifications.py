"""Notifications reach a real HTTP receiver: once per failure until it recovers, with the
documented body, no secret anywhere; apprise URLs delivered to a local endpoint too."""

import logging
import re
from datetime import UTC, datetime

import pytest

from plugin.ops.delivery import Delivery, read_destinations
from plugin.ops.notify import Notification
from plugin.ops.runtime import Ops
from plugin.ops.settings import OpsSettings

from .conftest import LAST_SUCCESS
from .peers import Receiver, free_port

SECRET = "S3CRET-T0KEN-42"
BODY_KEYS = {"source", "host", "event", "cause", "volume", "store", "target", "time", "error", "count"}


@pytest.fixture
def urls_file(tmp_path):
    def write(*urls):
        path = tmp_path / "notify-urls"
        path.write_text("# where notifications go\n" + "\n".join(urls) + "\n")
        return str(path)
    return write


@pytest.fixture
def make_ops(state):
    started = []

    def make(urls_path, **args):
        ops = Ops(OpsSettings(notify_urls_file=urls_path), state, host="docker-1", check_interval=3600,
                  wait=lambda seconds: None, **args).start()
        started.append(ops)
        return ops
    yield make
    for ops in started:
        ops.stop()


def no_secret_in(receiver, caplog):
    for _, _path, headers, body in receiver.requests:
        assert SECRET not in body.decode() and SECRET not in str(headers)
    assert SECRET not in caplog.text


def test_one_notification_for_a_repeated_failure_and_one_for_its_recovery(state, receiver, urls_file, make_ops,
                                                                          caplog):
    caplog.set_level(logging.DEBUG)
    before = datetime.now(UTC).replace(microsecond=0)
    ops = make_ops(urls_file(receiver.url(f"/hook?token={SECRET}")))
    assert ops.errors == {}
    state.volume("db", schedule="off", last_success=LAST_SUCCESS, last_result="failed",
                 last_error="volume store default is unavailable: cannot mount it")
    ops.metrics.backup_finished("local", "scheduled", "failed", 0.5)     # pokes the watcher
    receiver.wait_count(1)
    for _ in range(9):   # the scheduler's retries fail the same way
        ops.metrics.backup_finished("local", "scheduled", "failed", 0.5)
        ops.watcher.check()
    assert ops.delivery.drained(10)
    assert len(receiver.requests) == 1

    state.volume("db", schedule="off", last_success=datetime.now(UTC), last_result="ok")
    ops.metrics.backup_finished("local", "scheduled", "ok", 0.5)
    receiver.wait_count(2)
    ops.watcher.check()
    assert ops.delivery.drained(10)
    assert len(receiver.requests) == 2

    failure, recovery = receiver.json_bodies()
    for body in (failure, recovery):
        assert set(body) == BODY_KEYS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["time"])
        assert before <= datetime.fromisoformat(body["time"]) <= datetime.now(UTC)
    assert {k: v for k, v in failure.items() if k != "time"} == {
        "source": "vsphere-volume", "host": "docker-1", "event": "backup-failed", "cause": "backup-failed",
        "volume": "db", "store": None, "target": "local", "count": 1,
        "error": "volume store default is unavailable: cannot mount it"}
    assert {k: v for k, v in recovery.items() if k != "time"} == {
        "source": "vsphere-volume", "host": "docker-1", "event": "recovered", "cause": "backup-failed",
        "volume": "db", "store": None, "target": "local", "count": 1, "error": ""}
    method, path, headers, _ = receiver.requests[0]
    assert (method, path, headers["Content-Type"]) == ("POST", f"/hook?token={SECRET}", "application/json")
    no_secret_in(receiver, caplog)
    assert ops.metrics.registry.get_sample_value("vsphere_volume_notifications_total", {"result": "sent"}) == 2


def test_a_stale_backup_is_found_by_the_watchers_own_round(state, receiver, urls_file):
    """No event pokes it: the watcher looks every check_interval (a fraction of a second here)."""
    state.volume("old", schedule="daily@02:00", last_success=LAST_SUCCESS, last_result="ok")
    ops = Ops(OpsSettings(notify_urls_file=urls_file(receiver.url("/hook"))), state, host="docker-1",
              check_interval=0.05).start()
    try:
        receiver.wait_count(1)
    finally:
        ops.stop()
    (body,) = receiver.json_bodies()
    assert (body["event"], body["volume"], body["target"]) == ("backup-stale", "old", "local")
    assert body["error"] == ("the newest backup is from 2026-11-23T02:00:07Z; Backup=daily@02:00 wanted a newer one "
                             "by 2026-11-25T03:00:00Z")


def test_a_store_outage_and_its_recovery(state, receiver, urls_file, make_ops):
    ops = make_ops(urls_file(receiver.url("/hook")))
    state.store("ds1", available=False, reason="unreachable", error="vCenter at vc.example.com did not answer")
    ops.watcher.check()
    ops.watcher.check()
    state.store("ds1")
    ops.watcher.check()
    receiver.wait_count(2)
    assert ops.delivery.drained(10)
    assert [(b["event"], b["cause"], b["store"], b["volume"], b["error"]) for b in receiver.json_bodies()] == [
        ("store-unavailable", "store-unavailable", "ds1", None, "vCenter at vc.example.com did not answer"),
        ("recovered", "store-unavailable", "ds1", None, "")]


def deliver_one(tmp_path, *urls):
    """Deliver one notification to ``urls`` (through a URL file); the result per destination."""
    path = tmp_path / "urls"
    path.write_text("\n".join(urls) + "\n")
    results = []
    delivery = Delivery(read_destinations(str(path)), on_result=results.append, wait=lambda seconds: None).start()
    try:
        delivery.submit(Notification("backup-failed", "backup-failed", datetime.now(UTC), volume="db"))
        assert delivery.drained(60)
    finally:
        delivery.stop()
    return results


def test_delivery_is_retried_then_given_up_without_leaking_the_url(receiver, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [500, 503]          # two failures, then it answers
    closed = free_port()
    results = deliver_one(tmp_path, receiver.url(f"/ok/{SECRET}"), f"http://127.0.0.1:{closed}/down/{SECRET}?t={SECRET}")
    assert len(receiver.requests) == 3 and results == ["sent", "failed"]
    assert f"to webhook on line 2 (http://127.0.0.1:{closed}/…) failed 3 times, giving up: ConnectionError" \
        in caplog.text
    assert "(try 1 of 3): the webhook answered HTTP 500; trying again" in caplog.text
    assert SECRET not in caplog.text


def test_apprise_json_and_form_urls_reach_a_local_endpoint(state, urls_file, make_ops, caplog):
    caplog.set_level(logging.DEBUG)
    json_receiver, form_receiver = Receiver(), Receiver()
    try:
        ops = make_ops(urls_file(f"json://127.0.0.1:{json_receiver.port}/apprise/{SECRET}",
                                 f"form://127.0.0.1:{form_receiver.port}/form/{SECRET}"))
        assert ops.errors == {}
        state.volume("web", schedule="off", verification_ok=False, verification_error="checksum differs")
        ops.watcher.check()
        json_receiver.wait_count(1)
        form_receiver.wait_count(1)
        (sent,) = json_receiver.json_bodies()
        assert (sent["title"], sent["type"]) == (
            "vsphere-volume on docker-1: volume web: verification-failed", "failure")
        assert sent["message"].endswith("Z checksum differs")
        (form,) = form_receiver.form_bodies()
        assert form["title"] == "vsphere-volume on docker-1: volume web: verification-failed"
        assert form["message"].endswith("checksum differs")
        assert json_receiver.requests[0][1] == f"/apprise/{SECRET}"
        state.volume("web", schedule="off", verification_ok=True)
        ops.watcher.check()
        json_receiver.wait_count(2)
        assert json_receiver.json_bodies()[1]["type"] == "success"
        assert SECRET not in caplog.text
    finally:
        json_receiver.stop()
        form_receiver.stop()


def test_apprise_failure_is_logged_without_the_url(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    assert deliver_one(tmp_path, f"json://127.0.0.1:{free_port()}/apprise/{SECRET}") == ["failed"]
    assert "to apprise on line 1 (json://…) failed 3 times, giving up: apprise could not deliver" in caplog.text
    assert SECRET not in caplog.text


def test_a_bad_url_file_turns_notifications_off_and_says_why(state, urls_file, make_ops):
    ops = make_ops(urls_file(f"https://hooks.example.com/{SECRET}", f"nosuch://{SECRET}"))
    assert ops.delivery is None
    message = ops.errors["NOTIFY_URLS_FILE"]
    assert "line 3: apprise does not accept this URL (scheme 'nosuch')" in message
    assert message.endswith("notifications are off") and SECRET not in message
