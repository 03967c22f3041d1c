import pytest

from plugin.errors import ConfigError, InvalidName, InvalidOption
from plugin.options import (
    MAX_CAPACITY_MB,
    parse_capacity_mb,
    parse_options,
    parse_restore_ref,
    split_vic_options,
    validate_name,
)
from plugin.policy import ids
from plugin.storespec import parse_store_spec, parse_store_specs

STORES = ["default", "fast"]


@pytest.mark.parametrize("text, mb", [
    ("2048", 2048), ("10G", 10000), ("10GB", 10000), ("10g", 10000), ("1.5T", 1500000),
    ("500M", 500), ("500MB", 500), ("2000k", 2), ("1P", 10**9), ("10 G", 10000), ("1.5M", 1),
    ("+5", 5), ("007", 7), ("100000", 100000), ("2000001b", 2),
])
def test_capacity_follows_vic_grammar(text, mb):
    assert parse_capacity_mb(text) == mb


ACCEPTED = "; Capacity takes a whole number of MB (2048) or a size with a decimal unit"


@pytest.mark.parametrize("text, vic_says", [
    # VIC's own texts (its robot suite 1-19 asserts the first four through Docker)
    ("0", "bad driver value - Invalid size: 0"),
    ("-1", "bad driver value - Invalid size: -1"),
    ("9223372036854775808", "bad driver value - Capacity value too large: 9223372036854775808"),
    ("9999999999999999999", "bad driver value - Capacity value too large: 9999999999999999999"),
    # the sign as VIC reads it: Go's ParseInt takes one, go-units' size grammar none
    ("-0", "bad driver value - Invalid size: -0"),
    ("-5G", "bad driver value - invalid size: '-5G'"),
    ("+5G", "bad driver value - invalid size: '+5G'"),
    ("-99999999999999999999", "bad driver value - invalid size: '-99999999999999999999'"),
    # sizes below one byte and above int64, as VIC words them
    ("0G", "bad driver value - Capacity value too large: 0G"),
    ("0.5", "bad driver value - Capacity value too large: 0.5"),
    ("10000P", "bad driver value - Capacity value too large: 10000P"),
    ("1.2.3G", 'bad driver value - strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ("10GiB", "bad driver value - invalid size: '10GiB'"),
    ("1Gi", "bad driver value - invalid size: '1Gi'"),
    ("ten", "bad driver value - invalid size: 'ten'"),
    ("", "bad driver value - invalid size: ''"),
    # whole values only (a Go regexp's $ is the end of the text) and ASCII digits
    ("5\n", "bad driver value - invalid size: '5\n'"),
    (" 5", "bad driver value - invalid size: ' 5'"),
    ("\u0661\u0662", "bad driver value - invalid size: '\u0661\u0662'"),
    ("1_000", "bad driver value - invalid size: '1_000'"),
    # deliberate: what VIC takes but cannot make (a 0 KiB disk; KiB beyond int64)
    ("500k", "bad driver value - Invalid size: 500k is less than 1MB"),
    ("9223372036854775807", "bad driver value - Capacity value too large: 9223372036854775807"),
])
def test_capacity_errors_are_vics_then_what_is_accepted(text, vic_says):
    with pytest.raises(InvalidOption) as err:
        parse_capacity_mb(text)
    assert str(err.value).startswith(vic_says + ACCEPTED)


def test_capacity_bounds():
    assert parse_capacity_mb(str(MAX_CAPACITY_MB)) == MAX_CAPACITY_MB
    assert MAX_CAPACITY_MB * 1024 <= 2**63 - 1 < (MAX_CAPACITY_MB + 1) * 1024
    with pytest.raises(InvalidOption, match="too large"):
        parse_capacity_mb(str(MAX_CAPACITY_MB + 1))


def test_a_huge_capacity_is_echoed_cut():
    with pytest.raises(InvalidOption) as err:
        parse_capacity_mb("9" * 100_000)
    assert len(str(err.value)) < 400 and "(100000 characters)" in str(err.value)


@pytest.mark.parametrize("name", ["a", "my-data", "My.Data_1", "0", "x" * 255])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name, quoted", [
    ("-x", '"-x"'), (".x", '".x"'), ("a/b", '"a/b"'), ("a b", '"a b"'), ("é", '"é"'), ("test???", '"test???"'),
    ("abc\n", '"abc\\n"'), ("\nabc", '"\\nabc"'), ("a\tb", '"a\\tb"'),
])
def test_invalid_names_get_vics_text(name, quoted):
    with pytest.raises(InvalidName) as err:
        validate_name(name)
    assert str(err.value).startswith(
        f'volume name {quoted} includes invalid characters, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (')


@pytest.mark.parametrize("name, says", [("", "required"), ("x" * 256, "at most 255")])
def test_names_empty_or_too_long(name, says):
    with pytest.raises(InvalidName, match=says):
        validate_name(name)


def test_keys_are_case_insensitive_and_user_case_is_kept():
    opts = parse_options({"capacity": "10G", "VOLUMESTORE": "fast", "backup": "Daily"}, STORES)
    assert (opts.store, opts.capacity_mb, opts.backup.text) == ("fast", 10000, "daily")
    assert opts.given == {"capacity": "10G", "VOLUMESTORE": "fast", "backup": "Daily"}


def test_defaults():
    opts = parse_options({}, STORES)
    assert opts.store == "default" and opts.capacity_mb == 1024
    assert opts.backup.text == "off" and opts.keep.last == 7 and opts.backup_store == "default"


def test_unknown_option_gets_vics_text_then_the_supported_ones():
    with pytest.raises(InvalidOption, match="^bad driver value - Size is not a supported option; supported are "
                                            "VolumeStore, Capacity, Backup, BackupKeep, BackupStore, BackupCopy, "
                                            "BackupCopyKeep, RestoreFrom, RestorePath, flags, container, image$"):
        parse_options({"Size": "1"}, STORES)


def test_unknown_store_gets_vics_text_then_the_known_labels():
    with pytest.raises(InvalidOption, match=r"^No volume store named \(nope\) exists; known volume stores: "
                                            "default, fast$"):
        parse_options({"VolumeStore": "nope"}, STORES)
    with pytest.raises(InvalidOption, match=r"BackupStore='elsewhere'"):
        parse_options({"BackupStore": "elsewhere"}, STORES)


def test_without_a_store_labelled_default_the_default_is_refused_as_by_vic():
    with pytest.raises(InvalidOption, match=r"^No volume store named \(default\) exists; known volume stores: "
                                            "fast, slow$"):
        parse_options({"Capacity": "10"}, ["fast", "slow"])
    assert parse_options({"VolumeStore": "slow"}, ["fast", "slow"]).backup_store == "slow"
    # A restore goes to the backed-up volume's store: decided once the backup is found.
    restoring = parse_options({"RestoreFrom": "v@latest"}, ["fast", "slow"])
    assert restoring.store is None and restoring.backup_store is None


def test_vics_bookkeeping_options_are_accepted_kept_and_not_part_of_identity():
    # What a VCH records for a container's anonymous volume (storage_proxy.go).
    given = {"flags": "rw", "Container": "web-1", "IMAGE": "nginx:1"}
    opts = parse_options(given, STORES)
    assert opts.given == given
    assert opts.describe()["flags"] == "rw" and opts.describe()["container"] == "web-1"
    assert opts.identity() == parse_options({}, STORES).identity()


def test_vics_options_are_split_from_the_plugins_own_in_vics_spelling():
    vic, own = split_vic_options({"capacity": "10G", "VOLUMESTORE": "fast", "backup": "Daily", "Container": "web-1"})
    assert vic == {"Capacity": "10G", "VolumeStore": "fast", "container": "web-1"}
    assert own == {"backup": "Daily"}


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


def test_restore_from_a_backup_target():
    ref = parse_restore_ref("offsite:mydata@latest")
    assert (ref.target, ref.volume, ref.backup, str(ref)) == ("offsite", "mydata", "latest", "offsite:mydata@latest")
    local = parse_restore_ref("local:mydata@20261123T020000Z")
    assert (local.target, str(local)) == ("", "mydata@20261123T020000Z")     # the local tier, as without a target
    for bad, said in (("off site:mydata@latest", "is not a backup target label"),
                      ("offsite:@latest", "is not valid"), ("offsite:my:data@latest", "invalid characters"),
                      ("offsite:mydata@snapshot1", "is not a backup id")):
        with pytest.raises(InvalidOption, match=f"RestoreFrom=.*{said}"):
            parse_restore_ref(bad)


def test_restore_path_takes_one_path_of_a_copy_on_a_target():
    options = parse_options({"RestoreFrom": "offsite:mydata@latest", "RestorePath": "/reports//2026/"}, STORES)
    assert options.restore_path == "reports/2026"
    assert options.describe()["RestorePath"] == "reports/2026"
    with pytest.raises(InvalidOption, match="RestorePath=.* needs RestoreFrom=<target>:"):
        parse_options({"RestoreFrom": "mydata@latest", "RestorePath": "reports"}, STORES)
    with pytest.raises(InvalidOption, match="RestorePath=.* needs RestoreFrom"):
        parse_options({"RestorePath": "reports"}, STORES)
    for bad in ("..", "a/../b", "/", "a\nb"):
        with pytest.raises(InvalidOption, match="no '..'"):
            parse_options({"RestoreFrom": "offsite:mydata@latest", "RestorePath": bad}, STORES)


def test_backup_copy_options_are_kept_as_given_and_part_of_identity():
    options = parse_options({"backupcopy": " offsite@daily ", "BackupCopyKeep": "daily=7"}, STORES)
    assert (options.copies, options.copy_keep) == ("offsite@daily", "daily=7")
    assert options.describe()["BackupCopy"] == "offsite@daily"
    assert options.identity() != parse_options({"BackupCopy": "offsite@weekly"}, STORES).identity()
    assert "BackupCopy" not in parse_options({}, STORES).describe()


def test_duplicate_keys_differing_in_case():
    with pytest.raises(InvalidOption, match="given twice"):
        parse_options({"capacity": "1", "Capacity": "2"}, STORES)


def test_identity_ignores_key_case_and_spelling():
    a = parse_options({"capacity": "10G", "Backup": "DAILY"}, STORES)
    b = parse_options({"Capacity": "10000", "backup": "daily"}, STORES)
    assert a.identity() == b.identity()


@pytest.mark.parametrize("text", ["20261123T020000Z\n", "20261123T020000Z-1\n", "\uff12" * 8 + "T020000Z"])
def test_backup_ids_match_whole_in_ascii_digits(text):
    assert not ids.is_backup_id(text)
    with pytest.raises(InvalidOption, match="is not a backup id"):
        parse_restore_ref(f"mydata@{text}")
    with pytest.raises(InvalidOption, match="includes invalid characters"):
        parse_restore_ref("mydata\n@latest")


def test_a_store_label_with_a_trailing_newline_is_refused():
    (spec,) = parse_store_specs("ds/path:fast\n")   # ";"-separated parts are stripped: in the middle, then
    assert spec.label == "fast" and not spec.problem
    with pytest.raises(ConfigError, match="unsupported character"):
        parse_store_spec("ds/path:fast\n")
