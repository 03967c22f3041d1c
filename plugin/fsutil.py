"""Small filesystem helpers with crash-safe semantics."""

import json
import os
import tempfile

TEMP_PREFIX = ".tmp-"


def atomic_write(path, data):
    """Replace ``path`` with ``data`` (bytes) so a crash leaves the old or the new file.

    Temp file in the same folder, fsync, rename over the target, fsync the folder.
    """
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_folder(folder)


def fsync_folder(path):
    """Make the entries of folder ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n")


def read_json(path):
    """Parse a JSON file; raise OSError or ValueError as they come."""
    with open(path, "rb") as handle:
        return json.load(handle)


def remove_temp_files(folder):
    """Delete what interrupted ``atomic_write`` calls left in ``folder`` (their temp files);
    call it only when nothing writes there (at start). Returns the names removed."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except FileNotFoundError:
        return []
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
    return names
