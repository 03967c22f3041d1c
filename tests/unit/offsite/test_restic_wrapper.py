"""The restic wrapper's arguments, environment, parsing and error mapping, with a fake runner."""

import json
import threading
from datetime import UTC, datetime

import pytest

from plugin.errors import BackupError, ConfigError, InvalidRequest
from plugin.offsite.errors import (
    BackupIncomplete,
    OffsiteError,
    OperationTimeout,
    PathNotInSnapshot,
    RepositoryLocked,
    RepositoryMissing,
    SnapshotNotFound,
    TargetUnreachable,
    WrongPassword,
)
from plugin.offsite.process import TIMEOUT
from plugin.offsite.progress import RestoreMeter
from plugin.offsite.restic import (
    RepositoryConfig,
    Restic,
    check_subset,
    include_pattern,
    keep_arguments,
)

from .fakerunner import Answer, FakeRunner, SecondsClock, err, out

S3 = "s3:https://objects.example.com:9000/backups/site-a"
PASSWORD = "correct-horse-battery-staple"
SECRET = "s3-secret-key-0123456789"
CONFIG_JSON = ['{', '  "version": 2,', '  "id": "abc123def456",', '  "chunker_polynomial": "3"', '}']
LOCKED = [("unable to create lock in backend: repository is already locked by PID 77 on "
          "other by root (UID 0, GID 0)"), "lock was created at 2026-11-23 02:00:00 (1m0s ago)",
          "storage ID 1a2b3c4d", "the `unlock` command can be used to remove stale locks"]
SUMMARY = {"message_type": "summary", "files_new": 3, "files_changed": 1, "files_unmodified": 96,
           "data_added": 12345, "total_files_processed": 100, "total_bytes_processed": 999999,
           "total_duration": 1.5, "snapshot_id": "1c5bbf31"}


def config(**overrides):
    values = {"location": S3, "password": PASSWORD, "s3_access_key_id": "AKIAEXAMPLE",
              "s3_secret_access_key": SECRET, "name": "backup target offsite"}
    values.update(overrides)
    return RepositoryConfig(**values)


def make(*answers, clock=None, **overrides):
    runner = FakeRunner(*answers, clock=clock)
    options = {key: overrides.pop(key) for key in ("retry_budget", "tz", "cache_dir")
               if key in overrides}
    restic = Restic(config(**overrides), runner=runner, clock=clock or SecondsClock(),
                    **{"cache_dir": "/var/cache/restic/offsite", **options})
    return restic, runner


# --- arguments and environment ------------------------------------------------------------

def test_backup_arguments_environment_and_result(tmp_path, monkeypatch):
    monkeypatch.setenv("VSPHERE_PASSWORD", "vcenter-secret")
    restic, runner = make(Answer(lines=out(json.dumps(SUMMARY))), limit_upload=512,
                          limit_download=2048, ca_file="/etc/ca.pem", tz="Europe/Berlin")

    result = restic.backup(str(tmp_path), {"volume": "mydata", "backup": "20261123T020000Z",
                                           "kind": "schedule"}, host="docker-1")

    [(argv, env, cwd, timeout)] = runner.calls
    assert argv == ["restic", f"--repo={S3}", "--cache-dir=/var/cache/restic/offsite",
                    "--cacert=/etc/ca.pem", "--limit-upload=512", "--limit-download=2048",
                    "backup", "--json", "--host=docker-1", "--tag=volume=mydata",
                    "--tag=backup=20261123T020000Z", "--tag=kind=schedule", "."]
    assert cwd == str(tmp_path) and timeout is None
    assert env["RESTIC_PASSWORD"] == PASSWORD and env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE" and env["TZ"] == "Europe/Berlin"
    assert env["RESTIC_PROGRESS_FPS"] == "2"
    assert set(env) <= {"PATH", "TMPDIR", "TZ", "RESTIC_PROGRESS_FPS", "RESTIC_PASSWORD",
                        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert (result.snapshot_id, result.bytes_added, result.total_bytes, result.files) == \
        ("1c5bbf31", 12345, 999999, 100)
    assert (result.files_new, result.files_changed, result.files_unmodified) == (3, 1, 96)


def test_password_file_insecure_tls_no_cache_and_snapshot_time(tmp_path):
    restic, runner = make(Answer(lines=out(json.dumps(SUMMARY))), password="",
                          password_file="/run/secrets/offsite", insecure_tls=True,
                          cache_dir=None, tz="Europe/Berlin")

    restic.backup(str(tmp_path), {}, host="h1", parent="0123abcd",
                  taken_at=datetime(2026, 7, 1, 0, 30, tzinfo=UTC))

    argv, env, _, _ = runner.calls[0]
    assert "--no-cache" in argv and "--insecure-tls" in argv
    assert "--parent=0123abcd" in argv and "--time=2026-07-01 02:30:00" in argv
    assert env["RESTIC_PASSWORD_FILE"] == "/run/secrets/offsite" and "RESTIC_PASSWORD" not in env


def test_the_s3_secret_is_read_from_its_file_and_a_missing_file_is_named(tmp_path):
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(SECRET + "\n")
    restic, runner = make(Answer(lines=out("[]")), s3_secret_access_key="",
                          s3_secret_access_key_file=str(secret_file))
    restic.snapshots()
    assert runner.calls[0][1]["AWS_SECRET_ACCESS_KEY"] == SECRET

    secret_file.unlink()
    with pytest.raises(OffsiteError, match="cannot read the S3 secret access key file .*s3-secret"):
        restic.snapshots()


@pytest.mark.parametrize("overrides, message", [
    ({"location": "relative/path"}, "is not valid: use an absolute folder"),
    ({"location": "s3:ftp://host/bucket"}, "use s3:https://host:port/bucket/prefix"),
    ({"s3_secret_access_key": ""}, "needs an access key id and a secret access key"),
    ({"password": ""}, "needs exactly one of a password and a password file"),
    ({"password_file": "/f"}, "needs exactly one of a password and a password file"),
    ({"insecure_tls": True, "ca_file": "/ca.pem"}, "contradict each other"),
    ({"limit_upload": -1}, "bandwidth limits are whole KiB/s"),
])
def test_repository_config_is_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(**overrides)


def test_the_config_repr_shows_no_secret():
    assert PASSWORD not in repr(config()) and SECRET not in repr(config())


@pytest.mark.parametrize("keep, rules", [
    ("7", ["--keep-last=7"]),
    ("daily=7,weekly=4,monthly=12", ["--keep-daily=7", "--keep-weekly=4", "--keep-monthly=12"]),
    ("yearly=2,hourly=24", ["--keep-hourly=24", "--keep-yearly=2"]),
])
def test_backup_keep_maps_onto_restics_keep_rules(keep, rules):
    assert keep_arguments(keep) == rules


def test_forget_selects_by_tags_in_one_group_and_prunes():
    forgotten = [{"tags": None, "keep": [{"id": "a" * 64}], "remove": [{"id": "b" * 64}]}]
    restic, runner = make(Answer(lines=out(json.dumps(forgotten), "loading indexes...")))

    result = restic.forget("daily=7,weekly=4", tags={"volume": "mydata", "kind": "schedule"})

    assert runner.calls[0][0][3:] == ["forget", "--json", "--keep-daily=7", "--keep-weekly=4",
                                      "--group-by=", "--tag=volume=mydata,kind=schedule", "--prune"]
    assert (result.kept, result.removed, result.pruned) == (("a" * 64,), ("b" * 64,), True)


def test_forget_without_tags_is_refused_before_restic_runs():
    restic, runner = make()
    with pytest.raises(InvalidRequest, match="forget needs tags"):
        restic.forget("7", tags={})
    assert runner.calls == []


@pytest.mark.parametrize("tags", [{"volume": "a,b"}, {"volume": "a b"}, {"1key": "x"}, {"k": ""}])
def test_tags_that_restic_would_split_are_refused(tmp_path, tags):
    restic, runner = make()
    with pytest.raises(InvalidRequest, match="is not valid"):
        restic.backup(str(tmp_path), tags, host="h1")
    assert runner.calls == []


def test_bad_sources_hosts_and_ids_are_refused_before_restic_runs(tmp_path):
    restic, runner = make()
    with pytest.raises(InvalidRequest, match="not an absolute path to a folder"):
        restic.backup("relative", {}, host="h1")
    with pytest.raises(InvalidRequest, match="host '-x' is not valid"):
        restic.backup(str(tmp_path), {}, host="-x")
    with pytest.raises(InvalidRequest, match="is not a restic snapshot id"):
        restic.restore("--target=/etc", str(tmp_path / "t"))
    with pytest.raises(InvalidRequest, match="is not a restic snapshot id"):
        restic.delete("latest")
    assert runner.calls == []


@pytest.mark.parametrize("subset", ["5%", "0.5%", "100%", "1/10", "256/256", "2G", "500M"])
def test_read_data_subsets_restic_accepts(subset):
    assert check_subset(subset) == subset


@pytest.mark.parametrize("subset", ["0%", "101%", "0/5", "3/2", "1/257", "five", "0", "5 %"])
def test_read_data_subsets_restic_refuses(subset):
    with pytest.raises(InvalidRequest, match="read_data_subset="):
        check_subset(subset)


def test_include_patterns_escape_globs_and_refuse_escapes():
    assert include_pattern("data/reports") == ("/data/reports", "data/reports")
    assert include_pattern("/a/./b*[1]?/") == (r"/a/b\*\[1]\?", "a/b*[1]?")
    for bad in ("", "/", "../etc", "a/../../b"):
        with pytest.raises(InvalidRequest, match="give a path inside the volume"):
            include_pattern(bad)


# --- results and progress -------------------------------------------------------------------

def test_backup_progress_messages_reach_the_callback(tmp_path):
    status = {"message_type": "status", "seconds_elapsed": 3, "seconds_remaining": 9,
              "percent_done": 0.25, "total_files": 100, "files_done": 20,
              "total_bytes": 4000, "bytes_done": 1000}
    restic, _ = make(Answer(lines=out(json.dumps(status), json.dumps(SUMMARY))))
    seen = []

    restic.backup(str(tmp_path), {}, host="h1", progress=seen.append)

    [progress] = seen
    assert (progress.percent, progress.bytes_done, progress.total_bytes) == (25.0, 1000, 4000)
    assert (progress.files_done, progress.total_files, progress.seconds_remaining) == (20, 100, 9)


def test_a_backup_with_unreadable_files_is_incomplete_with_its_snapshot(tmp_path):
    unreadable = {"message_type": "error", "error": {}, "during": "archival", "item": "/v/secret.db"}
    restic, _ = make(Answer(returncode=3, lines=err(json.dumps(unreadable)) + out(json.dumps(SUMMARY))
                            + err("Warning: at least one source file could not be read")))

    with pytest.raises(BackupIncomplete, match=r"saved snapshot 1c5bbf31 without 1 file\(s\)") as raised:
        restic.backup(str(tmp_path), {}, host="h1")

    assert raised.value.snapshot_id == "1c5bbf31"
    assert raised.value.errors == ["/v/secret.db (archival)"]


def test_snapshots_are_read_oldest_first_with_labels_and_summary_when_present():
    listed = [
        {"time": "2026-11-24T02:00:00.123456789+01:00", "id": "b" * 64, "short_id": "bbbbbbbb",
         "paths": ["/mnt/v"], "hostname": "h2", "tags": ["volume=v", "kind=manual", "plain"],
         "summary": {"data_added": 10}},
        {"time": "2026-11-23T02:00:00Z", "id": "a" * 64, "paths": ["/mnt/v"], "hostname": "h1",
         "tags": None, "parent": "c" * 64},
    ]
    restic, runner = make(Answer(lines=out(json.dumps(listed))))

    first, second = restic.snapshots(tags={"volume": "v"}, host="h1")

    assert runner.calls[0][0][3:] == ["snapshots", "--json", "--tag=volume=v", "--host=h1"]
    assert (first.id, first.short_id, first.tags, first.parent, first.summary) == \
        ("a" * 64, "aaaaaaaa", (), "c" * 64, None)
    assert first.time == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert second.labels == {"volume": "v", "kind": "manual"}
    assert second.summary == {"data_added": 10} and second.host == "h2"


def test_restore_with_progress_sizes_the_snapshot_beside_it_and_counts_what_it_wrote(tmp_path):
    target = tmp_path / "target"
    sized = threading.Event()

    def write_files(argv, cwd):
        assert sized.wait(10), "the restore size was never asked"      # both run at once
        (target / "d").mkdir(parents=True)
        (target / "d" / "f1").write_bytes(b"x" * 300)
        (target / "f2").write_bytes(b"y" * 200)

    runner = FakeRunner(by_command={
        "stats": Answer(lines=out(json.dumps({"total_size": 500, "total_file_count": 2})),
                        effect=lambda argv, cwd: sized.set()),
        "restore": Answer(effect=write_files)})
    restic = Restic(RepositoryConfig(location="/srv/repo", password="pw-123456"), runner=runner, size_after=0)
    seen = []

    result = restic.restore("a" * 64, str(target), progress=seen.append)

    assert sorted(runner.commands) == ["restore", "stats"]
    assert ["stats", "--json", "--mode=restore-size", "a" * 64] in [argv[3:] for argv, *_ in runner.calls]
    assert ["restore", "a" * 64, f"--target={target}"] in [argv[3:] for argv, *_ in runner.calls]
    assert (result.files, result.bytes) == (2, 500)
    assert seen[-1].percent == 100.0 and seen[-1].bytes_done == 500


def test_a_restore_meter_shows_a_percentage_once_the_size_is_known(tmp_path):
    (tmp_path / "4242").mkdir()
    io = tmp_path / "4242" / "io"
    meter = RestoreMeter(proc=str(tmp_path))
    meter.started(4242)
    io.write_text("rchar: 1\nwchar: 100\n")
    assert (meter.read().percent, meter.read()) == (None, None)        # moved once; then not again
    meter.total = 400
    io.write_text("rchar: 1\nwchar: 200\n")
    assert meter.read().percent == 50.0


def test_a_restore_over_before_its_size_is_asked_makes_no_stats_call(tmp_path):
    target = tmp_path / "target"

    def write_file(argv, cwd):
        target.mkdir()
        (target / "f").write_bytes(b"z" * 40)

    runner = FakeRunner(by_command={"restore": Answer(effect=write_file),
                                    "stats": Answer(lines=out(json.dumps({"total_size": 40})))})
    restic = Restic(RepositoryConfig(location="/srv/repo", password="pw-123456"), runner=runner, size_after=3600)
    seen = []
    restic.restore("a" * 64, str(target), progress=seen.append)
    sizing = [t for t in threading.enumerate() if t.name == f"size of {'a' * 64}"]
    for thread in sizing:                  # released by the restore's end: it asks nothing
        thread.join(10)

    assert runner.commands == ["restore"]
    assert (seen[-1].percent, seen[-1].bytes_done) == (100.0, 40)


def test_restore_with_the_size_known_makes_no_stats_call(tmp_path):
    target = tmp_path / "target"

    def write_file(argv, cwd):
        target.mkdir()
        (target / "f").write_bytes(b"z" * 40)

    restic, runner = make(Answer(effect=write_file))
    seen = []
    restic.restore("a" * 64, str(target), progress=seen.append, total_bytes=40)

    assert runner.commands == ["restore"]
    assert (seen[-1].percent, seen[-1].total_bytes) == (100.0, 40)


def test_restore_refuses_a_non_empty_target_and_reports_a_missing_sub_path(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    restic, runner = make(Answer())
    with pytest.raises(InvalidRequest, match="is not empty: restoring would replace files"):
        restic.restore("a" * 64, str(tmp_path / "full"))
    assert runner.calls == []

    with pytest.raises(PathNotInSnapshot, match="the snapshot has no 'no/such'"):
        restic.restore("a" * 64, str(tmp_path / "new"), include="no/such")
    assert runner.calls[0][0][-1] == "--include=/no/such"


def test_check_result_ok_with_notes_and_damage_with_restics_words():
    restic, runner = make(
        Answer(lines=out("load indexes", "pack 1a2b: not referenced in any index",
                         "This is non-critical, you can run `restic prune` to correct this.",
                         "no errors were found")),
        Answer(returncode=1, lines=err("Pack ID does not match, want 4f6a, got 47c7",
                                       "Fatal: repository contains errors")))

    healthy = restic.check()
    damaged = restic.check(read_data_subset=None)

    assert runner.calls[0][0][3:] == ["check", "--read-data-subset=5%"]
    assert runner.calls[1][0][3:] == ["check"]
    assert healthy.ok and len(healthy.notes) == 2 and healthy.read_data_subset == "5%"
    assert not damaged.ok
    assert damaged.problems == ("Pack ID does not match, want 4f6a, got 47c7",
                                "Fatal: repository contains errors")


def test_a_check_that_cannot_reach_the_target_raises_rather_than_judging_the_data():
    restic, _ = make(Answer(returncode=1, lines=err(
        'Fatal: unable to open config file: Stat: Get "https://objects.example.com:9000/backups/": '
        "dial tcp 10.0.0.5:9000: connect: connection refused")))
    with pytest.raises(TargetUnreachable, match="the server cannot be reached"):
        restic.check()


# --- opening, locks, stalls, timeouts ---------------------------------------------------------

MISSING = ["Fatal: unable to open config file: Stat: The specified key does not exist.",
           "Is there a repository at the following location?", S3]


def test_first_use_initialises_then_opens():
    restic, runner = make(Answer(returncode=1, lines=err(*MISSING)),
                          Answer(lines=out("created restic repository abc123def4 at " + S3)),
                          Answer(lines=out(*CONFIG_JSON)))

    info = restic.ensure_initialised()

    assert runner.commands == ["cat", "init", "cat"]
    assert (info.id, info.version, info.created) == ("abc123def456", 2, True)


def test_a_repository_another_host_made_meanwhile_is_opened_not_reinitialised():
    restic, runner = make(Answer(returncode=1, lines=err(*MISSING)),
                          Answer(returncode=1, lines=err(
                              "Fatal: create key in repository at s3:... failed: repository "
                              "master key and config already initialized")),
                          Answer(lines=out(*CONFIG_JSON)))
    assert not restic.ensure_initialised().created
    assert runner.commands == ["cat", "init", "cat"]


def test_a_wrong_password_is_never_followed_by_init():
    restic, runner = make(Answer(returncode=1, lines=err("Fatal: wrong password or no key found")))
    with pytest.raises(WrongPassword, match="the password does not open the repository"):
        restic.ensure_initialised()
    assert runner.commands == ["cat"]


def test_without_create_a_missing_repository_stays_missing():
    restic, runner = make(Answer(returncode=1, lines=err(*MISSING)))
    with pytest.raises(RepositoryMissing):
        restic.ensure_initialised(create=False)
    assert runner.commands == ["cat"]


def test_a_stale_lock_is_removed_and_the_operation_tried_once_more():
    restic, runner = make(Answer(returncode=1, lines=err(*LOCKED)),
                          Answer(lines=out("successfully removed locks")),
                          Answer(lines=out("[]")))
    assert restic.forget("3", tags={"volume": "v"}).removed == ()
    assert runner.commands == ["forget", "unlock", "forget"]
    assert "--remove-all" not in runner.calls[1][0]


def test_a_live_lock_is_reported_with_its_holder():
    restic, runner = make(Answer(returncode=1, lines=err(*LOCKED)), Answer(),
                          Answer(returncode=1, lines=err(*LOCKED)))
    with pytest.raises(RepositoryLocked, match="locked by another restic process.*PID 77 on other"):
        restic.forget("3", tags={"volume": "v"})
    assert runner.commands == ["forget", "unlock", "forget"]


def retry_line(call, at):
    return ("stderr", (f"Save(<data/{call}>) returned error, retrying after 1.5s: client.PutObject: "
                      f'Put "https://objects.example.com:9000/x": dial tcp: connection refused'), at)


def test_a_call_retried_for_the_whole_budget_stops_restic(tmp_path):
    clock = SecondsClock()
    lines = [retry_line("aa", 10.0), retry_line("bb", 30.0), retry_line("aa", 40.0),
             retry_line("aa", 70.0), retry_line("aa", 99.0)]
    restic, _ = make(Answer(returncode=0, lines=lines), clock=clock, retry_budget=60.0)

    with pytest.raises(TargetUnreachable) as raised:
        restic.backup(str(tmp_path), {}, host="h1")

    assert clock.now == 70.0       # stopped at the first retry 60 s after the call first failed
    assert "restic retried for 60 s and was stopped" in str(raised.value)
    assert "connection refused" in str(raised.value)


def test_retries_of_different_calls_or_after_a_recovery_do_not_add_up(tmp_path):
    clock = SecondsClock()
    lines = [retry_line("aa", 0.0), retry_line("bb", 50.0), retry_line("cc", 100.0),
             retry_line("aa", 200.0), retry_line("aa", 250.0), ("stdout", json.dumps(SUMMARY), 260.0)]
    restic, _ = make(Answer(lines=lines), clock=clock, retry_budget=60.0)
    assert restic.backup(str(tmp_path), {}, host="h1").snapshot_id == "1c5bbf31"


def test_a_timeout_is_its_own_error():
    restic, _ = make(Answer(returncode=-9, stopped=TIMEOUT))
    with pytest.raises(OperationTimeout, match="listing snapshots on backup target offsite did not "
                                               "finish within 300 s; restic was stopped"):
        restic.snapshots()


def test_deleting_an_unknown_snapshot_is_not_a_silent_success():
    restic, runner = make(Answer(lines=err('Ignoring "0123abcd": no matching ID found for prefix "0123abcd"')))
    with pytest.raises(SnapshotNotFound, match="has no snapshot 0123abcd"):
        restic.delete("0123abcd")
    assert runner.calls[0][0][3:] == ["forget", "0123abcd"]


def test_secrets_restic_might_print_are_redacted_and_errors_are_backup_errors():
    restic, _ = make(Answer(returncode=1, lines=err(f"Fatal: something odd with {PASSWORD} and {SECRET}")))
    with pytest.raises(BackupError) as raised:
        restic.snapshots()
    assert PASSWORD not in str(raised.value) and SECRET not in str(raised.value)
    assert "<redacted>" in str(raised.value) and "(exit status 1)" in str(raised.value)


def test_a_missing_restic_binary_is_reported():
    restic = Restic(config(), restic="/nonexistent/restic")
    with pytest.raises(OffsiteError, match="cannot run /nonexistent/restic: No such file"):
        restic.snapshots()
