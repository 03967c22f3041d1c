"""restic's ``--json`` output read into results.

restic 0.14 writes, with ``--json``:

- ``backup``: one JSON object per line on stdout: ``status`` messages while it runs
  (``percent_done``, ``total_files``, ``files_done``, ``total_bytes``, ``bytes_done``,
  ``seconds_elapsed``, ``seconds_remaining``), ``error`` messages (on stderr) for files it
  could not read, and one ``summary`` at the end (``snapshot_id``, ``data_added``,
  ``total_files_processed``, ``total_bytes_processed``, ``files_new`` ...);
- ``snapshots``: one JSON array of snapshots (``id``, ``short_id``, ``time``, ``tags``,
  ``paths``, ``hostname``, ``parent``; newer restic versions add ``summary``);
- ``forget``: one JSON array of groups (``keep``, ``remove``), then, with ``--prune``,
  prune's text;
- ``stats``, ``cat config``: one JSON object.

Lines that are not JSON are skipped by these readers (they are kept by the runner).
"""

import json
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Progress:
    """How far an operation is. ``percent`` is 0.0 to 100.0, or None when unknown."""

    percent: float = None
    bytes_done: int = 0
    total_bytes: int = 0
    files_done: int = 0
    total_files: int = 0
    seconds_elapsed: int = 0
    seconds_remaining: int = None


@dataclass(frozen=True)
class BackupResult:
    """What one ``backup`` saved. ``bytes_added``: new data in the repository (before
    compression; deduplicated chunks do not count); ``total_bytes``/``files``: the size
    and number of files of the tree backed up."""

    snapshot_id: str
    bytes_added: int
    total_bytes: int
    files: int
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of the repository. ``labels``: the ``key=value`` tags as a dict."""

    id: str
    short_id: str
    time: datetime
    tags: tuple
    paths: tuple
    host: str
    parent: str = ""
    summary: dict = None        # restic >= 0.17 records one; 0.14 does not

    @property
    def labels(self):
        pairs = (tag.partition("=") for tag in self.tags)
        return {key: value for key, sep, value in pairs if sep}


@dataclass(frozen=True)
class ForgetResult:
    """Snapshot ids kept and removed by ``forget`` (and whether prune ran)."""

    kept: tuple
    removed: tuple
    pruned: bool = False


@dataclass(frozen=True)
class RestoreResult:
    """What a restore wrote: regular files and their bytes, under the target."""

    snapshot_id: str
    target: str
    files: int
    bytes: int


@dataclass(frozen=True)
class CheckResult:
    """A ``check``: ``ok``, restic's messages about damage (``problems``), its notes on
    what is not damage (``notes``: unreferenced packs and the like), what was read."""

    ok: bool
    problems: tuple = ()
    notes: tuple = ()
    read_data_subset: str = ""


@dataclass(frozen=True)
class RepositoryInfo:
    """The repository that ``ensure_initialised`` found or made."""

    id: str
    version: int
    created: bool


def json_lines(lines):
    """The JSON values among ``lines``, in order."""
    for line in lines:
        text = line.strip()
        if not text or text[0] not in "[{":
            continue
        try:
            yield json.loads(text)
        except ValueError:
            continue


def first_json(lines, kind):
    """The first JSON value of type ``kind`` (dict or list) among ``lines``, or None."""
    return next((value for value in json_lines(lines) if isinstance(value, kind)), None)


def document(lines):
    """The one JSON value that ``lines`` hold together (``cat config`` indents it), or None."""
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        return None


def progress_of(status):
    """A Progress from a ``status`` message."""
    percent = status.get("percent_done")
    return Progress(
        percent=None if percent is None else round(100.0 * float(percent), 1),
        bytes_done=int(status.get("bytes_done", 0)),
        total_bytes=int(status.get("total_bytes", 0)),
        files_done=int(status.get("files_done", 0)),
        total_files=int(status.get("total_files", 0)),
        seconds_elapsed=int(status.get("seconds_elapsed", 0)),
        seconds_remaining=status.get("seconds_remaining"),
    )


def backup_result(summary):
    """A BackupResult from the ``summary`` message."""
    return BackupResult(
        snapshot_id=str(summary["snapshot_id"]),
        bytes_added=int(summary.get("data_added", 0)),
        total_bytes=int(summary.get("total_bytes_processed", 0)),
        files=int(summary.get("total_files_processed", 0)),
        files_new=int(summary.get("files_new", 0)),
        files_changed=int(summary.get("files_changed", 0)),
        files_unmodified=int(summary.get("files_unmodified", 0)),
        seconds=float(summary.get("total_duration", 0.0)),
    )


def parse_time(text):
    """restic's RFC 3339 time (nanoseconds, ``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(str(text))


def snapshot_of(item):
    return Snapshot(
        id=str(item["id"]),
        short_id=str(item.get("short_id") or item["id"][:8]),
        time=parse_time(item["time"]),
        tags=tuple(item.get("tags") or ()),
        paths=tuple(item.get("paths") or ()),
        host=str(item.get("hostname", "")),
        parent=str(item.get("parent") or ""),
        summary=item.get("summary"),
    )


def snapshots_of(lines):
    """The snapshots listed by ``snapshots --json``, oldest first."""
    items = first_json(lines, list) or []
    return sorted((snapshot_of(item) for item in items), key=lambda s: (s.time, s.id))


def forget_result(lines, pruned):
    """The ids kept and removed, from ``forget --json``."""
    kept, removed = [], []
    for group in first_json(lines, list) or []:
        kept.extend(item["id"] for item in group.get("keep") or () if "id" in item)
        removed.extend(item["id"] for item in group.get("remove") or () if "id" in item)
    return ForgetResult(kept=tuple(kept), removed=tuple(removed), pruned=pruned and bool(removed))
