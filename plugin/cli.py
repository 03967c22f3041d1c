"""``vsphere-volume``: the command line of the plugin, talking to its socket.

Exit codes scripts can rely on: 0 done; 1 the plugin refused (its message is printed);
2 bad usage; 3 the plugin cannot be reached.
"""

import argparse
import json
import sys

from .client import PluginClient, PluginUnreachable, find_socket
from .errors import VolumeError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _table(rows, columns):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
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


def build_parser():
    parser = argparse.ArgumentParser(prog="vsphere-volume", description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="vsphere", help="the Docker plugin's name (default: vsphere)")
    parser.add_argument("--socket", help="the plugin's socket path (default: asked from Docker)")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="show the volume stores and volumes")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    status.set_defaults(run=cmd_status)
    return parser


def main(argv=None, out=sys.stdout, err=sys.stderr):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
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
