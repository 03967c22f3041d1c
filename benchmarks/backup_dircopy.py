"""Benchmark: directory-volume backups against ``cp -a`` of the same tree, in the same run.

Builds a volume folder of about 1 GB in 10,000 files (100 folders of 100 files), then times:

1. ``cp -a`` of the tree followed by ``sync`` (the reference: a copy that is on disk);
2. the first backup: ``begin``, ``DirectoryCopier.backup`` and ``commit``, which flushes the
   filesystem before it writes manifest.json (so also a copy that is on disk);
3. a second backup with nothing changed (found unchanged, nothing copied);
4. a third backup after 1% of the files changed (the rest hard-linked), committed.

Both copies are timed to the end of their flush: without it the numbers measure how
much the page cache absorbs, which varies from run to run by a factor of several. Each
step starts after a ``sync`` so that it does not pay for an earlier step's writes; the
page cache holds the source for all of them. Prints; it is not a test.

    python benchmarks/backup_dircopy.py [--size-mb 1000] [--files 10000] [--dir /var/tmp]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin.backup.dircopy import DirectoryCopier, data_folder
from plugin.backup.manifest import DIRECTORY, Manifest
from plugin.backup.repository import LocalBackupRepository


def make_tree(root, total_bytes, files):
    per_file = max(1, total_bytes // files)
    block = os.urandom(per_file)
    folders = max(1, files // 100)
    for index in range(files):
        folder = root / f"dir{index % folders:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"file{index:05d}.bin", "wb") as out:
            out.write(index.to_bytes(8, "big"))  # every file differs
            out.write(block[8:])
    return per_file * files


def timed(step):
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    result = step()
    return time.perf_counter() - start, result


def commit(repo, staging, result):
    now = datetime.now(UTC)
    repo.commit(Manifest(volume=staging.volume, backup_id=staging.backup_id, method=DIRECTORY,
                         origin="manual", created=now, started=now, finished=now, store="bench",
                         source="volume", size=result.size, data="data"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vv-bench-dircopy-", dir=args.dir))
    try:
        source = work / "volume"
        source.mkdir()
        total = make_tree(source, args.size_mb * 10**6, args.files)
        print(f"tree: {args.files} files, {total / 1e9:.2f} GB in {work}")

        def cp_and_sync():
            subprocess.run(["cp", "-a", str(source), str(work / "cp-copy")], check=True)
            subprocess.run(["sync"], check=True)

        cp_time, _ = timed(cp_and_sync)

        repo, copier = LocalBackupRepository(work / "store"), DirectoryCopier()
        when = datetime.now(UTC)

        def backup(offset, previous=None):
            staging = repo.begin("bench", when + timedelta(seconds=offset))
            copy_start = time.perf_counter()
            result = copier.backup(source, data_folder(staging.location), previous=previous)
            copy_time = time.perf_counter() - copy_start
            if result.changed:
                commit(repo, staging, result)
            else:
                repo.abort(staging)
            return staging, result, copy_time

        backup_time, (first, _, first_copy) = timed(lambda: backup(0))
        unchanged_time, (_, second, _) = timed(lambda: backup(1, data_folder(first.location)))
        for index in range(0, args.files, 100):  # 1% of the files
            path = source / f"dir{index % max(1, args.files // 100):03d}" / f"file{index:05d}.bin"
            with open(path, "r+b") as out:
                out.write(b"changed!")
        changed_time, (_, third, _) = timed(lambda: backup(2, data_folder(first.location)))

        print(f"cp -a + sync:                {cp_time:8.2f} s")
        print(f"first backup + commit:       {backup_time:8.2f} s   ratio to cp -a: {backup_time / cp_time:.2f}x "
              f"(rsync itself {first_copy:.2f} s, the rest is the flush)")
        print(f"second backup, unchanged:    {unchanged_time:8.3f} s   changed={second.changed}, "
              f"{second.files} files compared, nothing copied")
        print(f"third backup, 1% changed:    {changed_time:8.2f} s   {third.linked} of {third.files} files "
              f"hard-linked, {third.files - third.linked} copied")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
