import pytest

from plugin.errors import ConfigError
from plugin.storespec import DATASTORE, FILE, NFS, parse_store_specs


def test_the_three_forms():
    specs = parse_store_specs(
        "vsanDatastore/volumes/my-vch-data:backed-up-encrypted;"
        " iSCSI-nvme:default ;nfs://10.118.68.164/mnt/nfs-vol?uid=1000&gid=50&proto=tcp:shared;"
        "file:///srv/volumes:local")
    ds, bare, nfs, local = specs
    assert (ds.kind, ds.datastore, ds.path, ds.label) == (DATASTORE, "vsanDatastore", "volumes/my-vch-data",
                                                          "backed-up-encrypted")
    assert ds.datastore_root == "[vsanDatastore] volumes/my-vch-data"
    assert bare.datastore_root == "[iSCSI-nvme] VIC"
    assert (nfs.kind, nfs.host, nfs.path, nfs.uid, nfs.gid, nfs.proto) == (NFS, "10.118.68.164", "/mnt/nfs-vol",
                                                                         1000, 50, "tcp")
    assert (local.kind, local.path, local.shared) == (FILE, "/srv/volumes", False)
    assert ds.shared and nfs.shared


@pytest.mark.parametrize("text, says", [
    ("ds/path", "has no label"),
    ("ds/path:bad label", "label 'bad label'"),
    ("ds/path:-x", "label '-x'"),
    ("ds/a:x;ds/b:x", "declared twice"),
    ("nfs://host:label", "needs a host and an export path"),
    ("nfs://h/p?uid=abc:x", "uid must be a non-negative integer"),
    ("nfs://h/p?rw=1:x", "unknown parameter(s) rw"),
    ("nfs://h/p?proto=sctp:x", "proto must be tcp or udp"),
    ("file://relative/p:x", "needs an absolute folder"),
    ("http://h/p:x", "unsupported scheme 'http'"),
    ("ds/../etc:x", "may not contain"),
])
def test_bad_specs_say_what_is_wrong(text, says):
    with pytest.raises(ConfigError) as err:
        parse_store_specs(text)
    assert says in str(err.value)
