"""Which notifications to send: deduplicated per subject and cause, rate-limited.

``Notifier.update(conditions)`` is the whole decision (pure, with an injected clock):

- **one event per (volume or store, cause) until it recovers**: a condition that stays
  active, however often the state shows it (a backup failing at every retry), is
  notified once; its end is notified once (``recovered``), and only if its start was;
- **per subject and cause, at most one event per ``min_interval``** (default 1 hour)
  counted from the last one sent: a flapping volume (fails, succeeds, fails) gets its
  next failure notified when the interval has passed, if it is still failing; a failure
  that recovers before that is never notified, nor is its recovery;
- **at most ``burst`` notifications per ``window``** over all subjects (default 10 per
  10 minutes): when more are due (a store outage failing 1,000 volumes), ``burst - 1``
  go out and the rest are folded into one ``suppressed`` notification that counts and
  names them; when none may go, they wait for the window to open again.

The JSON body each notification carries is ``Notification.body()``, documented in
monitoring/README.md.
"""

import collections
from dataclasses import dataclass, field
from datetime import timedelta

from .conditions import Condition
from ..timefmt import rfc3339

RECOVERED = "recovered"
SUPPRESSED = "suppressed"
SOURCE = "vsphere-volume"
NAMES_IN_SUMMARY = 20




@dataclass(frozen=True)
class Notification:
    """``event``: a cause of ``ops.conditions`` when it starts, ``recovered`` when it ends
    (``cause`` says which), ``suppressed`` for a summary of ``count`` folded events."""

    event: str
    cause: str
    time: object
    volume: str = None
    store: str = None
    target: str = None
    error: str = ""
    count: int = 1
    host: str = ""

    def body(self):
        """The webhook's JSON object (every key always present)."""
        return {"source": SOURCE, "host": self.host, "event": self.event, "cause": self.cause,
                "volume": self.volume, "store": self.store, "target": self.target,
                "time": rfc3339(self.time), "error": self.error, "count": self.count}

    @property
    def subject(self):
        if self.volume is not None:
            return f"volume {self.volume}"
        if self.store is not None:
            return f"store {self.store}"
        if self.target is not None:
            return f"backup target {self.target}"
        return f"{self.count} events"

    def title(self):
        where = f" on {self.host}" if self.host else ""
        if self.event == RECOVERED:
            return f"{SOURCE}{where}: {self.subject} recovered ({self.cause})"
        return f"{SOURCE}{where}: {self.subject}: {self.event}"

    def text(self):
        return f"{rfc3339(self.time)} {self.error}".strip()


@dataclass
class _Record:
    condition: Condition = None
    active: bool = False
    notified: bool = False          # its start was sent (so its end will be)
    last_sent: object = None


@dataclass
class Notifier:
    clock: object
    host: str = ""
    min_interval: timedelta = timedelta(hours=1)
    burst: int = 10
    window: timedelta = timedelta(minutes=10)
    _records: dict = field(default_factory=dict)
    _outbox: list = field(default_factory=list)
    _sent: collections.deque = field(default_factory=collections.deque)

    def __post_init__(self):
        if self.burst < 2:
            raise ValueError("burst must be at least 2 (one event and one summary)")

    def update(self, conditions):
        """Take the currently active ``conditions``; return the Notifications to send now."""
        now = self.clock()
        active = {condition.key: condition for condition in conditions}
        for key, record in list(self._records.items()):
            if key in active or not record.active:
                continue
            record.active = False
            if record.notified:
                self._queue(record.condition, RECOVERED, now, error="")
                record.notified, record.last_sent = False, now
        for key, condition in active.items():
            record = self._records.setdefault(key, _Record())
            record.active, record.condition = True, condition
            if not record.notified and (record.last_sent is None or now - record.last_sent >= self.min_interval):
                self._queue(condition, condition.cause, now, error=condition.error)
                record.notified, record.last_sent = True, now
        self._forget_quiet(now)
        return self._release(now)

    def _queue(self, condition, event, now, error):
        self._outbox.append(Notification(
            event=event, cause=condition.cause, time=now, volume=condition.volume, store=condition.store,
            target=condition.target, error=error, host=self.host))

    def _forget_quiet(self, now):
        """Drop records of recovered conditions whose interval has passed (memory stays
        bounded by what is active or recent)."""
        for key in [key for key, record in self._records.items()
                    if not record.active and not record.notified and now - record.last_sent >= self.min_interval]:
            del self._records[key]

    def _release(self, now):
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        budget = self.burst - len(self._sent)
        if budget <= 0 or not self._outbox:
            return []
        if len(self._outbox) <= budget:
            out, self._outbox = self._outbox, []
        else:
            out = self._outbox[:budget - 1] + [self._summary(self._outbox[budget - 1:], now)]
            self._outbox = []
        self._sent.extend([now] * len(out))
        return out

    def _summary(self, folded, now):
        names = [f"{n.subject} {n.event}" + (f" ({n.cause})" if n.event == RECOVERED else "") for n in folded]
        shown = ", ".join(names[:NAMES_IN_SUMMARY]) + (", …" if len(names) > NAMES_IN_SUMMARY else "")
        return Notification(
            event=SUPPRESSED, cause=SUPPRESSED, time=now, count=len(folded), host=self.host,
            error=(f"{len(folded)} more events within {int(self.window.total_seconds() // 60)} minutes "
                   f"(see vsphere-volume status): {shown}"))
