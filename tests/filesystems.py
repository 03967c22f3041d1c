"""Real filesystems for fault tests (root only): a small tmpfs that a test fills up, so
that the plugin meets a real ENOSPC, not a simulated one."""

import errno
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def small_tmpfs(path, size="512k"):
    """A tmpfs of ``size`` mounted at ``path`` (made if needed) for the block; unmounted after."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True, capture_output=True, text=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(folder):
    """Fill the filesystem of ``folder`` until it answers ENOSPC; return the filler file
    (delete it to free the space again)."""
    filler = Path(folder) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    try:                    # the last partial block
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler
