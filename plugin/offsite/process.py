"""Running a command whose output is read line by line while it runs.

``ProcessRunner.run(argv, env=..., cwd=..., timeout=..., watch=...)`` starts ``argv`` with
exactly the environment given (nothing inherited), reads its stdout and stderr as lines
and hands each to ``watch`` as it arrives, then returns a ``Completed``. The watch can
stop the command: when ``watch.line(stream, text)`` or ``watch.tick()`` (called about
once a second while the command runs) returns a reason, the command is interrupted.

Stopping is SIGINT first (restic then removes its lock and exits), SIGKILL after
``grace`` seconds. The same happens when ``timeout`` seconds pass, and when the watch
raises: the exception is re-raised once the command is gone, so nothing is left running.

Tests inject another runner with the same ``run`` signature (see tests/unit/offsite).
"""

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STDOUT, STDERR = "stdout", "stderr"
TICK_SECONDS = 1.0
KEEP_STDERR_LINES = 400     # the last lines of stderr kept for error messages


@dataclass
class Completed:
    """How a command ended.

    ``stdout``: every line; ``stderr``: the last ``KEEP_STDERR_LINES`` lines.
    ``stopped``: why it was stopped ("" when it ended by itself): the watch's reason or
    ``TIMEOUT``. ``returncode`` is negative for a signal, as in ``subprocess``.
    """

    argv: list
    returncode: int
    stdout: list = field(default_factory=list)
    stderr: list = field(default_factory=list)
    stopped: str = ""


TIMEOUT = "timeout"


class NoWatch:
    """A watch that stops nothing."""

    def started(self, pid):
        pass

    def line(self, stream, text):
        return None

    def tick(self):
        return None


def _pump(pipe, name, lines):
    for text in pipe:
        lines.put((name, text.rstrip("\n")))
    lines.put((name, None))


class ProcessRunner:
    """The real runner (``subprocess.Popen``), with a clock for its deadlines."""

    def __init__(self, grace=10.0, clock=time.monotonic):
        self.grace = grace
        self._clock = clock

    def run(self, argv, *, env, cwd=None, timeout=None, watch=None):
        """Run ``argv`` to its end; see the module's doc. OSError when it cannot start."""
        watch = watch or NoWatch()
        process = subprocess.Popen(  # noqa: S603 - argv is a list (restic's), never a shell
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
            start_new_session=True)   # a signal meant for the plugin never reaches it
        lines = queue.Queue()
        pumps = [threading.Thread(target=_pump, args=(pipe, name, lines), daemon=True)
                 for pipe, name in ((process.stdout, STDOUT), (process.stderr, STDERR))]
        for pump in pumps:
            pump.start()
        done = Completed(argv=list(argv), returncode=0)
        try:
            watch.started(process.pid)
            self._read(process, lines, watch, timeout, done)
        finally:
            if process.poll() is None:
                self._stop(process)
            for pump in pumps:
                pump.join(timeout=self.grace)
            process.stdout.close()
            process.stderr.close()
        done.returncode = process.wait()
        return done

    def _read(self, process, lines, watch, timeout, done):
        deadline = None if timeout is None else self._clock() + timeout
        kill_at = None
        open_streams, next_tick = 2, self._clock() + TICK_SECONDS
        while open_streams:
            now = self._clock()
            if not done.stopped and deadline is not None and now >= deadline:
                self._stop_for(process, TIMEOUT, done)
            if now >= next_tick and not done.stopped:
                next_tick = now + TICK_SECONDS
                self._stop_for(process, watch.tick(), done)
            if done.stopped and kill_at is None:
                kill_at = now + self.grace
            if kill_at is not None and now >= kill_at:
                process.kill()    # it did not end after SIGINT: its streams close now
                kill_at = float("inf")
            try:
                name, text = lines.get(timeout=TICK_SECONDS)
            except queue.Empty:
                continue
            if text is None:
                open_streams -= 1
                continue
            (done.stdout if name == STDOUT else done.stderr).append(text)
            if name == STDERR and len(done.stderr) > KEEP_STDERR_LINES:
                del done.stderr[0]
            if not done.stopped:
                self._stop_for(process, watch.line(name, text), done)

    def _stop_for(self, process, reason, done):
        if reason and not done.stopped:
            done.stopped = reason
            self._interrupt(process)

    @staticmethod
    def _interrupt(process):
        log.debug("interrupting %s (pid %d)", os.path.basename(process.args[0]), process.pid)
        try:
            process.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    def _stop(self, process):
        self._interrupt(process)
        try:
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            process.kill()
