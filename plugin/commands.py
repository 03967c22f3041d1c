"""Running a program of this host (mount, mkfs, fsfreeze, rsync...): the one place that
calls ``subprocess``, bounded in time, with its failures as the plugin's errors."""

import subprocess

from .errors import MountError, cut


def run(argv, what=None, timeout=None, error=MountError, check=True):
    """Run ``argv`` with its output captured as text; return the CompletedProcess.

    ``what`` names the step for messages (default: the command line). A program that
    cannot be started, runs longer than ``timeout`` seconds (None: no bound) or, with
    ``check``, exits non-zero raises ``error`` (a VolumeError class) saying so, with
    its stderr.
    """
    what = what or " ".join(argv)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False,  # noqa: S603 - argv is a list, never a shell
                                timeout=timeout)
    except OSError as err:
        raise error(f"cannot run {argv[0]}: {err.strerror or err}") from None
    except subprocess.TimeoutExpired:
        raise error(f"{what} did not finish within {timeout:g} s; it was stopped") from None
    if check and result.returncode != 0:
        detail = cut((result.stderr or result.stdout or "").strip(), 500)
        raise error(f"{what} failed (exit {result.returncode}): {detail or 'no message'}")
    return result
