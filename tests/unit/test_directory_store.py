"""Directory stores on real folders: VIC's layout and modes, a create that appears whole or
not at all (a real SIGKILL of a plugin process at each step), leftovers cleaned at start,
and NFS stores acting as their uid/gid (the kernel's own permission checks, on a local
folder: this machine has no NFS client)."""

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from plugin.errors import BackendError, Conflict
from plugin.options import parse_options
from plugin.stores.base import docker_metadata
from plugin.stores.directory import CREATING, TRASH, DirectoryStore
from plugin.storespec import parse_store_spec

from ..crash import run_and_kill
from ..fakes import FakeMounter

REPO = Path(__file__).resolve().parents[2]


def create(store, name, **given):
    opts = parse_options({"VolumeStore": store.label, **given}, [store.label])
    store.create(name, opts, docker_metadata(name, opts.given))


def meta_file(root, name):
    return Path(root) / "volumes_metadata" / name / "DockerMetaData"


# --- layout ---------------------------------------------------------------------------------

def test_create_lays_out_like_vic_with_vics_modes_and_metadata_bytes(tmp_path):
    store = DirectoryStore(parse_store_spec(f"file://{tmp_path}/s?uid=1234&gid=4321:s"), str(tmp_path / "s"))
    store.open()
    old = os.umask(0o077)            # the plugin's umask does not narrow VIC's modes
    try:
        create(store, "web", Capacity="2G", container="web-1", image="nginx:1")
    finally:
        os.umask(old)
    data = tmp_path / "s" / "volumes" / "web"
    assert stat.S_IMODE(data.stat().st_mode) == 0o755 and (data.stat().st_uid, data.stat().st_gid) == (1234, 4321)
    assert stat.S_IMODE(meta_file(tmp_path / "s", "web").parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(meta_file(tmp_path / "s", "web").stat().st_mode) == 0o644
    # Go's json.Marshal of VIC's VolumeMetadata: compact, struct order, map keys sorted, no newline.
    assert meta_file(tmp_path / "s", "web").read_bytes() == (
        b'{"Driver":"vsphere","DriverOpts":{"Capacity":"2G","VolumeStore":"s","container":"web-1",'
        b'"image":"nginx:1"},"Name":"web","Labels":{},"AttachHistory":["web-1"],"Image":"nginx:1"}')
    assert os.listdir(tmp_path / "s" / CREATING) == []
    [found] = store.discover()
    assert (found.name, found.problem, found.metadata["DriverOpts"]["container"]) == ("web", "", "web-1")


def test_a_data_folder_without_metadata_is_shown_with_a_problem_and_left_alone(tmp_path):
    store = DirectoryStore(parse_store_spec(f"file://{tmp_path}/s:s"), str(tmp_path / "s"))
    store.open()
    (tmp_path / "s" / "volumes" / "half").mkdir()
    (tmp_path / "s" / "volumes" / "half" / "user-data").write_text("keep me")
    [found] = store.discover()
    assert found.metadata == {} and "has no metadata" in found.problem
    assert not (tmp_path / "s" / "volumes_metadata" / "half").exists()
    with pytest.raises(Conflict, match="volume half already exists in volume store s"):
        create(store, "half")
    assert (tmp_path / "s" / "volumes" / "half" / "user-data").read_text() == "keep me"


def test_a_failed_second_step_undoes_the_claim(tmp_path, monkeypatch):
    store = DirectoryStore(parse_store_spec(f"file://{tmp_path}/s:s"), str(tmp_path / "s"))
    store.open()

    def publish(name, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store, "_publish", publish)
    with pytest.raises(BackendError, match="cannot create volume v: No space left on device"):
        create(store, "v")
    for folder in ("volumes", "volumes_metadata", CREATING):
        assert os.listdir(tmp_path / "s" / folder) == []


# --- crashes: a real plugin process killed at a step -------------------------------------------

CHILD = """
import json, os, shutil, sys
sys.path.insert(0, {repo!r})
from plugin.assembly import build_driver
from plugin.settings import from_env
from tests.fakes import FakeMounter

cfg = json.loads(sys.argv[1])

def stop(path):
    print("stopped at", path, flush=True)
    sys.stdin.read()                              # SIGKILL comes here

real_rename, real_rmtree = os.rename, shutil.rmtree

def rename(src, dst, *args, **kwargs):
    if cfg["stop"] == "rename into " + os.path.basename(os.path.dirname(dst)):
        stop(dst)
    return real_rename(src, dst, *args, **kwargs)

def rmtree(path, *args, **kwargs):
    if cfg["stop"] == "delete metadata" and os.path.dirname(path).endswith("volumes_metadata"):
        stop(path)
    return real_rmtree(path, *args, **kwargs)

os.rename, shutil.rmtree = rename, rmtree
driver = build_driver(from_env(cfg["env"]), mounter=FakeMounter(), backups=False)
driver.start()
getattr(driver, cfg["call"])(*cfg["args"])
print("not stopped", flush=True)
"""


def kill_during(env, stop, call, *args):
    """Run the plugin's driver in a child process, doing ``call(*args)`` until ``stop``;
    SIGKILL it there."""
    run_and_kill(CHILD.format(repo=str(REPO)), {"env": env, "stop": stop, "call": call, "args": list(args)})


def test_killed_after_the_claim_the_create_is_finished_at_start(env, make_driver, tmp_path):
    kill_during(env, "rename into volumes", "create", "orders", {"Backup": "weekly", "Capacity": "2G"})
    assert not (tmp_path / "fast" / "volumes" / "orders").exists()            # killed between the two steps
    assert meta_file(tmp_path / "fast", "orders").exists()

    driver = make_driver()                                                  # the plugin starts again
    status = driver.get("orders")["Status"]
    assert status["Options"]["Backup"] == "weekly" and status["Capacity"] == "2000MB" and "Problem" not in status
    assert (tmp_path / "fast" / "volumes" / "orders").is_dir()
    assert os.listdir(tmp_path / "fast" / CREATING) == []
    driver.create("orders", {"Backup": "weekly", "Capacity": "2G"})         # Docker's retry: the same volume
    with pytest.raises(Conflict, match="other options"):
        driver.create("orders", {"Backup": "daily"})


def test_killed_before_the_claim_nothing_is_left_and_a_retry_creates(env, make_driver, tmp_path):
    kill_during(env, "rename into volumes_metadata", "create", "orders", {"Backup": "weekly"})
    assert os.listdir(tmp_path / "fast" / CREATING) != []                   # the dead create's building folder

    driver = make_driver()
    assert [v["Name"] for v in driver.list()] == []
    assert os.listdir(tmp_path / "fast" / CREATING) == []
    assert not (tmp_path / "fast" / "volumes_metadata" / "orders").exists()
    driver.create("orders", {"Backup": "daily"})
    assert driver.get("orders")["Status"]["Options"]["Backup"] == "daily"


def test_killed_mid_remove_the_orphan_metadata_goes_at_start(env, make_driver, driver, tmp_path):
    driver.create("orders", {"Backup": "weekly"})
    kill_during(env, "delete metadata", "remove", "orders")
    assert not (tmp_path / "fast" / "volumes" / "orders").exists()           # gone for Docker and VIC
    assert meta_file(tmp_path / "fast", "orders").exists()                   # its metadata left behind

    again = make_driver()
    assert not (tmp_path / "fast" / "volumes_metadata" / "orders").exists()
    assert os.listdir(tmp_path / "fast" / TRASH) == []
    again.create("orders", {"Backup": "daily"})                              # a new volume of that name
    assert json.loads(meta_file(tmp_path / "fast", "orders").read_text())["DriverOpts"] == {"Backup": "daily"}


def test_leftover_temporary_files_in_metadata_folders_go_at_start(driver, make_driver, tmp_path):
    driver.create("orders", {})
    leftover = tmp_path / "fast" / "volumes_metadata" / "orders" / ".tmp-k2j3h4"
    leftover.write_text('{"Driver": "vsph')                                 # an interrupted atomic write
    make_driver()
    assert os.listdir(leftover.parent) == ["DockerMetaData"]


# --- NFS stores: acting as the store's uid and gid --------------------------------------------

@pytest.fixture
def export():
    """A local folder standing in for an NFS export's root, owned by uid/gid 1000 (the
    folders above it can be traversed by that user)."""
    top = tempfile.mkdtemp(prefix="vv-export-", dir="/tmp")
    os.chmod(top, 0o755)  # noqa: S103 - the export's parent, traversed by its uid
    root = Path(top) / "export"
    root.mkdir()
    os.chown(root, 1000, 1000)
    yield root
    shutil.rmtree(top)


def nfs_store(root, query="", label="shared", **options):
    spec = parse_store_spec(f"nfs://nas.example.com/vols{query}:{label}")
    return DirectoryStore(spec, str(root), FakeMounter(), has_nfs=lambda: True, **options)


def owner(path):
    info = os.stat(path)
    return info.st_uid, info.st_gid


def test_an_nfs_store_makes_everything_as_its_uid_and_gid(export):
    store = nfs_store(export)                    # VIC's default: uid 1000, gid 1000
    store.open()
    create(store, "web")
    for path in (export / "volumes", export / "volumes_metadata", export / "volumes" / "web",
                 meta_file(export, "web").parent, meta_file(export, "web")):
        assert owner(path) == (1000, 1000), path          # made so by the kernel: no chown as root
    assert json.loads(meta_file(export, "web").read_text())["Name"] == "web"
    assert [v.name for v in store.discover()] == ["web"]
    assert store.attach("web") == str(export / "volumes" / "web")
    store.remove("web")
    assert os.listdir(export / "volumes") == [] and os.listdir(export / "volumes_metadata") == []
    assert store._mounter.mounted == {str(export): "nas.example.com:/vols"}
    assert os.geteuid() == 0 and os.getuid() == 0          # the process itself stays root


def test_an_export_the_uid_may_not_write_makes_the_store_unavailable_with_the_reason(export):
    os.chown(export, 0, 0)                                  # as a root-squashing export not given to uid 1000
    with pytest.raises(BackendError, match=f"cannot prepare {export} as uid 1000 gid 1000: Permission denied"):
        nfs_store(export).open()
    nfs_store(export, "?uid=0").open()                      # uid=0 (gid follows): root may
    assert owner(export / "volumes") == (0, 0)


def test_on_a_shared_store_a_young_leftover_may_be_another_hosts_create(export):
    store = nfs_store(export)
    store.open()
    # Another host's create between its two steps: its claimed metadata, its building folder.
    with store.acting():
        (export / "volumes_metadata" / "web").mkdir()
        meta_file(export, "web").write_text("{}")
        other = export / CREATING / "0123456789ab-0badc0de-1" / "volumes" / "web"
        other.mkdir(parents=True)
    nfs_store(export).open()                                # this host starts: leaves both alone
    assert meta_file(export, "web").exists() and other.is_dir()
    with pytest.raises(Conflict, match="volume web is being created in volume store shared by another host"):
        create(store, "web")
    # Long after (orphan_age 0 here), they are a host's leftovers: the create is finished.
    nfs_store(export, orphan_age=0).open()
    assert (export / "volumes" / "web").is_dir() and os.listdir(export / CREATING) == []


def test_on_a_shared_store_an_old_orphan_is_replaced_by_a_create(export):
    store = nfs_store(export, orphan_age=0)
    store.open()
    with store.acting():
        (export / "volumes_metadata" / "web").mkdir()
        meta_file(export, "web").write_text('{"DriverOpts": {"Capacity": "1"}}')
    create(store, "web", Capacity="7")
    assert json.loads(meta_file(export, "web").read_text())["DriverOpts"]["Capacity"] == "7"


def test_a_containers_volume_made_by_a_vch_is_listed_with_its_options_and_no_problem(make_driver, tmp_path):
    # What a VCH records for `docker run -v /data nginx` (storage_proxy.go: flags, container, image).
    root = tmp_path / "fast"
    (root / "volumes" / "3f1e0c9a").mkdir(parents=True)
    meta_file(root, "3f1e0c9a").parent.mkdir(parents=True)
    meta_file(root, "3f1e0c9a").write_text(json.dumps({
        "Driver": "vsphere", "DriverOpts": {"container": "web-1", "flags": "rw", "image": "nginx"},
        "Name": "3f1e0c9a", "Labels": None, "AttachHistory": ["web-1"], "Image": "nginx"}))
    status = make_driver().get("3f1e0c9a")["Status"]
    assert "Problem" not in status
    assert (status["Options"]["container"], status["Options"]["flags"], status["Options"]["image"]) == (
        "web-1", "rw", "nginx")
