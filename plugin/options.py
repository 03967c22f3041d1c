"""Volume names and ``docker volume create --opt`` options, validated before any side effect.

Option keys are case-insensitive, as in VIC; the user's own spelling is kept for
``DockerMetaData``. Where VIC refuses the same input, the error starts with VIC's own
text (``bad driver value - Invalid size: 0``, ``No volume store named (x) exists``,
``volume name "x?" includes invalid characters, ...``) so that users who know a VCH
read what they know; what this plugin adds (what is accepted, the known labels)
follows it. Every error names the bad value and what is accepted.
"""

import math
import re
from dataclasses import dataclass

from .errors import InvalidName, InvalidOption, cut, quoted, shown
from .policy.ids import is_backup_id
from .policy.retention import parse_keep
from .policy.schedule import parse_schedule

#: VIC's volume name rule, as its message shows it. Names must match it whole
#: (``NAME_RE.fullmatch``): a trailing newline is refused, as by VIC's Go regexp.
NAME_RULE = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
NAME_RE = re.compile(NAME_RULE + "*")
MAX_NAME = 255

VOLUME_STORE, CAPACITY = "VolumeStore", "Capacity"
BACKUP, BACKUP_KEEP, BACKUP_STORE, RESTORE_FROM = "Backup", "BackupKeep", "BackupStore", "RestoreFrom"
#: Off-site copies (``plugin.offsite.copypolicy`` reads them against the backup targets)
#: and the one path of a backup a restore takes.
BACKUP_COPY, BACKUP_COPY_KEEP, RESTORE_PATH = "BackupCopy", "BackupCopyKeep", "RestorePath"
#: Keys a VCH records for the volumes it makes for containers (``docker run -v /dir``):
#: the mount flags, the container's name and its image. VIC accepts them at create and
#: keeps them in DockerMetaData; so does this plugin (they change nothing of the volume).
FLAGS, CONTAINER, IMAGE = "flags", "container", "image"
KNOWN = (VOLUME_STORE, CAPACITY, BACKUP, BACKUP_KEEP, BACKUP_STORE, BACKUP_COPY, BACKUP_COPY_KEEP, RESTORE_FROM,
         RESTORE_PATH, FLAGS, CONTAINER, IMAGE)
_BY_LOWER = {key.lower(): key for key in KNOWN}

#: Options that VIC itself understands (and a VCH accepts); the rest are this plugin's own.
VIC_OPTIONS = (VOLUME_STORE, CAPACITY, FLAGS, CONTAINER, IMAGE)
_RECORDS = (FLAGS, CONTAINER, IMAGE)

DEFAULT_STORE = "default"

#: A backup target's label (``BACKUP_TARGETS``): it also names the target's settings
#: (``BACKUP_TARGET_<LABEL>_...``), so it is stricter than a volume store's label.
TARGET_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The target ``RestoreFrom`` means when it names none: the local tier.
LOCAL_TARGET = "local"
DEFAULT_CAPACITY_MB = 1024

# VIC's Capacity grammar (lib/apiservers/engine/proxy/storage_proxy.go): what Go's
# strconv.ParseInt takes is a number of MB; anything else goes through go-units'
# FromHumanSize (decimal units, an optional B, float64 arithmetic) and is divided by
# 10^6 with the remainder dropped. A Capacity MB is a MiB on disk (VIC makes
# Capacity x 1024 KiB), so 10G is 10000 MB: 10,000 MiB of disk.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_HUMAN_RE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[bB]?")
_UNIT = {None: 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_INT64_MAX = 2**63 - 1
#: The most MB whose KiB (MB x 1024) a disk's capacityKb (an int64) can hold.
MAX_CAPACITY_MB = _INT64_MAX // 1024
CAPACITY_ACCEPTED = ("Capacity takes a whole number of MB (2048) or a size with a decimal unit: "
                     "500M, 10G, 1.5T, 10GB (k, M, G, T, P; binary units such as GiB are not "
                     "accepted), at least 1MB")


def validate_name(name):
    """Raise InvalidName unless ``name`` is a volume name VIC accepts (VIC's message first)."""
    if not isinstance(name, str) or not name:
        raise InvalidName("a volume name is required")
    if len(name) > MAX_NAME:
        raise InvalidName(f"volume name is {len(name)} characters long: at most {MAX_NAME} are accepted")
    if not NAME_RE.fullmatch(name):
        raise InvalidName(
            f'volume name {quoted(name)} includes invalid characters, only "{NAME_RULE}" are allowed '
            "(letters, digits, '_', '.' and '-', starting with a letter or digit)")
    return name


def _bad_capacity(vic_text):
    """VIC's text, as a VCH answers it, then what this plugin accepts."""
    return InvalidOption(f"bad driver value - {vic_text}; {CAPACITY_ACCEPTED}")


def _go_parse_int64(text):
    """What Go's ``strconv.ParseInt(text, 10, 64)`` gives, or None where it fails."""
    if not _INT_RE.fullmatch(text) or len(text.lstrip("+-")) > 19:
        return None
    number = int(text)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _go_from_human_size(text):
    """go-units' ``FromHumanSize(text)`` (VIC's vendored version) as an int64 of bytes;
    raises InvalidOption with the error text it gives."""
    match = _HUMAN_RE.fullmatch(text)
    if not match:
        raise _bad_capacity(f"invalid size: '{cut(text)}'")
    digits = match.group(1)
    if digits.count(".") > 1:
        raise _bad_capacity(f"strconv.ParseFloat: parsing {quoted(digits)}: invalid syntax")
    size = float(digits)
    if math.isinf(size):
        raise _bad_capacity(f"strconv.ParseFloat: parsing {quoted(digits)}: value out of range")
    size *= _UNIT[match.group(2).lower() if match.group(2) else None]
    # Go's int64() of a float64 beyond its range gives the most negative int64 (amd64).
    return int(size) if size < 2**63 else -_INT64_MAX - 1


def parse_capacity_mb(value):
    """Parse a Capacity value in VIC's grammar, with VIC's error texts, into whole MB.

    One MB of Capacity is one MiB of disk, as VIC makes it. Sizes VIC takes but
    cannot make are refused: under 1 MB (VIC asks vCenter for a disk of 0 KiB) and over
    ``MAX_CAPACITY_MB`` (VIC's KiB overflow).
    """
    text = str(value)
    mb = _go_parse_int64(text)
    if mb is not None:
        if mb < 1:
            raise _bad_capacity(f"Invalid size: {cut(text)}")
    else:
        size = _go_from_human_size(text)
        if size < 1:
            raise _bad_capacity(f"Capacity value too large: {cut(text)}")
        mb = size // 10**6
        if mb < 1:
            raise _bad_capacity(f"Invalid size: {cut(text)} is less than 1MB")
    if mb > MAX_CAPACITY_MB:
        raise _bad_capacity(f"Capacity value too large: {cut(text)}")
    return mb


@dataclass(frozen=True)
class RestoreRef:
    """A parsed ``RestoreFrom`` value: ``[target:]volume@backup-id`` or ``[target:]volume@latest``.

    ``target`` is the backup target's label, "" for the local tier (``local:`` says so too).
    """

    volume: str
    backup: str  # a backup id, or "latest"
    target: str = ""

    def __str__(self):
        where = f"{self.target}:" if self.target else ""
        return f"{where}{self.volume}@{self.backup}"


RESTORE_ACCEPTED = ("use <volume>@<backup-id> (such as mydata@20261123T020000Z), <volume>@latest, or "
                    "<target>:<volume>@latest for a backup target other than the local tier (offsite:mydata@latest)")


def parse_restore_ref(value):
    text = str(value)
    target, colon, rest = text.partition(":")
    if not colon:
        target, rest = "", text
    elif not TARGET_LABEL_RE.fullmatch(target):
        raise InvalidOption(f"RestoreFrom={shown(value)}: {shown(target)} is not a backup target label; "
                            f"{RESTORE_ACCEPTED}")
    volume, sep, backup = rest.partition("@")
    if not sep or not volume or not backup:
        raise InvalidOption(f"RestoreFrom={shown(value)} is not valid: {RESTORE_ACCEPTED}")
    try:
        validate_name(volume)
    except InvalidName as err:
        raise InvalidOption(f"RestoreFrom={shown(value)}: {err}") from None
    if backup.lower() == "latest":
        backup = "latest"
    elif not is_backup_id(backup):
        raise InvalidOption(f"RestoreFrom={shown(value)}: {shown(backup)} is not a backup id; {RESTORE_ACCEPTED}")
    return RestoreRef(volume, backup, "" if target == LOCAL_TARGET else target)


def parse_restore_path(value):
    """A ``RestorePath`` value: a relative path inside the backup (``reports/2026``), without
    ``..``; returned without leading, trailing or doubled slashes."""
    text = str(value)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or any(char in text for char in "\n\r\0"):
        raise InvalidOption(f"RestorePath={shown(value)} is not valid: give a folder or file inside the "
                            "backup, such as reports/2026 (no '..')")
    return "/".join(parts)


@dataclass(frozen=True)
class VolumeOptions:
    """Validated options of one volume.

    ``given`` keeps the options exactly as the user typed them (for DockerMetaData);
    the other fields are parsed values with defaults applied.
    """

    given: dict
    store: str
    capacity_mb: int
    backup: object          # policy.schedule.Schedule
    keep: object            # policy.retention.Retention
    backup_store: str       # a store label; defaults to ``store``
    restore_from: object = None  # RestoreRef or None
    copies: str = ""        # BackupCopy as given ("" when absent): read against the targets by the backups
    copy_keep: str = ""     # BackupCopyKeep as given
    restore_path: str = ""  # RestorePath, normalised ("" when absent)

    def records(self):
        """VIC's bookkeeping options as given (flags, container, image), by canonical key."""
        return {canonical(k): v for k, v in self.given.items() if canonical(k) in _RECORDS}

    def identity(self):
        """What makes two creates "the same": canonical values, ignoring key case. VIC's
        bookkeeping options (``records``) are not part of it: they describe who asked."""
        return {
            VOLUME_STORE: self.store,
            CAPACITY: self.capacity_mb,
            BACKUP: self.backup.text,
            BACKUP_KEEP: self.keep.text,
            BACKUP_STORE: self.backup_store,
            RESTORE_FROM: str(self.restore_from) if self.restore_from else "",
            BACKUP_COPY: self.copies,
            BACKUP_COPY_KEEP: self.copy_keep,
            RESTORE_PATH: self.restore_path,
        }

    def describe(self):
        """Parsed options for ``docker volume inspect`` Status."""
        described = {
            VOLUME_STORE: self.store,
            CAPACITY: f"{self.capacity_mb}MB",
            BACKUP: self.backup.text,
            BACKUP_KEEP: self.keep.text,
            BACKUP_STORE: self.backup_store,
        }
        for option, value in ((BACKUP_COPY, self.copies), (BACKUP_COPY_KEEP, self.copy_keep),
                              (RESTORE_FROM, str(self.restore_from or "")), (RESTORE_PATH, self.restore_path)):
            if value:
                described[option] = value
        described.update(self.records())
        return described


def canonical(key):
    """The option a key names, in its canonical spelling (keys are case-insensitive), or None."""
    return _BY_LOWER.get(str(key).lower())


def option_value(given, option):
    """The value ``given`` holds for ``option`` under any spelling of its key, or None."""
    return next((value for key, value in (given or {}).items() if canonical(key) == option), None)


def without(given, *options):
    """``given`` without ``options``, under any spelling of their keys."""
    return {key: value for key, value in (given or {}).items() if canonical(key) not in options}


def canonical_keys(given):
    """Map the user's keys to canonical ones; reject unknown keys and duplicates by case."""
    found = {}
    for key in given or {}:
        option = canonical(key)
        if option is None:
            raise InvalidOption(
                f"bad driver value - {cut(key)} is not a supported option; "
                f"supported are {', '.join(KNOWN)}")
        if option in found:
            raise InvalidOption(f"option {option} is given twice ({found[option]} and {key})")
        found[option] = key
    return found


def split_vic_options(given):
    """``(VIC's options, the others)`` of ``given``: the options VIC understands (what a VCH
    is sent) in VIC's spelling of their keys, and the plugin's own, as given."""
    vic, own = {}, {}
    for key, value in given.items():
        option = canonical(key)
        if option in VIC_OPTIONS:
            vic[option] = value
        else:
            own[key] = value
    return vic, own


def parse_options(given, store_labels, default_store=DEFAULT_STORE):
    """Validate ``docker volume create`` options.

    ``store_labels``: the labels of the configured volume stores. Returns VolumeOptions;
    raises InvalidOption (nothing has been changed by then). Without VolumeStore a volume
    goes to ``default_store`` (VIC's: the store labelled ``default``); with RestoreFrom
    and no such store, ``store`` is None: the backed-up volume's store, once known.
    """
    given = dict(given or {})
    keys = canonical_keys(given)
    value = {canonical: str(given[key]) for canonical, key in keys.items()}
    labels = sorted(store_labels)

    known = ", ".join(labels) or "none configured"

    def store_label(option, default):
        label = value.get(option, default)
        if label in labels:
            return label
        if option == VOLUME_STORE:   # VIC's text (also for its default, when no store has that label)
            raise InvalidOption(f"No volume store named ({cut(label)}) exists; known volume stores: {known}")
        raise InvalidOption(f"{option}={shown(label)}: no volume store has that label (known: {known})")

    restore = parse_restore_ref(value[RESTORE_FROM]) if RESTORE_FROM in value else None
    if restore and VOLUME_STORE not in value and default_store not in labels:
        # A restored volume goes to the backed-up volume's store by default: which one is
        # known once the backup is found (the driver parses the completed options again).
        store = None
    else:
        store = store_label(VOLUME_STORE, default_store)
    capacity = parse_capacity_mb(value[CAPACITY]) if CAPACITY in value else DEFAULT_CAPACITY_MB
    schedule = parse_schedule(value.get(BACKUP, "off"))
    keep = parse_keep(value.get(BACKUP_KEEP))
    backup_store = store_label(BACKUP_STORE, store) if store or BACKUP_STORE in value else None
    path = parse_restore_path(value[RESTORE_PATH]) if RESTORE_PATH in value else ""
    if path and not (restore and restore.target):
        raise InvalidOption(f"RestorePath={shown(value[RESTORE_PATH])} restores one path of a copy on an off-site "
                            "target (the local tier restores whole volumes): it needs "
                            "RestoreFrom=<target>:<volume>@<backup> (offsite:mydata@latest)")
    return VolumeOptions(given={str(k): str(v) for k, v in given.items()}, store=store,
                         capacity_mb=capacity, backup=schedule, keep=keep,
                         backup_store=backup_store, restore_from=restore,
                         copies=value.get(BACKUP_COPY, "").strip(), copy_keep=value.get(BACKUP_COPY_KEEP, "").strip(),
                         restore_path=path)
