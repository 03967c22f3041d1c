"""Volume store declarations: the ``VOLUME_STORES`` setting.

``VOLUME_STORES`` is a list of specs separated by ``;`` (a character VIC forbids in
specs and labels). Each spec has the syntax of ``vic-machine create --volume-store``
(``cmd/vic-machine/common/volume_stores.go``, ``lib/install/validate/storage.go``):

- ``datastore/path:label`` or ``ds://datastore/path:label``: a vSphere datastore
  folder holding VMDK volumes. A bare ``datastore:label`` means the folder ``VIC``.
  VIC's characters rule applies to the target: none of ``%&*$#@!\\?"<>;'|`` (so no
  query either).
- ``nfs://host/path?uid=N&gid=N&proto=tcp:label``: an NFSv3 export, volumes are
  folders. ``nfs://host/`` is the export's root. As in VIC, uid and gid default to 1000
  and gid follows uid when only uid is given; query parameters VIC does not use are
  accepted and ignored (``port`` is passed to the kernel's NFS client).
- ``file:///abs/path:label``: a folder this host sees (as the plugin sees it); this
  plugin's own kind (uid and gid, default 0, own the volumes' folders).

The label is everything after the last ``:``; it is what users pass as ``VolumeStore``.
Labels follow VIC's rule: any text without ``%&*$#@!\\/:?"<>;'|``; this plugin also
refuses control characters and the names ``.`` and ``..`` (a label names a folder of
the plugin's state).

A spec that cannot be parsed does not stop the others: ``parse_store_specs`` returns it
with its ``problem`` (the store is then unavailable, with that reason, and the other
stores are served). ``parse_store_spec`` raises ConfigError for one spec.
"""

import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError, quoted, shown

log = logging.getLogger(__name__)

DATASTORE, NFS, FILE = "datastore", "nfs", "file"

#: Characters VIC refuses in a label (``common.CheckUnsupportedChars``) ...
LABEL_UNSUPPORTED = re.compile(r"""[%&*$#@!\\/:?"<>;'|]""")
#: ... and in a datastore target (``CheckUnsupportedCharsDatastore``: ``/`` and ``:`` allowed).
DATASTORE_UNSUPPORTED = re.compile(r"""[%&*$#@!\\?"<>;'|]""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LABEL = 255

NFS_DEFAULT_ID = 1000        # VIC's nfs.DefaultUID, used for the gid too
FILE_DEFAULT_ID = 0
_ID_MAX = 2**32 - 2          # uid_t without -1
_NFS_USED = ("uid", "gid", "proto", "port")

_FORMS = "datastore/path:label, nfs://host/path?uid=N&gid=N:label or file:///abs/path:label"


@dataclass(frozen=True)
class StoreSpec:
    """One volume store declaration, parsed; ``problem`` says why it cannot be served."""

    label: str
    kind: str                 # DATASTORE, NFS or FILE
    spec: str                 # the text as declared, for messages and `status`
    datastore: str = ""       # DATASTORE: datastore name
    path: str = ""            # DATASTORE: folder on the datastore; NFS/FILE: absolute path
    host: str = ""            # NFS: server
    uid: int = 0              # NFS: who the plugin acts as; NFS/FILE: owner of volumes' folders
    gid: int = 0
    proto: str = "tcp"        # NFS
    port: int = 0             # NFS: the server's port (0: the client finds it)
    problem: str = ""         # why this declaration is not usable ("" when it is)

    @property
    def shared(self):
        """True when every host on the same vCenter/NFS server sees this store's volumes."""
        return self.kind in (DATASTORE, NFS)

    @property
    def datastore_root(self):
        """DATASTORE: the store root as a datastore path, ``[ds] path``."""
        return f"[{self.datastore}] {self.path}"


def parse_store_specs(text):
    """Every spec of a ``VOLUME_STORES`` value, in order, as StoreSpec.

    Never raises for a bad spec: it comes back with its ``problem`` (under its label when
    one can be read from it, else under the spec's text). A label declared twice is
    unusable (which of the two is meant?): its first declaration carries the problem,
    the later ones are dropped.
    """
    specs = {}
    for raw in (part.strip() for part in (text or "").split(";")):
        if not raw:
            continue
        try:
            spec = parse_store_spec(raw)
        except ConfigError as err:
            spec = StoreSpec(label=_label_of(raw), kind=_kind_of(raw), spec=raw, problem=str(err))
        if spec.label in specs:
            first = specs[spec.label]
            specs[spec.label] = StoreSpec(
                label=first.label, kind=first.kind, spec=first.spec,
                problem=f"volume store label {shown(spec.label)} is declared twice in VOLUME_STORES "
                        f"({shown(first.spec)} and {shown(raw)}): give each store its own label")
            continue
        specs[spec.label] = spec
    return list(specs.values())


def _label_of(raw):
    location, sep, label = raw.rpartition(":")
    return label if sep and location and label and _label_problem(label) is None else raw


def _kind_of(raw):
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else "ds"
    return {"nfs": NFS, "file": FILE}.get(scheme, DATASTORE)


def _label_problem(label):
    bad = LABEL_UNSUPPORTED.search(label) or _CONTROL.search(label)
    if bad:
        return f"unsupported character {quoted(bad.group())}"
    if label in (".", ".."):
        return "it names no folder"
    if len(label) > MAX_LABEL:
        return f"it is {len(label)} characters long (at most {MAX_LABEL})"
    return None


def parse_store_spec(raw):
    """Parse one spec; raise ConfigError saying what is wrong and what is accepted."""
    location, sep, label = raw.rpartition(":")
    if not sep or not location or not label or location.endswith(":/") or label.startswith("/"):
        raise ConfigError(f"volume store {shown(raw)} has no label: write it as {_FORMS}")
    problem = _label_problem(label)
    if problem:
        raise ConfigError(
            f"volume store label {shown(label)} in {shown(raw)} is not valid ({problem}): a label may "
            """hold any character but %&*$#@!\\/:?"<>;'| and control characters""")
    scheme = location.split("://", 1)[0].lower() if "://" in location else "ds"
    if scheme == "nfs":
        return _parse_nfs(raw, location, label)
    if scheme == "file":
        return _parse_file(raw, location, label)
    if scheme == "ds":
        return _parse_datastore(raw, location, label)
    raise ConfigError(
        f"volume store {shown(raw)} has the unsupported scheme {shown(scheme)}: use ds://, nfs:// or file://")


def _parse_datastore(raw, location, label):
    bad = DATASTORE_UNSUPPORTED.search(location)
    if bad:
        raise ConfigError(
            f"volume store {shown(raw)} contains unsupported characters for datastore target: "
            f"unsupported character {quoted(bad.group())} in {quoted(location)} (VIC's rule: none of "
            """%&*$#@!\\?"<>;'| in a datastore target)""")
    datastore, _, path = location.split("://", 1)[-1].partition("/")
    path = path.strip("/") or "VIC"
    if not datastore or any(c in datastore for c in "[]"):
        raise ConfigError(f"volume store {shown(raw)} does not name a datastore: write datastore/path:label")
    if any(part in ("..", ".") for part in path.split("/")):
        raise ConfigError(f"volume store {shown(raw)}: the path may not contain '.' or '..'")
    return StoreSpec(label=label, kind=DATASTORE, spec=raw, datastore=datastore, path=path)


def _go_atoi(raw, key, text):
    """An id as VIC's ``strconv.Atoi`` reads it (optional sign), in uid_t's range."""
    if not re.fullmatch(r"[+-]?[0-9]{1,10}", text) or not 0 <= int(text) <= _ID_MAX:
        raise ConfigError(f"volume store {shown(raw)}: {key} must be a whole number from 0 to {_ID_MAX}, "
                          f"not {shown(text)}")
    return int(text)


def _ids(raw, params, default):
    """(uid, gid) as VIC reads them: the first value of each; gid follows uid when absent."""
    uid_text = params.get("uid", [""])[0]
    gid_text = params.get("gid", [""])[0] or uid_text
    uid = _go_atoi(raw, "uid", uid_text) if uid_text else default
    gid = _go_atoi(raw, "gid", gid_text) if gid_text else default
    return uid, gid


def _parse_nfs(raw, location, label):
    url = urlsplit(location)
    if not url.hostname or not url.path:
        raise ConfigError(f"NFS volume store {shown(raw)} needs a host and an export path: "
                          "nfs://host/path:label (nfs://host/: the export's root)")
    params = parse_qs(url.query, keep_blank_values=True)
    ignored = sorted(set(params) - set(_NFS_USED))
    if ignored:
        log.info("volume store %s: NFS parameter(s) %s ignored (as VIC ignores them)", label, ", ".join(ignored))
    uid, gid = _ids(raw, params, NFS_DEFAULT_ID)
    proto = params.get("proto", ["tcp"])[0].lower() or "tcp"
    if proto not in ("tcp", "udp"):
        raise ConfigError(f"volume store {shown(raw)}: proto must be tcp or udp, not {shown(proto)}")
    port_text = params.get("port", [""])[0]
    if port_text and (not port_text.isdigit() or not 1 <= int(port_text) <= 65535):
        raise ConfigError(f"volume store {shown(raw)}: port must be a number from 1 to 65535, not {shown(port_text)}")
    return StoreSpec(label=label, kind=NFS, spec=raw, host=url.hostname, path=url.path.rstrip("/") or "/",
                     uid=uid, gid=gid, proto=proto, port=int(port_text or 0))


def _parse_file(raw, location, label):
    url = urlsplit(location)
    if url.netloc or not url.path.startswith("/") or url.path == "/":
        raise ConfigError(f"file volume store {shown(raw)} needs an absolute folder: file:///abs/path:label")
    if any(part == ".." for part in url.path.split("/")):
        raise ConfigError(f"file volume store {shown(raw)}: the path may not contain '..'")
    uid, gid = _ids(raw, parse_qs(url.query, keep_blank_values=True), FILE_DEFAULT_ID)
    return StoreSpec(label=label, kind=FILE, spec=raw, path=url.path.rstrip("/"), uid=uid, gid=gid)
