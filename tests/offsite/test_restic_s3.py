"""The restic wrapper against real restic and a real S3 server (rclone) on loopback."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from plugin.offsite.errors import (
    PathNotInSnapshot,
    RepositoryMissing,
    SnapshotNotFound,
    WrongPassword,
)
from plugin.offsite.messages import Progress

from .trees import change_files, digest_tree, make_tree

TAGS = {"volume": "mydata", "backup": "20261123T020000Z", "kind": "schedule"}


def test_first_use_creates_the_repository_then_opens_it(make_restic, empty_location, s3):
    restic = make_restic(empty_location)

    made = restic.ensure_initialised()
    again = restic.ensure_initialised()
    other_host = make_restic(empty_location, cache="host-b").ensure_initialised()

    assert made.created and not again.created and not other_host.created
    assert made.id == again.id == other_host.id != ""
    names = {p.relative_to(s3.root).as_posix() for p in s3.objects("backups", "offsite/repo")}
    assert "backups/offsite/repo/config" in names
    assert any(name.startswith("backups/offsite/repo/keys/") for name in names)


def test_without_create_a_missing_repository_is_reported(make_restic, empty_location, s3):
    with pytest.raises(RepositoryMissing, match="there is no restic repository there"):
        make_restic(empty_location).ensure_initialised(create=False)
    assert s3.objects("backups", "offsite/repo") == []


def test_a_wrong_password_is_a_clear_error_and_never_reinitialises(make_restic, repo_location,
                                                                   s3, caplog):
    made = make_restic(repo_location).ensure_initialised()
    assert not made.created
    keys_before = [p.name for p in s3.objects("backups", "offsite/repo/keys")]
    caplog.set_level(logging.DEBUG)

    with pytest.raises(WrongPassword) as raised:
        make_restic(repo_location, password="not-the-password-123").ensure_initialised()

    text = str(raised.value)
    assert "the password does not open the repository" in text
    assert "backup target offsite" in text
    assert "not-the-password-123" not in text and "not-the-password-123" not in caplog.text
    assert [p.name for p in s3.objects("backups", "offsite/repo/keys")] == keys_before
    assert make_restic(repo_location).ensure_initialised().id == made.id


def test_backup_then_restore_as_new_gives_the_same_bytes(make_restic, repo_location, tree,
                                                         tmp_path):
    restic = make_restic(repo_location)
    seen = []

    result = restic.backup(str(tree), TAGS, host="docker-host-1", progress=seen.append)

    expected = digest_tree(tree)
    assert result.files == len(expected) == 60
    assert result.total_bytes == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert result.bytes_added >= result.total_bytes     # all new, incompressible
    assert seen and all(isinstance(p, Progress) for p in seen)
    [snapshot] = restic.snapshots(tags={"volume": "mydata"})
    assert snapshot.id.startswith(result.snapshot_id)
    assert snapshot.labels == TAGS and snapshot.host == "docker-host-1"
    assert snapshot.paths == (str(tree),)

    progress = []
    restored = restic.restore(snapshot.id, str(tmp_path / "restored"), progress=progress.append)

    assert digest_tree(tmp_path / "restored") == expected
    assert (restored.files, restored.bytes) == (result.files, result.total_bytes)
    assert progress[-1].percent == 100.0 and progress[-1].bytes_done == result.total_bytes


def test_restore_of_one_sub_path(make_restic, repo_location, tree, tmp_path):
    restic = make_restic(repo_location)
    snapshot_id = restic.backup(str(tree), TAGS, host="h1").snapshot_id
    [snapshot] = restic.snapshots()

    restored = restic.restore(snapshot.id, str(tmp_path / "one"), include="dir1/sub1")

    expected = digest_tree(tree / "dir1" / "sub1")
    assert expected and digest_tree(tmp_path / "one" / "dir1" / "sub1") == expected
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["dir1"]
    assert sorted(p.name for p in (tmp_path / "one" / "dir1").iterdir()) == ["sub1"]
    assert restored.files == len(expected)
    with pytest.raises(PathNotInSnapshot, match="the snapshot has no 'dir9'"):
        restic.restore(snapshot_id, str(tmp_path / "none"), include="dir9")


def test_the_bucket_holds_only_ciphertext(make_restic, repo_location, tree, s3):
    restic = make_restic(repo_location)
    restic.backup(str(tree), TAGS, host="h1")

    objects = [p.read_bytes() for p in s3.objects("backups", "offsite/repo")]
    samples = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        data = path.read_bytes()
        samples += [data[i:i + 64] for i in range(0, len(data) - 64, len(data) // 4)]

    assert len(objects) > 5 and len(samples) >= 60 * 4
    assert not [s for s in samples if any(s in blob for blob in objects)]
    assert not [o for o in objects if b"file0001.bin" in o or b"mydata" in o]


def test_a_second_backup_after_a_small_change_adds_a_small_part(make_restic, repo_location,
                                                                  tmp_path):
    root = make_tree(tmp_path / "big", files=200, seed=7, min_size=20_000, max_size=40_000)
    restic = make_restic(repo_location)
    first = restic.backup(str(root), TAGS, host="h1")

    changed = change_files(root, 0.01, seed=8)
    second = restic.backup(str(root), {**TAGS, "backup": "20261124T020000Z"}, host="h1")

    changed_bytes = sum(p.stat().st_size for p in changed)
    assert len(changed) == 2
    assert second.files_changed == 2 and second.files_unmodified == 198
    assert changed_bytes <= second.bytes_added <= 0.03 * first.total_bytes
    assert first.bytes_added >= first.total_bytes


def test_forget_applies_keep_rules_to_one_volume_and_prunes(make_restic, repo_location, tree,
                                                           s3):
    restic = make_restic(repo_location)
    day = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    times = [day, day + timedelta(hours=5), day + timedelta(days=1), day + timedelta(days=2),
             day + timedelta(days=2, hours=3)]
    ids = {}
    for index, when in enumerate(times):
        (tree / "changing.bin").write_bytes(bytes([index]) * 50_000 + index.to_bytes(4, "big"))
        tags = {"volume": "a", "backup": when.strftime("%Y%m%dT%H%M%SZ"), "kind": "schedule"}
        host = "h2" if index in (3, 4) else "h1"          # the volume moved to another host
        ids[when] = restic.backup(str(tree), tags, host=host, taken_at=when).snapshot_id
    manual = restic.backup(str(tree), {"volume": "a", "backup": "m1", "kind": "manual"}, host="h1",
                           taken_at=day - timedelta(days=30)).snapshot_id
    other = restic.backup(str(tree), {"volume": "b", "backup": "x", "kind": "schedule"},
                          host="h1", taken_at=day - timedelta(days=40)).snapshot_id
    snapshot_files = len(s3.objects("backups", "offsite/repo/snapshots"))

    result = restic.forget("daily=2", tags={"volume": "a", "kind": "schedule"})

    left = {s.short_id for s in restic.snapshots()}
    # The newest of each of the last 2 days that have snapshots, whichever host made them:
    # Nov 22 05:00 (h2) and Nov 21 (h1).
    assert left == {ids[times[4]], ids[times[2]], manual, other}
    assert {i[:8] for i in result.removed} == {ids[times[0]], ids[times[1]], ids[times[3]]}
    assert result.pruned
    assert len(s3.objects("backups", "offsite/repo/snapshots")) == snapshot_files - 3


def test_delete_one_snapshot_and_an_unknown_one(make_restic, repo_location, tree):
    restic = make_restic(repo_location)
    first = restic.backup(str(tree), TAGS, host="h1").snapshot_id
    [snapshot] = restic.snapshots()

    restic.delete(snapshot.id)

    assert restic.snapshots() == []
    with pytest.raises(SnapshotNotFound, match=f"has no snapshot {first}"):
        restic.delete(first)
