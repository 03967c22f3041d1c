"""Killing a plugin process at a step: a child runs ``code`` (Python, given ``cfg`` as JSON
in argv[1]) until it prints a line at the step the test chose and waits on its stdin;
the test then SIGKILLs it there, as a crash would."""

import json
import select
import signal
import subprocess
import sys

HANG_GUARD = 60          # seconds the child may take to reach its step (a hang guard, not a threshold)


def run_and_kill(code, cfg):
    """Run ``code`` in a child process, SIGKILL it at its first line of output; return that line."""
    child = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], HANG_GUARD)
        line = child.stdout.readline() if ready else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert line.startswith("stopped"), f"the child did not stop at its step: {line!r}\n{child.stderr.read()}"
    return line
