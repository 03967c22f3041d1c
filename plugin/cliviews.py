"""How the ``vsphere-volume`` command shows things: aligned tables, and the status.

``status_text(status, colour)`` is ``vsphere-volume status``: the volume stores, a table
of the volumes with their backup health (the plugin's ``Health``, a row per volume and
backup target, with a TARGET column once one is not the local tier: state, last success
and its age, next run, last error), and what operations do (metrics, notifications,
settings that are off and why). ``colour``: the health word in colour (green ok, red
failed or stale, yellow never or unknown), for a terminal.
"""

ANSI = {"ok": "32", "failed": "31", "verification-failed": "31", "stale": "31", "never": "33", "unknown": "33"}
ERROR_SHOWN = 80   # characters of a last error in the table (--json has all of it)

HEALTH_COLUMNS = ["Name", "VolumeStore", "Capacity", "Backup", "Mounts", ("HEALTH", "State"),
                  ("LAST SUCCESS", "LastSuccess"), ("AGE", "Age"), ("NEXT RUN", "NextRun"),
                  ("LAST ERROR", "LastError")]


def table(rows, columns, paint=None):
    """``rows`` (dicts) as aligned text; ``columns``: their keys, shown upper-case, or
    (header, key) pairs. ``paint(key, text)``, when given, colours a cell's text."""
    columns = [c if isinstance(c, tuple) else (c.upper(), c) for c in columns]
    cells = [["" if r.get(key) is None else str(r[key]) for _, key in columns] for r in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, (header, _) in enumerate(columns)]

    def line(texts, keys):
        shown = [(paint(key, text) if paint and key else text) + " " * (width - len(text))
                 for text, key, width in zip(texts, keys, widths, strict=True)]
        return "  ".join(shown).rstrip()
    keys = [key for _, key in columns]
    return "\n".join([line([header for header, _ in columns], [None] * len(columns))] +
                     [line(row, keys) for row in cells])


def _paint(key, text):
    code = ANSI.get(text) if key == "State" else None
    return f"\033[{code}m{text}\033[0m" if code else text


def age(seconds):
    """``45s``, ``12m``, ``3h12m``, ``2d4h``: how long ago, in two units at most; "" for None."""
    if seconds is None:
        return ""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days}d{hours % 24}h"
    if hours:
        return f"{hours}h{minutes % 60}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def health_rows(volumes):
    """One row per volume and backup target: the volume's fields and its ``Health``'s (the
    BACKUP column the schedule of the backups on that target: an off-site copy's own)."""
    rows = []
    for volume in volumes:
        for health in volume.get("Health") or [{}]:
            error = "" if health.get("State") == "ok" else health.get("LastError") or health.get("Verification", "")
            rows.append({**volume, **health, "Age": age(health.get("AgeSeconds")),
                         "Backup": health.get("Schedule") or volume.get("Backup"),
                         "LastError": error if len(error) <= ERROR_SHOWN else error[:ERROR_SHOWN - 1] + "…"})
    return rows


def operations_lines(ops):
    """``Operations`` in lines: where metrics go, notifications, the settings that are off."""
    parts = [f"metrics at {ops['Metrics']}" if ops.get("Metrics") else "no metrics endpoint"]
    if ops.get("Textfile"):
        parts.append(f"textfile {ops['Textfile']}")
    count = ops.get("Notifications", 0)
    parts.append(f"notifications to {count} destination{'s' if count != 1 else ''}" if count else "no notifications")
    return [f"Operations: {'; '.join(parts)}"] + [f"  {key}: {why}" for key, why in ops.get("Errors", {}).items()]


def status_text(status, colour=False):
    """``vsphere-volume status`` of the plugin's ``/Plugin.Status`` answer."""
    lines = []
    if status.get("Error"):
        lines.append(f"plugin settings are invalid: {status['Error']}")
    lines += [f"Scope: {status.get('Scope', '?')}", "Volume stores:"]
    stores = [dict(s, Label=s["Label"] + (" (default)" if s.get("Default") else "")) for s in status["Stores"]]
    lines += [table(stores, ["Label", "Kind", "Scope", "Volumes", "Spec", "Error"]), "Volumes:"]
    rows = health_rows(status["Volumes"])
    columns = list(HEALTH_COLUMNS)
    if any(row.get("Target", "local") != "local" for row in rows):
        columns.insert(HEALTH_COLUMNS.index(("HEALTH", "State")), "Target")
    lines.append(table(rows, columns, _paint if colour else None))
    if "Operations" in status:
        lines += operations_lines(status["Operations"])
    return "\n".join(lines)
