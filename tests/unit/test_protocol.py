"""Docker's volume plugin protocol through Flask's test client."""

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
    assert [(s["Label"], s["Volumes"], s["Default"]) for s in body["Stores"]] == [("default", 0, True), ("slow", 1, False)]
    assert body["Volumes"][0]["Name"] == "v"
