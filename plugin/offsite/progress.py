"""Progress of a restore, which restic 0.14 does not report, and the size of a tree.

restic 0.14 prints nothing while it restores. What it has written so far is what the
kernel counts for its process: ``wchar`` in ``/proc/<pid>/io``, the bytes passed to
write(2)/pwrite(2) (restored file content, and a few bytes of output). Set against the
snapshot's restore size (restic's ``stats --mode=restore-size``) that is the progress. It
does not use file sizes: restic preallocates each file at its first write.
"""

import os

from .messages import Progress


class RestoreMeter:
    """Reads a restoring restic's written bytes; ``total`` None while not known (it may be
    given later, from another thread)."""

    def __init__(self, total=None, proc="/proc"):
        self.total = total
        self._proc = proc
        self._pid = None
        self._last = None

    def started(self, pid):
        self._pid = pid

    def read(self):
        """A Progress when the count moved since the last read, else None."""
        written = self._written()
        if written is None or written == self._last:
            return None
        self._last = written
        total = self.total
        if total:
            done = min(written, total)
            return Progress(percent=min(99.9, round(100.0 * done / total, 1)), bytes_done=done, total_bytes=total)
        return Progress(bytes_done=written)

    @staticmethod
    def final(size, files):
        return Progress(percent=100.0, bytes_done=size, total_bytes=size,
                        files_done=files, total_files=files)

    def _written(self):
        if self._pid is None:
            return None
        try:
            with open(os.path.join(self._proc, str(self._pid), "io"), encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.partition(":")
                    if key == "wchar":
                        return int(value)
        except (OSError, ValueError):
            return None
        return None


def tree_size(root):
    """``(bytes, files)`` of the regular files under ``root`` (hard links counted once)."""
    if os.path.isfile(root) and not os.path.islink(root):
        return os.lstat(root).st_size, 1
    seen, size = set(), 0
    for folder, _, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(folder, name))
            if (info.st_mode & 0o170000) == 0o100000 and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                size += info.st_size
    return size, len(seen)
