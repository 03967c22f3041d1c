"""The session against the simulator: login, TLS, re-login, faults, files, counting."""

import logging

import pytest
from pyVmomi import vim

from plugin.errors import (
    ConfigError,
    FileAlreadyExists,
    FileNotFoundOnDatastore,
    InvalidPowerState,
    VSphereAuthError,
    VSphereTLSError,
    VSphereUnavailable,
)
from plugin.vsphere.files import DatastoreFiles
from plugin.vsphere.settings import normalize_thumbprint

from .helpers import vm_ref


def test_login_with_the_ca_file_and_its_round_trips(session):
    with session.counting() as trips:
        session.login()
    assert trips["Login"] == 1
    assert session.datacenter.path == "DC0"
    assert session.get_properties(session.datacenter.ref, ["name"]) == {"name": "DC0"}


def test_a_wrong_password_is_a_clear_error_without_the_password(vcsim, make_session, caplog):
    caplog.set_level(logging.DEBUG)
    session = make_session(vcsim, password="not-the-" + vcsim.password)
    with pytest.raises(VSphereAuthError) as raised:
        session.login()
    message = str(raised.value)
    assert f"logging in to vCenter {vcsim.url.split('/')[2]} as {vcsim.user!r} failed" in message
    assert "wrong user name or password" in message
    assert vcsim.password not in message and vcsim.password not in caplog.text


@pytest.mark.parametrize("digest", ["thumbprint", "thumbprint_sha256"])
def test_the_right_thumbprint_is_accepted(vcsim, make_session, digest):
    session = make_session(vcsim, ca_file="", thumbprint=normalize_thumbprint(vcsim.info[digest]))
    session.login()
    DatastoreFiles(session).write("LocalDS_0", "pinned/probe.txt", b"ok")
    assert DatastoreFiles(session).read("LocalDS_0", "pinned/probe.txt") == b"ok"


def test_a_wrong_thumbprint_is_refused_before_any_login(vcsim, make_session):
    wrong = "ab" * 20
    session = make_session(vcsim, ca_file="", thumbprint=wrong)
    with session.counting() as trips, pytest.raises(VSphereTLSError) as raised:
        session.login()
    assert "not the configured AB:AB:AB" in str(raised.value)
    assert vcsim.info["thumbprint"] in str(raised.value)       # says what vCenter presents
    assert "Login" not in trips


def test_an_unknown_certificate_is_refused_by_default(vcsim, make_session):
    session = make_session(vcsim, ca_file="")
    with pytest.raises(VSphereTLSError) as raised:
        session.login()
    assert "VSPHERE_CA_FILE or VSPHERE_THUMBPRINT" in str(raised.value)


def test_insecure_only_when_asked(vcsim, make_session):
    session = make_session(vcsim, ca_file="", insecure=True)
    session.login()
    assert session.login_generation == 1


def test_relogin_after_the_session_is_terminated(vcsim, session, make_session, caplog):
    caplog.set_level(logging.DEBUG)
    session.login()
    key = session.get_properties(session.content.sessionManager, ["currentSession"])["currentSession"].key
    admin = make_session(vcsim)
    admin.invoke(admin.content.sessionManager, "TerminateSession", sessionId=[key])
    with session.counting() as trips:
        name = session.get_properties(session.datacenter.ref, ["name"])["name"]
    assert name == "DC0"
    assert trips["Login"] == 1 and session.login_generation == 2
    cookie_value = key   # the simulator's cookie carries the session key
    assert cookie_value not in caplog.text and vcsim.password not in caplog.text


def test_a_failed_task_is_translated(session):
    manager = session.content.virtualDiskManager
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic",
                                                           capacityKb=1024)
    session.invoke(session.content.fileManager, "MakeDirectory", name="[LocalDS_0] faults",
                   datacenter=session.datacenter.ref, createParentDirectories=True)
    create = {"name": "[LocalDS_0] faults/a.vmdk", "datacenter": session.datacenter.ref, "spec": spec}
    session.call_task(manager, "CreateVirtualDisk_Task", what="creating [LocalDS_0] faults/a.vmdk", **create)
    with session.counting() as trips, pytest.raises(FileAlreadyExists) as raised:
        session.call_task(manager, "CreateVirtualDisk_Task", what="creating [LocalDS_0] faults/a.vmdk", **create)
    assert str(raised.value).startswith("creating [LocalDS_0] faults/a.vmdk failed: it already exists")
    # The task was awaited through the PropertyCollector only.
    assert dict(trips) == {"CreateVirtualDisk_Task": 1, "RetrievePropertiesEx": 1}
    with pytest.raises(FileNotFoundOnDatastore):
        session.call_task(session.content.fileManager, "DeleteDatastoreFile_Task",
                          name="[LocalDS_0] faults/missing", datacenter=session.datacenter.ref)


def test_invalid_power_state_is_translated(vcsim, session):
    vm = vm_ref(session, vcsim.host_vm)
    with pytest.raises(InvalidPowerState) as raised:
        session.call_task(vm, "PowerOnVM_Task", what=f"powering on {vcsim.host_vm}")
    assert str(raised.value).startswith(f"powering on {vcsim.host_vm} failed")


def test_an_unknown_datacenter_is_a_config_error(vcsim, make_session):
    session = make_session(vcsim, datacenter="DC9")
    with pytest.raises(ConfigError) as raised:
        session.login()
    assert "VSPHERE_DATACENTER='DC9'" in str(raised.value)


def test_an_unreachable_vcenter_is_retried_with_backoff_then_unavailable(vcsim, start_vcsim, make_session, sleeps):
    gone = start_vcsim()
    gone.stop()
    session = make_session(gone)
    with pytest.raises(VSphereUnavailable) as raised:
        session.login()
    assert "cannot be reached (connecting, 3 attempts)" in str(raised.value)
    assert sleeps == [0.5, 1.0]


def test_datastore_files_round_trip_over_http(vcsim, session):
    files = DatastoreFiles(session)
    with session.counting() as trips:
        files.write("LocalDS_0", "http-test/sub/meta.json", b'{"a":1}')
        assert files.read("LocalDS_0", "http-test/sub/meta.json") == b'{"a":1}'
    assert vcsim.file("LocalDS_0", "http-test/sub/meta.json").read_bytes() == b'{"a":1}'
    assert trips["http.PUT"] == 1 and trips["http.GET"] == 1
    with pytest.raises(FileNotFoundOnDatastore) as raised:
        files.read("LocalDS_0", "http-test/nothing")
    assert str(raised.value) == "reading [LocalDS_0] http-test/nothing failed: it does not exist"


def test_counting_scopes_nest_and_only_count_their_own_thread(session):
    session.login()
    with session.counting() as outer:
        session.get_properties(session.datacenter.ref, ["name"])
        with session.counting() as inner:
            session.get_properties(session.datacenter.ref, ["name"])
    assert inner == {"RetrievePropertiesEx": 1}
    assert outer == {"RetrievePropertiesEx": 2}


def test_a_refused_login_is_not_tried_again(vcsim, make_session):
    """vCenter locks accounts out after a few failures: one plugin start, one attempt."""
    session = make_session(vcsim, password="not-the-" + vcsim.password)
    with session.counting() as trips:
        for _ in range(3):
            with pytest.raises(VSphereAuthError, match="wrong user name or password"):
                session.login()
    assert trips["Login"] == 1


def test_round_trips_faults_and_relogins_reach_the_metrics(vcsim, session, make_session):
    from prometheus_client.parser import text_string_to_metric_families

    from plugin.ops.metrics import Metrics
    metrics = Metrics()
    session.observe(metrics)
    session.login()
    key = session.get_properties(session.content.sessionManager, ["currentSession"])["currentSession"].key
    admin = make_session(vcsim)
    admin.invoke(admin.content.sessionManager, "TerminateSession", sessionId=[key])
    assert session.get_properties(session.datacenter.ref, ["name"])["name"] == "DC0"    # logged in again
    with pytest.raises(FileNotFoundOnDatastore):
        session.call_task(session.content.fileManager, "DeleteDatastoreFile_Task",
                          name="[LocalDS_0] no-such-folder", datacenter=session.datacenter.ref)
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}

    def count(name, **labels):
        return found.get((f"vsphere_volume_{name}", tuple(sorted(labels.items()))), 0)
    assert count("vsphere_calls_total", method="Login") == 2
    assert count("vsphere_calls_total", method="DeleteDatastoreFile_Task") == 1
    assert count("vsphere_calls_total", method="RetrievePropertiesEx") >= 3
    assert count("vsphere_relogins_total") == 1
    assert count("vsphere_faults_total", fault="NotAuthenticated") == 1
    assert count("vsphere_faults_total", fault="FileNotFound") == 1
