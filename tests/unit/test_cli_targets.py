"""The vsphere-volume commands on backup targets, against a stand-in plugin client."""

import io

from plugin import cli

from .test_cli import Terminal, run

COPY = {"Id": "20261123T020000Z", "Volume": "mydata", "Target": "offsite", "Created": "2026-11-23T02:00:00Z",
        "Origin": "schedule", "State": "ok", "Snapshot": "1a2b3c4d", "Host": "docker-a", "Capacity": "64MB"}


class TargetClient:
    """Answers the calls on backup targets as the plugin does; records the bodies."""

    def __init__(self):
        self.bodies = {}

    def call(self, path, body=None, timeout=None):
        self.bodies[path] = body
        if path == "/Backup.Progress":
            return {"Progress": {"Copies": {"offsite": {"Operation": "copy", "Phase": "copying to offsite",
                                                        "Percent": 12.5}}}}
        if path == "/Backup.List":
            return {"Backups": [COPY, dict(COPY, Volume="logs", Id="20261124T020000Z")]}
        if path == "/Backup.Targets":
            return {"Targets": [{"Label": "local", "Kind": "local", "Available": True, "Location": "each volume's"},
                                {"Label": "offsite", "Kind": "s3", "Available": True, "Location": "s3:https://o/b",
                                 "LastVerification": {"Time": "2026-11-23T03:00:00Z", "Result": "ok"}},
                                {"Label": "vault", "Available": False, "Reason": "needs a repository password"}],
                    "Problems": ["setting BACKUP_TARGET_X_PASSWORD belongs to no target"], "Err": ""}
        if path == "/Backup.Copy":
            return {"Copies": [dict(COPY, Origin="manual", BytesAdded=2048, Size=65536)]}
        if path == "/Backup.Verify":
            return {"Verification": {"Target": "offsite", "Result": "ok", "Read": "5%",
                                     "TestRestore": {"Volume": "mydata", "Id": COPY["Id"], "Entries": 4, "Bytes": 9}}}
        if path == "/Backup.Restore":
            return {"Restore": {"Volume": "mydata", "Backup": COPY["Id"], "Target": "offsite",
                                "Why": "latest copy 20261123T020000Z on backup target offsite",
                                "SafetyBackup": "20261125T000000Z"}}
        raise AssertionError(path)


def test_backups_on_a_target_list_every_volume_there_without_a_name():
    client = TargetClient()
    code, out, _ = run(client, ["backups", "--target", "offsite"])
    assert code == 0 and client.bodies["/Backup.List"] == {"Name": "", "BackupTarget": "offsite"}
    lines = out.splitlines()
    assert lines[0].split() == ["VOLUME", "ID", "CREATED", "ORIGIN", "SNAPSHOT", "HOST", "CAPACITY", "STATE"]
    assert lines[2].split()[:2] == ["logs", "20261124T020000Z"]


def test_backups_needs_a_volume_or_a_target():
    code, out, err = run(TargetClient(), ["backups"])
    assert code == cli.EXIT_USAGE and "give a volume, or --target TARGET" in err


def test_targets_show_their_state_and_last_verification():
    code, out, _ = run(TargetClient(), ["targets"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["LABEL", "KIND", "AVAILABLE", "LOCATION", "VERIFIED", "RESULT", "REASON"]
    assert lines[2].split() == ["offsite", "s3", "yes", "s3:https://o/b", "2026-11-23T03:00:00Z", "ok"]
    assert lines[3].split()[:3] == ["vault", "no", "needs"]
    assert lines[-1] == "problem: setting BACKUP_TARGET_X_PASSWORD belongs to no target"


def test_copy_shows_progress_and_what_it_added():
    client = TargetClient()
    code, out, _ = run(client, ["copy", "mydata", "--target", "offsite"], out=Terminal())
    assert code == 0 and client.bodies["/Backup.Copy"] == {"Name": "mydata", "BackupTarget": "offsite"}
    assert out.rstrip().endswith("copy 20261123T020000Z of mydata made on backup target offsite (snapshot 1a2b3c4d, "
                                 "2048 bytes added of 65536)")


def test_verify_and_restore_from_a_target():
    client = TargetClient()
    code, out, _ = run(client, ["verify", "offsite", "--read", "10%"])
    assert code == 0 and client.bodies["/Backup.Verify"] == {"BackupTarget": "offsite", "Read": "10%"}
    assert out == ("backup target offsite: ok (read 5%); test restore of copy 20261123T020000Z of mydata: 4 entries, "
                   "9 bytes, as recorded\n")
    code, out, _ = run(client, ["restore", "mydata", "--target", "offsite", "--force"], out=io.StringIO())
    assert code == 0
    assert client.bodies["/Backup.Restore"] == {"Name": "mydata", "Backup": "latest", "Target": "", "Force": True,
                                                "BackupTarget": "offsite", "Path": ""}
    assert out == ("volume mydata restored from backup 20261123T020000Z of mydata on backup target offsite (latest "
                   "copy 20261123T020000Z on backup target offsite) (its previous data is in backup "
                   "20261125T000000Z)\n")
