"""The plugin as a user meets it: through the real Docker engine, on a directory store.

Each test drives the docker CLI and checks what a user would: the bytes a container
reads, `docker volume inspect`, the files under the plugin's data folder, the error text.
"""

import json
import os
import textwrap

import pytest

from .dockercli import compose, docker
from .user import inspect, run_on as run, running_on, unique, volume_names


def test_create_with_options_is_inspectable_and_laid_out_like_vic(plugin, volume):
    name = volume("opts")
    docker("volume", "create", "-d", plugin.name, "--opt", "Capacity=2G", "--opt", "backup=daily",
           "--opt", "BackupKeep=daily=7,weekly=4", name)
    info = inspect(name)
    assert info["Driver"].startswith(plugin.name)
    assert info["Options"] == {"Capacity": "2G", "backup": "daily", "BackupKeep": "daily=7,weekly=4"}
    status = info["Status"]
    assert status["VolumeStore"] == "default" and status["Capacity"] == "2000MB"
    assert status["Options"]["Backup"] == "daily" and status["Options"]["BackupKeep"] == "daily=7,weekly=4"
    store = os.path.join(plugin.state_dir, "default")
    assert os.path.isdir(os.path.join(store, "volumes", name))
    with open(os.path.join(store, "volumes_metadata", name, "DockerMetaData")) as handle:
        meta = json.load(handle)
    assert meta["Name"] == name and meta["DriverOpts"]["backup"] == "daily"


def test_two_containers_share_data(plugin, volume, test_image):
    name = volume("shared")
    docker("volume", "create", "-d", plugin.name, name)
    with running_on(test_image, name, "echo 'hello from writer' > /data/greeting", "writer") as writer:
        docker("exec", writer, "test", "-f", "/data/greeting")
        assert run(test_image, name, "cat /data/greeting") == "hello from writer\n"
        run(test_image, name, "echo reply > /data/reply")
        assert docker("exec", writer, "cat", "/data/reply").stdout == "reply\n"
        assert inspect(name)["Status"]["Mounts"] == 1
    assert inspect(name)["Status"]["Mounts"] == 0
    with open(os.path.join(plugin.state_dir, "default", "volumes", name, "greeting")) as handle:
        assert handle.read() == "hello from writer\n"


def test_compose_file_with_driver_opts(plugin, test_image, tmp_path):
    project = unique("proj")
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(f"""
        services:
          app:
            image: {test_image}
            network_mode: none
            command: ["sh", "-c", "echo composed > /data/out"]
            volumes: ["appdata:/data"]
        volumes:
          appdata:
            driver: {plugin.name}
            driver_opts:
              Capacity: 5G
              Backup: "daily@02:30"
        """))
    try:
        compose(tmp_path, "-p", project, "up", "--abort-on-container-exit")
        info = inspect(f"{project}_appdata")
        assert info["Status"]["Capacity"] == "5000MB"
        assert info["Status"]["Options"]["Backup"] == "daily@02:30"
        assert run(test_image, f"{project}_appdata", "cat /data/out") == "composed\n"
    finally:
        compose(tmp_path, "-p", project, "down", "--volumes", check=False)
    assert f"{project}_appdata" not in volume_names()


def test_remove_refused_while_in_use_then_allowed(plugin, volume, test_image):
    name = volume("busy")
    docker("volume", "create", "-d", plugin.name, name)
    with running_on(test_image, name, "echo keep > /data/f", "user") as user:
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0 and "in use" in refused.stderr
        assert name in volume_names()
        assert docker("exec", user, "cat", "/data/f").stdout == "keep\n"
    docker("volume", "rm", name)
    assert name not in volume_names()
    store = os.path.join(plugin.state_dir, "default")
    assert not os.path.exists(os.path.join(store, "volumes", name))
    assert not os.path.exists(os.path.join(store, "volumes_metadata", name))


def test_plugin_restart_with_a_running_container(plugin, volume, test_image):
    name = volume("restart")
    docker("volume", "create", "-d", plugin.name, name)
    with running_on(test_image, name, "echo before > /data/f", "survivor") as user:
        docker("exec", user, "test", "-f", "/data/f")
        docker("plugin", "disable", "-f", plugin.name)
        docker("plugin", "enable", plugin.name)
        assert inspect(name)["Status"]["Mounts"] == 1          # mount state survived
        docker("exec", user, "sh", "-c", "echo during >> /data/f")
        assert run(test_image, name, "cat /data/f") == "before\nduring\n"
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0
    assert inspect(name)["Status"]["Mounts"] == 0
    docker("volume", "rm", name)


@pytest.mark.parametrize("args, says", [
    (["--opt", "Capacity=1GiB"], "bad driver value - invalid size: '1GiB'; Capacity takes a whole number of MB"),
    (["--opt", "Capacity=0"], "bad driver value - Invalid size: 0; Capacity takes"),
    (["--opt", "Colour=red"], "bad driver value - Colour is not a supported option; supported are VolumeStore"),
    (["--opt", "VolumeStore=nowhere"], "No volume store named (nowhere) exists; known volume stores: default"),
    (["--opt", "Backup=sometimes"], "Backup='sometimes' is not a valid schedule"),
    (["--opt", "BackupKeep=0"], "BackupKeep='0'"),
    (["--opt", "RestoreFrom=nothing"], "RestoreFrom='nothing' is not valid"),
])
def test_bad_options_are_refused_and_create_nothing(plugin, args, says):
    name = unique("bad")
    result = docker("volume", "create", "-d", plugin.name, *args, name, check=False)
    assert result.returncode != 0
    assert says in result.stderr
    assert name not in volume_names()
    assert not os.path.exists(os.path.join(plugin.state_dir, "default", "volumes", name))


def test_bad_name_is_refused(plugin):
    result = docker("volume", "create", "-d", plugin.name, "bad..name+", check=False)
    assert result.returncode != 0
    assert ('volume name "bad..name+" includes invalid characters, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'
            in result.stderr)
    assert "bad..name+" not in volume_names()


def test_status_command_lists_stores_and_volumes(plugin, volume):
    name = volume("listed")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=weekly", name)
    from plugin.cli import main
    import io
    out, err = io.StringIO(), io.StringIO()
    assert main(["--plugin", plugin.name, "status"], out=out, err=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "default (default)" in text and "file:///var/lib/vsphere-volume/default:default" in text
    assert any(line.split()[:2] == [name, "default"] and "weekly" in line for line in text.splitlines())


@pytest.mark.parametrize("args, name, vic_says", [
    # VIC's own suite (tests/test-cases/Group1-Docker-Commands/1-19-Docker-Volume-Create.robot)
    # asserts these texts from a VCH; the plugin's Err holds the same ones.
    (["--opt", "Capacity=0"], None, "bad driver value - Invalid size: 0"),
    (["--opt", "Capacity=-1"], None, "bad driver value - Invalid size: -1"),
    (["--opt", "Capacity=9223372036854775808"], None,
     "bad driver value - Capacity value too large: 9223372036854775808"),
    (["--opt", "Capacity=9999999999999999999"], None,
     "bad driver value - Capacity value too large: 9999999999999999999"),
    ([], "test???", 'volume name "test???" includes invalid characters, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'),
    (["--opt", "VolumeStore=fakeStore"], None, "No volume store named (fakeStore) exists"),
    (["--opt", "bogus=foo"], None, "bad driver value - bogus is not a supported option"),
])
def test_vics_refusals_read_as_vics_suite_expects_them(plugin, args, name, vic_says):
    name = name or unique("vic")
    result = docker("volume", "create", "-d", plugin.name, *args, name, check=False)
    assert result.returncode != 0
    assert f"create {name}: VolumeDriver.Create: {vic_says}" in result.stderr
    assert name not in volume_names()
    assert not os.path.exists(os.path.join(plugin.state_dir, "default", "volumes", name))


def test_the_options_a_vch_records_for_a_containers_volume_are_accepted_and_kept(plugin, volume, test_image):
    name = volume("anon")
    docker("volume", "create", "-d", plugin.name, "--opt", "flags=rw", "--opt", "container=web-1",
           "--opt", "image=nginx:1", "--opt", "cAPACITy=10000", name)
    options = inspect(name)["Status"]["Options"]
    assert (options["flags"], options["container"], options["image"], options["Capacity"]) == (
        "rw", "web-1", "nginx:1", "10000MB")
    # VIC's DockerMetaData, as Go's json.Marshal writes it.
    with open(os.path.join(plugin.state_dir, "default", "volumes_metadata", name, "DockerMetaData"), "rb") as handle:
        assert handle.read() == (
            b'{"Driver":"vsphere","DriverOpts":{"cAPACITy":"10000","container":"web-1","flags":"rw",'
            b'"image":"nginx:1"},"Name":"' + name.encode() + b'","Labels":{},"AttachHistory":["web-1"],'
            b'"Image":"nginx:1"}')
    assert run(test_image, name, "echo ok > /data/f && cat /data/f") == "ok\n"
