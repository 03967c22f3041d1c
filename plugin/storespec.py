"""Volume store declarations: the ``VOLUME_STORES`` setting.

``VOLUME_STORES`` is a list of specs separated by ``;`` (a character VIC forbids in
specs and labels). Each spec has the syntax of ``vic-machine create --volume-store``:

- ``datastore/path:label`` or ``ds://datastore/path:label``: a vSphere datastore
  folder holding VMDK volumes. A bare ``datastore:label`` means the folder ``VIC``.
- ``nfs://host/path?uid=N&gid=N&proto=tcp:label``: an NFSv3 export, volumes are folders.
- ``file:///abs/path:label``: a folder this host sees (as the plugin sees it).

The label is everything after the last ``:``; it is what users pass as ``VolumeStore``.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NFS_PARAMS = {"uid", "gid", "proto"}

DATASTORE, NFS, FILE = "datastore", "nfs", "file"


@dataclass(frozen=True)
class StoreSpec:
    """One parsed volume store declaration."""

    label: str
    kind: str                 # DATASTORE, NFS or FILE
    spec: str                 # the text as declared, for messages and `status`
    datastore: str = ""       # DATASTORE: datastore name
    path: str = ""            # DATASTORE: folder on the datastore; NFS/FILE: absolute path
    host: str = ""            # NFS: server
    uid: int = 0              # NFS/FILE: owner of new volumes' files
    gid: int = 0
    proto: str = "tcp"        # NFS

    @property
    def shared(self):
        """True when every host on the same vCenter/NFS server sees this store's volumes."""
        return self.kind in (DATASTORE, NFS)

    @property
    def datastore_root(self):
        """DATASTORE: the store root as a datastore path, ``[ds] path``."""
        return f"[{self.datastore}] {self.path}"


def parse_store_specs(text):
    """Parse the whole ``VOLUME_STORES`` value into a list of StoreSpec.

    Raises ConfigError naming the bad spec; labels must be unique.
    """
    specs, seen = [], set()
    for raw in (part.strip() for part in (text or "").split(";")):
        if not raw:
            continue
        spec = parse_store_spec(raw)
        if spec.label in seen:
            raise ConfigError(f"volume store label {spec.label!r} is declared twice in VOLUME_STORES")
        seen.add(spec.label)
        specs.append(spec)
    return specs


def parse_store_spec(raw):
    """Parse one spec; raise ConfigError saying what is wrong and what is accepted."""
    location, sep, label = raw.rpartition(":")
    if not sep or not location or location.endswith(":/") or label.startswith("/"):
        raise ConfigError(
            f"volume store {raw!r} has no label: write it as datastore/path:label, "
            "nfs://host/path?uid=N&gid=N:label or file:///abs/path:label")
    if not LABEL_RE.match(label):
        raise ConfigError(
            f"volume store label {label!r} in {raw!r} is not valid: use 1 to 64 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit")
    scheme = location.split("://", 1)[0].lower() if "://" in location else "ds"
    if scheme == "nfs":
        return _parse_nfs(raw, location, label)
    if scheme == "file":
        return _parse_file(raw, location, label)
    if scheme == "ds":
        return _parse_datastore(raw, location.split("://", 1)[-1], label)
    raise ConfigError(
        f"volume store {raw!r} has the unsupported scheme {scheme!r}: use ds://, nfs:// or file://")


def _parse_datastore(raw, location, label):
    datastore, _, path = location.partition("/")
    path = path.strip("/") or "VIC"
    if not datastore or any(c in datastore for c in "[]"):
        raise ConfigError(f"volume store {raw!r} does not name a datastore: write datastore/path:label")
    if any(part in ("..", ".") for part in path.split("/")):
        raise ConfigError(f"volume store {raw!r}: the path may not contain '.' or '..'")
    return StoreSpec(label=label, kind=DATASTORE, spec=raw, datastore=datastore, path=path)


def _ids_from_query(raw, query):
    params = parse_qs(query, keep_blank_values=True)
    unknown = set(params) - NFS_PARAMS
    if unknown:
        raise ConfigError(
            f"volume store {raw!r} has unknown parameter(s) {', '.join(sorted(unknown))}: "
            "accepted are uid, gid and proto")
    ids = {}
    for key in ("uid", "gid"):
        value = params.get(key, ["0"])[-1]
        if not value.isdigit():
            raise ConfigError(f"volume store {raw!r}: {key} must be a non-negative integer, not {value!r}")
        ids[key] = int(value)
    proto = params.get("proto", ["tcp"])[-1].lower()
    if proto not in ("tcp", "udp"):
        raise ConfigError(f"volume store {raw!r}: proto must be tcp or udp, not {proto!r}")
    return ids["uid"], ids["gid"], proto


def _parse_nfs(raw, location, label):
    url = urlsplit(location)
    if not url.hostname or not url.path or url.path == "/":
        raise ConfigError(f"NFS volume store {raw!r} needs a host and an export path: nfs://host/path:label")
    uid, gid, proto = _ids_from_query(raw, url.query)
    return StoreSpec(label=label, kind=NFS, spec=raw, host=url.hostname,
                     path=url.path.rstrip("/"), uid=uid, gid=gid, proto=proto)


def _parse_file(raw, location, label):
    url = urlsplit(location)
    if url.netloc or not url.path.startswith("/") or url.path == "/":
        raise ConfigError(f"file volume store {raw!r} needs an absolute folder: file:///abs/path:label")
    if any(part == ".." for part in url.path.split("/")):
        raise ConfigError(f"file volume store {raw!r}: the path may not contain '..'")
    uid, gid, _ = _ids_from_query(raw, url.query)
    return StoreSpec(label=label, kind=FILE, spec=raw, path=url.path.rstrip("/"), uid=uid, gid=gid)
