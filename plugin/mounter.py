"""Mounting on this host: the one place that runs mount(8) and umount(8).

``Mounter`` is injected into the driver and stores so that logic can be tested with a
fake; the real one shells out through an injected ``run`` (``commands.run`` by default),
each command bounded by ``timeout`` seconds (an NFS mount of a server that does not
answer must not hang the plugin's start).
"""

import os

from . import commands


def mounted_targets(mountinfo="/proc/self/mountinfo"):
    """The set of mount points in this mount namespace."""
    targets = set()
    with open(mountinfo, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                # mountinfo escapes blanks and backslashes as octal: \040
                targets.add(fields[4].encode().decode("unicode_escape"))
    return targets


class Mounter:
    """Bind-mounts and unmounts folders; answers whether a path is a mount point."""

    def __init__(self, run=commands.run, mountinfo="/proc/self/mountinfo", timeout=60):
        self._run = run
        self._mountinfo = mountinfo
        self.timeout = timeout

    def _call(self, args, what):
        self._run(args, what=what, timeout=self.timeout)

    def is_mounted(self, target):
        return os.path.normpath(target) in mounted_targets(self._mountinfo)

    def bind(self, source, target):
        """Bind-mount folder ``source`` at ``target`` (created if missing). Idempotent."""
        os.makedirs(target, exist_ok=True)
        if self.is_mounted(target):
            return
        self._call(["mount", "--bind", source, target], f"bind-mounting {source} at {target}")

    def mount(self, device, target, options=(), fstype=None):
        """Mount ``device`` (a block device, or host:/path for NFS) at ``target``. Idempotent."""
        os.makedirs(target, exist_ok=True)
        if self.is_mounted(target):
            return
        args = ["mount"] + (["-t", fstype] if fstype else [])
        args += (["-o", ",".join(options)] if options else []) + [device, target]
        self._call(args, f"mounting {device} at {target}")

    def unmount(self, target):
        """Unmount ``target`` if mounted, then remove the empty folder. Idempotent."""
        if self.is_mounted(target):
            self._call(["umount", target], f"unmounting {target}")
        try:
            os.rmdir(target)
        except (FileNotFoundError, OSError):
            pass
