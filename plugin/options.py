"""Volume names and ``docker volume create --opt`` options, validated before any side effect.

Option keys are case-insensitive, as in VIC; the user's own spelling is kept for
``DockerMetaData``. Every error names the option, the bad value and what is accepted.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .backup.retention import parse_keep
from .backup.schedule import parse_schedule
from .errors import InvalidName, InvalidOption

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME = 255
BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{1,4})?$")

VOLUME_STORE, CAPACITY = "VolumeStore", "Capacity"
BACKUP, BACKUP_KEEP, BACKUP_STORE, RESTORE_FROM = "Backup", "BackupKeep", "BackupStore", "RestoreFrom"
KNOWN = (VOLUME_STORE, CAPACITY, BACKUP, BACKUP_KEEP, BACKUP_STORE, RESTORE_FROM)
_BY_LOWER = {key.lower(): key for key in KNOWN}

#: Options that VIC itself understands (and a VCH accepts); the rest are this plugin's own.
VIC_OPTIONS = (VOLUME_STORE, CAPACITY)

DEFAULT_STORE = "default"
DEFAULT_CAPACITY_MB = 1024

# VIC's Capacity grammar: a bare integer is MB; otherwise a decimal number with a
# decimal (SI) unit and an optional B. Binary units (KiB, GiB) are refused.
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s?([kKmMgGtTpP])?[bB]?$")
_UNIT = {None: 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
CAPACITY_ACCEPTED = ("a whole number of MB (2048) or a size with a decimal unit: "
                     "500M, 10G, 1.5T, 10GB (k, M, G, T, P; binary units such as GiB are not accepted)")


def validate_name(name):
    """Raise InvalidName unless ``name`` is a volume name VIC accepts."""
    if not isinstance(name, str) or not name:
        raise InvalidName("a volume name is required")
    if len(name) > MAX_NAME:
        raise InvalidName(f"volume name is {len(name)} characters long: at most {MAX_NAME} are accepted")
    if not NAME_RE.match(name):
        raise InvalidName(
            f"volume name {name!r} is not valid: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit")
    return name


def parse_capacity_mb(value):
    """Parse a Capacity value in VIC's grammar into whole MB (1 MB = 1,000,000 bytes)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        mb = int(text)
    else:
        match = _SIZE_RE.match(text)
        if not match:
            raise InvalidOption(f"Capacity={value!r} is not a size: use {CAPACITY_ACCEPTED}")
        try:
            number = Decimal(match.group(1))
        except InvalidOperation:
            raise InvalidOption(f"Capacity={value!r} is not a size: use {CAPACITY_ACCEPTED}") from None
        unit = match.group(2).lower() if match.group(2) else None
        mb = int(number * _UNIT[unit] / 10**6)
    if mb < 1:
        raise InvalidOption(f"Capacity={value!r} is too small: a volume needs at least 1MB")
    return mb


@dataclass(frozen=True)
class RestoreRef:
    """A parsed ``RestoreFrom`` value: ``volume@backup-id`` or ``volume@latest``."""

    volume: str
    backup: str  # a backup id, or "latest"

    def __str__(self):
        return f"{self.volume}@{self.backup}"


def parse_restore_ref(value):
    text = str(value).strip()
    volume, sep, backup = text.partition("@")
    accepted = "use <volume>@<backup-id> (such as mydata@20261123T020000Z) or <volume>@latest"
    if not sep or not volume or not backup:
        raise InvalidOption(f"RestoreFrom={value!r} is not valid: {accepted}")
    try:
        validate_name(volume)
    except InvalidName as err:
        raise InvalidOption(f"RestoreFrom={value!r}: {err}") from None
    if backup.lower() == "latest":
        backup = "latest"
    elif not BACKUP_ID_RE.match(backup):
        raise InvalidOption(f"RestoreFrom={value!r}: {backup!r} is not a backup id; {accepted}")
    return RestoreRef(volume, backup)


@dataclass(frozen=True)
class VolumeOptions:
    """Validated options of one volume.

    ``given`` keeps the options exactly as the user typed them (for DockerMetaData);
    the other fields are parsed values with defaults applied.
    """

    given: dict
    store: str
    capacity_mb: int
    backup: object          # backup.schedule.Schedule
    keep: object            # backup.retention.Retention
    backup_store: str       # a store label; defaults to ``store``
    restore_from: object = None  # RestoreRef or None

    def identity(self):
        """What makes two creates "the same": canonical values, ignoring key case."""
        return {
            VOLUME_STORE: self.store,
            CAPACITY: self.capacity_mb,
            BACKUP: self.backup.text,
            BACKUP_KEEP: self.keep.text,
            BACKUP_STORE: self.backup_store,
            RESTORE_FROM: str(self.restore_from) if self.restore_from else "",
        }

    def vic_options(self):
        """The given options that VIC understands, in the user's key case."""
        return {k: v for k, v in self.given.items() if _BY_LOWER[k.lower()] in VIC_OPTIONS}

    def describe(self):
        """Parsed options for ``docker volume inspect`` Status."""
        described = {
            VOLUME_STORE: self.store,
            CAPACITY: f"{self.capacity_mb}MB",
            BACKUP: self.backup.text,
            BACKUP_KEEP: self.keep.text,
            BACKUP_STORE: self.backup_store,
        }
        if self.restore_from:
            described[RESTORE_FROM] = str(self.restore_from)
        return described


def canonical_keys(given):
    """Map the user's keys to canonical ones; reject unknown keys and duplicates by case."""
    found = {}
    for key in given or {}:
        canonical = _BY_LOWER.get(str(key).lower())
        if canonical is None:
            raise InvalidOption(
                f"{key} is not a supported option: supported are {', '.join(KNOWN)}")
        if canonical in found:
            raise InvalidOption(f"option {canonical} is given twice ({found[canonical]} and {key})")
        found[canonical] = key
    return found


def parse_options(given, store_labels, default_store=DEFAULT_STORE):
    """Validate ``docker volume create`` options.

    ``store_labels``: the labels of the configured volume stores. Returns VolumeOptions;
    raises InvalidOption (nothing has been changed by then).
    """
    given = dict(given or {})
    keys = canonical_keys(given)
    value = {canonical: str(given[key]) for canonical, key in keys.items()}
    labels = sorted(store_labels)

    def store_label(option, default):
        label = value.get(option, default)
        if label not in labels:
            known = ", ".join(labels) or "none configured"
            raise InvalidOption(f"{option}={label!r}: no volume store has that label (known: {known})")
        return label

    store = store_label(VOLUME_STORE, default_store)
    capacity = parse_capacity_mb(value[CAPACITY]) if CAPACITY in value else DEFAULT_CAPACITY_MB
    schedule = parse_schedule(value.get(BACKUP, "off"))
    keep = parse_keep(value.get(BACKUP_KEEP))
    backup_store = store_label(BACKUP_STORE, store)
    restore = parse_restore_ref(value[RESTORE_FROM]) if RESTORE_FROM in value else None
    return VolumeOptions(given={str(k): str(v) for k, v in given.items()}, store=store,
                         capacity_mb=capacity, backup=schedule, keep=keep,
                         backup_store=backup_store, restore_from=restore)
