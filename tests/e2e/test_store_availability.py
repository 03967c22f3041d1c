"""One bad or unreachable volume store makes only that store unavailable, through Docker:
an NFS store that cannot be mounted (declared as VIC's own suite declares one, port=
included) and a spec VIC refuses, before and after the folder store."""

from .conftest import FOLDER_STORES
from .dockercli import docker
from .test_vmdk_volumes import wait_for_log
from .user import inspect, run_on, volume_names, vv

# This machine's kernel has no NFS client (README, Tests): the store cannot be mounted, and
# says so. (192.0.2.1 is TEST-NET-1: with a client, no server would answer there either.)
NFS_STORE = "nfs://192.0.2.1/mnt/nfs-vol?uid=0&gid=0&proto=tcp&port=2049:nfsfqdn"
BAD_STORE = "LocalDS_0/vols?x=1:broken"


def test_an_nfs_store_that_cannot_be_mounted_leaves_the_folder_store_working(plugin, volume, test_image):
    plugin.configure(VOLUME_STORES=f"{NFS_STORE};{FOLDER_STORES};{BAD_STORE}")
    try:
        name = volume("served")
        docker("volume", "create", "-d", plugin.name, name)
        assert inspect(name)["Status"]["VolumeStore"] == "default"
        assert run_on(test_image, name, "echo still here > /data/f && cat /data/f") == "still here\n"

        refused = docker("volume", "create", "-d", plugin.name, "--opt", "VolumeStore=nfsfqdn", "far", check=False)
        said = ("volume store nfsfqdn is unavailable: volume store nfsfqdn: this host's "
                f"kernel has no NFS client, so {NFS_STORE} cannot be mounted")
        assert refused.returncode != 0 and said in refused.stderr
        assert "far" not in volume_names()

        _, out, _ = vv(plugin, "status")
        rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
        assert "this host's kernel has no NFS client" in rows["nfsfqdn"]
        assert "contains unsupported characters for datastore target" in rows["broken"]
        assert rows["default"].split()[1] == "(default)"
        assert wait_for_log(plugin, "volume store nfsfqdn is unavailable")
        assert wait_for_log(plugin, "volume store broken is unavailable", "unsupported character")
    finally:
        plugin.configure(VOLUME_STORES=FOLDER_STORES)
