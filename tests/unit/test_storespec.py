import pytest

from plugin.errors import ConfigError
from plugin.storespec import DATASTORE, FILE, NFS, parse_store_spec, parse_store_specs


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
    ("ds/path:bad?label", "label 'bad?label'"),
    ("ds/path:a*b", 'unsupported character "*"'),
    ("ds/path:..", "label '..'"),
    ("ds/path:tab\there", 'unsupported character "\\t"'),
    ("nfs://host:label", "needs a host and an export path"),
    ("nfs://h/p?uid=abc:x", "uid must be a whole number from 0 to 4294967294, not 'abc'"),
    ("nfs://h/p?uid=-1:x", "uid must be a whole number"),
    ("nfs://h/p?proto=sctp:x", "proto must be tcp or udp"),
    ("nfs://h/p?port=http:x", "port must be a number from 1 to 65535"),
    ("file://relative/p:x", "needs an absolute folder"),
    ("http://h/p:x", "unsupported scheme 'http'"),
    ("ds/../etc:x", "may not contain"),
    # VIC refuses these characters in a datastore target, a query among them
    ("ds/path?x=1:x", ('contains unsupported characters for datastore target: unsupported character "?" in '
                      '"ds/path?x=1"')),
    ("ds://ds/pa#th:x", 'unsupported character "#"'),
])
def test_bad_specs_say_what_is_wrong(text, says):
    with pytest.raises(ConfigError) as err:
        parse_store_spec(text)
    assert says in str(err.value)
    # In VOLUME_STORES the same spec is kept with its problem: that store only is unavailable.
    good, bad = parse_store_specs(f"file:///srv/v:ok;{text}")
    assert (good.label, good.problem) == ("ok", "") and bad.spec == text and says in bad.problem


def test_a_bad_spec_keeps_its_label_and_kind_when_they_can_be_read():
    (spec,) = parse_store_specs("nfs://h/p?uid=abc:shared")
    assert (spec.label, spec.kind) == ("shared", NFS) and "uid must be" in spec.problem
    (spec,) = parse_store_specs("ds/path")
    assert (spec.label, spec.kind) == ("ds/path", DATASTORE) and "has no label" in spec.problem


def test_a_label_declared_twice_is_unavailable():
    first, other = parse_store_specs("ds/a:x;ds/b:y;ds/c:x")
    assert (first.label, first.spec) == ("x", "ds/a:x") and other.label == "y" and not other.problem
    assert "declared twice in VOLUME_STORES ('ds/a:x' and 'ds/c:x')" in first.problem


@pytest.mark.parametrize("label", ["my store", "_x", "-x", "Ünïcode", "a.b", "x" * 100])
def test_labels_follow_vics_rule(label):
    assert parse_store_spec(f"ds/path:{label}").label == label


def test_nfs_specs_as_vic_reads_them():
    # VIC's own NFS suite declares port=2049: parameters VIC does not use are ignored.
    spec = parse_store_spec("nfs://10.0.0.5/mnt/nfs-vol?uid=0&gid=0&proto=tcp&port=2049&retry=3:nfsfqdn")
    assert (spec.host, spec.path, spec.uid, spec.gid, spec.proto, spec.port) == (
        "10.0.0.5", "/mnt/nfs-vol", 0, 0, "tcp", 2049)
    defaults = parse_store_spec("nfs://h/p:x")
    assert (defaults.uid, defaults.gid, defaults.port) == (1000, 1000, 0)      # VIC's nfs.DefaultUID
    assert (parse_store_spec("nfs://h/p?uid=1234:x").gid, parse_store_spec("nfs://h/p?uid=%2B7:x").uid) == (1234, 7)
    first = parse_store_spec("nfs://h/p?uid=5&uid=6:x")
    assert (first.uid, first.gid) == (5, 5)                                    # Go's Query().Get: the first
    root = parse_store_spec("nfs://h/:x")                                      # the export's root
    assert (root.host, root.path) == ("h", "/")


def test_file_specs_default_to_root_with_gid_following_uid():
    assert (parse_store_spec("file:///srv/v:x").uid, parse_store_spec("file:///srv/v:x").gid) == (0, 0)
    assert parse_store_spec("file:///srv/v?uid=33:x").gid == 33
