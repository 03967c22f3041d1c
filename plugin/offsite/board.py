"""What ``docker volume inspect`` and ``vsphere-volume targets`` show of off-site copies.

``CopyBoard`` holds, per volume and target, the last copy attempt (its id, time, result,
bytes added, or the error), the last error (a retention that failed counts), what a
running copy or restore is doing; per target, the last verification. Every field is
read and written under one lock; the last attempts and verifications are kept in one
JSON file (written atomically on each change), so a restarted plugin still shows them,
each with where its target was: what was recorded of a target since declared elsewhere
(another location under the same label) is not shown.

It also tells operations: each copy made, failed or skipped, each count of the copies on
a target and each verification of one is told to ``health`` (the backup service's
``StatusBoard``, which holds every volume's backup health per target), and so is, at
``load``, what was recorded before the restart (the last attempt, the newest copy made
and the copies kept, the last verification), so that a restarted plugin never reports a
copied volume as never copied. Only the targets in ``offsite`` are told: the local tier's
backups tell it themselves.
"""

import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime

from ..backup.contract import EMPTY_RESULTS
from ..errors import cut
from ..fsutil import atomic_write_json, read_json
from ..ops.state import FAILED, OK, RESULTS, SKIPPED
from ..timefmt import rfc3339, rfc3339_exact

log = logging.getLogger(__name__)


class CopyBoard:
    """See the module docstring. ``path``: the JSON file; ``clock``: aware now; ``where``:
    {target label: its location}; ``health``: a ``backup.status.StatusBoard`` to tell;
    ``offsite``: the labels of the targets whose work it is told (none without ``health``)."""

    def __init__(self, path, clock, where=None, health=None, offsite=()):
        self.path = path
        self.clock = clock
        self.where = dict(where or {})    # target label -> where it is now (its location)
        self.health = health
        self.offsite = frozenset(offsite) if health is not None else frozenset()
        self._lock = threading.Lock()
        self._copies = {}          # "volume@target" -> {"LastCopy": {...}, "LastError": "..."}
        self._verified = {}        # target -> the Verification's summary
        self._progress = {}        # (volume, target) -> what runs now
        self._problems = {}        # volume -> why its BackupCopy cannot be followed

    def load(self):
        """Read what was recorded before the restart; an unreadable file starts afresh."""
        try:
            saved = read_json(self.path)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("the off-site copy status %s cannot be read (%s): starting afresh", self.path, err)
            return
        saved = saved if isinstance(saved, dict) else {}
        with self._lock:
            self._copies = {key: value for key, value in dict(saved.get("copies") or {}).items()
                            if self._here(key.rpartition("@")[2], value)}
            self._verified = {label: value for label, value in dict(saved.get("verified") or {}).items()
                              if self._here(label, value)}
            copies, verified = dict(self._copies), dict(self._verified)
        for key, recorded in copies.items():
            volume, _, target = key.rpartition("@")
            if target in self.offsite:
                self.health.recalled(volume, target, **_recalled(recorded))
        for label, summary in verified.items():
            if label in self.offsite and _time(summary.get("Time")):
                self.health.target_verified(label, _time(summary["Time"]), *_verdict(summary), tell=False)

    def _here(self, label, recorded):
        return isinstance(recorded, dict) and recorded.get("Where") == self.where.get(label)

    def _save(self):
        """Under the lock: write the file (a failure is logged: Status is memory first)."""
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            atomic_write_json(self.path, {"copies": self._copies, "verified": self._verified})
        except OSError as err:
            log.warning("cannot record the off-site copy status in %s: %s", self.path, err)

    # --- what happened -----------------------------------------------------------------
    def copied(self, volume, target, record, seconds=None, kept=None):
        """Copy ``record`` (a contract.Record) of ``volume`` was made on ``target`` in
        ``seconds``; ``kept``: the copies of ``volume`` there now (None: not known)."""
        last = {"Id": record.id, "Time": rfc3339_exact(record.created), "Result": "ok", "Origin": record.origin,
                "BytesAdded": record.added, "Bytes": record.size, **record.facts}
        newest = {"Time": last["Time"], "Seconds": seconds, "Bytes": record.size, "BytesAdded": record.added}
        self._set(volume, target, LastCopy=last, LastError="", Newest=newest,
                  **({} if kept is None else {"Kept": kept}))
        if target in self.offsite:
            self.health.copied(volume, target, record.origin, record.created, seconds, record.size, record.added,
                               kept)

    def failed(self, volume, target, started, origin, error):
        """A copy of ``volume`` to ``target`` begun at ``started`` was not made."""
        self._attempted(volume, target, started, origin, FAILED, error)

    def skipped(self, volume, target, started, origin, reason):
        """A scheduled copy of ``volume`` to ``target`` begun at ``started`` was left to
        another host, or made already: not a failure; ``reason`` says which."""
        self._attempted(volume, target, started, origin, SKIPPED, reason)

    def _attempted(self, volume, target, started, origin, result, error):
        last = {"Time": rfc3339(started), "Result": result, "Origin": origin, "Error": str(error)}
        self._set(volume, target, LastCopy=last, LastError=str(error))
        if target in self.offsite:
            self.health.copy_attempted(volume, target, started, origin, result, error)

    def counted(self, volume, target, kept, newest=None):
        """``target`` holds ``kept`` copies of ``volume`` (the newest of the point in time
        ``newest``, when known)."""
        self._set(volume, target, Kept=kept)
        if target in self.offsite:
            self.health.copies_counted(volume, target, kept, newest)

    def error(self, volume, target, error):
        """Something after a copy failed (retention): the last error, the copy stands."""
        self._set(volume, target, LastError=str(error))

    def verified(self, verification):
        with self._lock:
            summary = self._verified[verification.target] = {**verification.summary(),
                                                             "Where": self.where.get(verification.target)}
            self._save()
        if verification.target in self.offsite:
            self.health.target_verified(verification.target, verification.time, *_verdict(summary))

    def problem(self, volume, reason):
        """``volume``'s BackupCopy cannot be followed (a target gone): ``reason`` ("" clears)."""
        with self._lock:
            if reason:
                self._problems[volume] = cut(reason, 600)
            else:
                self._problems.pop(volume, None)

    def removed(self, volume):
        with self._lock:
            self._copies = {key: value for key, value in self._copies.items()
                            if key.rpartition("@")[0] != volume}
            self._problems.pop(volume, None)
            self._save()

    def _set(self, volume, target, **fields):
        with self._lock:
            self._copies[f"{volume}@{target}"] = {**self._copies.get(f"{volume}@{target}", {}), **fields,
                                                  "Where": self.where.get(target)}
            self._save()

    # --- what runs now -----------------------------------------------------------------
    @contextmanager
    def reporting(self, volume, target, what):
        """A ``progress(phase, percent=None)`` reporter while ``what`` (copy, restore) of
        ``volume`` with ``target`` runs; cleared when it ends."""
        started, key = rfc3339(self.clock()), (volume, target)

        def progress(phase, percent=None):
            shown = {"Operation": what, "Target": target, "Started": started, "Phase": phase}
            if percent is not None:
                shown["Percent"] = percent
            with self._lock:
                self._progress[key] = shown
        progress("starting")
        try:
            yield progress
        finally:
            with self._lock:
                self._progress.pop(key, None)

    def progress(self, volume):
        """{target: what runs now} for ``volume``."""
        with self._lock:
            return {target: dict(shown) for (name, target), shown in self._progress.items() if name == volume}

    # --- what is shown -----------------------------------------------------------------
    def targets_of(self, volume):
        """The targets something is recorded for, for ``volume``."""
        with self._lock:
            return sorted({key.rpartition("@")[2] for key in self._copies if key.rpartition("@")[0] == volume}
                          | {target for name, target in self._progress if name == volume})

    def shown(self, volume, target):
        """LastCopy, LastError, Progress and the target's LastVerification."""
        with self._lock:
            recorded = dict(self._copies.get(f"{volume}@{target}", {}))
            running = self._progress.get((volume, target))
            verified = self._verified.get(target)
        shown = {key: recorded[key] for key in ("LastCopy", "LastError") if key in recorded}
        if running is not None:
            shown["Progress"] = dict(running)
        if verified:
            shown["LastVerification"] = {k: v for k, v in verified.items() if k != "Where"}
        return shown

    def verification(self, target):
        with self._lock:
            return {k: v for k, v in (self._verified.get(target) or {}).items() if k != "Where"}

    def problem_of(self, volume):
        with self._lock:
            return self._problems.get(volume, "")


# --- what was recorded, read back ---------------------------------------------------------------

def _time(text):
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _verdict(summary):
    """(ok, error) of a recorded verification: nothing found wrong (an empty target
    neither), or what restic said."""
    if summary.get("Result") in (OK, *EMPTY_RESULTS):
        return True, ""
    said = " / ".join(summary.get("Problems") or ()) or summary.get("Error", "")
    return False, f"verification of backup target {summary.get('Target', '')} {summary.get('Result')}: {said}"


def _recalled(recorded):
    """The ``VolumeBackup`` fields a recorded entry (LastCopy, Newest, Kept) gives."""
    fields = {}
    last = recorded.get("LastCopy") if isinstance(recorded.get("LastCopy"), dict) else {}
    if last.get("Result") in RESULTS:
        fields.update(last_result=last["Result"], last_error=str(last.get("Error", "")))
    newest = recorded.get("Newest") if isinstance(recorded.get("Newest"), dict) else {}
    if _time(newest.get("Time")):
        fields.update(last_success=_time(newest["Time"]), last_duration=_number(newest.get("Seconds")),
                      size=_number(newest.get("Bytes")), added=_number(newest.get("BytesAdded")))
    if _number(recorded.get("Kept")) is not None:
        fields["kept"] = int(recorded["Kept"])
    return fields
