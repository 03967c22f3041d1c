"""A stand-in for ``plugin.offsite.process.ProcessRunner``: scripted restic answers."""

from dataclasses import dataclass, field

from plugin.offsite.process import Completed


@dataclass
class Answer:
    """What one scripted call prints and returns. ``lines``: ``(stream, text)`` or
    ``(stream, text, at)`` with ``at`` the clock's time when the line comes;
    ``effect(argv, cwd)`` runs before the lines (to write files, say)."""

    returncode: int = 0
    lines: list = field(default_factory=list)
    stopped: str = ""
    effect: object = None


def out(*texts):
    return [("stdout", text) for text in texts]


def err(*texts):
    return [("stderr", text) for text in texts]


class FakeRunner:
    """Answers calls in order (or, given ``by_command``, by their restic sub-command: calls
    may then come from several threads); records ``(argv, env, cwd, timeout)`` of each."""

    def __init__(self, *answers, clock=None, by_command=None):
        self.answers = list(answers)
        self.by_command = by_command
        self.calls = []
        self.clock = clock

    @property
    def commands(self):
        """The restic sub-command of each call (the first argument not an option)."""
        return [next(a for a in argv[1:] if not a.startswith("-")) for argv, *_ in self.calls]

    def run(self, argv, *, env, cwd=None, timeout=None, watch=None):
        self.calls.append((list(argv), dict(env), cwd, timeout))
        if self.by_command is not None:
            answer = self.by_command[next(a for a in argv[1:] if not a.startswith("-"))]
        else:
            answer = self.answers.pop(0)
        if answer.effect:
            answer.effect(argv, cwd)
        done = Completed(argv=list(argv), returncode=answer.returncode, stopped=answer.stopped)
        watch.started(4242)
        for stream, text, *at in answer.lines:
            if at and self.clock is not None:
                self.clock.now = at[0]
            (done.stdout if stream == "stdout" else done.stderr).append(text)
            reason = watch.line(stream, text)
            if reason:
                done.stopped, done.returncode = reason, -2
                break
        watch.tick()
        return done


class SecondsClock:
    """A monotonic clock the test sets."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now
