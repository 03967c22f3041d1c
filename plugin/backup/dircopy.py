"""The engine for directory volumes (file and NFS stores): copy a folder, restore it.

A backup is a full copy of the volume folder in ``<backup folder>/data``, made with
``rsync -aH --numeric-ids --modify-window=-1 --link-dest=<previous backup's data>``: a file whose size,
modification time, mode and owner are those of the previous backup's copy becomes a hard
link to it, so a mostly unchanged volume costs metadata only, and every backup is still
a complete tree that stands alone (deleting one backup never harms another).

Kept: owners and groups (by number), modes, modification times to the nanosecond (files,
folders and symlinks), symlinks as symlinks, empty folders, device files, and hard links
between files of the volume. Not kept: ACLs and extended attributes, access times.

The copy is taken file by file while containers may write: each file is copied whole,
but files written during the copy may be from before or after. Like rsync's own quick
check, a file rewritten with the same size and modification time counts as unchanged.

``rsync`` must be installed (in the plugin image). It is called through an injected
``runner``; tests pass a fake one to check how failures are reported.
"""

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import commands
from ..errors import BackupError

log = logging.getLogger(__name__)

BACKUP_DATA_FOLDER = "data"
# --modify-window=-1: compare times to the nanosecond (rsync >= 3.1.3). Without it rsync
# takes times within the same second as equal, and then neither sets a folder's time
# nor sees a file rewritten in the second it was copied as changed.
RSYNC_OPTIONS = ("-aH", "--numeric-ids", "--modify-window=-1")
_VANISHED = 24  # rsync: some source files vanished during the copy; normal for a live volume


@dataclass(frozen=True)
class CopyResult:
    """What a backup or restore copied.

    ``changed`` is False when the volume was found identical to the previous backup and
    nothing was copied (record the backup as ``unchanged``). ``files`` and ``size`` count
    the regular files and their bytes; ``linked`` how many of them are hard links to the
    previous backup's (not copied), ``added`` the bytes of the others (copied).
    """

    changed: bool
    files: int
    size: int
    linked: int = 0
    added: int = 0


def run_command(argv):
    """Default runner: run ``argv`` (no time bound: a copy takes as long as its data),
    its output captured; its exit code is the copier's to read."""
    return commands.run(argv, check=False, error=BackupError)


def _signature(entry_stat, path):
    """What must be equal for an entry to count as unchanged."""
    kind = stat.S_IFMT(entry_stat.st_mode)
    sig = (entry_stat.st_mode, entry_stat.st_uid, entry_stat.st_gid, entry_stat.st_mtime_ns)
    if kind == stat.S_IFREG:
        return sig + (entry_stat.st_size,)
    if kind == stat.S_IFLNK:
        return sig + (os.readlink(path),)
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return sig + (entry_stat.st_rdev,)
    return sig


def _scan(folder):
    with os.scandir(folder) as entries:
        return {entry.name: entry for entry in entries}


def same_tree(source, previous):
    """``(files, size)`` of ``source`` when it is identical to ``previous``, else None.

    Identical: the same names everywhere, and for each entry (the top folder included)
    the same type, mode, owner, group and modification time (ns); the same size for
    files, target for symlinks, device number for devices. Stops at the first difference.
    """
    if _signature(os.lstat(source), source) != _signature(os.lstat(previous), previous):
        return None
    files = size = 0
    pending = [(source, previous)]
    while pending:
        left, right = pending.pop()
        ours, theirs = _scan(left), _scan(right)
        if ours.keys() != theirs.keys():
            return None
        for name, entry in ours.items():
            mine, other = entry.stat(follow_symlinks=False), theirs[name].stat(follow_symlinks=False)
            if _signature(mine, entry.path) != _signature(other, theirs[name].path):
                return None
            if stat.S_ISDIR(mine.st_mode):
                pending.append((entry.path, theirs[name].path))
            elif stat.S_ISREG(mine.st_mode):
                files += 1
                size += mine.st_size
    return files, size


def tree_summary(folder, previous=None):
    """``(files, size, linked, added)`` of a tree: regular files, their bytes, how many are
    the same inode as the file at the same path under ``previous``, and the bytes of the
    others (each inode once: what was copied)."""
    files = size = linked = added = 0
    copied = set()
    for top, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            files += 1
            size += st.st_size
            same = False
            if previous is not None:
                try:
                    old = os.lstat(os.path.join(previous, os.path.relpath(path, folder)))
                    same = (old.st_dev, old.st_ino) == (st.st_dev, st.st_ino)
                except FileNotFoundError:
                    pass
            linked += same
            if not same and (st.st_dev, st.st_ino) not in copied:
                copied.add((st.st_dev, st.st_ino))
                added += st.st_size
    return files, size, linked, added


def _entries(folder):
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries)


class DirectoryCopier:
    """Backs up and restores volume folders with rsync.

    ``runner(argv)`` returns an object with ``returncode`` and ``stderr`` (as
    ``subprocess.run`` does); ``rsync`` is the program to run.
    """

    def __init__(self, runner=run_command, rsync="rsync"):
        self.runner = runner
        self.rsync = rsync

    def _rsync(self, what, source, dest, *options):
        argv = [self.rsync, *RSYNC_OPTIONS, *options, f"{os.path.abspath(source)}/", f"{os.path.abspath(dest)}/"]
        if shutil.which(self.rsync) is None:
            raise BackupError(f"{what} needs rsync, which is not installed on this host (or in the plugin image)")
        done = self.runner(argv)
        detail = (done.stderr or "").strip()
        if done.returncode == _VANISHED:
            log.warning("%s: files vanished during the copy (the volume was in use): %s", what, detail)
            return
        if done.returncode != 0:
            last = detail.splitlines()[-3:] if detail else ["no message"]
            raise BackupError(f"{what} failed: rsync exited with {done.returncode}: {' / '.join(last)}")

    def backup(self, source, dest, previous=None):
        """Copy the folder ``source`` to the new folder ``dest``; return a CopyResult.

        ``previous``: the data folder of the volume's previous backup that holds data, or
        None. When ``source`` is identical to it (``same_tree``) nothing is copied,
        ``dest`` is not created and the result has ``changed=False``. Otherwise unchanged
        files are hard links to ``previous``'s. ``dest`` must not exist; its parent must.
        Raises BackupError.
        """
        what = f"backup of {source}"
        if not os.path.isdir(source):
            raise BackupError(f"{what} failed: {source} is not a folder")
        if os.path.lexists(dest):
            raise BackupError(f"{what} failed: the target {dest} exists already")
        if previous is not None and os.path.isdir(previous):
            same = same_tree(source, previous)
            if same is not None:
                return CopyResult(changed=False, files=same[0], size=same[1])
            self._rsync(what, source, dest, f"--link-dest={os.path.abspath(previous)}")
        else:
            previous = None
            self._rsync(what, source, dest)
        files, size, linked, added = tree_summary(dest, previous)
        return CopyResult(changed=True, files=files, size=size, linked=linked, added=added)

    def restore(self, backup_data, target, force=False):
        """Copy a backup's data folder into the existing folder ``target``; return a CopyResult.

        ``target`` must be empty unless ``force``, which makes it an exact copy of the
        backup (what is not in the backup is deleted). The restored files are copies,
        never links into the backup. Raises BackupError.
        """
        what = f"restore into {target}"
        if not os.path.isdir(backup_data):
            raise BackupError(f"{what} failed: the backup data {backup_data} is missing")
        if not os.path.isdir(target):
            raise BackupError(f"{what} failed: {target} is not an existing folder")
        present = _entries(target)
        if present and not force:
            shown = ", ".join(repr(name) for name in present[:3]) + (", ..." if len(present) > 3 else "")
            raise BackupError(
                f"{what} refused: the folder is not empty ({len(present)} entries: {shown}); "
                "restore into an empty folder, or force it to replace the content")
        self._rsync(what, backup_data, target, "--delete")
        files, size, _, _ = tree_summary(target)
        return CopyResult(changed=True, files=files, size=size)


def data_folder(backup_folder):
    """Where the directory engine keeps the copy inside a backup folder."""
    return Path(backup_folder) / BACKUP_DATA_FOLDER

