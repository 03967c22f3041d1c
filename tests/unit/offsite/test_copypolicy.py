"""The BackupCopy and BackupCopyKeep volume options."""

import pytest

from plugin.errors import InvalidOption
from plugin.offsite.copypolicy import parse_copies
from plugin.offsite.targetspec import parse_targets
from plugin.policy.retention import parse_keep

TARGETS = parse_targets(
    "local:local;file:///mnt/nas/restic:nas;s3:https://s3.example.com/bkt/x:offsite;"
    "s3:https://s3.example.com/bkt/y:broken",
    {"BACKUP_TARGET_NAS_PASSWORD": "p", "BACKUP_TARGET_OFFSITE_PASSWORD": "p",
     "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": "k", "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY": "s",
     "BACKUP_TARGET_BROKEN_PASSWORD": "p"})


def test_one_copy_with_its_own_keep():
    [copy] = parse_copies("offsite@daily", "daily=7,weekly=4", TARGETS)
    assert (copy.target, copy.schedule.text, copy.keep.text) == ("offsite", "daily", "daily=7,weekly=4")
    assert copy.text == "offsite@daily"


def test_several_copies_schedules_with_at_signs_and_cron_and_per_target_keep():
    nas, offsite = parse_copies(" nas@daily@02:30 ; offsite@30 2 * * 1,4 ",
                                "offsite:monthly=12,yearly=3; nas:14", TARGETS)
    assert (nas.schedule.text, nas.schedule.cron, nas.keep.text) == ("daily@02:30", "30 2 * * *", "14")
    assert (offsite.schedule.cron, offsite.keep.text) == ("30 2 * * 1,4", "monthly=12,yearly=3")


def test_keep_defaults_to_the_volumes_backup_keep_then_to_seven():
    [copy] = parse_copies("offsite@weekly", None, TARGETS, default_keep=parse_keep("daily=3"))
    assert copy.keep.text == "daily=3"
    nas, offsite = parse_copies("nas@hourly;offsite@on-unmount", "offsite:2", TARGETS)
    assert (nas.keep.text, offsite.keep.text, offsite.schedule.text) == ("7", "2", "on-unmount")


def test_no_copy_asked_for():
    assert parse_copies(None, None, TARGETS) == ()


@pytest.mark.parametrize("copy, keep, expected", [
    (None, "7", "BackupCopyKeep='7' needs BackupCopy"),
    ("", None, "names no copy"),
    ("offsite", None, "'offsite' is not valid; use TARGET@SCHEDULE"),
    ("@daily", None, "'@daily' is not valid"),
    ("offsite@", None, "'offsite@' is not valid"),
    ("offsite@sometimes", None, "'sometimes' is not a schedule: use off, hourly"),
    ("offsite@off", None, "a copy cannot be off"),
    ("offsite@daily;offsite@weekly", None, "names target offsite twice"),
    ("local@daily", None, ("local is the local tier, which Backup and BackupStore schedule; "
                          "off-site targets: nas, offsite")),
    ("cloud@daily", None, "no backup target is labelled 'cloud' (off-site targets: nas, offsite)"),
    ("broken@daily", None, ("backup target broken is unavailable: backup target broken needs "
                           "BACKUP_TARGET_BROKEN_S3_ACCESS_KEY_ID")),
    ("offsite@daily", "0", "BackupCopyKeep='0': keep '0': the count must be from 1 to 10000"),
    ("offsite@daily", "daily=x", "BackupCopyKeep='daily=x': keep 'daily=x' is not valid"),
    ("offsite@daily", "nas:7", "nas is not a target of BackupCopy (offsite)"),
    ("nas@daily;offsite@daily", "nas:7;nas:8", "names target nas twice"),
    ("offsite@daily", "offsite:7;14", "'14' is not valid; use a BackupKeep value"),
])
def test_refused_with_what_is_accepted(copy, keep, expected):
    with pytest.raises(InvalidOption) as raised:
        parse_copies(copy, keep, TARGETS)
    assert expected in str(raised.value)


def test_long_values_are_echoed_cut():
    with pytest.raises(InvalidOption) as raised:
        parse_copies("x" * 5000 + "@daily", None, TARGETS)
    assert len(str(raised.value)) < 600 and "(5006 characters)" in str(raised.value)
