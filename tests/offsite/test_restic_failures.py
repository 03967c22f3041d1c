"""Verification, failures and recovery of the restic wrapper, against real restic and S3."""

import logging
import subprocess

import pytest

from plugin.offsite.errors import (
    CheckFailed,
    RepositoryLocked,
    TargetAuthError,
    TargetTLSError,
    TargetUnreachable,
)
from plugin.offsite.process import ProcessRunner
from tests.e2e.vch import make_tls

from .conftest import ACCESS_KEY
from ..waiting import wait_until
from .s3server import S3Server
from .trees import digest_tree, make_tree

TAGS = {"volume": "mydata", "backup": "20261123T020000Z", "kind": "manual"}


def _flip_a_byte(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_check_passes_then_reports_a_damaged_pack(make_restic, repo_location, tree, s3):
    restic = make_restic(repo_location)
    restic.backup(str(tree), TAGS, host="h1")

    healthy = restic.check(read_data_subset="100%")
    packs = s3.objects("backups", "offsite/repo/data")
    _flip_a_byte(max(packs, key=lambda p: p.stat().st_size))
    damaged = restic.check(read_data_subset="100%")

    assert healthy.ok and healthy.problems == ()
    assert not damaged.ok
    assert any("Pack ID does not match" in line for line in damaged.problems)
    assert any("repository contains errors" in line for line in damaged.problems)
    with pytest.raises(CheckFailed, match="found damage: .*Pack ID does not match") as raised:
        restic.check(read_data_subset="100%", raise_on_damage=True)
    assert raised.value.problems == list(damaged.problems)


def test_a_stopped_server_is_a_typed_error_at_once_without_secrets(make_restic, repo_location,
                                                                   s3, password, s3_secret,
                                                                   tree, caplog):
    restic = make_restic(repo_location)
    caplog.set_level(logging.DEBUG)
    s3.stop()

    errors = []
    for call in (restic.ensure_initialised, restic.snapshots,
                 lambda: restic.backup(str(tree), TAGS, host="h1")):
        with pytest.raises(TargetUnreachable) as raised:
            call()
        errors.append(str(raised.value))

    for text in errors:
        assert "the server cannot be reached" in text and "connection refused" in text
        assert repo_location in text
    shown = "\n".join(errors) + caplog.text
    assert password not in shown and s3_secret not in shown


def test_a_server_gone_during_a_backup_stops_it_within_the_retry_budget(
        make_restic, repo_location, s3, tmp_path, password, s3_secret):
    root = make_tree(tmp_path / "slow", files=8, seed=3, min_size=200_000, max_size=250_000)
    restic = make_restic(repo_location, limit_upload=64,
                         options={"retry_budget": 2.0, "runner": ProcessRunner(grace=2.0)})
    port = s3.port

    def stop_server(progress):
        s3.stop()

    with pytest.raises(TargetUnreachable) as raised:
        restic.backup(str(root), TAGS, host="h1", progress=stop_server)

    text = str(raised.value)
    assert "the server stopped answering; restic retried for 2 s and was stopped" in text
    assert "connection refused" in text
    assert password not in text and s3_secret not in text

    # Back again: the interrupted backup's lock (of a process now gone) is stale; an
    # operation that needs the exclusive lock removes it and goes on.
    s3.start(port=port)
    assert len(s3.objects("backups", "offsite/repo/locks")) == 1
    restic.forget("3", tags={"volume": "mydata"})
    assert s3.objects("backups", "offsite/repo/locks") == []
    assert restic.snapshots() == []


def _environment(location, password, s3_secret):
    return {"PATH": "/usr/bin:/bin", "RESTIC_REPOSITORY": location, "RESTIC_PASSWORD": password,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": s3_secret}


def test_a_lock_held_by_a_live_process_is_reported_then_released(
        make_restic, repo_location, s3, password, s3_secret, tree):
    restic = make_restic(repo_location)
    restic.backup(str(tree), TAGS, host="h1")
    holder = subprocess.Popen(["restic", "backup", "--stdin", "--no-cache", "--tag=volume=mydata"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              env=_environment(repo_location, password, s3_secret))
    try:
        wait_until(lambda: s3.objects("backups", "offsite/repo/locks"), 30, "restic's lock object in the bucket",
                   poll=0.05)
        with pytest.raises(RepositoryLocked) as raised:
            restic.forget("1", tags={"volume": "mydata"})
    finally:
        holder.stdin.write(b"some data\n")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0

    text = str(raised.value)
    assert "the repository is locked by another restic process" in text
    assert f"PID {holder.pid}" in text
    assert len(restic.snapshots()) == 2       # nothing was forgotten while locked
    assert len(restic.forget("1", tags={"volume": "mydata"}).removed) == 1
    assert len(restic.snapshots()) == 1


def test_another_host_with_the_same_location_and_password_restores(make_restic, repo_location,
                                                                   tree, tmp_path):
    # The disaster case: the first host (and its cache) is gone; a second one has only
    # the target's location and password.
    first = make_restic(repo_location, cache="host-a")
    saved = first.backup(str(tree), TAGS, host="docker-host-1")

    second = make_restic(repo_location, cache="host-b")
    [snapshot] = second.snapshots(tags={"volume": "mydata"})
    restored = second.restore(snapshot.id, str(tmp_path / "elsewhere"))

    assert snapshot.host == "docker-host-1" and snapshot.labels["backup"] == TAGS["backup"]
    assert snapshot.id.startswith(saved.snapshot_id)
    assert digest_tree(tmp_path / "elsewhere") == digest_tree(tree)
    assert restored.bytes == saved.total_bytes
    assert (tmp_path / "cache" / "host-b").is_dir()


def test_a_folder_repository_round_trip(make_restic, tree, tmp_path):
    restic = make_restic(str(tmp_path / "disk" / "repo"))

    assert restic.ensure_initialised().created
    saved = restic.backup(str(tree), TAGS, host="h1")
    restored = restic.restore(saved.snapshot_id, str(tmp_path / "back"))

    assert (tmp_path / "disk" / "repo" / "config").is_file()
    assert digest_tree(tmp_path / "back") == digest_tree(tree)
    assert restored.files == saved.files
    assert restic.check(read_data_subset="1/1").ok


def test_a_refused_s3_secret_is_an_auth_error(make_restic, repo_location):
    restic = make_restic(repo_location, s3_secret_access_key="wrong-secret-0123456789")

    with pytest.raises(TargetAuthError) as raised:
        restic.snapshots()

    assert "the object store refused the access key or secret key" in str(raised.value)
    assert "wrong-secret-0123456789" not in str(raised.value)


class RecordingRunner(ProcessRunner):
    """The real runner, recording each command line and environment."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def run(self, argv, **kwargs):
        self.calls.append((list(argv), dict(kwargs["env"])))
        return super().run(argv, **kwargs)


def test_secrets_travel_only_in_the_environment(make_restic, repo_location, tree, tmp_path,
                                                password, s3_secret, monkeypatch):
    monkeypatch.setenv("VSPHERE_PASSWORD", "the-vcenter-password")
    runner = RecordingRunner()
    restic = make_restic(repo_location, options={"runner": runner})
    saved = restic.backup(str(tree), TAGS, host="h1")
    restic.restore(saved.snapshot_id, str(tmp_path / "back"))
    restic.forget("1", tags={"volume": "mydata"})

    assert len(runner.calls) >= 3
    for argv, env in runner.calls:
        assert not [arg for arg in argv if password in arg or s3_secret in arg]
        assert env["RESTIC_PASSWORD"] == password and env["AWS_SECRET_ACCESS_KEY"] == s3_secret
        assert "VSPHERE_PASSWORD" not in env


def test_tls_is_verified_by_default(tmp_path, make_restic, s3_secret):
    tls = make_tls(tmp_path / "tls")
    server = S3Server(tmp_path / "s3-tls", ACCESS_KEY, s3_secret,
                      cert=tls.server_cert, key=tls.server_key).start()
    try:
        location = server.location("backups", "tls/repo")
        assert location.startswith("s3:https://127.0.0.1:")

        with pytest.raises(TargetTLSError, match="certificate did not verify"):
            make_restic(location).ensure_initialised()
        with pytest.raises(TargetTLSError, match="certificate did not verify"):
            make_restic(location, ca_file=str(tls.wrong_ca)).ensure_initialised()
        assert server.objects("backups") == []
        made = make_restic(location, ca_file=str(tls.ca)).ensure_initialised()
        opened = make_restic(location, insecure_tls=True).ensure_initialised()
    finally:
        server.stop()

    assert made.created and not opened.created and made.id == opened.id
