"""The pieces composed as the backup service composes them for a directory volume.

``back_up`` and ``restore`` below are the flow the service runs (begin, copy hard-linked to
the newest backup holding data, record ``unchanged`` when nothing changed, commit; resolve,
find the data holder, restore): these tests check that the catalog, the manifest, the
copier and retention fit together, with real files and inode numbers.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest

from plugin.backup.dircopy import BACKUP_DATA_FOLDER, DirectoryCopier, data_folder
from plugin.backup.manifest import DIRECTORY, UNCHANGED, Manifest
from plugin.backup.repository import LocalBackupRepository
from plugin.errors import BackupError
from plugin.policy.retention import MANUAL, SCHEDULE, parse_keep


@pytest.fixture
def setup(tmp_path, make_clock):
    volume = tmp_path / "store" / "volumes" / "mydata"
    volume.mkdir(parents=True)
    (volume / "notes.txt").write_bytes(b"version 1")
    (volume / "keep.bin").write_bytes(os.urandom(1000))
    repo = LocalBackupRepository(tmp_path / "store")
    clock = make_clock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    return volume, repo, clock, DirectoryCopier()


def back_up(setup, origin=SCHEDULE):
    volume, repo, clock, copier = setup
    clock.advance(hours=1)
    newest = repo.latest("mydata")
    base = repo.data_manifest(newest) if newest else None
    staging = repo.begin("mydata", clock())
    result = copier.backup(volume, data_folder(staging.location),
                           previous=data_folder(repo.location("mydata", base.backup_id)) if base else None)
    made = Manifest(volume="mydata", backup_id=staging.backup_id, origin=origin,
                    method=DIRECTORY if result.changed else UNCHANGED,
                    data=BACKUP_DATA_FOLDER if result.changed else "", base="" if result.changed else base.backup_id,
                    created=clock(), started=clock(), finished=clock(), store="files", source=str(volume),
                    size=result.size, extra={"files": result.files, "linked": result.linked})
    repo.commit(made)
    return made


def restore(setup, ref, target, force=False):
    _, repo, _, copier = setup
    chosen = repo.latest("mydata") if ref == "latest" else repo.read("mydata", ref)
    holder = repo.data_manifest(chosen)
    copier.restore(data_folder(repo.location("mydata", holder.backup_id)), target, force=force)
    return target


def empty(tmp_path, name):
    (tmp_path / name).mkdir()
    return tmp_path / name


def test_backup_unchanged_change_and_restore(setup, tmp_path):
    volume, repo, _, _ = setup
    first = back_up(setup)
    assert first.extra == {"files": 2, "linked": 0} and first.size == 1009

    same = back_up(setup)
    assert (same.method, same.base) == (UNCHANGED, first.backup_id)
    assert os.listdir(repo.location("mydata", same.backup_id)) == ["manifest.json"]  # costs one file

    (volume / "notes.txt").write_bytes(b"version 2")
    (volume / "new.txt").write_bytes(b"new")
    changed = back_up(setup)
    assert changed.method == DIRECTORY and changed.extra == {"files": 3, "linked": 1}
    first_data = data_folder(repo.location("mydata", first.backup_id))
    changed_data = data_folder(repo.location("mydata", changed.backup_id))
    assert os.lstat(changed_data / "keep.bin").st_ino == os.lstat(first_data / "keep.bin").st_ino

    old = restore(setup, first.backup_id, empty(tmp_path, "as-first"))
    assert (old / "notes.txt").read_bytes() == b"version 1" and not (old / "new.txt").exists()
    via_unchanged = restore(setup, same.backup_id, empty(tmp_path, "as-same"))
    assert (via_unchanged / "notes.txt").read_bytes() == b"version 1"
    latest = restore(setup, "latest", empty(tmp_path, "as-latest"))
    assert (latest / "notes.txt").read_bytes() == b"version 2" and (latest / "new.txt").read_bytes() == b"new"


def test_restore_in_place_needs_force(setup):
    volume, _, _, _ = setup
    first = back_up(setup)
    (volume / "notes.txt").write_bytes(b"damaged")
    (volume / "stray").write_bytes(b"made after the backup")
    with pytest.raises(BackupError, match="not empty"):
        restore(setup, first.backup_id, volume)
    restore(setup, first.backup_id, volume, force=True)
    assert (volume / "notes.txt").read_bytes() == b"version 1" and not (volume / "stray").exists()


def test_prune_keeps_the_policy_the_others_and_the_base_of_what_stays(setup):
    volume, repo, clock, _ = setup
    made = []
    for day in range(4):
        (volume / "notes.txt").write_bytes(f"day {day}".encode())
        made.append(back_up(setup))
    manual = back_up(setup, origin=MANUAL)  # unchanged since made[3]: its base is made[3]
    same = back_up(setup)                   # unchanged too, by the schedule
    later = clock() + timedelta(minutes=1)
    deleted = repo.prune("mydata", parse_keep("1"), later, reading={made[0].backup_id})
    assert deleted == [made[1].backup_id, made[2].backup_id]
    assert [m.backup_id for m in repo.list("mydata")] == [made[0].backup_id, made[3].backup_id,
                                                          manual.backup_id, same.backup_id]
    assert not repo.location("mydata", made[1].backup_id).exists()
    assert repo.prune("mydata", parse_keep("1"), later) == [made[0].backup_id]
