"""``vsphere-volume``: the command line of the plugin, talking to its socket.

Exit codes scripts can rely on: 0 done; 1 the plugin refused (its message is printed);
2 bad usage; 3 the plugin cannot be reached.
"""

import argparse
import json
import os
import sys

from .client import PluginClient, PluginUnreachable, find_socket
from .cliviews import status_text, table
from .errors import VolumeError
from .stores.fencing import POWERED_OFF, shown_vm

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageError(Exception):
    """Arguments that argparse accepts but that ask nothing (exit status 2)."""


def cmd_status(client, args, out):
    status = client.call("/Plugin.Status")
    if args.json:
        print(json.dumps(status, indent=2), file=out)
        return EXIT_OK
    terminal = getattr(out, "isatty", lambda: False)() and not os.environ.get("NO_COLOR")
    print(status_text(status, colour=terminal), file=out)
    return EXIT_OK


PROGRESS_EVERY = 1.0   # seconds between two looks at /Backup.Progress


def _with_progress(client, name, call, what, out, every=PROGRESS_EVERY):
    """Run ``call()`` in a thread; on a terminal, show what the plugin says the backup or
    restore of ``name`` is doing (``/Backup.Progress``, asked ``every`` seconds) until it
    returns its result."""
    import threading
    import time

    box = {}

    def target():
        try:
            box["result"] = call()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            box["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    worker.start()
    tty = getattr(out, "isatty", lambda: False)()
    shown = 0
    while worker.is_alive():
        worker.join(every)
        if worker.is_alive() and tty:
            try:
                now = client.call("/Backup.Progress", {"Name": name}, timeout=5)["Progress"]
            except VolumeError:
                now = {}
            if "Phase" not in now and now.get("Copies"):     # a copy, or a restore from a target
                now = next(iter(now["Copies"].values()))
            phase = now.get("Phase", "working")
            percent = f" {now['Percent']}%" if "Percent" in now else ""
            line = f"{what}: {phase}{percent} ({time.monotonic() - started:.0f}s)"
            print("\r" + line.ljust(shown), end="", file=out, flush=True)
            shown = len(line)
    if tty and shown:
        print("\r" + " " * shown + "\r", end="", file=out)
    if "error" in box:
        raise box["error"]
    return box["result"]


BACKUP_COLUMNS = ["Id", "Created", "Method", "Origin", "Size", "Store", "State"]
COPY_COLUMNS = ["Volume", "Id", "Created", "Origin", "Snapshot", "Host", "Capacity", "State"]
TARGET_COLUMNS = ["Label", "Kind", "Available", "Location", "Verified", "Result", "Reason"]
LONG = 24 * 3600  # a backup or restore may copy for a long time; the plugin answers when done


def cmd_backup(client, args, out):
    backup = _with_progress(client, args.name,
                            lambda: client.call("/Backup.Create", {"Name": args.name}, timeout=LONG)["Backup"],
                            f"backing up {args.name}", out, args.progress_every)
    print(f"backup {backup['Id']} of {args.name} committed ({backup['Method']}, {backup['Size']} bytes)", file=out)
    return EXIT_OK


def cmd_backups(client, args, out):
    if not args.name and not args.backup_target:
        raise UsageError("backups: give a volume, or --target TARGET for every volume there")
    body = {"Name": args.name or "", "BackupTarget": args.backup_target or ""}
    backups = client.call("/Backup.List", body, timeout=LONG)["Backups"]
    if args.json:
        print(json.dumps(backups, indent=2), file=out)
        return EXIT_OK
    print(table(backups, COPY_COLUMNS if args.backup_target else BACKUP_COLUMNS), file=out)
    for backup in backups:
        if backup.get("Problem"):
            volume = backup.get("Volume", args.name)
            print(f"backup {backup['Id']} is {backup.get('State', 'damaged')} and cannot be restored: "
                  f"{backup['Problem']} (vsphere-volume delete {volume} {backup['Id']} deletes it)", file=out)
    return EXIT_OK


def cmd_targets(client, args, out):
    reply = client.call("/Backup.Targets", timeout=LONG)
    if args.json:
        print(json.dumps({k: v for k, v in reply.items() if k != "Err"}, indent=2), file=out)
        return EXIT_OK
    rows = [dict(t, Available="yes" if t.get("Available") else "no",
                 Verified=t.get("LastVerification", {}).get("Time", ""),
                 Result=t.get("LastVerification", {}).get("Result", "")) for t in reply["Targets"]]
    print(table(rows, TARGET_COLUMNS), file=out)
    for problem in reply.get("Problems", []):
        print(f"problem: {problem}", file=out)
    return EXIT_OK


def cmd_copy(client, args, out):
    body = {"Name": args.name, "BackupTarget": args.backup_target or ""}
    copies = _with_progress(client, args.name, lambda: client.call("/Backup.Copy", body, timeout=LONG)["Copies"],
                            f"copying {args.name}", out, args.progress_every)
    for copy in copies:
        print(f"copy {copy['Id']} of {args.name} made on backup target {copy['Target']} (snapshot "
              f"{copy.get('Snapshot', '?')}, {copy.get('BytesAdded', 0)} bytes added of {copy.get('Size', 0)})",
              file=out)
    return EXIT_OK


def cmd_verify(client, args, out):
    body = {"BackupTarget": args.target, "Read": args.read or ""}
    done = client.call("/Backup.Verify", body, timeout=LONG)["Verification"]
    line = f"backup target {args.target}: {done['Result']}"
    if done.get("Read"):
        line += f" (read {done['Read']})"
    if done.get("TestRestore"):
        restored = done["TestRestore"]
        line += (f"; test restore of copy {restored['Id']} of {restored['Volume']}: {restored['Entries']} entries, "
                 f"{restored['Bytes']} bytes, as recorded")
    print(line, file=out)
    return EXIT_OK


def cmd_restore(client, args, out):
    body = {"Name": args.name, "Backup": args.backup, "Target": args.target or "", "Force": args.force,
            "BackupTarget": args.backup_target or "", "Path": args.path or ""}
    done = _with_progress(client, args.target or args.name,
                          lambda: client.call("/Backup.Restore", body, timeout=LONG)["Restore"],
                          f"restoring {args.name}", out, args.progress_every)
    line = f"volume {done['Volume']} restored from backup {done['Backup']} of {args.name}"
    if done.get("Target"):
        line += f" on backup target {done['Target']}"
    if done.get("Why"):
        line += f" ({done['Why']})"
    if done.get("SafetyBackup"):
        line += f" (its previous data is in backup {done['SafetyBackup']})"
    print(line, file=out)
    return EXIT_OK


def cmd_prune(client, args, out):
    deleted = client.call("/Backup.Prune", {"Name": args.name}, timeout=LONG)["Deleted"]
    print(f"deleted {len(deleted)} backup(s) of {args.name}" + (f": {', '.join(deleted)}" if deleted else ""),
          file=out)
    return EXIT_OK


def cmd_delete(client, args, out):
    client.call("/Backup.Delete", {"Name": args.name, "Backup": args.backup}, timeout=LONG)
    print(f"deleted backup {args.backup} of {args.name}", file=out)
    return EXIT_OK


def _shown(holder):
    return shown_vm(holder["VM"], holder.get("PowerState", ""), holder.get("ThisHost", False))


def _confirmed(args, out, disk, running):
    """True when the operator confirms detaching ``disk`` from the ``running`` VMs (or gave --yes)."""
    print(f"volume {args.name}: its disk {disk} is attached to {', '.join(map(_shown, running))}.\n"
          "Detaching it removes it from that running VM at once: whatever runs there loses the volume, and what "
          "that VM has not written to the disk yet is lost. Do it only when that Docker host is down (its Docker "
          "engine does not run). The disk's files are kept.", file=out)
    if args.yes:
        return True
    print("Type yes to detach it: ", end="", file=out, flush=True)
    return args.input.readline().strip().lower() == "yes"


def cmd_detach(client, args, out):
    plan = client.call("/Volume.Detach", {"Name": args.name, "Plan": True})
    holders = plan["Holders"]
    if not holders:
        print(f"volume {args.name} is not attached to any VM: nothing to detach", file=out)
        return EXIT_OK
    running = [h for h in holders if not h.get("ThisHost") and h.get("PowerState") != POWERED_OFF]
    if running and args.force and not _confirmed(args, out, plan["Disk"], running):
        print(f"\nvolume {args.name} was not detached (not confirmed; --yes confirms in a script)", file=out)
        return EXIT_REFUSED
    done = client.call("/Volume.Detach", {"Name": args.name, "Force": args.force,
                                          "From": [h["VM"] for h in holders]})
    print(f"volume {args.name}: its disk {done['Disk']} was detached from VM {', '.join(done['Detached'])}",
          file=out)
    return EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(prog="vsphere-volume", description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="vsphere", help="the Docker plugin's name (default: vsphere)")
    parser.add_argument("--socket", help="the plugin's socket path (default: asked from Docker)")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="show the volume stores, and the volumes with their backup health")
    status.add_argument("--json", action="store_true", help="print the status as JSON (for scripts)")
    status.set_defaults(run=cmd_status)

    def on_a_volume(name, run, what, **volume):
        """A command on one volume, named by its first argument."""
        command = commands.add_parser(name, help=what)
        command.add_argument("name", **volume)
        command.set_defaults(run=run)
        return command

    def on_a_target(command, what):
        command.add_argument("--target", dest="backup_target", metavar="TARGET", help=what)

    on_a_volume("backup", cmd_backup, "back a volume up now")
    backups = on_a_volume("backups", cmd_backups, "list a volume's backups (also of a removed volume)", nargs="?")
    backups.add_argument("--json", action="store_true")
    on_a_target(backups, "the backups on this backup target (without a volume: of every volume there)")
    restore = on_a_volume("restore", cmd_restore, "restore a backup, as a new volume or in place",
                          help="the backed-up volume")
    restore.add_argument("--backup", default="latest", help="a backup id, or latest (default)")
    restore.add_argument("--as", dest="target", metavar="NEW", help="create volume NEW from the backup")
    restore.add_argument("--force", action="store_true",
                         help="restore in place: replace the volume's data (a backup of it is taken first)")
    on_a_target(restore, "restore from this backup target (default: the local tier)")
    restore.add_argument("--path", help="only this folder or file of the backup, into a new volume (--as)")
    copy = on_a_volume("copy", cmd_copy, "copy a volume to its off-site targets now (BackupCopy)")
    on_a_target(copy, "copy it to this backup target only")
    verify = commands.add_parser("verify", help="verify a backup target now (restic check)")
    verify.add_argument("target", help="the backup target's label")
    verify.add_argument("--read", help="how much of the data to read: 5%%, 1/10, 2G (default: the target's)")
    verify.set_defaults(run=cmd_verify)
    targets = commands.add_parser("targets", help="show the backup targets and their last verification")
    targets.add_argument("--json", action="store_true")
    targets.set_defaults(run=cmd_targets)
    on_a_volume("prune", cmd_prune, "apply the volume's BackupKeep retention now")
    on_a_volume("delete", cmd_delete, "delete one backup").add_argument("backup")
    detach = on_a_volume("detach", cmd_detach, "detach a volume's disk from the VM of a Docker host that is down")
    detach.add_argument("--force", action="store_true",
                        help="also from a running VM (that host's Docker engine is down); asks for a confirmation")
    detach.add_argument("--yes", action="store_true", help="confirm --force without asking (scripts)")
    return parser


def main(argv=None, out=sys.stdout, err=sys.stderr, stdin=None, connect=PluginClient,
         progress_every=PROGRESS_EVERY):
    """Run the command ``argv``; ``connect(socket)``: the plugin's client; ``progress_every``:
    seconds between two looks at a running backup's or restore's progress."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    args.input, args.progress_every = stdin or sys.stdin, progress_every
    try:
        client = connect(args.socket or find_socket(args.plugin))
        return args.run(client, args, out)
    except UsageError as error:
        print(f"vsphere-volume: {error}", file=err)
        return EXIT_USAGE
    except PluginUnreachable as error:
        print(f"vsphere-volume: {error}", file=err)
        return EXIT_UNREACHABLE
    except VolumeError as error:
        print(f"vsphere-volume: {error}", file=err)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
