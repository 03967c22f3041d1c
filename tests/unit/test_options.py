import pytest

from plugin.errors import InvalidName, InvalidOption
from plugin.options import parse_capacity_mb, parse_options, parse_restore_ref, validate_name

STORES = ["default", "fast"]


@pytest.mark.parametrize("text, mb", [
    ("2048", 2048), ("10G", 10000), ("10GB", 10000), ("10g", 10000), ("1.5T", 1500000),
    ("500M", 500), ("500MB", 500), ("2000k", 2), ("1P", 10**9),
])
def test_capacity_follows_vic_grammar(text, mb):
    assert parse_capacity_mb(text) == mb


@pytest.mark.parametrize("text, says", [
    ("0", "too small"), ("-5", "not a size"), ("10GiB", "binary units"), ("1Gi", "not a size"),
    ("ten", "not a size"), ("", "not a size"), ("500k", "too small"), ("1.2.3G", "not a size"),
])
def test_capacity_rejects(text, says):
    with pytest.raises(InvalidOption) as err:
        parse_capacity_mb(text)
    assert says in str(err.value)
    assert "Capacity=" in str(err.value)


@pytest.mark.parametrize("name", ["a", "my-data", "My.Data_1", "0", "x" * 255])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name, says", [
    ("", "required"), ("-x", "not valid"), (".x", "not valid"), ("a/b", "not valid"),
    ("a b", "not valid"), ("x" * 256, "at most 255"), ("é", "not valid"),
])
def test_invalid_names(name, says):
    with pytest.raises(InvalidName) as err:
        validate_name(name)
    assert says in str(err.value)


def test_keys_are_case_insensitive_and_user_case_is_kept():
    opts = parse_options({"capacity": "10G", "VOLUMESTORE": "fast", "backup": "Daily"}, STORES)
    assert (opts.store, opts.capacity_mb, opts.backup.text) == ("fast", 10000, "daily")
    assert opts.given == {"capacity": "10G", "VOLUMESTORE": "fast", "backup": "Daily"}
    assert opts.vic_options() == {"capacity": "10G", "VOLUMESTORE": "fast"}


def test_defaults():
    opts = parse_options({}, STORES)
    assert opts.store == "default" and opts.capacity_mb == 1024
    assert opts.backup.text == "off" and opts.keep.last == 7 and opts.backup_store == "default"


def test_unknown_option_is_named():
    with pytest.raises(InvalidOption, match="^Size is not a supported option: supported are VolumeStore"):
        parse_options({"Size": "1"}, STORES)


def test_unknown_store_lists_known_labels():
    with pytest.raises(InvalidOption, match=r"VolumeStore='nope'.*known: default, fast"):
        parse_options({"VolumeStore": "nope"}, STORES)
    with pytest.raises(InvalidOption, match=r"BackupStore='elsewhere'"):
        parse_options({"BackupStore": "elsewhere"}, STORES)


@pytest.mark.parametrize("value, canonical", [
    ("off", "off"), ("hourly", "hourly"), ("DAILY", "daily"), ("weekly", "weekly"),
    ("monthly", "monthly"), ("daily@2:30", "daily@02:30"), ("daily@23:59", "daily@23:59"),
    ("*/15 * * * *", "*/15 * * * *"), ("0  3 * * 1-5", "0 3 * * 1-5"), ("on-unmount", "on-unmount"),
])
def test_backup_schedules(value, canonical):
    assert parse_options({"Backup": value}, STORES).backup.text == canonical


@pytest.mark.parametrize("value", ["sometimes", "daily@24:00", "daily@7", "* * * *", "61 * * * *", ""])
def test_bad_backup_schedules(value):
    with pytest.raises(InvalidOption, match="is not a valid schedule: use off, hourly"):
        parse_options({"Backup": value}, STORES)


@pytest.mark.parametrize("value, last, buckets", [
    ("3", 3, {}), ("daily=7,weekly=4,monthly=12", 0, {"daily": 7, "weekly": 4, "monthly": 12}),
    ("Monthly=2, daily=1", 0, {"daily": 1, "monthly": 2}),
])
def test_backup_keep(value, last, buckets):
    keep = parse_options({"BackupKeep": value}, STORES).keep
    assert (keep.last, keep.buckets) == (last, buckets)


@pytest.mark.parametrize("value", ["0", "-1", "daily", "daily=0", "fortnightly=2", "daily=1,daily=2", "x=y"])
def test_bad_backup_keep(value):
    with pytest.raises(InvalidOption, match="BackupKeep="):
        parse_options({"BackupKeep": value}, STORES)


def test_restore_from():
    assert str(parse_restore_ref("mydata@latest")) == "mydata@latest"
    assert parse_restore_ref("mydata@20261123T020000Z-2").backup == "20261123T020000Z-2"
    for bad in ("mydata", "@latest", "my data@latest", "mydata@yesterday"):
        with pytest.raises(InvalidOption, match="RestoreFrom="):
            parse_restore_ref(bad)


def test_duplicate_keys_differing_in_case():
    with pytest.raises(InvalidOption, match="given twice"):
        parse_options({"capacity": "1", "Capacity": "2"}, STORES)


def test_identity_ignores_key_case_and_spelling():
    a = parse_options({"capacity": "10G", "Backup": "DAILY"}, STORES)
    b = parse_options({"Capacity": "10000", "backup": "daily"}, STORES)
    assert a.identity() == b.identity()
