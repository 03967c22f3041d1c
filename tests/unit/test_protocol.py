"""Docker's volume plugin protocol through Flask's test client."""

import logging

import pytest

DOCKER_TYPE = "application/vnd.docker.plugins.v1+json"


def call(client, path, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else __import__("json").dumps(body))
    response = client.post(path, data=data, headers={"Content-Type": DOCKER_TYPE})
    return response.status_code, response.get_json()


def test_activate_with_empty_body(client):
    assert call(client, "/Plugin.Activate") == (200, {"Implements": ["VolumeDriver"]})


def test_capabilities(client):
    assert call(client, "/VolumeDriver.Capabilities", {}) == (200, {"Capabilities": {"Scope": "local"}})


def test_full_lifecycle(client):
    assert call(client, "/VolumeDriver.Create", {"Name": "v", "Opts": {"Capacity": "1G"}}) == (200, {"Err": ""})
    status, body = call(client, "/VolumeDriver.Get", {"Name": "v"})
    assert status == 200 and body["Volume"]["Name"] == "v" and body["Volume"]["Status"]["Capacity"] == "1000MB"
    status, body = call(client, "/VolumeDriver.Mount", {"Name": "v", "ID": "abc"})
    assert status == 200 and body["Mountpoint"].endswith("/v")
    assert call(client, "/VolumeDriver.Path", {"Name": "v"})[1]["Mountpoint"] == body["Mountpoint"]
    assert call(client, "/VolumeDriver.List", {})[1]["Volumes"] == [{"Name": "v", "Mountpoint": body["Mountpoint"]}]
    status, refused = call(client, "/VolumeDriver.Remove", {"Name": "v"})
    assert status == 500 and "in use" in refused["Err"]
    assert call(client, "/VolumeDriver.Unmount", {"Name": "v", "ID": "abc"}) == (200, {"Err": ""})
    assert call(client, "/VolumeDriver.Remove", {"Name": "v"}) == (200, {"Err": ""})
    assert call(client, "/VolumeDriver.List", {})[1]["Volumes"] == []


def test_create_without_opts(client):
    assert call(client, "/VolumeDriver.Create", {"Name": "v"}) == (200, {"Err": ""})


@pytest.mark.parametrize("body, says", [
    ({"Name": "bad/name"}, 'volume name "bad/name" includes invalid characters'),
    ({"Name": "v", "Opts": {"Colour": "red"}}, "Colour is not a supported option"),
    ({}, "the request has no Name"),
    ({"Name": 5}, "Name must be a str"),
    ({"Name": "v", "Opts": "x"}, "Opts must be a dict"),
])
def test_errors_are_err_text(client, body, says):
    status, reply = call(client, "/VolumeDriver.Create", body)
    assert status == 500 and says in reply["Err"]


def test_malformed_json(client):
    status, reply = call(client, "/VolumeDriver.Get", raw="{not json")
    assert status == 500 and reply == {"Err": "the request body is not valid JSON"}


def test_get_unknown(client):
    assert call(client, "/VolumeDriver.Get", {"Name": "nope"}) == (500, {"Err": "no volume named nope"})


def test_replies_carry_docker_content_type(client):
    response = client.post("/VolumeDriver.List", data="")
    assert response.headers["Content-Type"] == DOCKER_TYPE


def test_plugin_status(client):
    call(client, "/VolumeDriver.Create", {"Name": "v", "Opts": {"VolumeStore": "slow"}})
    status, body = call(client, "/Plugin.Status", {})
    assert status == 200
    stores = [(s["Label"], s["Volumes"], s["Default"]) for s in body["Stores"]]
    assert stores == [("default", 0, True), ("slow", 1, False)]
    assert body["Volumes"][0]["Name"] == "v"


# --- the /Backup.* endpoints -------------------------------------------------------------

def write(tmp_path, name, text):
    (tmp_path / "fast" / "volumes" / name / "f").write_text(text)


def read(tmp_path, name):
    return (tmp_path / "fast" / "volumes" / name / "f").read_text()


def test_backup_create_list_and_progress(client, tmp_path):
    assert call(client, "/VolumeDriver.Create", {"Name": "v"}) == (200, {"Err": ""})
    write(tmp_path, "v", "one")
    assert call(client, "/Backup.Progress", {"Name": "v"}) == (200, {"Progress": {}, "Err": ""})
    status, body = call(client, "/Backup.Create", {"Name": "v"})
    assert status == 200 and body["Err"] == ""
    made = body["Backup"]
    assert (made["Volume"], made["Method"], made["Origin"], made["Size"]) == ("v", "directory", "manual", 3)
    assert (tmp_path / "fast" / "backups" / "v" / made["Id"] / "data" / "f").read_text() == "one"
    status, body = call(client, "/Backup.List", {"Name": "v"})
    assert status == 200 and body["Err"] == ""
    assert [(b["Id"], b["State"]) for b in body["Backups"]] == [(made["Id"], "ok")]


def test_backup_restore_as_new_then_in_place_with_force(client, tmp_path):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    write(tmp_path, "v", "one")
    made = call(client, "/Backup.Create", {"Name": "v"})[1]["Backup"]
    write(tmp_path, "v", "two")
    assert call(client, "/Backup.Restore", {"Name": "v", "Target": "copy"}) == (
        200, {"Restore": {"Volume": "copy", "Backup": made["Id"], "Why": f"latest backup {made['Id']}"}, "Err": ""})
    assert read(tmp_path, "copy") == "one" and read(tmp_path, "v") == "two"
    status, refused = call(client, "/Backup.Restore", {"Name": "v", "Backup": made["Id"]})
    assert status == 500 and refused["Err"].startswith("restoring volume v in place replaces its data: add --force")
    assert read(tmp_path, "v") == "two"
    status, body = call(client, "/Backup.Restore", {"Name": "v", "Backup": made["Id"], "Force": True})
    assert status == 200 and body["Err"] == ""
    done = body["Restore"]
    assert (done["Volume"], done["Backup"], done["Why"]) == ("v", made["Id"], f"backup {made['Id']}, as asked")
    assert read(tmp_path, "v") == "one"
    listed = call(client, "/Backup.List", {"Name": "v"})[1]["Backups"]
    assert [b["Origin"] for b in listed if b["Id"] == done["SafetyBackup"]] == ["pre-restore"]


def test_backup_delete_and_prune(client, tmp_path):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    write(tmp_path, "v", "one")
    made = call(client, "/Backup.Create", {"Name": "v"})[1]["Backup"]
    assert call(client, "/Backup.Prune", {"Name": "v"}) == (200, {"Deleted": [], "Err": ""})   # manual: kept
    assert call(client, "/Backup.Delete", {"Name": "v", "Backup": made["Id"]}) == (200, {"Err": ""})
    assert not (tmp_path / "fast" / "backups" / "v" / made["Id"]).exists()
    assert call(client, "/Backup.List", {"Name": "v"}) == (200, {"Backups": [], "Err": ""})
    status, body = call(client, "/Backup.Delete", {"Name": "v", "Backup": made["Id"]})
    assert status == 500 and body == {"Err": f"volume v has no backup {made['Id']}"}


@pytest.mark.parametrize("path, body, err", [
    ("/Backup.Create", {}, "the request has no Name"),
    ("/Backup.Create", {"Name": "ghost"}, "no volume named ghost"),
    ("/Backup.List", {"Name": "ghost"}, "no volume named ghost and no backups of one"),
    ("/Backup.List", {"Name": ["v"]}, "Name must be a str"),
    ("/Backup.Restore", {"Name": "ghost"}, "volume ghost has no backups"),
    ("/Backup.Restore", {"Name": "v", "Force": "yes"}, "Force must be a bool"),
    ("/Backup.Delete", {"Name": "v"}, "the request has no Backup"),
    ("/Backup.Prune", {"Name": 7}, "Name must be a str"),
    ("/Backup.Progress", {}, "the request has no Name"),
])
def test_backup_requests_are_checked_and_refusals_are_err_text(client, path, body, err):
    assert call(client, path, body) == (500, {"Err": err})


@pytest.mark.parametrize("path, body", [
    ("/Backup.Progress", {"Name": "../../etc"}),
    ("/Backup.Create", {"Name": "../../etc"}),
    ("/Backup.List", {"Name": "../../etc"}),
    ("/Backup.Restore", {"Name": "../../etc"}),
    ("/Backup.Restore", {"Name": "v", "Target": "../../etc"}),
    ("/Backup.Delete", {"Name": "../../etc", "Backup": "20261123T000000Z"}),
    ("/Backup.Delete", {"Name": "v", "Backup": "../../etc"}),
    ("/Backup.Prune", {"Name": "../../etc"}),
])
def test_every_backup_endpoint_refuses_a_bad_name(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 500
    assert 'volume name "../../etc" includes invalid characters' in response.get_json()["Err"] or \
        "'../../etc' is not a backup id" in response.get_json()["Err"]


def test_a_deeply_nested_body_is_a_clear_refusal_not_an_internal_error(client, caplog):
    status, body = call(client, "/VolumeDriver.Create", raw="[" * 100_000)
    assert status == 500 and body["Err"] == ("the request body is not a plugin request: "
                                             "its JSON is nested too deeply")
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("path, body", [
    ("/VolumeDriver.Create", {"Name": "x" * 10_000_000}),
    ("/VolumeDriver.Get", {"Name": "x" * 10_000_000}),
    ("/VolumeDriver.Create", {"Name": "v", "Opts": {"Capacity": "x" * 10_000_000}}),
    ("/VolumeDriver.Create", {"Name": "v", "Opts": {"x" * 10_000_000: "1"}}),
])
def test_a_huge_name_or_option_is_not_echoed_whole(client, caplog, path, body):
    caplog.set_level(logging.DEBUG)
    status, reply = call(client, path, body)
    assert status == 500 and 0 < len(reply["Err"]) < 600
    assert caplog.records and max(len(record.getMessage()) for record in caplog.records) < 1000


def test_every_call_is_told_to_the_observer_and_a_failing_one_changes_no_answer(driver, caplog):
    from plugin.protocol import create_app
    told = []

    def observe(endpoint, result, seconds):
        told.append((endpoint, result, seconds >= 0))
        if endpoint == "VolumeDriver.List":
            raise RuntimeError("a bug in the observer")
    client = create_app(driver, observe=observe).test_client()
    assert call(client, "/VolumeDriver.Create", {"Name": "v"}) == (200, {"Err": ""})
    assert call(client, "/VolumeDriver.Get", {"Name": "nope"})[0] == 500
    assert call(client, "/VolumeDriver.Get", raw="[1]")[0] == 500
    assert call(client, "/VolumeDriver.List", {}) == (200, {"Volumes": [{"Name": "v", "Mountpoint": ""}], "Err": ""})
    assert told == [("VolumeDriver.Create", "ok", True), ("VolumeDriver.Get", "error", True),
                    ("VolumeDriver.Get", "error", True), ("VolumeDriver.List", "ok", True)]
    assert "the call observer failed on /VolumeDriver.List" in caplog.text


def test_plugin_status_answers_what_it_is_given(driver):
    from plugin.protocol import create_app
    client = create_app(driver, describe=lambda: {"Stores": [], "Volumes": [], "Operations": {"Errors": {}}}) \
        .test_client()
    assert call(client, "/Plugin.Status", {})[1]["Operations"] == {"Errors": {}}


# --- the endpoints on backup targets (the defaults: the local tier and the embedded one) -----

def test_backup_targets_lists_the_default_targets_without_secrets(client, tmp_path):
    status, body = call(client, "/Backup.Targets")
    assert status == 200 and body["Err"] == "" and body["Problems"] == []
    local, offsite = body["Targets"]
    assert (local["Label"], local["Kind"], local["Available"]) == ("local", "local", True)
    assert (offsite["Label"], offsite["Kind"], offsite["Location"]) == ("offsite", "file", f"{tmp_path}/data/offsite")
    assert offsite["Password"] == f"file {tmp_path}/data/state/offsite-target.key"
    assert offsite["Verify"] == "weekly" and offsite["NextVerification"]


def test_backup_calls_naming_a_target_check_what_they_are_given(client):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    status, refused = call(client, "/Backup.List", {})
    assert status == 500 and refused["Err"] == "the request has no Name"
    status, refused = call(client, "/Backup.List", {"BackupTarget": "off site"})
    assert status == 500 and "'off site' is not a backup target label" in refused["Err"]
    status, refused = call(client, "/Backup.Copy", {"Name": "v"})
    assert status == 500 and "volume v has no BackupCopy: name the target" in refused["Err"]
    status, refused = call(client, "/Backup.Copy", {"Name": "v", "BackupTarget": "nowhere"})
    assert status == 500 and "no backup target is labelled nowhere (targets: local, offsite" in refused["Err"]
    status, refused = call(client, "/Backup.Verify", {"BackupTarget": "offsite", "Read": "200%"})
    assert status == 500 and "read_data_subset='200%' is not valid" in refused["Err"]
    status, refused = call(client, "/Backup.Restore", {"Name": "v", "Path": "a/b"})
    assert status == 500 and "needs the backup target it is on" in refused["Err"]


def test_the_local_tier_through_the_target_contract(client):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    made = call(client, "/Backup.Create", {"Name": "v"})[1]["Backup"]
    status, body = call(client, "/Backup.List", {"BackupTarget": "local"})
    assert status == 200
    [listed] = body["Backups"]
    assert (listed["Id"], listed["Volume"], listed["Target"], listed["Method"]) == (made["Id"], "v", "local",
                                                                                    "directory")
    status, body = call(client, "/Backup.Restore", {"Name": "v", "BackupTarget": "local", "Target": "w"})
    assert status == 200 and body["Restore"]["Volume"] == "w"
    assert call(client, "/Backup.Verify", {"BackupTarget": "local"})[1]["Verification"]["Result"] == "ok"
    status, refused = call(client, "/Backup.Restore", {"Name": "v", "BackupTarget": "local", "Target": "x",
                                                       "Path": "sub"})
    assert status == 500 and "the local tier restores whole volumes" in refused["Err"]


# --- /Volume.Detach (vsphere-volume detach) ------------------------------------------------

def test_volume_detach_of_a_folder_volume_has_nothing_to_detach(client):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    assert call(client, "/Volume.Detach", {"Name": "v", "Plan": True}) == (200, {"Disk": "", "Holders": [],
                                                                                "Err": ""})
    assert call(client, "/Volume.Detach", {"Name": "v", "Force": True, "From": []}) == (
        200, {"Disk": "", "Detached": [], "Err": ""})


@pytest.mark.parametrize("body, err", [
    ({}, "the request has no Name"),
    ({"Name": "ghost"}, "no volume named ghost"),
    ({"Name": "v", "Force": "yes"}, "Force must be a bool"),
    ({"Name": "v", "From": "vm-1"}, "From must be a list of VM names"),
    ({"Name": "v", "From": [1]}, "From must be a list of VM names"),
    ({"Name": "../../etc"}, 'volume name "../../etc" includes invalid characters'),
])
def test_volume_detach_requests_are_checked(client, body, err):
    call(client, "/VolumeDriver.Create", {"Name": "v"})
    status, reply = call(client, "/Volume.Detach", body)
    assert status == 500 and reply["Err"].startswith(err)

