"""The backup scheduler: runs each volume's backups at its times, a few at a time.

One ``BackupScheduler`` per plugin. It runs off the request path, in its own thread
(``start``/``stop``); ``tick(now)`` is the whole decision and is what tests drive with
an injected clock. It knows each volume's Schedule (``set``/``remove`` as volumes are
created, found at start, and removed), and calls ``run_backup(name)`` for due volumes in
a pool of ``concurrency`` workers, never two at once for one volume.

Catch-up: the plan (next run) of every volume is persisted in ``state_store``. After
downtime a volume whose planned run was missed runs once as soon as the plugin is back,
then follows its schedule from then on: one catch-up run, never one per missed period.
A run that was cut off by a crash counts as missed.

The plan is saved at most once per ``save_every`` of clock time (and at ``stop``), so
that thousands of volumes do not rewrite the state file for every backup. A crash loses
at most that much of it, which costs at most one extra run per volume, never a missed one.

A failed run is retried sooner than the next regular run: after ``retry_delay``,
doubling with each failure in a row up to ``max_retry_delay``, and never later than the
regular run. ``LeaseHeld`` (another host is backing the volume up, or makes this run:
``turns``) is not a failure: that host does the work, this one waits for the next
regular run, or until the error's ``retry_at`` when it has one (sooner).
"""

import abc
import heapq
import itertools
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import VolumeError
from ..fsutil import atomic_write
from ..policy.schedule import next_run, zone
from ..timefmt import rfc3339, rfc3339_exact
from .lease import LeaseHeld

log = logging.getLogger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
MAX_WAIT_SECONDS = 60  # the thread looks at the clock at least this often (clock jumps)


# --- where the plan is kept -----------------------------------------------------------------

class StateStore(abc.ABC):
    """A small persistent key/value store of JSON objects, one per volume."""

    @abc.abstractmethod
    def load(self):
        """Every stored key and value, as a dict; {} when nothing was stored yet."""

    @abc.abstractmethod
    def save(self, changes):
        """Store ``changes`` (key -> value, or None to delete the key) in one step."""


class MemoryStateStore(StateStore):
    """A StateStore in memory (tests; a plugin that need not survive restarts)."""

    def __init__(self, data=None):
        self.data = dict(data or {})
        self.saves = 0

    def load(self):
        return json.loads(json.dumps(self.data))

    def save(self, changes):
        self.saves += 1
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = json.loads(json.dumps(value))


class JsonFileStateStore(StateStore):
    """A StateStore in one JSON file, replaced atomically on each save.

    An unreadable file is logged, kept aside as ``<name>.corrupt`` and treated as empty:
    the scheduler then plans every volume afresh, which loses at most one catch-up run.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._data = None
        self._lock = threading.Lock()

    def _read(self):
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError) as err:
            return self._set_aside(err)
        return data if isinstance(data, dict) else self._set_aside("not a JSON object")

    def _set_aside(self, reason):
        log.warning("backup schedule state %s is unreadable (%s): planning every volume afresh",
                    self.path, reason)
        self.path.replace(self.path.with_name(self.path.name + ".corrupt"))
        return {}

    def load(self):
        with self._lock:
            self._data = self._read()
            return json.loads(json.dumps(self._data))

    def save(self, changes):
        with self._lock:
            if self._data is None:
                self._data = self._read()
            for key, value in changes.items():
                if value is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(str(self.path), json.dumps(self._data, sort_keys=True).encode("utf-8"))


# --- the scheduler ---------------------------------------------------------------------------

def _parse(text):
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


@dataclass
class _Volume:
    schedule: object
    plan: str                      # schedule text and TZ the persisted next run was made for
    next_run: datetime = None
    running: bool = False
    again: bool = False            # a run was requested while one was running
    version: int = 0
    state: dict = field(default_factory=dict)


class BackupScheduler:
    """Runs due backups. See the module docstring for the behaviour.

    - ``clock()``: the aware current time.
    - ``run_backup(name)``: makes one backup of the volume (lease, copy, commit, prune)
      and returns its id, an object with ``backup_id``, or None; raises on failure.
    - ``concurrency``: at most this many backups at once (``BACKUP_CONCURRENCY``).
    - ``state_store``: a StateStore for the plan (MemoryStateStore when None).
    - ``tz``: the plugin's ``TZ`` setting.
    - ``executor``: where runs go (``submit(fn, *args)``); a pool of ``concurrency``
      threads when None. Tests pass one they drive by hand.
    - ``save_every``: the least clock time between two saves of the state.
    """

    def __init__(self, clock, run_backup, concurrency=2, state_store=None, tz=None, executor=None,
                 retry_delay=timedelta(minutes=15), max_retry_delay=timedelta(hours=6),
                 save_every=timedelta(seconds=30)):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.clock = clock
        self.run_backup = run_backup
        self.concurrency = concurrency
        self.tz = zone(tz)
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.save_every = save_every
        self._saved_at = None
        self._state = state_store if state_store is not None else MemoryStateStore()
        self._stored = self._state.load()
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(concurrency, thread_name_prefix="backup")
        self._volumes = {}
        self._heap = []                 # (next_run, seq, name, version); stale items skipped
        self._seq = itertools.count()
        self._running = 0
        self._dirty = set()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._thread = None
        self._stopping = False

    # --- volumes come and go ----------------------------------------------------------------

    def _plan_key(self, schedule):
        return f"{schedule.text} TZ={getattr(self.tz, 'key', str(self.tz))}"

    def set(self, name, schedule, now=None):
        """Schedule volume ``name`` by ``schedule`` (added, or its policy changed).

        A volume seen before (in the persisted state) with the same policy keeps its plan;
        if that planned run is past, it becomes due now: the catch-up run.
        """
        now = now or self.clock()
        plan = self._plan_key(schedule)
        with self._lock:
            current = self._volumes.get(name)
            if current is not None and current.plan == plan:
                return
            state = current.state if current else dict(self._stored.pop(name, None) or {})
            volume = _Volume(schedule, plan, state=state, running=bool(current and current.running),
                             version=current.version if current else 0)
            interrupted = not volume.running and state.pop("running_since", None)
            if state.get("plan") != plan:
                state["plan"] = plan
                volume.next_run = self._regular_run(name, volume, now)
            elif interrupted:
                volume.next_run = now  # a run cut off by a crash: run it again, once
            else:
                volume.next_run = _parse(state.get("next_run")) or self._regular_run(name, volume, now)
            self._volumes[name] = volume
            self._record_plan(name, volume)
        self._wake.set()

    def remove(self, name):
        """Forget volume ``name`` (removed). A run in progress finishes; none starts again."""
        with self._lock:
            if self._volumes.pop(name, None) is not None or self._stored.pop(name, None) is not None:
                self._dirty.add(name)
        self._wake.set()

    def forget_others(self):
        """Drop the persisted state of volumes not ``set`` since start (removed while down).

        Call once, after every volume found at start has been set.
        """
        with self._lock:
            self._dirty.update(self._stored)
            self._stored.clear()

    def request(self, name, now=None):
        """Run a backup of ``name`` as soon as a worker is free (``Backup=on-unmount``).

        If one is running, one more runs after it. Unknown volumes are ignored.
        """
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                return
            if volume.running:
                volume.again = True
                return
            volume.next_run = now or self.clock()
            self._record_plan(name, volume)
        self._wake.set()

    def _record_plan(self, name, volume):
        volume.version += 1
        volume.state["next_run"] = rfc3339_exact(volume.next_run)
        if volume.next_run is not None and not volume.running:
            heapq.heappush(self._heap, (volume.next_run, next(self._seq), name, volume.version))
        self._dirty.add(name)

    # --- the clock goes round ---------------------------------------------------------------

    def _pop_stale_top(self):
        """Drop heap items of removed, replanned or running volumes from the top."""
        while self._heap:
            _, _, name, version = self._heap[0]
            volume = self._volumes.get(name)
            if volume is not None and volume.version == version and not volume.running:
                return
            heapq.heappop(self._heap)

    def _pop_due(self, now):
        self._pop_stale_top()
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[2]
        return None

    def tick(self, now=None):
        """Start the backups due at ``now`` that fit in the pool; return their names.

        Earliest due first; the rest stay due and start on a later tick (the thread ticks
        again as soon as a run finishes). Persists the changed plans.
        """
        now = now or self.clock()
        started = []
        with self._lock:
            while self._running < self.concurrency:
                name = self._pop_due(now)
                if name is None:
                    break
                volume = self._volumes[name]
                volume.running = True
                volume.state["running_since"] = rfc3339_exact(now)
                self._running += 1
                self._dirty.add(name)
                started.append(name)
            if self._saved_at is None or now - self._saved_at >= self.save_every or now < self._saved_at:
                self._flush(now)
        for name in started:
            self._executor.submit(self._run, name, now)
        return started

    def _run(self, name, started):
        result, error, backup_id, retry_at = OK, "", None, None
        try:
            done = self.run_backup(name)
            backup_id = getattr(done, "backup_id", done)
            backup_id = backup_id if isinstance(backup_id, str) else None
        except LeaseHeld as err:
            result, error = SKIPPED, str(err)
            retry_at = getattr(err, "retry_at", None)      # another host's turn: look again then
        except VolumeError as err:
            result, error = FAILED, str(err)
        except Exception as err:  # a bug: keep scheduling the others
            log.exception("scheduled backup of volume %s failed", name)
            result, error = FAILED, f"internal error: {type(err).__name__}: {err}"
        self._finish(name, started, result, error, backup_id, retry_at)

    def _finish(self, name, started, result, error, backup_id, retry_at=None):
        finished = self.clock()
        with self._lock:
            self._running -= 1
            volume = self._volumes.get(name)
            if volume is None:
                self._dirty.add(name)
                self._wake.set()
                return
            state = volume.state
            state.pop("running_since", None)
            failures = state.get("failures", 0) + 1 if result == FAILED else 0
            state.update(last_run=rfc3339_exact(started), last_finished=rfc3339_exact(finished), last_result=result,
                         last_error=error, failures=failures)
            if backup_id:
                state["last_backup"] = backup_id
            volume.running = False
            regular = self._regular_run(name, volume, finished)
            if volume.again:
                volume.again, volume.next_run = False, finished
            elif failures and regular is not None:
                delay = min(self.retry_delay * 2 ** (failures - 1), self.max_retry_delay)
                volume.next_run = min(regular, finished + delay)
            elif retry_at is not None and regular is not None:
                volume.next_run = min(regular, max(retry_at, finished))
            else:
                volume.next_run = regular
            self._record_plan(name, volume)
        self._wake.set()

    def _regular_run(self, name, volume, after):
        """The next run by the volume's schedule, or None: not by the clock, or a schedule
        that cannot be computed (kept in the state as ``schedule_error``, logged, shown
        by ``status``; the volume is then backed up on request only)."""
        try:
            planned = next_run(volume.schedule, after, name, self.tz)
        except VolumeError as err:
            if volume.state.get("schedule_error") != str(err):
                log.error("volume %s: no scheduled backups: %s", name, err)
            volume.state["schedule_error"] = str(err)
            return None
        volume.state.pop("schedule_error", None)
        return planned

    def _flush(self, now):
        if not self._dirty:
            return
        self._saved_at = now
        changes = {}
        for name in self._dirty:
            volume = self._volumes.get(name)
            changes[name] = dict(volume.state) if volume is not None else None
        try:
            self._state.save(changes)
            self._dirty.clear()
        except OSError as err:
            log.warning("cannot save the backup schedule state: %s (will retry)", err)

    # --- what docker volume inspect shows -----------------------------------------------------

    def status(self, name):
        """The volume's backup schedule status: policy, next run, last run and its result.

        Keys: Policy, NextRun, Running, LastRun, LastResult, LastBackup, LastError (the last
        four only once a run finished), ScheduleError (when no next run can be computed).
        Times are RFC 3339 UTC to the second (the saved plan keeps them exactly). {} for
        an unknown volume.
        """
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                return {}
            state = volume.state
            shown = {"Policy": volume.schedule.text, "NextRun": rfc3339(volume.next_run), "Running": volume.running}
            if state.get("schedule_error"):
                shown["ScheduleError"] = state["schedule_error"]
            if state.get("last_result"):
                shown.update(LastRun=rfc3339(_parse(state.get("last_run"))), LastResult=state["last_result"],
                             LastBackup=state.get("last_backup", ""), LastError=state.get("last_error", ""))
            return shown

    @property
    def executor(self):
        """Where runs go: other schedulers that share it share its bound on concurrency."""
        return self._executor

    def names(self):
        """The volumes the scheduler knows."""
        with self._lock:
            return sorted(self._volumes)

    def last_runs(self):
        """{volume: (result, error)} of the last run of every volume that had one (the plan
        is persisted: these survive a restart)."""
        with self._lock:
            return {name: (v.state["last_result"], v.state.get("last_error", ""))
                    for name, v in self._volumes.items() if v.state.get("last_result")}

    def load(self, now=None):
        """``(queued, running)``: backups due at ``now`` and waiting for a worker, and
        backups running now (memory only; what metrics show)."""
        now = now or self.clock()
        with self._lock:
            queued = sum(1 for v in self._volumes.values()
                         if not v.running and v.next_run is not None and v.next_run <= now)
            return queued, self._running

    # --- its own thread -------------------------------------------------------------------------

    def _seconds_to_next(self, now):
        with self._lock:
            self._pop_stale_top()
            if not self._heap or self._running >= self.concurrency:
                return MAX_WAIT_SECONDS
            return max(0.0, min(MAX_WAIT_SECONDS, (self._heap[0][0] - now).total_seconds()))

    def _loop(self):
        while not self._stopping:
            self._wake.clear()
            now = self.clock()
            try:
                self.tick(now)
            except Exception:  # never let the scheduler thread die
                log.exception("backup scheduler tick failed")
            self._wake.wait(self._seconds_to_next(now))

    def start(self):
        """Start the scheduler thread (idempotent)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="backup-scheduler", daemon=True)
            self._thread.start()

    def stop(self, wait=True):
        """Stop the thread; with ``wait``, let running backups finish. Saves the state."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._own_executor:
            self._executor.shutdown(wait=wait)
        with self._lock:
            self._flush(self.clock())
