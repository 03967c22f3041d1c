"""``vsphere-volume``: the command line of the plugin, talking to its socket.

Exit codes scripts can rely on: 0 done; 1 the plugin refused (its message is printed);
2 bad usage; 3 the plugin cannot be reached.
"""

import argparse
import json
import sys

from .client import PluginClient, PluginUnreachable, find_socket
from .errors import VolumeError
from .stores.fencing import POWERED_OFF, shown_vm

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _table(rows, columns):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_status(client, args, out):
    status = client.call("/Plugin.Status")
    if args.json:
        print(json.dumps(status, indent=2), file=out)
        return EXIT_OK
    if status.get("Error"):
        print(f"plugin settings are invalid: {status['Error']}", file=out)
    print(f"Scope: {status.get('Scope', '?')}", file=out)
    print("Volume stores:", file=out)
    stores = [dict(s, Label=s["Label"] + (" (default)" if s.get("Default") else "")) for s in status["Stores"]]
    print(_table(stores, ["Label", "Kind", "Scope", "Volumes", "Spec", "Error"]), file=out)
    print("Volumes:", file=out)
    print(_table(status["Volumes"], ["Name", "VolumeStore", "Capacity", "Backup", "Mounts"]), file=out)
    return EXIT_OK


PROGRESS_EVERY = 1.0   # seconds between two looks at /Backup.Progress


def _with_progress(client, name, call, what, out):
    """Run ``call()`` in a thread; on a terminal, show what the plugin says the backup or
    restore of ``name`` is doing (``/Backup.Progress``) until it returns its result."""
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
        worker.join(PROGRESS_EVERY)
        if worker.is_alive() and tty:
            try:
                now = client.call("/Backup.Progress", {"Name": name}, timeout=5)["Progress"]
            except VolumeError:
                now = {}
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
LONG = 24 * 3600  # a backup or restore may copy for a long time; the plugin answers when done


def cmd_backup(client, args, out):
    backup = _with_progress(client, args.name,
                            lambda: client.call("/Backup.Create", {"Name": args.name}, timeout=LONG)["Backup"],
                            f"backing up {args.name}", out)
    print(f"backup {backup['Id']} of {args.name} committed ({backup['Method']}, {backup['Size']} bytes)", file=out)
    return EXIT_OK


def cmd_backups(client, args, out):
    backups = client.call("/Backup.List", {"Name": args.name})["Backups"]
    if args.json:
        print(json.dumps(backups, indent=2), file=out)
        return EXIT_OK
    print(_table(backups, BACKUP_COLUMNS), file=out)
    for backup in backups:
        if backup.get("Problem"):
            print(f"backup {backup['Id']} is {backup.get('State', 'damaged')} and cannot be restored: "
                  f"{backup['Problem']} (vsphere-volume delete {args.name} {backup['Id']} deletes it)", file=out)
    return EXIT_OK


def cmd_restore(client, args, out):
    body = {"Name": args.name, "Backup": args.backup, "Target": args.target or "", "Force": args.force}
    done = _with_progress(client, args.target or args.name,
                          lambda: client.call("/Backup.Restore", body, timeout=LONG)["Restore"],
                          f"restoring {args.name}", out)
    line = f"volume {done['Volume']} restored from backup {done['Backup']} of {args.name}"
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
    status = commands.add_parser("status", help="show the volume stores and volumes")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    status.set_defaults(run=cmd_status)

    def on_a_volume(name, run, what, **volume):
        """A command on one volume, named by its first argument."""
        command = commands.add_parser(name, help=what)
        command.add_argument("name", **volume)
        command.set_defaults(run=run)
        return command

    on_a_volume("backup", cmd_backup, "back a volume up now")
    backups = on_a_volume("backups", cmd_backups, "list a volume's backups (also of a removed volume)")
    backups.add_argument("--json", action="store_true")
    restore = on_a_volume("restore", cmd_restore, "restore a backup, as a new volume or in place",
                          help="the backed-up volume")
    restore.add_argument("--backup", default="latest", help="a backup id, or latest (default)")
    restore.add_argument("--as", dest="target", metavar="NEW", help="create volume NEW from the backup")
    restore.add_argument("--force", action="store_true",
                         help="restore in place: replace the volume's data (a backup of it is taken first)")
    on_a_volume("prune", cmd_prune, "apply the volume's BackupKeep retention now")
    on_a_volume("delete", cmd_delete, "delete one backup").add_argument("backup")
    detach = on_a_volume("detach", cmd_detach, "detach a volume's disk from the VM of a Docker host that is down")
    detach.add_argument("--force", action="store_true",
                        help="also from a running VM (that host's Docker engine is down); asks for a confirmation")
    detach.add_argument("--yes", action="store_true", help="confirm --force without asking (scripts)")
    return parser


def main(argv=None, out=sys.stdout, err=sys.stderr, stdin=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    args.input = stdin or sys.stdin
    try:
        client = PluginClient(args.socket or find_socket(args.plugin))
        return args.run(client, args, out)
    except PluginUnreachable as error:
        print(f"vsphere-volume: {error}", file=err)
        return EXIT_UNREACHABLE
    except VolumeError as error:
        print(f"vsphere-volume: {error}", file=err)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
