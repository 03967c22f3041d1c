"""The ``vsphere_volume_*`` series, in a registry of their own.

Two sources, so that a scrape never waits on vCenter and costs little with 1,000 volumes:

- **events** the product reports as they happen (a backup or restore finished, a plugin
  call answered, a vSphere round trip, a fault, a re-login): counters and histograms,
  kept by prometheus_client;
- **state** read at scrape time from the product's ``state()`` callable (an
  ``ops.state.OpsState``, built from memory): per-volume backup status, store
  availability, the scheduler's queue, mounts. A volume gone from the state is gone
  from the next scrape: nothing per volume is kept here but a small cache of deadlines.

Formatting is what a scrape costs (about 5 µs a sample in prometheus_client, 7 samples a
volume), and it holds the GIL that the plugin socket's threads need. So ``render()``
keeps the state's text while the state is equal to the last one rendered (it changes
when a backup ends, not between two scrapes) and formats only the event series anew;
and when the state changed, ``StateText`` formats again only the volumes whose status
changed (each volume's sample lines, formatted by prometheus_client, are kept per
volume and joined under each series' header).

Per-volume series carry ``volume`` and ``target`` (``local`` for the local tier, an
off-site target's label for the copies there); the backup duration histogram is per
target and kind, with the last duration per volume as a gauge (a histogram per volume
would be 12 series each, 12,000 for 1,000 volumes). The list of series is in monitoring/README.md.
"""

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .stale import DeadlineCache
from .state import FAILED, LOCAL, OK, RESULTS

PREFIX = "vsphere_volume_"
KINDS = ("scheduled", "manual", "final", "pre-restore", "on-unmount")
CALL_RESULTS = ("ok", "error")
RESTORE_RESULTS = (OK, FAILED)
VERIFY_RESULTS = (OK, FAILED)

# A backup takes seconds (an unchanged folder) to hours (a large disk).
BACKUP_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, float("inf"))
# Get/List/Path answer in about a millisecond; Create and Mount may take up to 2 minutes.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 15, 45, 120, float("inf"))


def _check(value, accepted, what):
    if value not in accepted:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(accepted)}")


class Metrics:
    """The plugin's metrics. ``registry`` holds every series (the textfile writes it);
    ``render()`` is its text as ``/metrics`` serves it; ``events`` the event series alone.

    ``state``: a callable returning an ``OpsState`` (None: event series only);
    ``deadlines``: the ``ops.stale.DeadlineCache`` the backup deadline series comes from;
    ``on_change()``: called after a backup or verification finished (the watcher looks
    at the state again at once, so a failure is notified without waiting for its tick).
    """

    def __init__(self, state=None, deadlines=None, on_change=None):
        self.events = CollectorRegistry()
        r = self.events
        self._backups = Counter(PREFIX + "backups", "Backups finished, by target, kind and result",
                                ["target", "kind", "result"], registry=r)
        self._backup_seconds = Histogram(PREFIX + "backup_duration_seconds",
                                         "Time from start to commit of successful backups",
                                         ["target", "kind"], buckets=BACKUP_BUCKETS, registry=r)
        self._written = Counter(PREFIX + "backup_written_bytes", "Bytes backups copied (beyond their base)",
                                ["target"], registry=r)
        self._restores = Counter(PREFIX + "restores", "Restores finished, by result", ["result"], registry=r)
        self._verifications = Counter(PREFIX + "verifications", "Backup verifications finished, by result",
                                      ["target", "result"], registry=r)
        self._calls = Counter(PREFIX + "plugin_calls", "Docker plugin protocol calls answered",
                              ["endpoint", "result"], registry=r)
        self._call_seconds = Histogram(PREFIX + "plugin_call_duration_seconds", "Time to answer a plugin call",
                                       ["endpoint"], buckets=CALL_BUCKETS, registry=r)
        self._vsphere_calls = Counter(PREFIX + "vsphere_calls", "Round trips to vCenter, by method",
                                      ["method"], registry=r)
        self._vsphere_faults = Counter(PREFIX + "vsphere_faults", "vSphere faults and connection failures, by type",
                                       ["fault"], registry=r)
        self._relogins = Counter(PREFIX + "vsphere_relogins", "Logins after an expired vCenter session",
                                 registry=r)
        self._notifications = Counter(PREFIX + "notifications", "Notifications, by result (sent, failed, dropped)",
                                      ["result"], registry=r)
        self.declare_target(LOCAL)
        for result in RESTORE_RESULTS:
            self._restores.labels(result)
        self.on_change = on_change or (lambda: None)
        self._state = state
        self._collector = StateCollector(deadlines or DeadlineCache())
        self._text = StateText(self._collector)
        self._rendered = (None, b"")          # (state, its text)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()   # every series: what the textfile writes
        self.registry.register(self.events)
        if state is not None:
            self.registry.register(_Current(self._collector, state))

    def declare_target(self, target):
        """Make the counters of backup target ``target`` present from now on (at 0), so that
        ``increase()`` sees its first failure."""
        for kind in KINDS:
            for result in RESULTS:
                self._backups.labels(target, kind, result)

    # --- events --------------------------------------------------------------------------
    def backup_finished(self, target, kind, result, seconds, added=None):
        """A backup of any volume ended: ``kind`` one of KINDS, ``result`` ok, failed or
        skipped; ``seconds`` it took; ``added`` bytes it copied (None: unknown)."""
        _check(kind, KINDS, "backup kind")
        _check(result, RESULTS, "backup result")
        self._backups.labels(target, kind, result).inc()
        if result == OK:
            self._backup_seconds.labels(target, kind).observe(seconds)
            if added:
                self._written.labels(target).inc(added)
        self.on_change()

    def restore_finished(self, result):
        _check(result, RESTORE_RESULTS, "restore result")
        self._restores.labels(result).inc()

    def verification_finished(self, target, result):
        _check(result, VERIFY_RESULTS, "verification result")
        self._verifications.labels(target, result).inc()
        self.on_change()

    def plugin_call(self, endpoint, result, seconds):
        """A plugin call answered: ``endpoint`` such as ``VolumeDriver.Get``, ``result``
        ok or error (an Err answer)."""
        _check(result, CALL_RESULTS, "call result")
        self._calls.labels(endpoint, result).inc()
        self._call_seconds.labels(endpoint).observe(seconds)

    def vsphere_call(self, method):
        """One round trip to vCenter (a SOAP method name, or http.GET / http.PUT)."""
        self._vsphere_calls.labels(method).inc()

    def vsphere_fault(self, kind):
        """A fault or connection failure: its type name (``NotAuthenticated``, ``FileLocked``)."""
        self._vsphere_faults.labels(kind).inc()

    def relogin(self):
        self._relogins.inc()

    def notification(self, result):
        self._notifications.labels(result).inc()

    # --- rendering -------------------------------------------------------------------------
    def render(self):
        """The exposition text (bytes) of every series (``registry``'s), as ``/metrics``
        serves it; the state's part formatted only when the state changed."""
        if self._state is None:
            return generate_latest(self.events)
        state = self._state()
        with self._lock:
            last, text = self._rendered
        if last is None or not (state is last or state == last):
            text = self._text.render(state)
            with self._lock:
                self._rendered = (state, text)
        return generate_latest(self.events) + text


def _gauge(name, doc, labels=("volume", "target")):
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def _seconds(when):
    return when.timestamp()


class _Fixed:
    """A prometheus_client collector of given families."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


class _Current:
    """A prometheus_client collector of the state ``state()`` returns."""

    def __init__(self, collector, state):
        self.collector = collector
        self.state = state

    def describe(self):
        return self.collector.describe()

    def collect(self):
        return self.collector.families(self.state())


class StateCollector:
    """The series of an ``OpsState``; see the module docstring. Backup deadlines come
    from ``deadlines`` (an ``ops.stale.DeadlineCache``)."""

    def __init__(self, deadlines):
        self.deadlines = deadlines

    def new_families(self):
        return {
            "success": _gauge("backup_last_success_timestamp_seconds",
                              "Time of the newest committed backup (Unix seconds)"),
            "status": _gauge("backup_last_status",
                             "Last backup attempt: 1 succeeded (or another host did it), 0 failed"),
            "duration": _gauge("backup_last_duration_seconds", "Duration of the newest committed backup"),
            "size": _gauge("backup_size_bytes", "Bytes the newest committed backup holds"),
            "added": _gauge("backup_added_bytes", "Bytes the newest committed backup copied beyond its base"),
            "kept": _gauge("backups_kept", "Committed backups in the catalog"),
            "deadline": _gauge("backup_deadline_timestamp_seconds",
                               "When the volume's backup becomes stale (two scheduled runs after the last "
                               "success, plus grace), Unix seconds"),
            "verified": _gauge("verification_last_timestamp_seconds", "Time of the last backup verification"),
            "verify_status": _gauge("verification_last_status", "Last backup verification: 1 passed, 0 failed"),
            "store": _gauge("store_up", "Volume store availability: 1 available, 0 not (reason: why)",
                            ("store", "reason")),
            "volumes": _gauge("volumes", "Volumes known to the plugin", ()),
            "mounted": _gauge("mounted_volumes", "Volumes mounted on this host", ()),
            "queued": _gauge("scheduler_queued", "Backups due and waiting for a worker", ()),
            "running": _gauge("scheduler_running", "Backups running now", ()),
        }

    def describe(self):
        return list(self.new_families().values())

    def families(self, state):
        families = self.new_families()
        seen = set()
        for entry in state.volumes:
            key = (entry.volume, entry.target)
            seen.add(key)
            self.add_volume(families, entry, self.deadlines.deadline(entry))
        self.deadlines.keep_only(seen)
        self.add_totals(families, state, seen)
        return list(families.values())

    def add_totals(self, families, state, seen):
        """The series that are not per volume, to ``families``; ``seen``: the (volume,
        target) pairs of ``state``."""
        for store in state.stores:
            families["store"].add_metric([store.store, "" if store.available else store.reason or "error"],
                                         1 if store.available else 0)
        families["volumes"].add_metric([], len({volume for volume, _ in seen}))
        families["mounted"].add_metric([], state.mounted)
        families["queued"].add_metric([], state.queued)
        families["running"].add_metric([], state.running)

    @staticmethod
    def add_volume(families, entry, deadline):
        """The series of one volume and target, to ``families``; ``deadline``: when it
        becomes stale (None: never)."""
        labels = [entry.volume, entry.target]
        if entry.last_success is not None:
            families["success"].add_metric(labels, _seconds(entry.last_success))
        if entry.last_result is not None:
            families["status"].add_metric(labels, 0 if entry.last_result == FAILED else 1)
        for name, value in (("duration", entry.last_duration), ("size", entry.size), ("added", entry.added)):
            if value is not None:
                families[name].add_metric(labels, value)
        families["kept"].add_metric(labels, entry.kept)
        if deadline is not None:
            families["deadline"].add_metric(labels, _seconds(deadline))
        if entry.verified_at is not None:
            families["verified"].add_metric(labels, _seconds(entry.verified_at))
        if entry.verification_ok is not None:
            families["verify_status"].add_metric(labels, 1 if entry.verification_ok else 0)


#: The per-volume series, in the order ``StateCollector`` lists them.
VOLUME_FAMILIES = ("success", "status", "duration", "size", "added", "kept", "deadline", "verified", "verify_status")


class StateText:
    """The exposition text of an ``OpsState``, the same bytes as ``StateCollector``'s
    families formatted by prometheus_client, with each volume's sample lines kept while
    that volume's status (and deadline) is unchanged: after a backup ended, one volume is
    formatted again, not all of them. Thread-safe."""

    def __init__(self, collector):
        self.collector = collector
        names = {family.name: key for key, family in collector.new_families().items()}
        self._family = {name.encode(): key for name, key in names.items() if key in VOLUME_FAMILIES}
        families = collector.new_families()
        self._headers = {key: generate_latest(_Fixed([families[key]])) for key in VOLUME_FAMILIES}
        self._lines = {}         # (volume, target) -> ((entry, deadline), {family key: its sample line})
        self._lock = threading.Lock()

    def render(self, state):
        with self._lock:
            parts = {key: [] for key in VOLUME_FAMILIES}
            kept = {}
            for entry in state.volumes:
                key = (entry.volume, entry.target)
                basis = (entry, self.collector.deadlines.deadline(entry))
                cached = self._lines.get(key)
                if cached is None or cached[0] != basis:
                    cached = (basis, self._format(*basis))
                kept[key] = cached
                for family, line in cached[1].items():
                    parts[family].append(line)
            self._lines = kept
        self.collector.deadlines.keep_only(kept)
        families = self.collector.new_families()
        self.collector.add_totals(families, state, kept)
        totals = generate_latest(_Fixed([family for key, family in families.items() if key not in VOLUME_FAMILIES]))
        return b"".join(self._headers[key] + b"".join(parts[key]) for key in VOLUME_FAMILIES) + totals

    def _format(self, entry, deadline):
        """{family key: the sample line} of one volume and target."""
        families = self.collector.new_families()
        self.collector.add_volume(families, entry, deadline)
        text = generate_latest(_Fixed([families[key] for key in VOLUME_FAMILIES]))
        lines = {}
        for line in text.splitlines(keepends=True):
            if not line.startswith(b"#"):
                lines[self._family[line.split(b"{", 1)[0]]] = line
        return lines
