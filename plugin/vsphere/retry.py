"""Bounded schedules for waiting: retry backoff and task polling.

Both are plain data; the code that waits owns the injected ``sleep`` and ``clock``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff for retrying transient failures.

    ``attempts`` counts every try, the first included: ``delays()`` yields
    ``attempts - 1`` pauses, ``initial * factor**n`` capped at ``maximum``.
    """

    attempts: int = 4
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 8.0

    def delays(self):
        delay = self.initial
        for _ in range(max(self.attempts - 1, 0)):
            yield min(delay, self.maximum)
            delay *= self.factor


@dataclass(frozen=True)
class Polling:
    """Pauses between reads of a task's state: none before the first read, then growing.

    Infinite; the caller stops at its deadline.
    """

    first: float = 0.05
    factor: float = 2.0
    maximum: float = 1.0

    def delays(self):
        delay = self.first
        while True:
            yield min(delay, self.maximum)
            delay *= self.factor
