"""The vsphere-volume command against a stand-in plugin client: output and exit codes."""

import io
import re
import threading

import pytest

from plugin import cli
from plugin.client import PluginUnreachable
from plugin.errors import VolumeError


class Terminal(io.StringIO):
    def isatty(self):
        return True


class FakeClient:
    """Answers like the plugin; ``/Backup.Create`` waits until progress was asked twice."""

    def __init__(self, fail=None):
        self.fail = fail
        self.asked = 0
        self.asked_twice = threading.Event()

    def call(self, path, body=None, timeout=None):
        if self.fail:
            raise self.fail
        if path == "/Backup.Progress":
            self.asked += 1
            if self.asked >= 2:
                self.asked_twice.set()
            return {"Progress": {"Operation": "backup", "Phase": "copying the disk", "Percent": 40}}
        if path == "/Backup.Create":
            assert self.asked_twice.wait(10), "progress was never asked"
            return {"Backup": {"Id": "20261123T020000Z", "Method": "snapshot-clone", "Size": 1024}}
        if path == "/Backup.List":
            return {"Backups": [{"Id": "20261123T020000Z", "Created": "2026-11-23T02:00:00Z",
                                 "Method": "directory", "Origin": "schedule", "Size": 5, "Store": "default",
                                 "State": "ok"},
                                {"Id": "20261124T020000Z", "Created": "2026-11-24T02:00:00Z", "State": "damaged",
                                 "Problem": "/x/manifest.json is not valid JSON: Expecting value"}]}
        if path == "/Backup.Restore":
            return {"Restore": {"Volume": "copy", "Backup": "20261123T020000Z",
                                "Why": "latest usable backup 20261123T020000Z; 20261124T020000Z is damaged: ..."}}
        raise AssertionError(path)


def run(client, argv, out=None):
    """``vsphere-volume argv`` against ``client``: (exit code, stdout, stderr)."""
    out, err = out or io.StringIO(), io.StringIO()
    code = cli.main(["--socket", "/nowhere.sock", *argv], out=out, err=err, connect=lambda socket: client,
                    progress_every=0.01)
    return code, out.getvalue(), err.getvalue()


def test_backup_shows_progress_on_a_terminal():
    client = FakeClient()
    code, out, _ = run(client, ["backup", "mydata"], out=Terminal())
    assert code == 0
    assert "backing up mydata: copying the disk 40%" in out
    assert out.rstrip().endswith("backup 20261123T020000Z of mydata committed (snapshot-clone, 1024 bytes)")


def test_backups_table():
    code, out, _ = run(FakeClient(), ["backups", "mydata"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "METHOD", "ORIGIN", "SIZE", "STORE", "STATE"]
    assert lines[1].split() == ["20261123T020000Z", "2026-11-23T02:00:00Z", "directory", "schedule", "5", "default",
                                "ok"]
    assert lines[2].split() == ["20261124T020000Z", "2026-11-24T02:00:00Z", "damaged"]
    assert lines[3] == ("backup 20261124T020000Z is damaged and cannot be restored: /x/manifest.json is not valid "
                        "JSON: Expecting value (vsphere-volume delete mydata 20261124T020000Z deletes it)")


def test_restore_says_which_backup_was_used_and_why():
    code, out, _ = run(FakeClient(), ["restore", "mydata", "--as", "copy"])
    assert code == 0
    assert out == ("volume copy restored from backup 20261123T020000Z of mydata (latest usable backup "
                   "20261123T020000Z; 20261124T020000Z is damaged: ...)\n")


@pytest.mark.parametrize("error, code", [(VolumeError("volume x has no backups"), 1),
                                         (PluginUnreachable("the plugin does not answer"), 3)])
def test_exit_codes(error, code):
    got, out, err = run(FakeClient(fail=error), ["backups", "x"])
    assert got == code and out == "" and err == f"vsphere-volume: {error}\n"


def test_usage_error_exit_code():
    assert run(FakeClient(), ["restore"])[0] == 2


STATUS = {
    "Scope": "local", "Ready": True,
    "Stores": [{"Label": "default", "Kind": "file", "Scope": "local", "Volumes": 3, "Default": True,
                "Spec": "file:///var/lib/vsphere-volume/default:default", "Error": ""}],
    "Volumes": [
        {"Name": "db", "VolumeStore": "default", "Capacity": "1024MB", "Backup": "daily", "Mounts": 1,
         "Health": [{"Target": "local", "State": "failed", "LastSuccess": "2026-11-21T02:00:07Z",
                     "AgeSeconds": 2 * 86400 + 3 * 3600 + 59, "NextRun": "2026-11-23T05:15:00Z",
                     "LastError": "scheduled backup of volume db failed: volume store default is unavailable: "
                                  "the folder /var/lib/vsphere-volume/default cannot be listed: Input/output error",
                     "LastResult": "failed", "Backups": 3}]},
        {"Name": "web", "VolumeStore": "default", "Capacity": "1024MB", "Backup": "hourly", "Mounts": 0,
         "Health": [{"Target": "local", "State": "ok", "LastSuccess": "2026-11-23T04:10:00Z", "AgeSeconds": 750,
                     "NextRun": "2026-11-23T05:10:00Z", "LastError": "", "Backups": 24}]},
        {"Name": "scratch", "VolumeStore": "default", "Capacity": "1024MB", "Backup": "off", "Mounts": 0,
         "Health": [{"Target": "local", "State": "off", "LastSuccess": None, "AgeSeconds": None, "NextRun": None,
                     "LastError": "", "Backups": 0}]},
    ],
    "Operations": {"Metrics": "http://127.0.0.1:9100/metrics", "Textfile": "", "Notifications": 2,
                   "Errors": {"METRICS_TEXTFILE_INTERVAL": "METRICS_TEXTFILE_INTERVAL='1' is not valid: ..."}},
}


class StatusClient:
    def call(self, path, body=None, timeout=None):
        assert path == "/Plugin.Status"
        return STATUS


def test_status_shows_each_volumes_backup_health(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run(StatusClient(), ["status"])
    assert code == 0 and "\033[" not in out                          # no colour off a terminal
    lines = out.splitlines()
    header = lines.index("Volumes:") + 1
    assert lines[header].split("  ")[0] == "NAME" and "LAST SUCCESS" in lines[header]
    db, web, scratch = lines[header + 1:header + 4]
    assert db.split()[:9] == ["db", "default", "1024MB", "daily", "1", "failed", "2026-11-21T02:00:07Z", "2d3h",
                              "2026-11-23T05:15:00Z"]
    assert "volume store default is unavailable" in db and db.endswith("…") and len(db.split("  ")[-1]) <= 80
    assert web.split()[5:9] == ["ok", "2026-11-23T04:10:00Z", "12m", "2026-11-23T05:10:00Z"]
    assert scratch.split() == ["scratch", "default", "1024MB", "off", "0", "off"]
    assert lines[header + 4:] == [
        "Operations: metrics at http://127.0.0.1:9100/metrics; notifications to 2 destinations",
        "  METRICS_TEXTFILE_INTERVAL: METRICS_TEXTFILE_INTERVAL='1' is not valid: ..."]


def test_status_colours_health_on_a_terminal_unless_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    _, out, _ = run(StatusClient(), ["status"], out=Terminal())
    assert "\033[31mfailed\033[0m" in out and "\033[32mok\033[0m" in out and "\033[33m" not in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, plain, _ = run(StatusClient(), ["status"], out=Terminal())
    assert "\033[" not in plain
    assert re.sub(r"\033\[[0-9]+m", "", out) == plain                 # the columns stay aligned


def test_status_json_is_the_plugins_answer_for_scripts():
    import json
    _, out, _ = run(StatusClient(), ["status", "--json"])
    assert json.loads(out) == STATUS


# --- detach -------------------------------------------------------------------------------

DISK = "[LocalDS_0] swarm/volumes/db/db.vmdk"


class FencingClient:
    """Answers /Volume.Detach as the plugin would for a disk ``holders`` hold."""

    def __init__(self, holders):
        self.holders = holders
        self.calls = []

    def call(self, path, body=None, timeout=None):
        assert path == "/Volume.Detach"
        self.calls.append(body)
        if body.get("Plan"):
            return {"Disk": DISK, "Holders": self.holders}
        return {"Disk": DISK, "Detached": [h["VM"] for h in self.holders]}


def detach(client, argv, answer=""):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", "/nowhere.sock", "detach", *argv], out=out, err=err, stdin=io.StringIO(answer),
                    connect=lambda socket: client)
    return code, out.getvalue(), err.getvalue()


RUNNING = {"VM": "docker-1", "PowerState": "poweredOn", "ThisHost": False}


def test_detach_force_says_what_it_does_and_waits_for_a_yes():
    client = FencingClient([RUNNING])
    code, out, _ = detach(client, ["--force", "db"], answer="yes\n")
    assert code == 0
    assert out.startswith(f"volume db: its disk {DISK} is attached to VM docker-1 (powered on).\nDetaching it "
                          "removes it from that running VM at once: whatever runs there loses the volume")
    assert "Type yes to detach it: " in out
    assert out.endswith(f"volume db: its disk {DISK} was detached from VM docker-1\n")
    assert client.calls == [{"Name": "db", "Plan": True}, {"Name": "db", "Force": True, "From": ["docker-1"]}]


@pytest.mark.parametrize("answer", ["", "no\n", "y\n"])
def test_detach_force_without_a_yes_detaches_nothing(answer):
    client = FencingClient([RUNNING])
    code, out, _ = detach(client, ["--force", "db"], answer=answer)
    assert code == 1 and out.endswith("volume db was not detached (not confirmed; --yes confirms in a script)\n")
    assert client.calls == [{"Name": "db", "Plan": True}]


def test_detach_force_yes_confirms_for_scripts():
    client = FencingClient([RUNNING])
    code, out, _ = detach(client, ["--force", "--yes", "db"])
    assert code == 0 and "Type yes" not in out and out.endswith("was detached from VM docker-1\n")


def test_detach_from_a_powered_off_vm_asks_nothing():
    client = FencingClient([{"VM": "docker-1", "PowerState": "poweredOff", "ThisHost": False}])
    code, out, _ = detach(client, ["db"])
    assert code == 0 and out == f"volume db: its disk {DISK} was detached from VM docker-1\n"
    assert client.calls[1] == {"Name": "db", "Force": False, "From": ["docker-1"]}


def test_detach_of_a_volume_no_vm_holds():
    client = FencingClient([])
    assert detach(client, ["db"]) == (0, "volume db is not attached to any VM: nothing to detach\n", "")
    assert len(client.calls) == 1


def test_status_shows_a_row_per_backup_target_with_the_copys_schedule():
    copied = {"Name": "db", "VolumeStore": "default", "Capacity": "1024MB", "Backup": "hourly", "Mounts": 0,
              "Health": [{"Target": "local", "Schedule": "hourly", "State": "ok", "LastSuccess": "2026-11-23T04:10:00Z",
                          "AgeSeconds": 750, "NextRun": "2026-11-23T05:10:00Z", "LastError": ""},
                         {"Target": "offsite", "Schedule": "daily", "State": "verification-failed",
                          "LastSuccess": "2026-11-23T03:00:00Z", "AgeSeconds": 4950, "NextRun": "2026-11-24T03:00:00Z",
                          "LastError": "", "Verification": "failed 2026-11-23T04:00:00Z: verification of backup "
                                                           "target offsite damaged: pack 1 is damaged"}]}

    class Client(StatusClient):
        def call(self, path, body=None, timeout=None):
            return dict(STATUS, Volumes=[copied])
    _, out, _ = run(Client(), ["status"])
    lines = out.splitlines()
    header = lines.index("Volumes:") + 1
    assert lines[header].split()[:7] == ["NAME", "VOLUMESTORE", "CAPACITY", "BACKUP", "MOUNTS", "TARGET", "HEALTH"]
    local, offsite = lines[header + 1:header + 3]
    assert local.split()[:9] == ["db", "default", "1024MB", "hourly", "0", "local", "ok", "2026-11-23T04:10:00Z",
                                 "12m"]
    assert offsite.split()[:10] == ["db", "default", "1024MB", "daily", "0", "offsite", "verification-failed",
                                    "2026-11-23T03:00:00Z", "1h22m", "2026-11-24T03:00:00Z"]
    assert "verification of backup target offsite damaged" in offsite
