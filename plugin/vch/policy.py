"""The plugin's own options of VCH volumes, kept by the plugin outside VIC's folders.

A VCH knows only VIC's options (``VolumeStore``, ``Capacity``) and refuses others, so
``Backup``, ``BackupKeep``, ``BackupStore`` and ``RestoreFrom`` of a volume created
through the sidecar are never sent to it. They are kept in one JSON file in the
plugin's state folder (``<data folder>/state/vch-policies.json``), not on the datastore:
nothing is added to the volume's folder (a VCH owns it, and lists every entry of
``volumes/``), and a create needs no vCenter round trip beyond the VCH's own work.

Consequence: the policy belongs to the Docker host whose sidecar created the volume.
Another sidecar of the same VCH lists the volume without a policy (its schedule is not
run twice); the backups themselves are on the datastore, listed and restorable from
any host.

File: ``{"volumes": {name: {option: value, ...}}}``, the user's keys and values as
given, replaced atomically on every change (``fsutil.atomic_write_json``).
"""

import logging
import os
import threading

from ..errors import BackendError, ConfigError
from ..fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)

FILE_NAME = "vch-policies.json"


class PolicyBook:
    """``{volume name: {option: value}}`` persisted in ``path``. Thread-safe."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._policies = None          # loaded by ``load``

    def load(self):
        """Read the file once (later calls do nothing). A missing file is an empty book;
        an unreadable one raises ConfigError, so that no policy is silently lost."""
        with self._lock:
            if self._policies is not None:
                return
            try:
                raw = read_json(self.path)
            except FileNotFoundError:
                raw = {"volumes": {}}
            except (OSError, ValueError) as err:
                raise ConfigError(f"the backup policies of VCH volumes in {self.path} cannot be read ({err}): "
                                  "repair or move the file, then restart the plugin") from None
            volumes = raw.get("volumes") if isinstance(raw, dict) else None
            if not isinstance(volumes, dict):
                raise ConfigError(f"{self.path} is not a policy file (no \"volumes\" object): "
                                  "repair or move it, then restart the plugin")
            self._policies = {str(name): {str(k): str(v) for k, v in options.items()}
                              for name, options in volumes.items() if isinstance(options, dict)}

    def get(self, name):
        """The recorded options of volume ``name`` ({} when none)."""
        with self._lock:
            return dict((self._policies or {}).get(name, {}))

    def set(self, name, options):
        """Record ``options`` for volume ``name`` ({} drops the entry). Raises BackendError
        naming the file when it cannot be written; the book is then unchanged."""
        with self._lock:
            current = dict(self._policies or {})
            if options:
                current[name] = dict(options)
            elif name not in current:
                return
            else:
                del current[name]
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                atomic_write_json(self.path, {"volumes": current})
            except OSError as err:
                raise BackendError(f"cannot record the options of volume {name} in {self.path}: "
                                   f"{err.strerror or err}") from None
            self._policies = current

    def discard(self, name):
        """Drop volume ``name``'s entry; a failure is logged (the volume is gone already)."""
        try:
            self.set(name, {})
        except BackendError as err:
            log.warning("%s; the entry stays until the next change of that name", err)
