"""Off-site copies of folder volumes, through the whole plugin (``build_driver`` over real
settings), to a restic repository in a real S3 server (rclone) on loopback: what is in the
bucket, what a second copy adds, restores as new and in place, retention, verification
before and after damage, an unreachable server, and a second plugin (another host,
another vCenter) that finds the copies and restores them."""

import json
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

import pytest

from plugin import assembly
from plugin.errors import BackupError
from plugin.offsite.errors import CheckFailed, TargetUnreachable
from tests.waiting import wait_until

from .conftest import ACCESS_KEY
from .trees import digest_tree, make_tree

HANG_GUARD = 120      # seconds a step may take before the test gives up (not a measured threshold)


@pytest.fixture
def target_env(tmp_path, s3, s3_secret, password, repo_location):
    """The settings of the target ``offsite`` on the test's S3 server (its repository
    initialised), secrets in files, every check reading all the data."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "repo").write_text(password + "\n")
    (keys / "s3").write_text(s3_secret + "\n")
    return {"BACKUP_TARGETS": f"{repo_location}:offsite",
            "BACKUP_TARGET_OFFSITE_PASSWORD_FILE": str(keys / "repo"),
            "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE": str(keys / "s3"),
            "BACKUP_TARGET_OFFSITE_VERIFY_READ": "100%"}


@pytest.fixture
def plugin(make_driver, tmp_path, target_env, clock):
    """plugin(name="a") -> a started driver of its own (data folder, store), the same target."""
    def make(name="a", **extra):
        own = {"DATA_DIR": str(tmp_path / name / "data"), "MOUNT_ROOT": str(tmp_path / name / "mnt"),
               "VOLUME_STORES": f"file://{tmp_path / name}/store:default"}
        return make_driver(clock=clock, **{**own, **target_env, **extra})
    return make


def folder(driver, name):
    return Path(driver.stores["default"].data_path(name))


def copies(driver, name):
    return driver.backups.api_list(name, "offsite")


def copy_status(driver, name):
    return driver.get(name)["Status"]["Backup"]["Copies"]["offsite"]


def test_a_copy_is_encrypted_a_second_adds_little_and_both_restore(plugin, s3, clock):
    driver = plugin()
    service = driver.backups
    driver.create("mydata", {"BackupCopy": "offsite@daily"})
    marker = f"plaintext-marker-{secrets.token_hex(8)}"
    (folder(driver, "mydata") / "notes.txt").write_text(f"{marker}\n" * 50)
    make_tree(folder(driver, "mydata") / "blobs", files=30, seed=3)
    first_tree = digest_tree(folder(driver, "mydata"))

    [first] = service.api_copy("mydata")

    objects = s3.objects("backups", "offsite/repo")
    assert any("/data/" in str(p) for p in objects)
    assert not [p for p in objects if marker.encode() in p.read_bytes()]       # encrypted
    assert first["BytesAdded"] > 500_000 and first["Origin"] == "manual"
    status = copy_status(driver, "mydata")
    assert status["LastCopy"]["Id"] == first["Id"] and status["LastCopy"]["BytesAdded"] == first["BytesAdded"]
    assert status["LastError"] == ""

    clock.advance(hours=1)
    (folder(driver, "mydata") / "notes.txt").write_text("a small change\n")
    [second] = service.api_copy("mydata")
    assert second["BytesAdded"] < first["BytesAdded"] / 20                     # deduplicated
    assert [c["Id"] for c in copies(driver, "mydata")] == [first["Id"], second["Id"]]

    driver.create("restored", {"RestoreFrom": f"offsite:mydata@{first['Id']}"})
    assert digest_tree(folder(driver, "restored")) == first_tree
    assert driver.get("restored")["Status"]["Backup"]["RestoredFrom"]["Why"] == \
        f"copy {first['Id']} on backup target offsite, as asked"

    shutil.rmtree(folder(driver, "mydata") / "blobs")
    done = service.api_restore("mydata", first["Id"], force=True, backup_target="offsite")
    assert digest_tree(folder(driver, "mydata")) == first_tree
    [safety] = service.api_list("mydata")
    assert safety["Id"] == done["SafetyBackup"] and safety["Origin"] == "pre-restore"


def test_scheduled_copies_follow_their_retention_manual_ones_stay(plugin, clock):
    driver = plugin()
    service = driver.backups
    driver.create("logs", {"BackupCopy": "offsite@on-unmount", "BackupCopyKeep": "2"})
    [manual] = service.api_copy("logs")
    scheduled = []
    for round_ in range(3):
        clock.advance(hours=1)
        driver.mount("logs", "c1")
        (folder(driver, "logs") / f"day{round_}.log").write_text(f"entry {round_}\n")
        driver.unmount("logs", "c1")            # the last unmount asks for a copy
        service.copies.copy_schedule.tick()
        scheduled.append(copy_status(driver, "logs")["LastCopy"]["Id"])

    listed = copies(driver, "logs")
    assert [(c["Id"], c["Origin"]) for c in listed] == [(manual["Id"], "manual"), (scheduled[1], "schedule"),
                                                       (scheduled[2], "schedule")]


def test_verification_succeeds_then_reports_a_damaged_pack(plugin, s3):
    driver = plugin()
    service = driver.backups
    driver.create("mydata", {"BackupCopy": "offsite@daily"})
    make_tree(folder(driver, "mydata"), files=20, seed=5)
    service.api_copy("mydata")

    verified = service.api_verify("offsite")

    assert verified["Result"] == "ok" and verified["Read"] == "100%"
    assert copy_status(driver, "mydata")["LastVerification"]["Result"] == "ok"
    packs = [p for p in s3.objects("backups", "offsite/repo/data") if p.stat().st_size > 10_000]
    with open(packs[0], "r+b") as pack:
        pack.seek(packs[0].stat().st_size // 2)
        pack.write(b"\0" * 64)

    with pytest.raises(CheckFailed, match="verification of backup target offsite damaged: .*"):
        service.api_verify("offsite")
    last = copy_status(driver, "mydata")["LastVerification"]
    assert last["Result"] == "damaged" and last["Problems"]
    [shown] = [t for t in service.api_targets()["Targets"] if t["Label"] == "offsite"]
    assert shown["LastVerification"]["Result"] == "damaged"


def test_an_unreachable_server_fails_the_copy_in_status_while_the_plugin_answers(plugin, s3, monkeypatch, caplog,
                                                                                s3_secret, password):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(assembly, "RESTIC_RETRY_BUDGET", 3.0)
    driver = plugin()
    service = driver.backups
    driver.create("mydata", {"BackupCopy": "offsite@daily"})
    (folder(driver, "mydata") / "f.txt").write_text("data")
    service.api_copy("mydata")
    s3.stop()
    failure = {}

    def copy():
        try:
            service.api_copy("mydata")
        except BackupError as err:
            failure["error"] = err
    running = threading.Thread(target=copy)
    running.start()
    # Get answers while the copy runs (it says so), and a local backup is made meanwhile.
    wait_until(lambda: "Progress" in copy_status(driver, "mydata"), HANG_GUARD, lambda: "the copy's progress")
    assert service.api_create("mydata")["Method"] == "directory"
    running.join(HANG_GUARD)

    assert isinstance(failure["error"], TargetUnreachable)
    assert "the server" in str(failure["error"]) and "offsite" in str(failure["error"])
    status = copy_status(driver, "mydata")
    assert status["LastCopy"]["Result"] == "failed" and status["LastError"] == str(failure["error"])
    assert driver.get("mydata")["Status"]["Backup"]["LastBackup"]["Result"] == "ok"
    # No secret in what anyone sees: the error, inspect, the targets, the log.
    shown = [str(failure["error"]), json.dumps(driver.get("mydata")), json.dumps(service.api_targets()), caplog.text]
    assert not [text for text in shown if s3_secret in text or password in text]


def test_another_plugin_with_the_same_target_and_key_lists_and_restores_the_copies(plugin, tmp_path):
    first = plugin("site-a")
    first.create("mydata", {"BackupCopy": "offsite@daily", "Capacity": "2G"})
    make_tree(folder(first, "mydata"), files=15, seed=9)
    expected = digest_tree(folder(first, "mydata"))
    [made] = first.backups.api_copy("mydata")
    first.stop()
    shutil.rmtree(tmp_path / "site-a")             # the whole site is lost

    second = plugin("site-b")
    [found] = second.backups.api_list("", "offsite")
    assert (found["Volume"], found["Id"], found["Capacity"]) == ("mydata", made["Id"], "2000MB")
    second.create("mydata", {"RestoreFrom": "offsite:mydata@latest"})
    assert digest_tree(folder(second, "mydata")) == expected
    assert second.get("mydata")["Status"]["Capacity"] == "2000MB"


def test_a_target_declared_in_the_settings_file(plugin, tmp_path, template_repository, password):
    shutil.copytree(template_repository, tmp_path / "vault")
    (tmp_path / "vault.key").write_text(password)
    settings = tmp_path / "targets.env"
    settings.write_text(f"# the vault's settings\nBACKUP_TARGET_VAULT_PASSWORD_FILE={tmp_path / 'vault.key'}\n")
    driver = plugin(BACKUP_TARGETS=f"file://{tmp_path / 'vault'}:vault", BACKUP_TARGET_SETTINGS_FILE=str(settings))
    driver.create("mydata", {"BackupCopy": "vault@weekly"})
    (folder(driver, "mydata") / "f.txt").write_text("in the vault")

    [made] = driver.backups.api_copy("mydata")

    assert made["Target"] == "vault"
    assert os.listdir(tmp_path / "vault" / "snapshots")
