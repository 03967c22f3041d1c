"""Off-site copies as a user meets them: through the real Docker engine and the plugin,
to restic repositories in a real S3 server (rclone) that the tests start on loopback.

The session's plugin gets, for this module, the folder store ``default`` and the datastore
stores ds0/ds1 of the simulator, and two targets on the S3 server: ``offsite`` (its
settings through ``docker plugin set``) and ``vault`` (its settings in the file that
``BACKUP_TARGET_SETTINGS_FILE`` names), secrets in files in the plugin's data folder. The
disaster case starts a second Docker host with the plugin on a second simulator (another
vCenter) configured with the same target and key.
"""

import json
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.offsite.s3server import S3Server
from tests.waiting import wait_until

from .conftest import DATASTORE_STORES, FOLDER_STORES, PLUGIN_DATA_DIR
from .dockercli import docker
from .secondsite import start_second_site
from .test_vmdk_backups import our_snapshots
from .user import inspect, run_on, vv

ACCESS_KEY = "e2e-offsite-access"
KEYS = "offsite-keys"                       # below the plugin's data folder
COPY_WAIT = 180                             # seconds a copy may take (a hang guard, not a measure)
SETTINGS = ("BACKUP_TARGETS", "BACKUP_TARGET_SETTINGS_FILE", "BACKUP_TARGET_OFFSITE_PASSWORD_FILE",
            "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID", "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE",
            "BACKUP_TARGET_OFFSITE_VERIFY_READ")


class Targets:
    """The S3 server, the key files (host side) and the plugin settings of both targets."""

    def __init__(self, s3, keys, settings):
        self.s3, self.keys, self.settings = s3, keys, settings

    def objects(self, bucket):
        return self.s3.objects(bucket)


def write_keys(folder, secret, password):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "repo.key").write_text(password + "\n")
    (folder / "s3.key").write_text(secret + "\n")
    inside = f"{PLUGIN_DATA_DIR}/{KEYS}"
    (folder / "targets.env").write_text(
        "# the vault: a second target, its settings here\n"
        f"BACKUP_TARGET_VAULT_PASSWORD_FILE={inside}/repo.key\n"
        f"BACKUP_TARGET_VAULT_S3_ACCESS_KEY_ID={ACCESS_KEY}\n"
        f"BACKUP_TARGET_VAULT_S3_SECRET_ACCESS_KEY_FILE={inside}/s3.key\n"
        "BACKUP_TARGET_VAULT_VERIFY_READ=100%\n")
    for path in folder.iterdir():
        path.chmod(0o600)


def target_settings(s3):
    inside = f"{PLUGIN_DATA_DIR}/{KEYS}"
    return {"BACKUP_TARGETS": f"{s3.location('backups', 'e2e')}:offsite;{s3.location('vault', 'e2e')}:vault",
            "BACKUP_TARGET_SETTINGS_FILE": f"{inside}/targets.env",
            "BACKUP_TARGET_OFFSITE_PASSWORD_FILE": f"{inside}/repo.key",
            "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE": f"{inside}/s3.key",
            "BACKUP_TARGET_OFFSITE_VERIFY_READ": "100%"}


@pytest.fixture(scope="module")
def targets(plugin):
    secret, password = "s3-secret-" + secrets.token_hex(12), "repo-password-" + secrets.token_hex(12)
    root = Path(tempfile.mkdtemp(prefix="vv-e2e-s3-", dir="/tmp"))
    s3 = S3Server(root / "s3", ACCESS_KEY, secret).start()
    (root / "s3" / "backups").mkdir()
    (root / "s3" / "vault").mkdir()
    keys = Path(plugin.state_dir) / KEYS
    write_keys(keys, secret, password)
    settings = target_settings(s3)
    plugin.configure(VOLUME_STORES=f"{FOLDER_STORES};{DATASTORE_STORES}", **settings)
    try:
        yield Targets(s3, keys, settings)
    finally:
        plugin.configure(VOLUME_STORES=FOLDER_STORES, **dict.fromkeys(SETTINGS, ""))
        s3.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


pytestmark = pytest.mark.usefixtures("targets")


def copy_status(name, target="offsite"):
    return inspect(name)["Status"]["Backup"]["Copies"][target]


def copies(plugin, name, target="offsite"):
    return json.loads(vv(plugin, "backups", name, "--target", target, "--json")[1])


def wait_for_copy(name, after_id=None):
    """The LastCopy of ``name`` on offsite once it is a new one (not ``after_id``) and done."""
    def done():
        last = copy_status(name).get("LastCopy", {})
        return last if last.get("Id") and last["Id"] != after_id and last["Result"] == "ok" else None
    return wait_until(done, COPY_WAIT, lambda: f"a new copy of {name}: {copy_status(name)}")


def plaintext_in(objects, marker):
    return [p for p in objects if marker.encode() in p.read_bytes()]


def test_a_folder_volume_copied_on_unmount_encrypted_deduplicated_kept_two_restored(plugin, volume, test_image,
                                                                                     targets):
    name, restored = volume("offsite-dir"), volume("offsite-dir-new")
    marker = f"plaintext-marker-{secrets.token_hex(8)}"
    docker("volume", "create", "-d", plugin.name, "--opt", "BackupCopy=offsite@on-unmount",
           "--opt", "BackupCopyKeep=2", name)
    run_on(test_image, name, f"for i in $(seq 200); do echo {marker} >> /data/notes.txt; done; "
                             "head -c 1000000 /dev/urandom > /data/blob")
    first = wait_for_copy(name)
    objects = targets.objects("backups")
    assert objects and plaintext_in(objects, marker) == []              # encrypted in the bucket
    assert first["Origin"] == "schedule" and first["BytesAdded"] > 1_000_000

    # (Every container's exit is the last unmount: each makes a copy. So what is read back
    # is read by the same container that wrote it.)
    good = run_on(test_image, name, "echo one more line >> /data/notes.txt; sha256sum /data/blob /data/notes.txt")
    second = wait_for_copy(name, first["Id"])
    assert second["BytesAdded"] < first["BytesAdded"] / 20               # deduplicated: the blob is there
    better = run_on(test_image, name, "echo a third >> /data/notes.txt; sha256sum /data/blob /data/notes.txt")
    third = wait_for_copy(name, second["Id"])
    assert [c["Id"] for c in copies(plugin, name)] == [second["Id"], third["Id"]]     # BackupCopyKeep=2

    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom=offsite:{name}@{second['Id']}", restored)
    assert run_on(test_image, restored, "sha256sum /data/blob /data/notes.txt") == good

    run_on(test_image, name, "rm -f /data/blob; echo broken > /data/notes.txt")
    wait_for_copy(name, third["Id"])              # that copy is of the broken data; the third is kept still
    _, out, _ = vv(plugin, "restore", name, "--target", "offsite", "--backup", third["Id"], "--force")
    assert f"restored from backup {third['Id']} of {name} on backup target offsite" in out
    assert "its previous data is in backup" in out
    assert run_on(test_image, name, "sha256sum /data/blob /data/notes.txt") == better


def test_a_vmdk_volume_copied_from_its_clone_and_restored_as_a_new_volume(plugin, volume, test_image, targets):
    name, restored = volume("offsite-vmdk"), volume("offsite-vmdk-new")
    marker = f"vmdk-marker-{secrets.token_hex(8)}"
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB",
           "--opt", "BackupCopy=offsite@daily", name)
    data = run_on(test_image, name, f"echo {marker} > /data/doc; head -c 300000 /dev/urandom > /data/blob; "
                                    "sha256sum /data/doc /data/blob")

    _, out, _ = vv(plugin, "copy", name)

    assert "made on backup target offsite" in out
    assert plaintext_in(targets.objects("backups"), marker) == []
    assert our_snapshots(plugin) == []                                  # the snapshot lived for the clone only
    assert vv(plugin, "backups", name, "--json")[1].strip() == "[]"     # no local policy: the clone was dropped
    docker("volume", "create", "-d", plugin.name, "--opt", f"RestoreFrom=offsite:{name}@latest", restored)
    assert run_on(test_image, restored, "sha256sum /data/doc /data/blob") == data
    status = inspect(restored)["Status"]
    assert status["VolumeStore"] == "ds0" and status["Capacity"] == "64MB"


def test_verification_succeeds_then_finds_a_damaged_pack(plugin, volume, test_image, targets):
    name = volume("offsite-verify")
    docker("volume", "create", "-d", plugin.name, "--opt", "BackupCopy=vault@weekly", name)
    run_on(test_image, name, "head -c 400000 /dev/urandom > /data/blob")
    vv(plugin, "copy", name)

    _, out, _ = vv(plugin, "verify", "vault")

    assert out.strip() == "backup target vault: ok (read 100%)"
    assert copy_status(name, "vault")["LastVerification"]["Result"] == "ok"
    pack = max(targets.s3.objects("vault", "e2e/data"), key=lambda p: p.stat().st_size)
    with open(pack, "r+b") as damaged:
        damaged.seek(pack.stat().st_size // 2)
        damaged.write(secrets.token_bytes(32))
    code, _, err = vv(plugin, "verify", "vault", check=False)
    assert code == 1 and "verification of backup target vault damaged" in err
    assert copy_status(name, "vault")["LastVerification"]["Result"] == "damaged"
    _, out, _ = vv(plugin, "targets")
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("vault ")] == ["damaged"]


def test_with_the_s3_server_stopped_copies_fail_clearly_and_nothing_else_waits(plugin, volume, test_image, targets):
    name = volume("offsite-down")
    port = targets.s3.port
    targets.s3.stop()
    try:
        # Docker's calls never contact a target: create, mount and unmount go on as usual,
        # the copy the last unmount asks for runs (and fails) in the background.
        docker("volume", "create", "-d", plugin.name, "--opt", "BackupCopy=offsite@on-unmount", name)
        run_on(test_image, name, "echo precious > /data/f")
        failed = wait_until(lambda: copy_status(name).get("LastCopy", {}).get("Result") == "failed"
                            and copy_status(name), COPY_WAIT, lambda: f"the copy failing: {copy_status(name)}")
        assert "backup target offsite" in failed["LastError"] and "cannot be reached" in failed["LastError"]
        assert failed["LastCopy"]["Origin"] == "schedule"
        code, _, err = vv(plugin, "copy", name, check=False)
        assert code == 1 and "cannot be reached" in err and "connection refused" in err
        assert "committed" in vv(plugin, "backup", name)[1]               # local backups go on
        assert inspect(name)["Status"]["Backup"]["LastBackup"]["Result"] == "ok"
        assert run_on(test_image, name, "cat /data/f") == "precious\n"
        assert name in docker("volume", "ls", "-q").stdout.split()
    finally:
        targets.s3.start(port=port)
    # The server is back: the next copy works, without a plugin restart.
    _, out, _ = vv(plugin, "copy", name)
    assert "made on backup target offsite" in out
    assert copy_status(name)["LastError"] == ""


def test_another_host_in_another_vcenter_restores_from_the_same_target(plugin, volume, test_image, targets, engine):
    name = volume("offsite-dr")
    docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=ds0", "--opt", "Capacity=64MB",
           "--opt", "BackupCopy=offsite@daily", name)
    data = run_on(test_image, name, "mkdir -p /data/db; head -c 200000 /dev/urandom > /data/db/pages; "
                                    "echo v1 > /data/VERSION; sha256sum /data/db/pages /data/VERSION")
    vv(plugin, "copy", name)
    folder = Path(tempfile.mkdtemp(prefix="vvdr-", dir="/tmp"))
    shutil.copytree(targets.keys, folder / "state" / KEYS)             # the same key, kept elsewhere
    site = start_second_site(folder, engine, test_image, DATASTORE_STORES, targets.settings)
    try:
        listed = site.vv("backups", "--target", "offsite", "--json").stdout
        found = [c for c in json.loads(listed) if c["Volume"] == name]
        assert found and found[-1]["Capacity"] == "64MB" and found[-1]["VolumeStore"] == "ds0"
        site.docker("volume", "create", "-d", "vsphere", "--opt", f"RestoreFrom=offsite:{name}@latest", name,
                    timeout=180)
        there = site.docker("run", "--rm", "--network", "none", "-v", f"{name}:/data", test_image, "sh", "-c",
                            "sha256sum /data/db/pages /data/VERSION").stdout
        assert there == data, site.plugin_log()
        disk = site.simulator.file("LocalDS_0", f"volumes/e2e/volumes/{name}/{name}.vmdk")
        assert disk.is_file()                                         # in the second vCenter's datastore
    finally:
        site.stop()
