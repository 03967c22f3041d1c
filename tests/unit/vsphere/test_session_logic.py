"""The session's retry, re-login and task-wait logic with fakes: no server, no real sleeping."""

import http.client
import logging
import ssl
import threading
from types import SimpleNamespace

import pytest
from pyVmomi import vim, vmodl

from plugin.errors import (
    FileAlreadyExists,
    FileLocked,
    FileNotFoundOnDatastore,
    InvalidPowerState,
    NoDiskSpace,
    TaskFailed,
    TaskTimeout,
    VSphereAuthError,
    VSphereError,
    VSphereTLSError,
    VSphereUnavailable,
)
from plugin.vsphere.faults import translate
from plugin.vsphere.retry import Backoff, Polling
from plugin.vsphere.session import Session
from plugin.vsphere.settings import VSphereSettings
from tests.fakes import SleepClock

SETTINGS = VSphereSettings(url="https://vc.example/sdk", user="u", password="pw-secret", datacenter="DC0")
COOKIE = 'vmware_soap_session="cookie-secret"; Path=/; HttpOnly'
Collector = vmodl.query.PropertyCollector


class FakeSessionManager:
    def __init__(self):
        self.logins = 0

    def Login(self, user, password):  # noqa: N802 - vSphere's name
        assert (user, password) == ("u", "pw-secret")
        self.logins += 1

    def Logout(self):  # noqa: N802 - pyVmomi's name
        pass


class FakeSearchIndex:
    def FindByInventoryPath(self, path):  # noqa: N802 - pyVmomi's name
        return vim.Datacenter("datacenter-1")


class FakeCollector:
    """Answers RetrievePropertiesEx from a queue of property dicts (or exceptions)."""

    def __init__(self):
        self.answers = []

    def RetrievePropertiesEx(self, specSet, options):  # noqa: N802, N803 - pyVmomi's names
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        obj = specSet[0].objectSet[0].obj
        missing = answer.pop("_missing", [])
        content = Collector.ObjectContent(
            obj=obj, propSet=[vmodl.DynamicProperty(name=k, val=v) for k, v in answer.items()],
            missingSet=[Collector.MissingProperty(path="info", fault=f) for f in missing])
        return Collector.RetrieveResult(objects=[content])


class FakeStub:
    cookie = COOKIE

    def __init__(self, content):
        self.content = content

    def InvokeMethod(self, mo, info, args, outerStub=None):  # noqa: N802, N803 - pyVmomi's names
        assert info.wsdlName == "RetrieveServiceContent"
        return self.content

    def DropConnections(self):  # noqa: N802 - pyVmomi's name
        pass


class Script:
    """A managed object whose method ``Do`` raises or returns the scripted outcomes in turn."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def Do(self, *args):  # noqa: N802 - pyVmomi's name
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def clock():
    return SleepClock()


@pytest.fixture
def content():
    return SimpleNamespace(sessionManager=FakeSessionManager(), searchIndex=FakeSearchIndex(),
                           propertyCollector=FakeCollector())


def make(content, clock, **kwargs):
    kwargs.setdefault("backoff", Backoff(attempts=4, initial=0.5, factor=2, maximum=8))
    return Session(SETTINGS, sleep=clock.sleep, clock=clock,
                   stub_factory=lambda settings, context, on_request, timeout: FakeStub(content), **kwargs)


def test_backoff_grows_and_is_capped():
    assert list(Backoff(attempts=6, initial=1, factor=4, maximum=5).delays()) == [1, 4, 5, 5, 5]
    assert list(Backoff(attempts=1).delays()) == []


@pytest.mark.parametrize("failure", [
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    http.client.HTTPException("503 Service Unavailable"),
])
def test_transient_failures_are_retried_with_backoff(content, clock, failure):
    session = make(content, clock)
    target = Script(failure, failure, "done")
    assert session.invoke(target, "Do") == "done"
    assert target.calls == 3 and clock.sleeps == [0.5, 1.0]


def test_retries_are_bounded_then_unavailable(content, clock):
    session = make(content, clock)
    target = Script(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(VSphereUnavailable) as raised:
        session.invoke(target, "Do", what="creating a disk")
    assert str(raised.value) == ("vCenter vc.example cannot be reached (creating a disk, 4 attempts): "
                                 "ConnectionRefusedError: [Errno 111] Connection refused")
    assert target.calls == 4 and clock.sleeps == [0.5, 1.0, 2.0]


def test_faults_are_translated_and_not_retried(content, clock):
    session = make(content, clock)
    target = Script(vim.fault.FileNotFound(file="[ds] a/b.vmdk"))
    with pytest.raises(FileNotFoundOnDatastore) as raised:
        session.invoke(target, "Do", what="deleting [ds] a")
    assert str(raised.value) == "deleting [ds] a failed: it does not exist ([ds] a/b.vmdk)"
    assert target.calls == 1 and clock.sleeps == []


def test_a_certificate_failure_is_not_retried(content, clock):
    session = make(content, clock)
    target = Script(ssl.SSLCertVerificationError("certificate verify failed"))
    with pytest.raises(VSphereTLSError):
        session.invoke(target, "Do")
    assert target.calls == 1 and clock.sleeps == []


def test_not_authenticated_logs_in_again_once(content, clock):
    session = make(content, clock)
    target = Script(vim.fault.NotAuthenticated(), "done")
    assert session.invoke(target, "Do") == "done"
    assert content.sessionManager.logins == 2


def test_still_not_authenticated_after_a_new_login_is_an_auth_error(content, clock, caplog):
    caplog.set_level(logging.DEBUG)
    session = make(content, clock)
    target = Script(vim.fault.NotAuthenticated())
    with pytest.raises(VSphereAuthError) as raised:
        session.invoke(target, "Do", what="listing VMs")
    assert "listing VMs failed" in str(raised.value)
    assert content.sessionManager.logins == 2 and target.calls == 2
    assert "pw-secret" not in caplog.text + str(raised.value)


def test_threads_that_saw_the_same_expired_session_log_in_once(content, clock):
    session = make(content, clock)
    session.login()
    barrier = threading.Barrier(2)

    class Expiring:
        def Do(self):  # noqa: N802 - pyVmomi's name
            if content.sessionManager.logins == 1:
                barrier.wait(timeout=10)
                raise vim.fault.NotAuthenticated()
            return "done"

    results = []
    threads = [threading.Thread(target=lambda: results.append(session.invoke(Expiring(), "Do")))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["done", "done"]
    assert content.sessionManager.logins == 2


def test_a_task_is_awaited_through_the_property_collector(content, clock):
    session = make(content, clock, polling=Polling(first=0.05, factor=2, maximum=1))
    content.propertyCollector.answers = [{"info.state": "queued"}, {"info.state": "running"},
                                         {"info.state": "success", "info.result": "[ds] a.vmdk"}]
    assert session.wait_for_task(vim.Task("task-1"), "creating a disk") == "[ds] a.vmdk"
    assert clock.sleeps == [0.05, 0.1]


def test_a_task_reports_its_progress_when_asked(content, clock):
    session = make(content, clock, polling=Polling(first=0.05, factor=2, maximum=1))
    content.propertyCollector.answers = [{"info.state": "running", "info.progress": 10},
                                         {"info.state": "running", "info.progress": 55},
                                         {"info.state": "success", "info.result": "done"}]
    seen = []
    assert session.wait_for_task(vim.Task("task-1"), "copying a disk", progress=seen.append) == "done"
    assert seen == [10, 55]


def test_a_task_error_is_translated(content, clock):
    session = make(content, clock)
    content.propertyCollector.answers = [
        {"info.state": "error", "info.error": vim.fault.FileAlreadyExists(file="[ds] v/v.vmdk")}]
    with pytest.raises(FileAlreadyExists) as raised:
        session.wait_for_task(vim.Task("task-1"), "creating [ds] v/v.vmdk")
    assert str(raised.value) == "creating [ds] v/v.vmdk failed: it already exists ([ds] v/v.vmdk)"


@pytest.mark.parametrize("fault, error, task", [
    (vim.fault.FileLocked(file="[ds] v.vmdk"), FileLocked, True),
    (vim.fault.NoDiskSpace(datastore="ds"), NoDiskSpace, True),
    (vim.fault.InvalidPowerState(), InvalidPowerState, True),
    (vim.fault.InvalidLogin(), VSphereAuthError, False),
    (vim.fault.GenericVmConfigFault(reason="x"), TaskFailed, True),
    (vim.fault.GenericVmConfigFault(reason="x"), VSphereError, False),
])
def test_faults_map_to_typed_errors(fault, error, task):
    translated = translate(fault, "doing it", task=task)
    assert type(translated) is error and str(translated).startswith("doing it failed: ")


def test_a_task_that_does_not_finish_times_out_by_the_injected_clock(content, clock):
    session = make(content, clock, task_timeout=3)
    content.propertyCollector.answers = [{"info.state": "running"} for _ in range(50)]
    with pytest.raises(TaskTimeout) as raised:
        session.wait_for_task(vim.Task("task-7"), "copying a disk")
    assert str(raised.value).startswith("copying a disk did not finish within 3s (task task-7 is running)")
    assert clock.now <= 3 and clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]


def test_an_expired_session_seen_in_missing_properties_logs_in_again(content, clock):
    session = make(content, clock)
    content.propertyCollector.answers = [{"_missing": [vim.fault.NotAuthenticated()]},
                                         {"info.state": "success"}]
    session.wait_for_task(vim.Task("task-1"), "anything")
    assert content.sessionManager.logins == 2


class FakeHTTP:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.cookies = []

    def request(self, method, url, params, data, headers, allow_redirects, timeout):
        self.cookies.append(headers["Cookie"])
        status = self.statuses.pop(0)
        return SimpleNamespace(status_code=status, reason="x", content=b"body")

    def close(self):
        pass


def test_http_sends_the_session_cookie_and_logs_in_again_on_401(content, clock, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeHTTP([401, 503, 200])
    session = Session(SETTINGS, sleep=clock.sleep, clock=clock, http_factory=lambda settings: fake,
                      stub_factory=lambda settings, context, on_request, timeout: FakeStub(content))
    with session.counting() as trips:
        response = session.http("GET", "/folder/a", params={}, what="reading a")
    assert response.status_code == 200
    assert fake.cookies == ['vmware_soap_session="cookie-secret"'] * 3
    assert content.sessionManager.logins == 2 and clock.sleeps == [0.5]
    assert trips == {"http.GET": 3}
    assert "cookie-secret" not in caplog.text


class Told:
    """A session observer recording what it is told."""

    def __init__(self, broken=False):
        self.calls, self.faults, self.relogins, self.broken = [], [], 0, broken

    def vsphere_call(self, method):
        self.calls.append(method)
        if self.broken:
            raise RuntimeError("a bug in the observer")

    def vsphere_fault(self, kind):
        self.faults.append(kind)
        if self.broken:
            raise RuntimeError("a bug in the observer")

    def relogin(self):
        self.relogins += 1


def test_the_observer_is_told_every_fault_by_type_and_every_relogin(content, clock):
    session = make(content, clock)
    told = Told()
    session.observe(told)
    assert session.invoke(Script(ConnectionResetError(104, "reset"), "done"), "Do") == "done"
    assert session.invoke(Script(vim.fault.NotAuthenticated(), "done"), "Do") == "done"
    with pytest.raises(FileNotFoundOnDatastore):
        session.invoke(Script(vim.fault.FileNotFound(file="[ds] a")), "Do")
    content.propertyCollector.answers = [{"_missing": [vim.fault.NotAuthenticated()]},
                                         {"info.state": "error", "info.error": vim.fault.FileLocked(file="[ds] b")}]
    with pytest.raises(FileLocked):
        session.wait_for_task(vim.Task("task-1"), "copying a disk")
    assert told.faults == ["ConnectionResetError", "NotAuthenticated", "FileNotFound", "NotAuthenticated",
                           "FileLocked"]
    assert told.relogins == 2 and content.sessionManager.logins == 3


def test_http_round_trips_and_a_401_are_told(content, clock):
    fake = FakeHTTP([401, 200])
    session = Session(SETTINGS, sleep=clock.sleep, clock=clock, http_factory=lambda settings: fake,
                      stub_factory=lambda settings, context, on_request, timeout: FakeStub(content))
    told = Told()
    session.observe(told)
    assert session.http("PUT", "/folder/a", data=b"x", what="writing a").status_code == 200
    assert told.calls == ["http.PUT", "http.PUT"] and told.faults == ["http.401"] and told.relogins == 1


def test_an_observer_that_fails_never_fails_a_call(content, clock, caplog):
    fake = FakeHTTP([200])
    session = Session(SETTINGS, sleep=clock.sleep, clock=clock, http_factory=lambda settings: fake,
                      stub_factory=lambda settings, context, on_request, timeout: FakeStub(content))
    session.observe(Told(broken=True))
    assert session.invoke(Script(ConnectionResetError(104, "reset"), "done"), "Do") == "done"
    assert session.http("GET", "/folder/a", what="reading a").status_code == 200
    assert "the vSphere session's observer failed on vsphere_call" in caplog.text
