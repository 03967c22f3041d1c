"""restic's error texts read into typed errors; the line-reading runner; restore progress."""

import os
import sys
import threading

import pytest

from plugin.offsite import failures
from plugin.offsite.errors import (
    OffsiteError,
    RepositoryLocked,
    RepositoryMissing,
    SnapshotNotFound,
    TargetAuthError,
    TargetTLSError,
    TargetUnreachable,
    WrongPassword,
)
from plugin.offsite.process import TIMEOUT, ProcessRunner
from plugin.offsite.progress import RestoreMeter, tree_size
from plugin.redact import Redactor

# restic 0.14's words, as it prints them (seen against rclone's S3 server and folders).
SAID = {
    "Fatal: wrong password or no key found": WrongPassword,
    "Fatal: unable to open config file: Stat: The specified key does not exist.\n"
    "Is there a repository at the following location?": RepositoryMissing,
    "Fatal: unable to open config file: Stat: The specified bucket does not exist": RepositoryMissing,
    "Fatal: unable to open config file: stat /srv/repo/config: no such file or directory":
        RepositoryMissing,
    'Fatal: unable to open config file: Stat: Get "http://127.0.0.1:9/b/?location=": dial tcp '
    "127.0.0.1:9: connect: connection refused": TargetUnreachable,
    "Fatal: unable to open config file: Stat: Get \"https://s3.invalid/b/\": dial tcp: lookup "
    "s3.invalid: no such host": TargetUnreachable,
    "Fatal: unable to open config file: Stat: The request signature we calculated does not match "
    "the signature you provided. Check your key and signing method.": TargetAuthError,
    "Fatal: unable to open config file: Stat: The Access Key Id you provided does not exist in "
    "our records.": TargetAuthError,
    'Fatal: unable to open config file: Stat: Get "https://127.0.0.1:1/b/": x509: certificate '
    "signed by unknown authority": TargetTLSError,
    "unable to create lock in backend: repository is already locked exclusively by PID 9 on h "
    "by root (UID 0, GID 0)": RepositoryLocked,
    'invalid id "deadbeef": no matching ID found for prefix "deadbeef"': SnapshotNotFound,
    "Fatal: some new failure of a later restic": OffsiteError,
}


@pytest.mark.parametrize("text, kind", list(SAID.items()))
def test_restics_words_name_the_error(text, kind):
    assert failures.error_class(text.splitlines()) is kind


def test_messages_quote_restic_without_retry_noise_redacted_and_capped():
    redact = Redactor(["hunter2-password", ""])
    lines = ["Load(<key/1>) returned error, retrying after 500ms: boom", "",
             "Fatal: odd hunter2-password " + "x" * 2000]

    error = failures.translate(lines, "opening", "backup target t", redact, returncode=1)

    text = str(error)
    assert text.startswith("opening on backup target t failed (exit status 1): restic failed")
    assert "retrying" not in text and "hunter2-password" not in text and "<redacted>" in text
    assert len(text) < 800 and "characters)" in text


def test_the_runner_hands_each_line_over_and_passes_only_the_environment_given():
    seen = []

    class Watch:
        def started(self, pid):
            seen.append(("pid", pid > 0))

        def line(self, stream, text):
            seen.append((stream, text))

        def tick(self):
            pass

    done = ProcessRunner().run(
        [sys.executable, "-c", ("import os, sys; print('one'); print(os.environ.get('HOME', '-'));"
                               "print('two', file=sys.stderr); sys.exit(4)")],
        env={"PATH": os.defpath}, watch=Watch())

    assert done.returncode == 4 and done.stopped == ""
    assert done.stdout == ["one", "-"] and done.stderr == ["two"]
    assert ("pid", True) in seen and ("stdout", "one") in seen and ("stderr", "two") in seen


def test_a_watch_reason_interrupts_the_command():
    class StopAtFirstLine:
        def started(self, pid):
            pass

        def line(self, stream, text):
            return "enough"

        def tick(self):
            pass

    done = ProcessRunner(grace=30).run(
        [sys.executable, "-c", "import time; print('go', flush=True); time.sleep(120)"],
        env={}, watch=StopAtFirstLine())

    assert done.stopped == "enough" and done.returncode != 0


def test_a_timeout_interrupts_then_kills_a_command_that_ignores_sigint():
    script = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "print('ready', flush=True); time.sleep(120)")
    done = ProcessRunner(grace=0.5).run([sys.executable, "-c", script], env={}, timeout=0.5)
    assert done.stopped == TIMEOUT and done.returncode == -9


def test_an_exception_in_the_watch_leaves_nothing_running():
    started = threading.Event()
    pids = []

    class Broken:
        def started(self, pid):
            pids.append(pid)

        def line(self, stream, text):
            started.set()
            raise RuntimeError("callback failed")

        def tick(self):
            pass

    with pytest.raises(RuntimeError, match="callback failed"):
        ProcessRunner(grace=5).run(
            [sys.executable, "-c", "import time; print('x', flush=True); time.sleep(120)"],
            env={}, watch=Broken())

    assert started.is_set()
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_restore_progress_is_the_bytes_restic_wrote(tmp_path):
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    io = proc / "4242" / "io"
    meter = RestoreMeter(total=1000, proc=str(proc))
    assert meter.read() is None            # not started

    meter.started(4242)
    io.write_text("rchar: 999\nwchar: 250\nsyscr: 3\n")
    first = meter.read()
    unchanged = meter.read()
    io.write_text("rchar: 999\nwchar: 1200\n")
    capped = meter.read()

    assert (first.percent, first.bytes_done, first.total_bytes) == (25.0, 250, 1000)
    assert unchanged is None
    assert (capped.percent, capped.bytes_done) == (99.9, 1000)


def test_tree_size_counts_regular_files_once(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"1234")
    os.link(tmp_path / "a" / "f", tmp_path / "hard")
    (tmp_path / "link").symlink_to("a/f")
    (tmp_path / "g").write_bytes(b"12")
    assert tree_size(str(tmp_path)) == (6, 2)
    assert tree_size(str(tmp_path / "g")) == (2, 1)
