"""Benchmark: off-site copies of a folder volume through the plugin, against restic by hand.

The plugin is assembled as it runs (``build_driver`` over real settings: a folder store,
a backup target ``offsite`` on a real S3 server on loopback, ``rclone serve s3`` as the
tests start it). A folder volume of --size-mb (default 1000) in --files (10000) files of
distinct random bytes is made in the store, and timed, each step after a ``sync``:

1. the first copy (``/Backup.Copy``'s path: the volume's folder read by restic, tagged,
   recorded) into a fresh repository of the target, against ``restic backup`` run by
   hand on the same folder into another fresh repository of the same server; each twice,
   alternating, the best of each (goal <= 1.15x);
2. the same with a local schedule (``Backup=daily``): the copy run takes a local backup
   (rsync, its unchanged files hard links) and copies that point-in-time copy;
3. after 1% of the files were rewritten, the second copy: bytes added as a share of the
   volume (goal <= 3%) and its time as a share of the first copy's (goal <= 20%);
4. a restore of the first copy into a new volume (the copy found in the target's catalog,
   restored into a staging folder of the store, then swapped in) against ``restic restore``
   by hand (three of each, alternating, the best; goal <= 1.15x).

Repositories are initialised before the clock starts (restic's init calibrates its key
derivation once per repository). Prints; it is not a test.

    python benchmarks/offsite_copy.py [--size-mb 1000] [--files 10000] [--dir /var/tmp]
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.offsite_restic import ByHand, change_one_percent, make_tree, timed
from plugin.assembly import build_driver
from plugin.options import parse_restore_ref
from plugin.settings import from_env
from tests.fakes import FakeMounter
from tests.offsite.s3server import S3Server

ACCESS_KEY = "bench-access-key"


def plugin(work, server, password_file, secret_file, repo):
    """A started driver whose target ``offsite`` is repository ``repo`` of the server."""
    env = {"DATA_DIR": str(work / f"data-{repo}"), "MOUNT_ROOT": str(work / "mnt"),
           "VOLUME_STORES": f"file://{work / 'store'}:default",
           "BACKUP_TARGETS": f"{server.location('bench', repo)}:offsite",
           "BACKUP_TARGET_OFFSITE_PASSWORD_FILE": str(password_file),
           "BACKUP_TARGET_OFFSITE_S3_ACCESS_KEY_ID": ACCESS_KEY,
           "BACKUP_TARGET_OFFSITE_S3_SECRET_ACCESS_KEY_FILE": str(secret_file)}
    driver = build_driver(from_env(env), mounter=FakeMounter(), scheduler_thread=False)
    driver.start()
    driver.backups.copies.targets["offsite"].ready()          # the repository made before the clock
    return driver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vv-bench-copy-", dir=args.dir))
    password, secret = secrets.token_hex(16), secrets.token_hex(16)
    (work / "password").write_text(password)
    (work / "secret").write_text(secret)
    server = S3Server(work / "s3", ACCESS_KEY, secret).start()
    drivers = []
    try:
        (work / "s3" / "bench").mkdir()
        drivers = [plugin(work, server, work / "password", work / "secret", f"plugin-{i}") for i in (1, 2, 3)]
        first, second, daily = drivers
        first.create("bench", {})
        second.create("bench", {})            # the same volume of the shared store, found there
        daily.create("bench-daily", {"Backup": "daily"})
        source = Path(first.stores["default"].data_path("bench"))
        total = make_tree(source, args.size_mb * 10**6, args.files)
        shutil.rmtree(source.parent / "bench-daily")
        subprocess.run(["cp", "-a", str(source), str(source.parent / "bench-daily")], check=True)
        print(f"volume: {args.files} files, {total / 1e9:.2f} GB in {source}; target: S3 at {server.endpoint}")
        env = {"PATH": os.environ.get("PATH", os.defpath), "RESTIC_PASSWORD": password,
               "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret}
        hands = [ByHand(server.location("bench", f"by-hand-{i}"), env, work / f"cache-hand-{i}") for i in (1, 2)]
        for hand in hands:
            hand.run("init")

        def by_hand(hand):
            out = hand.run("backup", "--json", "--host=bench", ".", cwd=source)
            return json.loads(out.stdout.strip().splitlines()[-1])

        def copy(driver, name):
            [made] = driver.backups.api_copy(name, "offsite")
            return made

        hand_1, hand_summary = timed(lambda: by_hand(hands[0]))
        copy_1, made = timed(lambda: copy(first, "bench"))
        copy_2, _ = timed(lambda: copy(second, "bench"))      # the same volume, the other fresh repository
        hand_2, _ = timed(lambda: by_hand(hands[1]))
        hand_backup, plugin_copy = min(hand_1, hand_2), min(copy_1, copy_2)
        copy_daily, made_daily = timed(lambda: copy(daily, "bench-daily"))
        changed = change_one_percent(source)
        copy_again, again = timed(lambda: copy(first, "bench"))

        def restore_by_hand(target):
            # (Only the restore is timed, on each side: making the empty volume and removing
            # what was restored are not.)
            seconds, _ = timed(lambda: hands[0].run("restore", hand_summary["snapshot_id"], f"--target={target}"))
            shutil.rmtree(target)
            return seconds

        def restore_plugin(name):
            first.create(name, {})

            def restore():      # the restore of RestoreFrom=offsite:bench@<id>, into the empty volume
                found = first.backups.copies.find(parse_restore_ref(f"offsite:bench@{made['Id']}"))
                first.backups.copies.runs.restore(first.find(name), found, "offsite")
            seconds, _ = timed(restore)
            restored = Path(first.stores["default"].data_path(name))
            assert sum(len(f) for _, _, f in os.walk(restored)) == args.files
            first.remove(name)
            return seconds

        # Alternating, three of each: the first restores read the packs from disk, later
        # ones from the page cache, so the order must favour neither side.
        restores_by_hand, restores = [], []
        for round_ in range(3):
            restores_by_hand.append(restore_by_hand(work / f"restore-{round_}"))
            restores.append(restore_plugin(f"restored-{round_}"))
        hand_restore, plugin_restore = min(restores_by_hand), min(restores)

        print(f"restic backup by hand:               {hand_backup:8.2f} s   (runs {hand_1:.2f}, {hand_2:.2f} s; "
              f"{hand_summary['data_added'] / 1e6:.0f} MB added)")
        print(f"copy through the plugin (Backup=off): {plugin_copy:8.2f} s   (runs {copy_1:.2f}, {copy_2:.2f} s) "
              f"ratio {plugin_copy / hand_backup:.3f}x (goal <= 1.15x); {made['BytesAdded'] / 1e6:.0f} MB added")
        print(f"copy with a local schedule (rsync point in time first): {copy_daily:8.2f} s   ratio "
              f"{copy_daily / hand_backup:.3f}x; {made_daily['BytesAdded'] / 1e6:.0f} MB added")
        print(f"second copy, 1% of the files rewritten: {copy_again:8.2f} s = {100 * copy_again / plugin_copy:.1f}% "
              f"of the first (goal <= 20%); {again['BytesAdded'] / 1e6:.1f} MB added = "
              f"{100 * again['BytesAdded'] / total:.2f}% of the volume (goal <= 3%; {changed / 1e6:.1f} MB rewritten)")
        print(f"restic restore by hand:              {hand_restore:8.2f} s   (runs "
              f"{', '.join(f'{r:.2f}' for r in restores_by_hand)} s)")
        print(f"restore through the plugin:          {plugin_restore:8.2f} s   (runs "
              f"{', '.join(f'{r:.2f}' for r in restores)} s; the copy found in the catalog, then restored) "
              f"ratio {plugin_restore / hand_restore:.3f}x (goal <= 1.15x)")
    finally:
        for driver in drivers:
            driver.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(benchmark run: {time.perf_counter() - started:.0f} s)")
