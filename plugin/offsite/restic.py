"""One restic repository, driven through the restic CLI (Debian's restic 0.14).

``Restic(config, ...)`` wraps the repository ``config.location`` names: a folder
(``/abs/path``) or S3-compatible object storage (``s3:https://host:port/bucket/prefix``).
restic does the work (chunking, deduplication, encryption, upload, its snapshots as the
catalog, ``forget`` for retention, ``check`` for verification, its own locks: prune takes
the exclusive one); this class builds its arguments, reads its ``--json`` messages into
results and progress, and its failures into typed errors (``plugin.offsite.errors``).

Secrets: the repository password and the S3 keys reach restic only through the
environment of its process (``RESTIC_PASSWORD_FILE`` or ``RESTIC_PASSWORD``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), which holds nothing else of the
plugin's environment. They are never on a command line, and every text restic printed
passes through a ``redact.Redactor`` before it goes into a message or a log.

Bounds: every call has a timeout (``Timeouts``); on top, when restic keeps retrying a
failing backend call (it retries for many minutes by default and has no option to
bound that in 0.14) for ``retry_budget`` seconds, it is interrupted at its next retry
(so within the budget and one backoff wait, at most about 30 s more) with SIGINT, and
the call fails with ``TargetUnreachable`` and restic's last error.

Locks: an operation refused because the repository is locked runs ``restic unlock``
(which removes only stale locks: of a process gone from this host, or older than 30
minutes) and tries once more; a lock held by a live process is a ``RepositoryLocked``.
"""

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field

from ..errors import ConfigError, InvalidRequest, cut, shown
from ..policy.retention import BUCKETS, Retention, parse_keep
from ..policy.schedule import zone
from ..redact import Redactor
from . import failures
from .errors import (
    BackupIncomplete,
    CheckFailed,
    OffsiteError,
    OperationTimeout,
    PathNotInSnapshot,
    RepositoryLocked,
    RepositoryMissing,
    SnapshotNotFound,
    TargetUnreachable,
)
from .messages import (
    CheckResult,
    RepositoryInfo,
    RestoreResult,
    backup_result,
    document,
    first_json,
    forget_result,
    json_lines,
    progress_of,
    snapshots_of,
)
from .process import STDERR, STDOUT, TIMEOUT, ProcessRunner
from .progress import RestoreMeter, tree_size

log = logging.getLogger(__name__)

SIZE_AFTER = 10.0   # seconds a restore runs before its size is asked for its percentage

STALLED = "stalled"
RETRY_GAP = 90.0    # seconds: more than restic's backoff waits between two tries of a call
SNAPSHOT_ID_RE = re.compile(r"^[0-9a-f]{8,64}$")
TAG_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,254}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
SUBSET_RE = re.compile(r"^(?:(?P<pct>\d+(?:\.\d+)?)%|(?P<n>\d+)/(?P<t>\d+)|(?P<size>\d+)[KMGT]?)$",
                       re.IGNORECASE)
S3_LOCATION_RE = re.compile(r"^s3:https?://[^/\s]+/[^/\s]+(/\S*)?$")
PASSED_THROUGH = ("PATH", "TMPDIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                  "https_proxy", "http_proxy", "no_proxy")
GLOB_CHARS = re.compile(r"([*?\[\\])")
# restic check's verdicts on the data (cmd/restic/cmd_check.go), as opposed to a failure to run.
DAMAGE = ("repository contains errors", "LoadIndex returned errors")


@dataclass(frozen=True)
class Timeouts:
    """Seconds each kind of call may take (None: no limit).

    ``metadata``: open, init, snapshots, stats, unlock, delete. ``data``: backup, restore,
    forget with prune, check; a stalled backend is caught by the retry budget instead.
    """

    metadata: float = 300.0
    data: float = None


@dataclass(frozen=True)
class RepositoryConfig:
    """Where a repository is and how restic opens it.

    ``location``: ``/abs/path`` or ``s3:http(s)://host:port/bucket/prefix``. One of
    ``password`` and ``password_file``; for S3, ``s3_access_key_id`` and one of
    ``s3_secret_access_key`` and ``s3_secret_access_key_file``. ``ca_file``: the PEM file
    the server's certificate is verified against (default: the system's CA store);
    ``insecure_tls``: the explicit opt-out of verification. Limits are KiB/s (0: none).
    ``name``: how messages call the repository ("backup target offsite").
    """

    location: str
    password: str = field(default="", repr=False)
    password_file: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = field(default="", repr=False)
    s3_secret_access_key_file: str = ""
    s3_region: str = ""
    ca_file: str = ""
    insecure_tls: bool = False
    limit_upload: int = 0
    limit_download: int = 0
    name: str = ""

    def __post_init__(self):
        where = shown(self.location)
        if self.is_s3:
            if not S3_LOCATION_RE.match(self.location):
                raise ConfigError(f"repository location {where} is not valid: use "
                                  "s3:https://host:port/bucket/prefix")
            if not self.s3_access_key_id or not (self.s3_secret_access_key
                                                 or self.s3_secret_access_key_file):
                raise ConfigError(f"repository {where} is on S3: it needs an access key id "
                                  "and a secret access key (or a file holding it)")
        elif not os.path.isabs(self.location) or "\n" in self.location:
            raise ConfigError(f"repository location {where} is not valid: use an absolute "
                              "folder or s3:https://host:port/bucket/prefix")
        if bool(self.password) == bool(self.password_file):
            raise ConfigError(f"repository {where} needs exactly one of a password and a "
                              "password file")
        if self.insecure_tls and self.ca_file:
            raise ConfigError(f"repository {where}: a CA file and not verifying TLS "
                              "contradict each other; give one")
        for limit in (self.limit_upload, self.limit_download):
            if not isinstance(limit, int) or limit < 0:
                raise ConfigError(f"repository {where}: bandwidth limits are whole KiB/s, "
                                  f"0 or more, not {shown(limit)}")

    @property
    def is_s3(self):
        return self.location.startswith("s3:")

    @property
    def title(self):
        return self.name or f"restic repository {self.location}"


def keep_arguments(retention):
    """restic's ``--keep-*`` rules for a ``BackupKeep`` value (text or Retention).

    ``N`` is ``--keep-last=N``; ``daily=7,weekly=4`` is ``--keep-daily=7
    --keep-weekly=4``. restic's buckets are those of ``plugin.policy.retention``: the newest
    snapshot of each of the last N hours/days/ISO weeks/months/years that have one, in
    the time zone of restic's process (``TZ``).
    """
    if not isinstance(retention, Retention):
        retention = parse_keep(str(retention))
    rules = [f"--keep-last={retention.last}"] if retention.last else []
    rules += [f"--keep-{name}={retention.buckets[name]}" for name in BUCKETS
              if name in retention.buckets]
    return rules


def tag_arguments(tags):
    """``key=value`` tags from a mapping, checked (restic splits tags at commas)."""
    checked = []
    for key, value in (tags or {}).items():
        if not TAG_KEY_RE.match(str(key)) or not TAG_VALUE_RE.match(str(value)):
            raise InvalidRequest(
                f"tag {shown(key)}={shown(value)} is not valid: keys are a letter then letters, "
                "digits, '_', '.', '-'; values letters, digits and '_.:@+-', no commas or blanks")
        checked.append(f"{key}={value}")
    return checked


def check_snapshot_id(snapshot_id):
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID_RE.match(snapshot_id):
        raise InvalidRequest(f"{shown(snapshot_id)} is not a restic snapshot id: use 8 to 64 "
                             "lower-case hexadecimal digits")
    return snapshot_id


def check_subset(subset):
    """A ``--read-data-subset`` value restic 0.14 accepts: ``5%``, ``1/10`` or ``2G``."""
    match = SUBSET_RE.match(str(subset))
    valid = match is not None and (
        (match["pct"] is not None and 0 < float(match["pct"]) <= 100)
        or (match["n"] is not None and 1 <= int(match["n"]) <= int(match["t"]) <= 256)
        or (match["size"] is not None and int(match["size"]) > 0))
    if not valid:
        raise InvalidRequest(f"read_data_subset={shown(subset)} is not valid: use a percentage "
                             "above 0 up to 100 (5%), a group n/t with 1 <= n <= t <= 256, or a "
                             "size (2G)")
    return str(subset)


def include_pattern(include):
    """restic's ``--include`` pattern for one path inside the snapshot, glob characters escaped."""
    parts = [part for part in str(include).split("/") if part not in ("", ".")]
    if not parts or ".." in parts or "\n" in str(include):
        raise InvalidRequest(f"include={shown(include)} is not valid: give a path inside the "
                             "volume, such as data/reports, without '..'")
    return "/" + "/".join(GLOB_CHARS.sub(r"\\\1", part) for part in parts), "/".join(parts)


class _Watch:
    """Reads a running restic's lines: progress, the backup summary, stalled retries."""

    def __init__(self, clock, retry_budget, progress=None, meter=None):
        self._clock = clock
        self._budget = retry_budget
        self._progress = progress
        self._meter = meter
        self.summary = None
        self.file_errors = []
        self.last_retry_error = ""
        self._failing = {}      # call -> (first, last) time restic reported retrying it

    def started(self, pid):
        if self._meter:
            self._meter.started(pid)

    def line(self, stream, text):
        if stream == STDOUT and text.startswith("{"):
            self._message(text)
        elif stream == STDERR:
            if text.startswith("{"):
                self._message(text)
            retry = failures.RETRY_RE.match(text)
            if retry:
                return self._retried(retry["what"], retry["error"])
        return None

    def tick(self):
        if self._meter and self._progress:
            update = self._meter.read()
            if update:
                self._progress(update)

    def _message(self, text):
        for message in json_lines([text]):
            kind = message.get("message_type") if isinstance(message, dict) else None
            if kind == "status" and self._progress:
                self._progress(progress_of(message))
            elif kind == "summary":
                self.summary = message
            elif kind == "error":
                self.file_errors.append(f"{message.get('item', '?')} ({message.get('during', '?')})")

    def _retried(self, call, error):
        # A retry line is proof that ``call`` is still failing: the budget is counted per
        # call from its first failure, and evaluated only on such proof (a call that
        # recovered prints no more lines). restic's backoff waits at most RETRY_GAP
        # between two tries of one call; a longer quiet spell means it had recovered.
        now = self._clock()
        first, last = self._failing.get(call, (now, now))
        if now - last > RETRY_GAP:
            first = now
        self._failing[call] = (first, now)
        self.last_retry_error = error
        if now - first >= self._budget:
            return STALLED
        return None


class Restic:
    """One restic repository; see the module's doc.

    ``runner``: a ``ProcessRunner``-like object (``run(argv, env=, cwd=, timeout=,
    watch=)``); ``cache_dir``: restic's local cache (None: ``--no-cache``); ``tz``: the
    time zone in which ``forget`` counts days (the plugin's ``TZ``); ``progress_fps``:
    progress messages per second; ``clock``: monotonic seconds, for the retry budget.
    """

    def __init__(self, config, *, runner=None, restic="restic", cache_dir=None,
                 timeouts=Timeouts(), retry_budget=60.0, tz="UTC", progress_fps=2,
                 unlock_stale=True, clock=time.monotonic, size_after=SIZE_AFTER):
        self.config = config
        self._runner = runner or ProcessRunner()
        self._restic = restic
        self._cache_dir = cache_dir
        self._timeouts = timeouts
        self._budget = retry_budget
        self._tz = tz or "UTC"
        self._fps = progress_fps
        self._unlock_stale = unlock_stale
        self._clock = clock
        self._size_after = size_after

    def __repr__(self):
        return f"Restic({self.config.location!r})"

    # --- operations -------------------------------------------------------------------

    def ensure_initialised(self, create=True):
        """Open the repository, or create it when there is none and ``create`` is true.

        Returns RepositoryInfo (``created`` says which). An existing repository is never
        initialised again; a wrong password is ``WrongPassword``; no repository and
        ``create`` false is ``RepositoryMissing``.
        """
        try:
            return self._open(created=False)
        except RepositoryMissing:
            if not create:
                raise
        done, redact = self._run("initialising", ["init"], self._timeouts.metadata)
        if done.returncode != 0 and not any("already initialized" in line for line in done.stderr):
            raise self._failure("initialising", done, redact)
        # Made now, or by another host a moment ago: open it either way.
        return self._open(created=done.returncode == 0)

    def backup(self, path, tags, host, progress=None, parent=None, taken_at=None, ignore_ctime=False):
        """Back up the folder ``path`` (its content is the snapshot's root) as a snapshot.

        ``tags``: a mapping such as ``{"volume": v, "backup": id, "kind": "schedule"}``;
        ``host``: the snapshot's host name; ``parent``: the snapshot to compare with
        (default: restic's choice, the newest of the same host and path); ``taken_at``: the
        snapshot's time (an aware datetime; default now); ``progress``: called with
        ``Progress`` while it runs; ``ignore_ctime``: files of the same size and mtime as
        in the parent are unchanged, whatever their ctime (copies made with hard links).
        Returns BackupResult; a snapshot saved with unreadable files is
        ``BackupIncomplete`` (which carries its id).
        """
        if not os.path.isabs(str(path)) or not os.path.isdir(path):
            raise InvalidRequest(f"backup source {shown(path)} is not an absolute path to a folder")
        if not HOST_RE.match(str(host)):
            raise InvalidRequest(f"host {shown(host)} is not valid: use letters, digits, '_', '.', '-'")
        args = ["backup", "--json", f"--host={host}", *(f"--tag={t}" for t in tag_arguments(tags))]
        if parent:
            args.append(f"--parent={check_snapshot_id(parent)}")
        if taken_at is not None:
            args.append(f"--time={self._local_time(taken_at)}")
        if ignore_ctime:
            args.append("--ignore-ctime")
        what = f"backup of {cut(path)}"
        watch = _Watch(self._clock, self._budget, progress)
        done, redact = self._run_unlocking(what, [*args, "."], self._timeouts.data, watch, cwd=path)
        summary = watch.summary
        if done.returncode == 3 and summary:
            raise BackupIncomplete(
                f"{what} on {self.config.title} saved snapshot {summary.get('snapshot_id')} "
                f"without {len(watch.file_errors)} file(s) it could not read: "
                f"{cut(redact(', '.join(watch.file_errors)))}",
                snapshot_id=str(summary.get("snapshot_id", "")), errors=watch.file_errors)
        if done.returncode != 0:
            raise self._failure(what, done, redact)
        if not summary or "snapshot_id" not in summary:
            raise OffsiteError(f"{what} on {self.config.title}: restic ended without reporting "
                               "the snapshot it saved")
        return backup_result(summary)

    def snapshots(self, tags=None, host=None):
        """The snapshots, oldest first; only those with all ``tags`` (a mapping) / of ``host``."""
        args = ["snapshots", "--json"]
        if tags:
            args.append(f"--tag={','.join(tag_arguments(tags))}")
        if host:
            args.append(f"--host={host}")
        done, _ = self._call("listing snapshots", args, self._timeouts.metadata)
        return snapshots_of(done.stdout)

    def restore_size(self, snapshot_id):
        """``(bytes, files)`` that restoring the snapshot writes (restic's ``stats``)."""
        args = ["stats", "--json", "--mode=restore-size", check_snapshot_id(snapshot_id)]
        done, redact = self._call(f"sizing snapshot {snapshot_id}", args, self._timeouts.metadata)
        self._raise_unknown_snapshot(done, snapshot_id, redact)
        stats = first_json(done.stdout, dict) or {}
        return int(stats.get("total_size", 0)), int(stats.get("total_file_count", 0))

    def restore(self, snapshot_id, target_dir, include=None, progress=None, overwrite=False,
                total_bytes=None):
        """Restore a snapshot's tree (or the one path ``include`` of it) into ``target_dir``.

        ``target_dir`` must be missing or empty unless ``overwrite`` (files there with the
        same names are then replaced). ``progress`` gets ``Progress`` about once a second;
        its percentage is of ``total_bytes`` (what the backup recorded), read from the
        repository when not given and the restore still runs ``size_after`` seconds on
        (``restore_size``, one more restic call, run beside the restore: the percentage
        shows once it answered; a failure of it only leaves it out; a short restore needs
        no percentage and is not slowed by it).
        Returns RestoreResult: the regular files and bytes now under the target (under
        ``target_dir/include`` for a sub-path).
        """
        check_snapshot_id(snapshot_id)
        target = str(target_dir)
        if not os.path.isabs(target):
            raise InvalidRequest(f"restore target {shown(target)} is not an absolute path")
        if not overwrite and os.path.isdir(target) and os.listdir(target):
            raise InvalidRequest(f"restore target {shown(target)} is not empty: restoring would "
                                 "replace files there; give an empty folder")
        args = ["restore", snapshot_id, f"--target={target}"]
        sub = ""
        if include is not None:
            pattern, sub = include_pattern(include)
            args.append(f"--include={pattern}")
        meter, restored = None, threading.Event()
        if progress:
            meter = RestoreMeter(total_bytes)
            if total_bytes is None and not sub:
                self._size_beside(snapshot_id, meter, restored)
        what = f"restore of snapshot {snapshot_id}"
        watch = _Watch(self._clock, self._budget, progress, meter)
        try:
            self._call(what, args, self._timeouts.data, watch)
        finally:
            restored.set()
        root = os.path.join(target, sub) if sub else target
        if sub and not os.path.lexists(root):
            raise PathNotInSnapshot(f"{what} on {self.config.title}: the snapshot has no "
                                    f"{shown(sub)}; nothing was restored")
        size, files = tree_size(root)
        if progress:
            progress(RestoreMeter.final(size, files))
        return RestoreResult(snapshot_id=snapshot_id, target=target, files=files, bytes=size)

    def _size_beside(self, snapshot_id, meter, restored):
        """Give ``meter`` the snapshot's restore size once a restic call beside it says,
        unless ``restored`` is set within ``size_after`` seconds."""
        def size():
            if restored.wait(self._size_after):
                return
            try:
                meter.total = self.restore_size(snapshot_id)[0]
            except OffsiteError as err:
                log.info("the size of snapshot %s is unknown (%s): its restore shows no percentage", snapshot_id, err)
        threading.Thread(target=size, name=f"size of {snapshot_id}", daemon=True).start()

    def forget(self, keep, *, tags, group_by="", prune=True, host=None):
        """Apply retention: restic's ``forget`` with the ``--keep-*`` rules of ``keep``.

        ``keep``: a ``BackupKeep`` value (``7``, ``daily=7,weekly=4``) or a Retention.
        Only snapshots with all ``tags`` (and of ``host``) are considered, as one group
        unless ``group_by`` says otherwise (restic's host/paths/tags); ``prune`` then frees
        the data (under restic's exclusive lock). Returns ForgetResult.
        """
        rules = keep_arguments(keep)
        selected = tag_arguments(tags)
        if not selected and not group_by:
            raise InvalidRequest("forget needs tags (or a grouping) to say which snapshots the "
                                 "keep rules apply to; all snapshots in one group would mix volumes")
        args = ["forget", "--json", *rules, f"--group-by={group_by}"]
        if selected:
            args.append(f"--tag={','.join(selected)}")
        if host:
            args.append(f"--host={host}")
        if prune:
            args.append("--prune")
        done, _ = self._call("forgetting snapshots", args, self._timeouts.data)
        return forget_result(done.stdout, pruned=prune)

    def check(self, read_data_subset="5%", raise_on_damage=False):
        """Verify the repository's structure and read ``read_data_subset`` of its data.

        ``read_data_subset``: ``5%``, ``n/t``, a size such as ``2G``, or None (structure
        only). Returns CheckResult; damage is ``ok`` False with restic's messages in
        ``problems`` (or ``CheckFailed`` when ``raise_on_damage``). A target that cannot be
        reached or opened raises its typed error: that is not a verdict on the data.
        """
        args = ["check"]
        if read_data_subset is not None:
            args.append(f"--read-data-subset={check_subset(read_data_subset)}")
        done, redact = self._run_unlocking("check", args, self._timeouts.data)
        subset = read_data_subset or ""
        if done.returncode == 0:
            notes = tuple(redact(line) for line in done.stdout if any(
                phrase in line for phrase in ("non-critical", "not referenced", "additional files")))
            return CheckResult(ok=True, notes=notes, read_data_subset=subset)
        if not any(phrase in line for line in done.stderr for phrase in DAMAGE):
            raise self._failure("check", done, redact)
        problems = tuple(redact(line) for line in failures.meaningful_lines(done.stderr))
        if raise_on_damage:
            raise CheckFailed(f"check of {self.config.title} found damage: "
                              f"{cut(' / '.join(problems), failures.MESSAGE_LIMIT)}", problems)
        return CheckResult(ok=False, problems=problems, read_data_subset=subset)

    def unlock(self, remove_all=False):
        """Remove stale locks (of processes gone, or older than 30 minutes); all locks
        with ``remove_all`` (only when no restic process uses the repository)."""
        args = ["unlock", "--remove-all"] if remove_all else ["unlock"]
        done, redact = self._run("unlocking", args, self._timeouts.metadata)
        if done.returncode != 0:
            raise self._failure("unlocking", done, redact)

    def delete(self, snapshot_id, prune=False):
        """Forget one snapshot (``prune``: free its data now, else at the next prune)."""
        args = ["forget", check_snapshot_id(snapshot_id)] + (["--prune"] if prune else [])
        done, redact = self._call(f"deleting snapshot {snapshot_id}", args,
                                  self._timeouts.data if prune else self._timeouts.metadata)
        self._raise_unknown_snapshot(done, snapshot_id, redact)

    # --- running restic ---------------------------------------------------------------

    def _local_time(self, when):
        """``when`` as restic's ``--time`` reads it: wall time in its process's TZ."""
        if when.tzinfo is None:
            raise InvalidRequest("a snapshot time needs a time zone (an aware datetime)")
        return when.astimezone(zone(self._tz)).strftime("%Y-%m-%d %H:%M:%S")

    def _open(self, created):
        done, redact = self._run("opening", ["cat", "config"], self._timeouts.metadata)
        if done.returncode != 0:
            raise self._failure("opening", done, redact)
        config = document(done.stdout)
        if not isinstance(config, dict) or not config.get("id"):
            raise OffsiteError(f"opening {self.config.title}: restic did not show the "
                               "repository's configuration")
        return RepositoryInfo(id=str(config.get("id", "")), version=int(config.get("version", 0)),
                              created=created)

    def _raise_unknown_snapshot(self, done, snapshot_id, redact):
        # restic 0.14's forget and stats skip an unknown id with a warning and exit 0.
        if any("no matching ID found" in line for line in done.stderr):
            raise SnapshotNotFound(f"{self.config.title} has no snapshot {snapshot_id}: "
                                   f"restic said: {failures.quote(done.stderr, redact)}")

    def _run_unlocking(self, what, args, timeout, watch=None, cwd=None):
        """Run; once more after removing stale locks when the repository was locked."""
        done, redact = self._run(what, args, timeout, watch, cwd)
        if done.returncode != 0 and self._unlock_stale and \
                failures.error_class(done.stderr) is RepositoryLocked:
            log.info("%s: %s is locked; removing stale locks and trying again", what,
                     self.config.title)
            self.unlock()
            done, redact = self._run(what, args, timeout, watch, cwd)
        return done, redact

    def _call(self, what, args, timeout, watch=None, cwd=None):
        """``_run_unlocking``, and the typed error unless restic succeeded."""
        done, redact = self._run_unlocking(what, args, timeout, watch, cwd)
        if done.returncode != 0:
            raise self._failure(what, done, redact)
        return done, redact

    def _failure(self, what, done, redact):
        return failures.translate(done.stderr, what, self.config.title, redact, done.returncode)

    def _run(self, what, args, timeout, watch=None, cwd=None):
        env, secrets = self._environment()
        redact = Redactor(secrets)
        argv = self._global_arguments() + list(args)
        watch = watch or _Watch(self._clock, self._budget)
        log.debug("restic %s on %s", " ".join(args[:1]), self.config.title)
        try:
            done = self._runner.run(argv, env=env, cwd=cwd, timeout=timeout, watch=watch)
        except OSError as err:
            raise OffsiteError(f"{what} on {self.config.title} failed: cannot run "
                               f"{self._restic}: {err.strerror or err}") from None
        if done.stopped == TIMEOUT:
            raise OperationTimeout(f"{what} on {self.config.title} did not finish within "
                                   f"{timeout:g} s; restic was stopped")
        if done.stopped == STALLED:
            kind = failures.error_class([watch.last_retry_error])
            kind = TargetUnreachable if kind is OffsiteError else kind
            raise kind(f"{what} on {self.config.title} failed: the server stopped answering; "
                       f"restic retried for {self._budget:g} s and was stopped; its last error: "
                       f"{cut(redact(watch.last_retry_error), failures.MESSAGE_LIMIT)}")
        return done, redact

    def _global_arguments(self):
        config = self.config
        argv = [self._restic, f"--repo={config.location}"]
        argv.append(f"--cache-dir={self._cache_dir}" if self._cache_dir else "--no-cache")
        if config.ca_file:
            argv.append(f"--cacert={config.ca_file}")
        if config.insecure_tls:
            argv.append("--insecure-tls")
        if config.limit_upload:
            argv.append(f"--limit-upload={config.limit_upload}")
        if config.limit_download:
            argv.append(f"--limit-download={config.limit_download}")
        return argv

    def _environment(self):
        """restic's environment and the secrets in it (for redaction)."""
        config = self.config
        env = {key: os.environ[key] for key in PASSED_THROUGH if os.environ.get(key)}
        env.setdefault("PATH", os.defpath)
        env["TZ"] = self._tz
        env["RESTIC_PROGRESS_FPS"] = str(self._fps)
        secrets = []
        if config.password_file:
            env["RESTIC_PASSWORD_FILE"] = config.password_file
            secrets.append(self._read_secret(config.password_file, "password file", required=False))
        else:
            env["RESTIC_PASSWORD"] = config.password
            secrets.append(config.password)
        if config.is_s3:
            secret = config.s3_secret_access_key or self._read_secret(
                config.s3_secret_access_key_file, "S3 secret access key file")
            env["AWS_ACCESS_KEY_ID"] = config.s3_access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = secret
            secrets += [secret, config.s3_access_key_id]
            if config.s3_region:
                env["AWS_DEFAULT_REGION"] = config.s3_region
        return env, secrets

    def _read_secret(self, path, what, required=True):
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip("\r\n")
        except OSError as err:
            if not required:
                return ""   # restic reads it itself and says what is wrong
            raise OffsiteError(f"{self.config.title}: cannot read the {what} {shown(path)}: "
                               f"{err.strerror or err}") from None

