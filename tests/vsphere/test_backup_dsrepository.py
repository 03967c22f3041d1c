"""The backup catalog and the backup leases on a datastore, against the simulator.

What a person browsing the datastore sees (files under ``backups/``), what the catalog
lists, and how many vCenter round trips that takes.
"""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from plugin.backup import manifest as mf
from plugin.backup.dslease import DatastoreLeaseFolder
from plugin.backup.dsrepository import DatastoreBackupRepository
from plugin.backup.lease import LeaseHeld, LeaseLost, Leases
from plugin.errors import BackupError, InvalidOption, NotFound
from plugin.policy.retention import parse_keep
from plugin.vsphere.files import DatastoreFiles
from tests.fakes import FakeClock

DS = "LocalDS_1"
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def repo(session, store_path):
    return DatastoreBackupRepository(session, DS, store_path)


def local(vcsim, store_path, *parts):
    return vcsim.file(DS, "/".join((store_path, "backups") + parts))


def manifest_for(staging, when=T0, **changes):
    fields = {"volume": staging.volume, "backup_id": staging.backup_id, "method": mf.DIRECT_CLONE,
              "origin": "schedule", "created": when, "started": when, "finished": when, "store": "s",
              "source": f"[{DS}] x/volumes/{staging.volume}/{staging.volume}.vmdk", "size": 5,
              "data": f"{staging.volume}.vmdk"}
    fields.update(changes)
    return mf.Manifest(**fields)


def put_data(session, staging, text=b"disk bytes"):
    """Stand-in for the engine's copy: a file named like the disk in the backup folder."""
    relative = staging.location.split("] ", 1)[1]
    DatastoreFiles(session).write(DS, f"{relative}/{staging.volume}.vmdk", text)


def backed_up(repo, session, volume, when=T0):
    staging = repo.begin(volume, when)
    put_data(session, staging)
    repo.commit(manifest_for(staging, when))
    return staging


def test_a_backup_is_a_folder_under_backups_committed_by_its_manifest(repo, session, vcsim, store_path):
    staging = repo.begin("pgdata", T0)
    assert staging.backup_id == "20261123T020000Z"
    assert staging.location == f"[{DS}] {store_path}/backups/pgdata/20261123T020000Z"
    assert repo.location("pgdata", staging.backup_id) == staging.location
    folder = local(vcsim, store_path, "pgdata", staging.backup_id)
    assert folder.is_dir()
    assert repo.list("pgdata") == []        # not committed yet
    put_data(session, staging)
    repo.commit(manifest_for(staging))
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "pgdata.vmdk"]   # no temporary left
    assert json.loads((folder / "manifest.json").read_text())["backup_id"] == staging.backup_id
    assert [m.backup_id for m in repo.list("pgdata")] == [staging.backup_id]
    assert repo.read("pgdata", staging.backup_id).data == "pgdata.vmdk"
    assert not vcsim.file(DS, f"{store_path}/volumes").exists()   # never under volumes/


def test_ids_in_the_same_second_get_suffixes_and_list_in_time_order(repo, session):
    made = [backed_up(repo, session, "v", T0).backup_id for _ in range(3)]
    made.append(backed_up(repo, session, "v", T0 - timedelta(days=1)).backup_id)
    assert made[:3] == ["20261123T020000Z", "20261123T020000Z-1", "20261123T020000Z-2"]
    assert [m.backup_id for m in repo.list("v")] == [made[3]] + made[:3]
    assert repo.latest("v").backup_id == "20261123T020000Z-2"


def test_commit_refuses_what_was_not_begun_twice_or_without_data(repo, session):
    staging = repo.begin("v", T0)
    missing = r"its data 'v.vmdk' is not in \[LocalDS_1\] \S*/backups/v/20261123T020000Z$"
    with pytest.raises(BackupError, match=missing):
        repo.commit(manifest_for(staging))
    put_data(session, staging)
    repo.commit(manifest_for(staging))
    with pytest.raises(BackupError, match="is committed already"):
        repo.commit(manifest_for(staging))
    ghost = manifest_for(staging, backup_id="20261124T020000Z")
    with pytest.raises(BackupError, match="it was not begun, or was aborted"):
        repo.commit(ghost)
    unchanged = manifest_for(repo.begin("v", T0), method=mf.UNCHANGED, data="", base=staging.backup_id)
    repo.commit(unchanged)                                     # holds no data: nothing to find
    assert [m.method for m in repo.list("v")] == [mf.DIRECT_CLONE, mf.UNCHANGED]


def test_read_delete_and_not_found(repo, session, vcsim, store_path):
    first = backed_up(repo, session, "v")
    second = backed_up(repo, session, "v", T0 + timedelta(hours=1))
    with pytest.raises(NotFound, match="volume 'v' has no backup 20261124T020000Z"):
        repo.read("v", "20261124T020000Z")
    with pytest.raises(InvalidOption, match="not a backup id"):
        repo.read("v", "../../volumes")
    repo.delete("v", first.backup_id)
    assert [m.backup_id for m in repo.list("v")] == [second.backup_id]
    assert not local(vcsim, store_path, "v", first.backup_id).exists()
    with pytest.raises(NotFound):
        repo.delete("v", first.backup_id)
    repo.delete("v", second.backup_id)
    assert not local(vcsim, store_path, "v").exists()          # the volume's folder goes with its last backup
    assert repo.list("v") == []


def test_abort_deletes_a_staged_backup_only(repo, session, vcsim, store_path):
    staging = repo.begin("v", T0)
    put_data(session, staging)
    repo.abort(staging)
    repo.abort(staging)                                        # idempotent
    assert not local(vcsim, store_path, "v").exists()
    committed = backed_up(repo, session, "v")
    with pytest.raises(BackupError, match="is committed: delete it instead"):
        repo.abort(committed)
    assert len(repo.list("v")) == 1


def test_incomplete_backups_are_never_listed_and_cleaned_up_by_age(repo, session, vcsim, store_path):
    done = backed_up(repo, session, "a")
    old = repo.begin("a", T0 - timedelta(hours=2))
    put_data(session, old)                                     # a copy that died before its manifest
    running = repo.begin("a", T0 + timedelta(hours=1))
    only_incomplete = repo.begin("b", T0 - timedelta(hours=3))
    assert [m.backup_id for m in repo.list("a")] == [done.backup_id] and repo.list("b") == []
    removed = repo.cleanup_incomplete(before=T0)
    assert sorted(removed) == [("a", old.backup_id), ("b", only_incomplete.backup_id)]
    assert not local(vcsim, store_path, "b").exists()
    assert local(vcsim, store_path, "a", running.backup_id).is_dir()      # too recent: may be copying
    assert repo.cleanup_incomplete("a") == [("a", running.backup_id)]
    assert [m.backup_id for m in repo.list("a")] == [done.backup_id]


def test_a_bad_manifest_is_a_damaged_backup_listed_apart_kept_and_deletable(repo, session, vcsim, store_path, caplog):
    good = backed_up(repo, session, "v")
    bad = backed_up(repo, session, "v", T0 + timedelta(minutes=1))
    path = local(vcsim, store_path, "v", bad.backup_id, "manifest.json")
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert [m.backup_id for m in repo.list("v")] == [good.backup_id]     # never restored
    assert f"backup {bad.backup_id} of volume v is damaged and cannot be restored" in caplog.text
    [damaged] = repo.scan("v").damaged
    assert (damaged.backup_id, damaged.state) == (bad.backup_id, "damaged")
    assert damaged.reason.startswith(f"{bad.location}/manifest.json is not valid JSON")
    with pytest.raises(BackupError, match="is not valid JSON"):
        repo.read("v", bad.backup_id)
    assert path.exists() and repo.cleanup_incomplete() == []
    repo.delete("v", bad.backup_id)
    assert not path.parent.exists()
    assert repo.scan("v").damaged == [] and [m.backup_id for m in repo.list("v")] == [good.backup_id]


def test_prune_reclaims_a_damaged_backup_on_the_datastore(repo, session, vcsim, store_path):
    made = [backed_up(repo, session, "v", T0 + timedelta(days=day)) for day in range(3)]
    local(vcsim, store_path, "v", made[0].backup_id, "manifest.json").write_text("")
    assert repo.prune("v", parse_keep("2"), T0 + timedelta(days=3), "UTC") == [made[0].backup_id]
    assert not local(vcsim, store_path, "v", made[0].backup_id).exists()
    scan = repo.scan("v")
    assert [m.backup_id for m in scan.backups] == [m.backup_id for m in made[1:]] and scan.damaged == []


def test_listing_takes_a_bounded_number_of_round_trips(repo, session):
    backed_up(repo, session, "v")
    with session.counting() as one:
        assert len(repo.list("v")) == 1
    for minute in range(1, 6):
        backed_up(repo, session, "v", T0 + timedelta(minutes=minute))
    backed_up(repo, session, "w")
    with session.counting() as six:
        assert len(repo.list("v")) == 6
    soap = {k: v for k, v in six.items() if not k.startswith("http.")}
    assert soap == {k: v for k, v in one.items() if not k.startswith("http.")}
    assert soap["SearchDatastoreSubFolders_Task"] == 1 and sum(soap.values()) <= 3
    assert (one["http.GET"], six["http.GET"]) == (1, 6)        # one per manifest, read concurrently
    with session.counting() as begin:
        repo.begin("v", T0 + timedelta(days=1))
    assert dict(begin) == {"MakeDirectory": 1}


def test_commit_abort_and_delete_take_the_round_trips_the_module_says(repo, session):
    def soap(trips):
        return {k: v for k, v in trips.items() if k != "RetrievePropertiesEx"}   # task polls vary
    staging = repo.begin("v", T0)
    put_data(session, staging)
    with session.counting() as commit:
        repo.commit(manifest_for(staging))
    assert soap(commit) == {"SearchDatastoreSubFolders_Task": 1, "http.PUT": 1, "MoveDatastoreFile_Task": 1}
    aborted = repo.begin("v", T0)
    with session.counting() as abort:
        repo.abort(aborted)
    assert soap(abort) == {"http.GET": 1, "DeleteDatastoreFile_Task": 1, "SearchDatastore_Task": 1}
    with session.counting() as delete:
        repo.delete("v", staging.backup_id)                    # the volume's last backup
    assert soap(delete) == {"DeleteDatastoreFile_Task": 3, "SearchDatastore_Task": 1}


# --- leases ---------------------------------------------------------------------------

@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def hosts(make_session, vcsim, store_path, clock):
    """Two Docker hosts, each with its own session, sharing the store's lease folder."""
    return [Leases(DatastoreLeaseFolder(make_session(vcsim), DS, store_path), f"host-{n} (plugin pid {n})", clock)
            for n in (1, 2)]


def test_a_lease_held_by_another_host_is_refused_with_who_and_until_when(hosts, clock, vcsim, store_path):
    host_1, host_2 = hosts
    lease = host_1.take("pgdata")
    owner = local(vcsim, store_path, ".leases", "pgdata", "owner.json")
    assert json.loads(owner.read_text())["owner"] == "host-1 (plugin pid 1)"
    assert [p.name for p in owner.parent.parent.iterdir()] == ["pgdata"]          # no temporary left
    clock.advance(minutes=9)
    with pytest.raises(LeaseHeld, match=r"volume 'pgdata' is busy: host-1 \(plugin pid 1\) is backing it up; "
                                        r"its backup lease runs until 2026-11-23 02:10:00 UTC"):
        host_2.take("pgdata")
    assert host_2.take("other").owner.startswith("host-2")
    lease = host_1.renew(lease)
    clock.advance(minutes=9)
    with pytest.raises(LeaseHeld):
        host_2.take("pgdata")                                  # still held thanks to the renewal
    assert host_1.release(lease)
    assert not owner.parent.exists()
    assert host_2.take("pgdata").owner.startswith("host-2")


def test_leases_within_a_subfolder_live_beside_the_backup_leases_on_the_datastore(hosts, vcsim, store_path):
    host_1, host_2 = hosts
    copying = host_1.within(".copies-offsite").take("pgdata", "making its scheduled copy to backup target offsite")
    assert local(vcsim, store_path, ".leases", ".copies-offsite", "pgdata", "owner.json").is_file()
    with pytest.raises(LeaseHeld, match="is making its scheduled copy to backup target offsite"):
        host_2.within(".copies-offsite").take("pgdata")
    assert host_2.take("pgdata").owner.startswith("host-2")        # the backup lease is another one
    assert host_1.within(".copies-offsite").release(copying)
    assert not local(vcsim, store_path, ".leases", ".copies-offsite", "pgdata").exists()


def test_an_expired_lease_is_broken_and_its_holder_finds_out(hosts, clock):
    host_1, host_2 = hosts
    stale = host_1.take("v")
    clock.advance(minutes=11)
    taken = host_2.take("v")
    assert taken.owner.startswith("host-2")
    with pytest.raises(LeaseLost, match="is now held by host-2"):
        host_1.renew(stale)
    assert not host_1.release(stale)                           # never frees another holder's lease
    assert host_2.holder("v").token == taken.token


def test_a_lease_folder_without_owner_counts_as_held_until_it_expires(hosts, clock, session, store_path):
    host_1, _host_2 = hosts
    folder = DatastoreLeaseFolder(session, DS, store_path)
    assert folder.make("v") and not folder.make("v")           # made atomically, once
    made = folder.made("v")
    assert made is not None and abs((made - datetime.now(UTC)).total_seconds()) < 60
    clock.now = made + timedelta(minutes=5)
    with pytest.raises(LeaseHeld, match="an unknown owner"):
        host_1.take("v")
    clock.now = made + timedelta(minutes=11)
    assert host_1.take("v").owner.startswith("host-1")
    with pytest.raises(FileNotFoundError):
        folder.write("gone", b"{}")                            # a released lease is not made again
    assert folder.read("gone") is None and folder.made("gone") is None
