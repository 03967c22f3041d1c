"""The contract every volume store implements.

A store knows where one declared ``VOLUME_STORES`` entry keeps its volumes and how to
create, find, attach and delete them. It knows nothing of HTTP or of Docker's mount
bookkeeping: the driver (``plugin.driver``) counts mounts, takes locks and decides when
to attach and detach.

Concurrency contract: the driver calls a store method for a volume only while holding
that volume's lock, so a store need not serialize calls for one name; calls for
different names may run at the same time.

Failure contract: ``create`` either completes or leaves nothing behind (no half-made
folder a later ``discover`` would list). ``remove`` deletes only the volume's own data
and metadata. ``attach`` and ``detach`` are idempotent, so the driver can repeat them
after a crash or restart.
"""

import abc
import json
from dataclasses import dataclass, field

METADATA_FILE = "DockerMetaData"


def docker_metadata(name, driver_opts, driver="vsphere"):
    """The DockerMetaData JSON object as VIC writes it (keys and shapes as VIC's
    ``createVolumeMetadata``: the volume's first container and its image come from the
    ``container`` and ``image`` options a VCH gives for a container's volume)."""
    opts = dict(driver_opts)
    return {
        "Driver": driver,
        "DriverOpts": opts,
        "Name": name,
        "Labels": {},
        "AttachHistory": [opts.get("container", "")],
        "Image": opts.get("image", ""),
    }


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def metadata_bytes(metadata):
    """DockerMetaData as VIC writes it: Go's ``json.Marshal`` output (compact, UTF-8,
    no newline, HTML characters escaped). Top-level keys keep their order (the fields of
    VIC's struct); the keys of maps below them are sorted, as Go sorts map keys."""
    ordered = {key: dict(sorted(value.items())) if isinstance(value, dict) else value
               for key, value in metadata.items()}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)   # only inside strings: JSON has them nowhere else
    return text.encode("utf-8")


@dataclass
class StoredVolume:
    """A volume as found in a store by ``discover``.

    ``metadata`` is the parsed DockerMetaData (``{}`` when missing or unreadable, with
    the reason in ``problem``); ``created_at`` an RFC 3339 time or "".
    """

    name: str
    metadata: dict = field(default_factory=dict)
    created_at: str = ""
    problem: str = ""


class VolumeStore(abc.ABC):
    """One declared volume store. ``spec`` is its ``storespec.StoreSpec``."""

    #: True for a store that follows the changes made outside this plugin itself and
    #: tells the driver (a VCH's); the others are listed again periodically when shared.
    refreshes_itself = False

    def __init__(self, spec):
        self.spec = spec

    @property
    def label(self):
        return self.spec.label

    @property
    def shared(self):
        """True when other Docker hosts see the same volumes (``global`` scope)."""
        return self.spec.shared

    @abc.abstractmethod
    def open(self):
        """Prepare the store at plugin start (create its top folders if missing).

        Raises ConfigError or BackendError with a message for the log; the plugin
        then serves the other stores and answers this one's calls with that error.
        """

    @abc.abstractmethod
    def discover(self, known=None):
        """Return a list of StoredVolume: every volume in the store, however created.

        ``known``: {name: StoredVolume} the caller had from an earlier listing; a store
        whose metadata reads are costly may reuse those of names still there instead of
        reading them again (a periodic refresh then costs a folder listing).
        """

    def refresh(self, known):
        """List the store again, cheaply: every volume in it now, where those in ``known``
        ({name: StoredVolume}, the last listing) may be returned as they are known; a
        periodic refresh, to follow what other hosts create and remove. Default: discover."""
        return self.discover(known=known)

    @abc.abstractmethod
    def lookup(self, name):
        """The StoredVolume of ``name`` as the store holds it now, or None when it has
        none: one bounded look (a volume another host made since the last listing)."""

    @abc.abstractmethod
    def create(self, name, options, metadata):
        """Create volume ``name`` with validated ``options`` (options.VolumeOptions).

        ``metadata`` is the DockerMetaData object to write. Raises Conflict when the
        volume exists in the store already; leaves nothing behind on failure.
        """

    @abc.abstractmethod
    def remove(self, name):
        """Delete the volume's data and metadata. Raises InUse if attached elsewhere."""

    @abc.abstractmethod
    def attach(self, name, wait=0.0):
        """Make the volume usable on this host; return the folder to bind into containers.

        Idempotent: when the volume is already attached (for example after a plugin
        restart) it returns the same folder without doing the work again. ``wait``: the
        most seconds to wait for another Docker host to release the volume (Mount's; a
        store whose volumes many hosts use at once ignores it).
        """

    @abc.abstractmethod
    def detach(self, name):
        """Undo ``attach``. Idempotent."""

    def holders(self, name):
        """The VMs that have volume ``name``'s disk attached, ``[{"VM", "PowerState",
        "ThisHost"}]`` (``vsphere-volume detach`` shows them); none for a store whose
        volumes are not disks."""
        return []

    def release(self, name, force=False, only=None):
        """Detach volume ``name``'s disk from the other VMs that hold it (``stores.fencing``):
        powered-off ones, running ones with ``force``, those named in ``only`` alone when
        given. Returns (their names, this host's VM name when it holds the disk too, else
        ""): the caller detaches it here with ``detach``, once no container mounts it.
        Nothing to do for a store whose volumes are not disks."""
        return [], ""

    def status(self, name):
        """Extra ``docker volume inspect`` Status fields, from memory only (no I/O)."""
        return {}

    def describe(self):
        """This store for ``vsphere-volume status``: label, kind, spec, scope."""
        return {
            "Label": self.label,
            "Kind": self.spec.kind,
            "Spec": self.spec.spec,
            "Scope": "global" if self.shared else "local",
        }
