import json
import logging
import os
from datetime import UTC, datetime, timedelta

import pytest

from plugin.backup import manifest as mf
from plugin.backup.repository import LocalBackupRepository
from plugin.errors import BackupError, InvalidName, InvalidOption, NotFound
from plugin.policy.retention import parse_keep

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path):
    return LocalBackupRepository(tmp_path / "store")


def manifest_for(staging, when=T0, **changes):
    fields = {"volume": staging.volume, "backup_id": staging.backup_id, "method": mf.DIRECTORY,
                  "origin": "schedule", "created": when, "started": when, "finished": when, "store": "file1",
                  "source": f"/srv/volumes/{staging.volume}", "size": 5, "data": "data"}
    fields.update(changes)
    return mf.Manifest(**fields)


def backed_up(repo, volume, when=T0, **changes):
    staging = repo.begin(volume, when)
    (staging.location / "data").mkdir()
    (staging.location / "data" / "f").write_bytes(b"hello")
    repo.commit(manifest_for(staging, when, **changes))
    return staging


def test_begin_makes_a_folder_under_backups_and_commit_lists_it(repo, tmp_path):
    staging = repo.begin("pgdata", T0)
    assert staging.backup_id == "20261123T020000Z"
    assert staging.location == tmp_path / "store" / "backups" / "pgdata" / "20261123T020000Z"
    assert staging.location.is_dir()
    assert repo.list("pgdata") == []  # not committed yet
    (staging.location / "data").mkdir()
    repo.commit(manifest_for(staging))
    [listed] = repo.list("pgdata")
    assert listed.backup_id == staging.backup_id
    assert json.loads((staging.location / "manifest.json").read_text())["backup_id"] == staging.backup_id
    assert sorted(os.listdir(staging.location)) == ["data", "manifest.json"]  # no temporary file left


def test_backups_in_the_same_second_get_distinct_ids_and_list_in_order(repo):
    made = [backed_up(repo, "v", T0).backup_id for _ in range(11)]
    made.append(backed_up(repo, "v", T0 + timedelta(seconds=1)).backup_id)
    assert made[1] == "20261123T020000Z-1" and made[10] == "20261123T020000Z-10"
    assert [m.backup_id for m in repo.list("v")] == made
    assert repo.latest("v").backup_id == "20261123T020001Z"


def test_read_delete_and_not_found(repo):
    staging = backed_up(repo, "v")
    assert repo.read("v", staging.backup_id).size == 5
    with pytest.raises(NotFound, match="volume 'v' has no backup 20261124T020000Z"):
        repo.read("v", "20261124T020000Z")
    with pytest.raises(InvalidOption, match="not a backup id"):
        repo.read("v", "../../etc")
    with pytest.raises(InvalidName):
        repo.list("../etc")
    repo.delete("v", staging.backup_id)
    assert not staging.location.exists()
    assert not staging.location.parent.exists()  # the volume's folder goes with its last backup
    assert repo.list("v") == [] and repo.latest("v") is None
    with pytest.raises(NotFound):
        repo.delete("v", staging.backup_id)


def test_commit_refuses_what_was_not_begun_twice_or_without_data(repo):
    staging = repo.begin("v", T0)
    with pytest.raises(BackupError, match="its data 'data' is not in"):
        repo.commit(manifest_for(staging))
    (staging.location / "data").mkdir()
    repo.commit(manifest_for(staging))
    with pytest.raises(BackupError, match="is committed already"):
        repo.commit(manifest_for(staging))
    with pytest.raises(BackupError, match="does not exist"):
        repo.commit(manifest_for(staging, backup_id="20261125T000000Z"))
    with pytest.raises(BackupError, match="delete it instead"):
        repo.abort(staging)


def test_abort_and_cleanup_of_incomplete_backups(repo):
    done = backed_up(repo, "v")
    aborted = repo.begin("v", T0 + timedelta(hours=1))
    repo.abort(aborted)
    assert not aborted.location.exists()
    old = repo.begin("v", T0 + timedelta(hours=2))
    (old.location / "data").mkdir()
    (old.location / "data" / "half").write_bytes(b"x")
    running = repo.begin("w", T0 + timedelta(hours=5))
    removed = repo.cleanup_incomplete(before=T0 + timedelta(hours=4))
    assert removed == [("v", old.backup_id)]
    assert not old.location.exists() and running.location.exists() and done.location.exists()
    assert repo.cleanup_incomplete(volume="w") == [("w", running.backup_id)]
    assert [m.backup_id for m in repo.list("v")] == [done.backup_id] and not (repo.backups / "w").exists()


def test_volumes_stay_listed_after_they_are_gone_and_bookkeeping_is_not_a_volume(repo):
    backed_up(repo, "gone", origin="final")
    (repo.backups / ".leases" / "gone").mkdir(parents=True)
    assert repo.cleanup_incomplete() == [] and (repo.backups / ".leases" / "gone").is_dir()
    assert [m.backup_id for m in repo.list("gone")] == ["20261123T020000Z"]
    assert repo.read("gone", "20261123T020000Z").origin == "final"


def test_an_invalid_manifest_is_a_damaged_backup_listed_apart_logged_kept_and_deletable(repo, caplog):
    good = backed_up(repo, "v")
    bad = backed_up(repo, "v", T0 + timedelta(hours=1))
    (bad.location / "manifest.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING):
        assert [m.backup_id for m in repo.list("v")] == [good.backup_id]      # never restored
    assert f"backup {bad.backup_id} of volume v is damaged and cannot be restored" in caplog.text
    [damaged] = repo.scan("v").damaged
    assert (damaged.backup_id, damaged.state, damaged.reclaimable) == (bad.backup_id, "damaged", True)
    assert damaged.reason.startswith(f"{bad.location}/manifest.json is not valid JSON")
    assert damaged.summary() == {"Id": bad.backup_id, "Volume": "v", "Created": "2026-11-23T03:00:00Z",
                                 "State": "damaged", "Problem": damaged.reason}
    assert repo.cleanup_incomplete() == [] and bad.location.exists()        # committed: not incomplete
    assert repo.latest("v").backup_id == good.backup_id
    with pytest.raises(BackupError, match="not valid JSON"):
        repo.read("v", bad.backup_id)
    repo.delete("v", bad.backup_id)
    assert not bad.location.exists() and repo.scan("v").damaged == []


def test_a_manifest_of_a_newer_plugin_is_unreadable_not_damaged(repo):
    backed_up(repo, "v")
    newer = backed_up(repo, "v", T0 + timedelta(hours=1))
    document = json.loads((newer.location / "manifest.json").read_text())
    (newer.location / "manifest.json").write_text(json.dumps(dict(document, format=2)))
    [unreadable] = repo.scan("v").damaged
    assert (unreadable.state, unreadable.origin, unreadable.reclaimable) == ("unreadable", "schedule", False)
    assert "written by a newer plugin" in unreadable.reason


def test_a_manifest_in_the_wrong_folder_is_refused(repo):
    staging = backed_up(repo, "v")
    other = repo.begin("v", T0 + timedelta(days=1))
    (other.location / "manifest.json").write_bytes((staging.location / "manifest.json").read_bytes())
    with pytest.raises(BackupError, match="describes backup 20261123T020000Z"):
        repo.read("v", other.backup_id)


def test_unchanged_backup_resolves_to_the_data_of_its_base(repo):
    base = backed_up(repo, "v")
    same = repo.begin("v", T0 + timedelta(days=1))
    repo.commit(manifest_for(same, method=mf.UNCHANGED, data="", base=base.backup_id))
    unchanged = repo.read("v", same.backup_id)
    assert repo.data_manifest(unchanged).backup_id == base.backup_id
    assert os.listdir(same.location) == ["manifest.json"]
    repo.delete("v", base.backup_id)
    with pytest.raises(BackupError, match="which no longer exists"):
        repo.data_manifest(unchanged)


def damage(staging, **fields):
    """Break a committed manifest: not JSON at all, or JSON with ``fields`` made wrong."""
    path = staging.location / "manifest.json"
    if not fields:
        path.write_text("{ not json")
        return
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **fields)))


def test_prune_reclaims_damaged_backups_as_retention_says_never_in_place_of_a_usable_one(repo):
    days = [backed_up(repo, "v", T0 + timedelta(days=d)) for d in range(5)]    # scheduled, daily
    damage(days[1])                       # old: retention prunes a scheduled backup of that time
    damage(days[4])                       # the newest: kept, yet it keeps no usable one out
    manual = backed_up(repo, "v", T0 + timedelta(days=1, hours=12), origin="manual")
    damage(manual, size=-1)               # damaged, but still says it is manual: kept until deleted
    deleted = repo.prune("v", parse_keep("2"), T0 + timedelta(days=5), "UTC")
    assert deleted == [days[0].backup_id, days[1].backup_id]
    scan = repo.scan("v")
    assert [m.backup_id for m in scan.backups] == [days[2].backup_id, days[3].backup_id]
    assert [(d.backup_id, d.origin) for d in scan.damaged] == [(manual.backup_id, "manual"), (days[4].backup_id, "")]
    assert not days[1].location.exists()


def test_prune_keeps_what_it_cannot_read_now(repo):
    old = backed_up(repo, "v")
    for day in (1, 2):
        backed_up(repo, "v", T0 + timedelta(days=day))
    damage(old, format=2)                 # a newer plugin's: not ours to judge
    assert repo.prune("v", parse_keep("1"), T0 + timedelta(days=3), "UTC") == ["20261124T020000Z"]
    assert [d.backup_id for d in repo.scan("v").damaged] == [old.backup_id]
