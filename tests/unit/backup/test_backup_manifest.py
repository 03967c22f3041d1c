import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from plugin import __version__
from plugin.backup import manifest as mf
from plugin.errors import BackupError


def make(**changes):
    base = mf.Manifest(
        volume="pgdata", backup_id="20261123T020000Z", method=mf.DIRECTORY, origin="schedule",
        created=datetime(2026, 11, 23, 2, 0, tzinfo=UTC), started=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        finished=datetime(2026, 11, 23, 2, 1, 30, 250000, tzinfo=UTC), store="nfs1",
        source="/mnt/nfs1/volumes/pgdata", size=12345, data="data",
        metadata={"Name": "pgdata", "Driver": "vsphere"}, options={"Backup": "daily"})
    return replace(base, **changes)


def test_round_trip_through_json():
    original = make(extra={"files": 3})
    text = original.to_json()
    obj = json.loads(text)
    assert obj["format"] == 1 and obj["plugin_version"] == __version__
    assert obj["finished"] == "2026-11-23T02:01:30.250000Z" and obj["created"] == "2026-11-23T02:00:00Z"
    assert mf.from_json(text) == original


def test_unchanged_backup_points_at_its_base():
    same = make(backup_id="20261124T020000Z", method=mf.UNCHANGED, data="", base="20261123T020000Z")
    back = mf.from_json(same.to_json())
    assert not back.holds_data and back.data_backup_id == "20261123T020000Z"
    assert back.info() == ("20261124T020000Z", same.created, "schedule", "20261123T020000Z")
    assert back.summary()["Base"] == "20261123T020000Z"


@pytest.mark.parametrize("changes, message", [
    ({"method": "tarball"}, "method 'tarball' is not one of snapshot-clone, direct-clone, directory, unchanged"),
    ({"origin": "cron"}, "origin 'cron' is not one of schedule, manual, pre-restore, final"),
    ({"method": mf.UNCHANGED, "data": ""}, "an unchanged backup needs base"),
    ({"base": "20261122T020000Z"}, "base is only for unchanged backups"),
    ({"data": "../../etc"}, "data must name the data inside the backup folder"),
    ({"size": -1}, "size must be a whole number of bytes"),
    ({"volume": "bad/name"}, 'volume name "bad/name" includes invalid characters'),
    ({"backup_id": "yesterday"}, "backup_id 'yesterday' is not a backup id"),
    ({"created": datetime(2026, 11, 23)}, "created must be a time with a zone"),
    ({"finished": datetime(2026, 11, 22, tzinfo=UTC)}, "finished is before started"),
])
def test_invalid_manifests_are_refused_saying_why(changes, message):
    with pytest.raises(BackupError, match="is not valid: " + message.replace("(", r"\(")):
        make(**changes).to_json()


def test_reader_refuses_broken_and_newer_files():
    good = json.loads(make().to_json())
    with pytest.raises(BackupError, match="not valid JSON"):
        mf.from_json("{", "backups/pgdata/x/manifest.json")
    with pytest.raises(BackupError, match="written by a newer plugin"):
        mf.from_json(json.dumps({**good, "format": 2}))
    with pytest.raises(BackupError, match="lacks size, data"):
        mf.from_json(json.dumps({k: v for k, v in good.items() if k not in ("size", "data")}))
    with pytest.raises(BackupError, match="created 'noon' is not an RFC 3339 time"):
        mf.from_json(json.dumps({**good, "created": "noon"}))
    assert mf.from_json(json.dumps({**good, "added_later": 1})) == make()
