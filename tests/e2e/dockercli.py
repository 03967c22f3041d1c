"""Run the real docker CLI, as a user would, from end-to-end tests.

The engine is the one at $DOCKER_HOST (the ``engine`` fixture makes sure one
answers). Every helper captures text output and, with ``check=True``, turns a
non-zero exit into an AssertionError that shows the command, its exit code,
stdout and stderr, so a failing test says what docker answered.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import Any, Union
from collections.abc import Sequence

PathLike = Union[str, "os.PathLike[str]"]


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120,
    cwd: PathLike | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv``; return the CompletedProcess (text stdout/stderr).

    ``env`` entries are added to (not substituted for) the current environment.
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=full_env,
            # Without input, never let a command wait on our stdin.
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"timed out after {timeout}s: {shlex.join(argv)}\n"
            f"--- stdout ---\n{_text(exc.stdout)}\n--- stderr ---\n{_text(exc.stderr)}"
        ) from None
    if check and proc.returncode != 0:
        raise AssertionError(describe(proc))
    return proc


def docker(
    *args: Any,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120,
    cwd: PathLike | None = None,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """``docker ARGS...``, e.g. ``docker("volume", "create", "-d", "vsphere", "v1")``."""
    return run(["docker", *args], check=check, input=input, timeout=timeout, cwd=cwd, env=env)


def docker_json(*args: Any, timeout: float = 120, env: dict | None = None) -> Any:
    """Parsed JSON output of ``docker ARGS...``, e.g. ``docker_json("volume", "inspect", "v1")``."""
    return json.loads(docker(*args, timeout=timeout, env=env).stdout)


def compose(
    project_dir: PathLike,
    *args: Any,
    check: bool = True,
    input: str | None = None,
    timeout: float = 300,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """``docker compose ARGS...`` run in ``project_dir`` (its compose.yaml or
    docker-compose.yml; the project is named after the folder)."""
    return run(
        ["docker", "compose", "--project-directory", str(project_dir), *args],
        check=check,
        input=input,
        timeout=timeout,
        cwd=project_dir,
        env=env,
    )


def describe(proc: subprocess.CompletedProcess) -> str:
    """A readable account of a finished command, for assertion messages."""
    return (
        f"command failed (exit {proc.returncode}): {shlex.join(map(str, proc.args))}\n"
        f"--- stdout ---\n{proc.stdout or ''}\n--- stderr ---\n{proc.stderr or ''}"
    )


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data
