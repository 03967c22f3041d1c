"""A full backup store, as a user meets it: a real tmpfs, filled up, as a plugin's store."""

import os
from pathlib import Path

import pytest

from tests.filesystems import fill, small_tmpfs

from .conftest import FOLDER_STORES, PLUGIN_DATA_DIR
from .dockercli import docker
from .user import backups, inspect
from .user import run_on as run

SMALL = "small"


@pytest.fixture(scope="module")
def small_store(plugin):
    """The plugin with one more folder store, ``small``: a 1 MB tmpfs in its data folder."""
    with small_tmpfs(Path(plugin.state_dir, SMALL), size="1m") as root:
        plugin.configure(VOLUME_STORES=f"{FOLDER_STORES};file://{PLUGIN_DATA_DIR}/{SMALL}:{SMALL}")
        try:
            yield root
        finally:
            plugin.configure(VOLUME_STORES=FOLDER_STORES)


def test_a_full_backup_store_refuses_the_remove_with_the_reason_and_lets_it_go_once_freed(
        plugin, small_store, volume, test_image):
    name = volume("full")
    docker("volume", "create", "-d", plugin.name, "--opt", "Backup=daily", "--opt", f"BackupStore={SMALL}", name)
    run(test_image, name, "echo 'precious' > /data/f")
    filler = fill(small_store)
    try:
        refused = docker("volume", "rm", name, check=False)
        assert refused.returncode != 0
        said = f"volume {name} was not removed: its final backup failed: cannot write the backup lease"
        assert said in refused.stderr
        assert "No space left on device; the backup store is full" in refused.stderr
        assert "internal error" not in refused.stderr
        status = inspect(name)["Status"]["Backup"]
        assert status["LastBackup"]["Result"] == "failed" and "the backup store is full" in status["LastError"]
        assert os.listdir(small_store / "backups" / ".leases") == []      # no half-taken lease left
        assert run(test_image, name, "cat /data/f") == "precious\n"
    finally:
        filler.unlink()
    docker("volume", "rm", name)                                        # at once: no lease to wait out
    assert name not in docker("volume", "ls", "-q").stdout.split()
    assert [b["Origin"] for b in backups(plugin, name)] == ["final"]
