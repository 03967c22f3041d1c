"""``manifest.json``: what one backup holds, written last as its commit marker.

A backup folder ``backups/<volume>/<backup-id>/`` counts as a backup only once its
manifest is there and valid. The schema (format 1), all keys required unless noted:

==================  ==========================================================================
``format``          1. A reader refuses a higher format (written by a newer plugin).
``volume``          the volume's name.
``backup_id``       the folder's name (see ``ids``).
``method``          ``snapshot-clone`` (VM snapshot, then clone of the frozen disk),
                    ``direct-clone`` (disk attached to no VM, cloned under the volume lock),
                    ``directory`` (folder copy, unchanged files hard-linked to the previous
                    backup's), or ``unchanged`` (nothing copied: the data is ``base``'s).
``origin``          why it was made: ``schedule``, ``manual``, ``pre-restore``, ``final``
                    (see ``retention``; only ``schedule`` backups are pruned).
``created``         the point in time the data is from (snapshot taken, copy started).
``started``         when the backup began; ``finished``: when it was committed.
                    Times are RFC 3339 in UTC: ``2026-11-23T02:00:00Z`` (with the
                    microseconds when not 0: ``timefmt.rfc3339_exact``).
``store``           the label of the volume store the volume lives in.
``source``          the disk file or folder that was copied, as that store names it.
``source_modified`` optional: the source's modification time as the store reports it
                    (compared for equality only, to detect an unchanged disk); "" if unknown.
``size``            bytes: the disk's size, or the total of a folder's file sizes.
``data``            where the data is, relative to the backup folder (``data`` for a folder,
                    ``disk.vmdk``, ...); "" for ``unchanged``.
``base``            ``unchanged`` only: the id of the backup holding the data, which is never
                    itself ``unchanged``; "" otherwise.
``metadata``        the volume's DockerMetaData object.
``options``         the volume's options as the user gave them.
``plugin_version``  the plugin that wrote it.
``extra``           optional object: engine details (snapshot name, file counts, ...).
==================  ==========================================================================
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from .. import __version__
from ..errors import BackupError, InvalidName
from ..options import validate_name
from ..policy.ids import is_backup_id
from ..policy.retention import ORIGINS, BackupInfo
from ..timefmt import rfc3339_exact

FILE_NAME = "manifest.json"
FORMAT = 1
SNAPSHOT_CLONE, DIRECT_CLONE, DIRECTORY, UNCHANGED = (
    "snapshot-clone", "direct-clone", "directory", "unchanged")
METHODS = (SNAPSHOT_CLONE, DIRECT_CLONE, DIRECTORY, UNCHANGED)
_TIMES = ("created", "started", "finished")


@dataclass(frozen=True)
class Manifest:
    """One backup's manifest. Construct with keywords; ``validate`` checks the contract."""

    volume: str
    backup_id: str
    method: str
    origin: str
    created: datetime
    started: datetime
    finished: datetime
    store: str
    source: str
    size: int
    data: str
    base: str = ""
    source_modified: str = ""
    metadata: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    plugin_version: str = __version__
    extra: dict = field(default_factory=dict)

    @property
    def holds_data(self):
        """False for a backup recorded as unchanged (its data is in ``base``)."""
        return self.method != UNCHANGED

    @property
    def data_backup_id(self):
        """The id of the backup whose folder holds this backup's data."""
        return self.backup_id if self.holds_data else self.base

    def info(self):
        """The retention view of this backup."""
        return BackupInfo(self.backup_id, self.created, self.origin, self.base)

    def summary(self):
        """A backup as the API and ``docker volume inspect`` show it."""
        shown = {
            "Id": self.backup_id,
            "Volume": self.volume,
            "Created": rfc3339_exact(self.created),
            "Finished": rfc3339_exact(self.finished),
            "Method": self.method,
            "Origin": self.origin,
            "Size": self.size,
            "Store": self.store,
        }
        if self.base:
            shown["Base"] = self.base
        return shown

    def validate(self, where=""):
        """Return self, or raise BackupError saying which field is wrong and what is accepted."""
        where = where or f"the manifest of backup {self.backup_id!r} of volume {self.volume!r}"

        def bad(reason):
            raise BackupError(f"{where} is not valid: {reason}")

        try:
            validate_name(self.volume)
        except InvalidName as err:
            bad(str(err))
        if not is_backup_id(self.backup_id):
            bad(f"backup_id {self.backup_id!r} is not a backup id such as 20261123T020000Z")
        if self.method not in METHODS:
            bad(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.origin not in ORIGINS:
            bad(f"origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        for name in _TIMES:
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                bad(f"{name} must be a time with a zone, not {value!r}")
        if self.finished < self.started:
            bad("finished is before started")
        for name in ("store", "source", "data", "base", "source_modified", "plugin_version"):
            if not isinstance(getattr(self, name), str):
                bad(f"{name} must be a string")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            bad(f"size must be a whole number of bytes, not {self.size!r}")
        for name in ("metadata", "options", "extra"):
            if not isinstance(getattr(self, name), dict):
                bad(f"{name} must be a JSON object")
        if self.method == UNCHANGED:
            if not is_backup_id(self.base) or self.base == self.backup_id:
                bad("an unchanged backup needs base: the id of the backup that holds its data")
            if self.data:
                bad("an unchanged backup holds no data, so data must be empty")
        else:
            if self.base:
                bad(f"base is only for unchanged backups, not for method {self.method}")
            if not self.data or self.data.startswith("/") or ".." in self.data.split("/"):
                bad(f"data must name the data inside the backup folder, not {self.data!r}")
        return self

    def to_dict(self):
        """The JSON object of the manifest (times as RFC 3339 strings)."""
        obj = {"format": FORMAT, **asdict(self)}
        for name in _TIMES:
            obj[name] = rfc3339_exact(obj[name])
        return obj

    def to_json(self):
        """The manifest.json text (validated first)."""
        self.validate()
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


_REQUIRED = ("volume", "backup_id", "method", "origin", *_TIMES, "store", "source", "size", "data",
             "metadata", "options", "plugin_version")
_OPTIONAL = ("base", "source_modified", "extra")


class NewerFormat(BackupError):
    """A manifest of a format this plugin does not read (a newer plugin wrote it)."""


def from_dict(obj, where="a manifest"):
    """A validated Manifest from its JSON object; unknown keys are ignored.

    Raises BackupError for a missing or wrong field or a format newer than this plugin's.
    """
    if not isinstance(obj, dict):
        raise BackupError(f"{where} is not valid: it is not a JSON object")
    fmt = obj.get("format")
    if not isinstance(fmt, int) or fmt < 1:
        raise BackupError(f"{where} is not valid: format must be a positive whole number, not {fmt!r}")
    if fmt > FORMAT:
        raise NewerFormat(
            f"{where} has format {fmt}, written by a newer plugin (this one reads up to "
            f"format {FORMAT}): upgrade the plugin to use this backup")
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise BackupError(f"{where} is not valid: it lacks {', '.join(missing)}")
    fields = {key: obj[key] for key in _REQUIRED + _OPTIONAL if key in obj}
    for name in _TIMES:
        text = fields[name]
        try:
            fields[name] = datetime.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            fields[name] = None
        if fields[name] is None or fields[name].tzinfo is None:
            raise BackupError(f"{where} is not valid: {name} {text!r} is not an RFC 3339 time such as "
                              "2026-11-23T02:00:00Z")
    return Manifest(**fields).validate(where)


def from_json(text, where="a manifest"):
    """A validated Manifest from manifest.json text; raises BackupError."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise BackupError(f"{where} is not valid JSON: {err}") from None
    return from_dict(obj, where)


def recorded_origin(data):
    """The ``origin`` a damaged manifest still records, or "" when it says none readably."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, TypeError):
        return ""
    origin = obj.get("origin") if isinstance(obj, dict) else None
    return origin if origin in ORIGINS else ""
