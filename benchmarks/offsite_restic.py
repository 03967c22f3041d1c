"""Benchmark: the restic wrapper against restic run by hand, on the same data and target.

Builds a volume folder (default about 1 GB in 10,000 files of distinct random bytes, so
that neither compression nor deduplication shrinks it), starts a real S3 server on
loopback (``rclone serve s3``, as the tests do; ``--target file`` uses a folder instead)
and times, each step after a ``sync``:

1. ``restic backup`` by hand into a fresh repository (the reference), and
   ``Restic.backup`` into another fresh repository of the same target, with a progress
   callback as the plugin uses it; each twice, alternating, the best of each: ratio,
   goal <= 1.15x;
2. after 1% of the files were rewritten, a second ``Restic.backup``: bytes added as a
   share of the volume (goal <= 3%) and time as a share of the first (goal <= 20%);
3. ``restic restore`` by hand of the reference's snapshot (twice, the best), and
   ``Restic.restore`` of the wrapper's first snapshot with progress, the size known from
   the backup (goal <= 1.15x) and read from the repository (one more restic call).

Both repositories are initialised before the clock starts (restic's init calibrates its
key derivation: seconds, once per repository). Prints; it is not a test.

    python benchmarks/offsite_restic.py [--size-mb 1000] [--files 10000] [--target s3|file]
                                        [--dir /var/tmp]
"""

import argparse
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin.offsite.restic import RepositoryConfig, Restic
from tests.offsite.s3server import S3Server

ACCESS_KEY = "bench-access-key"


def make_tree(root, total_bytes, files):
    per_file = max(1, total_bytes // files)
    folders = max(1, files // 100)
    for index in range(files):
        folder = root / f"dir{index % folders:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:05d}.bin").write_bytes(os.urandom(per_file))
    return per_file * files


def change_one_percent(root, seed=1):
    paths = sorted(p for p in root.rglob("*.bin"))
    chosen = random.Random(seed).sample(paths, max(1, len(paths) // 100))
    for path in chosen:
        path.write_bytes(os.urandom(path.stat().st_size))
    return sum(p.stat().st_size for p in chosen)


def timed(step):
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    result = step()
    return time.perf_counter() - start, result


class ByHand:
    """restic as a person runs it: the same repository flags, its own cache folder."""

    def __init__(self, location, env, cache):
        self.location, self.env, self.cache = location, env, cache

    def run(self, *args, cwd=None):
        argv = ["restic", f"--repo={self.location}", f"--cache-dir={self.cache}", *args]
        return subprocess.run(argv, env=self.env, cwd=cwd, check=True, capture_output=True, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--target", choices=("s3", "file"), default="s3")
    parser.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vv-bench-restic-", dir=args.dir))
    password, secret = secrets.token_hex(16), secrets.token_hex(16)
    server = None
    try:
        source = work / "volume"
        total = make_tree(source, args.size_mb * 10**6, args.files)
        print(f"tree: {args.files} files, {total / 1e9:.2f} GB in {work}; target: {args.target}")
        if args.target == "s3":
            server = S3Server(work / "s3", ACCESS_KEY, secret).start()

        def location(name):
            return server.location("bench", name) if server else str(work / name)

        env = {"PATH": os.environ.get("PATH", os.defpath), "RESTIC_PASSWORD": password,
               "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret}
        config = {"password": password, "name": "benchmark target"}
        if args.target == "s3":
            config.update(s3_access_key_id=ACCESS_KEY, s3_secret_access_key=secret)
        hands = [ByHand(location(f"by-hand-{i}"), env, work / f"cache-hand-{i}") for i in (1, 2)]
        wrappers = [Restic(RepositoryConfig(location=location(f"wrapper-{i}"), **config),
                           cache_dir=str(work / f"cache-wrapper-{i}")) for i in (1, 2)]
        for hand, wrapper in zip(hands, wrappers, strict=True):
            hand.run("init")
            wrapper.ensure_initialised()
        updates = []

        def by_hand(hand):
            out = hand.run("backup", "--json", "--host=bench", ".", cwd=source)
            return json.loads(out.stdout.strip().splitlines()[-1])

        def wrapped(wrapper):
            return wrapper.backup(str(source), {"volume": "bench"}, host="bench", progress=updates.append)

        # Alternating, each side twice, the best of each: the runs vary by more than the
        # difference measured (page cache, the S3 server's own work on 2 cores).
        hand_1, hand_summary = timed(lambda: by_hand(hands[0]))
        wrap_1, first = timed(lambda: wrapped(wrappers[0]))
        wrap_2, _ = timed(lambda: wrapped(wrappers[1]))
        hand_2, _ = timed(lambda: by_hand(hands[1]))
        hand_backup, wrap_backup = min(hand_1, hand_2), min(wrap_1, wrap_2)
        changed_bytes = change_one_percent(source)
        wrap_second, second = timed(lambda: wrapped(wrappers[0]))

        targets = iter(work / f"restore-{i}" for i in range(10))

        def restore_by_hand():
            target = next(targets)
            hands[0].run("restore", hand_summary["snapshot_id"], f"--target={target}")
            shutil.rmtree(target)

        def restore_wrapped(known_size):
            target = next(targets)
            result = wrappers[0].restore(first.snapshot_id, str(target), progress=updates.append,
                                         total_bytes=first.total_bytes if known_size else None)
            assert (result.bytes, result.files) == (first.total_bytes, first.files) == (total, args.files)
            shutil.rmtree(target)

        restore_hand_1, _ = timed(restore_by_hand)
        restore_known, _ = timed(lambda: restore_wrapped(True))
        restore_sized, _ = timed(lambda: restore_wrapped(False))
        restore_hand_2, _ = timed(restore_by_hand)
        hand_restore = min(restore_hand_1, restore_hand_2)

        print(f"restic backup by hand:           {hand_backup:8.2f} s   (runs: {hand_1:.2f}, {hand_2:.2f} s; "
              f"{hand_summary['data_added'] / 1e6:.0f} MB added)")
        print(f"wrapper backup:                  {wrap_backup:8.2f} s   (runs: {wrap_1:.2f}, {wrap_2:.2f} s) "
              f"ratio {wrap_backup / hand_backup:.2f}x (goal <= 1.15x); "
              f"{first.bytes_added / 1e6:.0f} MB added, {first.files} files")
        print(f"second backup, 1% changed:       {wrap_second:8.2f} s   "
              f"{100 * wrap_second / wrap_backup:.1f}% of the first (goal <= 20%); "
              f"{second.bytes_added / 1e6:.1f} MB added = {100 * second.bytes_added / total:.2f}% "
              f"of the volume (goal <= 3%; {changed_bytes / 1e6:.1f} MB were rewritten), "
              f"{second.files_changed} files changed")
        print(f"restic restore by hand:          {hand_restore:8.2f} s   (runs: {restore_hand_1:.2f}, "
              f"{restore_hand_2:.2f} s)")
        print(f"wrapper restore, size known:     {restore_known:8.2f} s   ratio "
              f"{restore_known / hand_restore:.2f}x (goal <= 1.15x); progress against the backup's size")
        print(f"wrapper restore, size from repo: {restore_sized:8.2f} s   ratio "
              f"{restore_sized / hand_restore:.2f}x; one more restic call (stats) for the size")
        print(f"progress updates received in all: {len(updates)}")
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
