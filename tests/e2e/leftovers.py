"""What a Docker engine leaves on the host when it dies, and how a test ends it.

A dockerd killed with SIGKILL leaves its containerd, the containerd shims, the processes
of its containers and plugins, the mounts below its data-root and exec-root (propagated
mounts included), its shims' sockets in /run/containerd/s (shared by every containerd)
and the loop devices its plugins attached. These helpers find them by
what only that engine's processes and files can hold (its own state folder in their
command lines, paths below it, a loop's backing file) and end them by pid or by path.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from ..waiting import wait_until

KILL_TIMEOUT = 30   # seconds for killed processes to be gone (a hang guard)
SHIM_SOCKETS = "/run/containerd/s"   # where every containerd's shims put their sockets


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            # Field 2 is "(comm)" and may hold blanks: split after its closing parenthesis.
            stat = _read(f"/proc/{entry}/stat")
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1:
                parents[int(entry)] = int(fields[1])
    return parents


def processes_naming(folder: str) -> list[int]:
    """Pids of the processes whose command line names a path below ``folder``: an
    engine's dockerd, containerd and shims name its data-root or exec-root."""
    needle = os.path.realpath(folder).rstrip("/") + "/"
    return sorted(int(entry) for entry in os.listdir("/proc")
                  if entry.isdigit() and needle in _read(f"/proc/{entry}/cmdline").replace("\0", " "))


def descendants(pids: Iterable[int]) -> list[int]:
    """Pids of every process below ``pids`` (a shim's container and plugin processes)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for its parent."""
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat[stat.rfind(")") + 2:][:1] != "Z"


def kill_and_wait(pids: Iterable[int], timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL ``pids`` and wait until they are gone; AssertionError naming the ones
    that outlive ``timeout``."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout,
               lambda: f"processes {[pid for pid in pids if _alive(pid)]} still alive after SIGKILL")


def _shim_socket(pid: int) -> str:
    """The socket a containerd shim (runc v2) serves, or "" for any other process:
    /run/containerd/s/<sha256 of "ADDRESS/NAMESPACE/ID"> (containerd 1.6), from the
    ``-namespace``, ``-id`` and ``-address`` of its command line."""
    argv = _read(f"/proc/{pid}/cmdline").split("\0")
    if not os.path.basename(argv[0]).startswith("containerd-shim"):
        return ""
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    if not all(k in flags for k in ("-namespace", "-id", "-address")):
        return ""
    key = f"{flags['-address']}/{flags['-namespace']}/{flags['-id']}"
    return f"{SHIM_SOCKETS}/{hashlib.sha256(key.encode()).hexdigest()}"


def end_processes_of(folder: str) -> None:
    """SIGKILL what runs from ``folder`` (an engine's state folder): the container and
    plugin processes under its shims first, then the shims, containerd and dockerd;
    then remove the sockets of the killed shims (a shim removes its own when it exits)."""
    engine = processes_naming(folder)
    if engine:
        sockets = [path for path in map(_shim_socket, engine) if path]
        kill_and_wait(descendants(engine))
        kill_and_wait(processes_naming(folder))
        for path in sockets:
            Path(path).unlink(missing_ok=True)


def unmount_below(path: str) -> None:
    """Lazily unmount whatever is mounted at or below ``path``, deepest first (a path
    mounted over several times is unmounted as often)."""
    real = os.path.realpath(path)
    for _ in range(5):
        with open("/proc/self/mountinfo") as handle:
            # Field 5 is the mount point; mountinfo escapes blanks as octal (\040).
            points = {line.split()[4].encode().decode("unicode_escape") for line in handle}
        below = sorted((p for p in points if p == real or p.startswith(real + "/")), reverse=True)
        if not below:
            return
        for point in below:
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def loop_devices() -> dict[str, str]:
    """{``/dev/loopN``: its backing file as the kernel shows it} of the attached loops."""
    loops = {}
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        text = _read(str(backing)).strip()
        if text:
            loops[f"/dev/{backing.parts[3]}"] = text
    return loops


def detach_loops(backed_by: Callable[[str], bool]) -> list[str]:
    """``losetup -d`` the loops whose backing file (as the kernel shows it: the path
    the attaching process saw, maybe inside a plugin) matches; returns them."""
    chosen = [device for device, backing in loop_devices().items() if backed_by(backing)]
    for device in chosen:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
    return chosen
