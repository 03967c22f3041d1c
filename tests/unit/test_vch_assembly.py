"""Sidecar mode's assembly: which stores become VCH stores, and invalid VCH settings."""

from plugin.assembly import build_driver
from plugin.settings import from_env
from plugin.stores.directory import DirectoryStore
from plugin.vch.store import VchStore

from ..fakes import FakeMounter


def test_sidecar_mode_wraps_the_vic_stores_only(tmp_path):
    settings = from_env({"DATA_DIR": str(tmp_path / "data"), "MOUNT_ROOT": str(tmp_path / "mnt"),
                         "VOLUME_STORES": f"file://{tmp_path}/own:default;LocalDS_0/vols:ds0",
                         "VCH_URL": "tcp://127.0.0.1:9", "VCH_TLS_VERIFY": "0"})
    driver = build_driver(settings, mounter=FakeMounter(), backups=False)
    assert isinstance(driver.stores["ds0"], VchStore) and isinstance(driver.stores["default"], DirectoryStore)
    driver.start()
    assert "no vCenter is configured" in driver.health.errors["ds0"]


def test_invalid_vch_settings_make_the_vic_stores_unavailable(tmp_path):
    settings = from_env({"DATA_DIR": str(tmp_path / "data"), "MOUNT_ROOT": str(tmp_path / "mnt"),
                         "VOLUME_STORES": f"file://{tmp_path}/own:default;LocalDS_0/vols:ds0",
                         "VCH_URL": "ftp://vch"})
    driver = build_driver(settings, mounter=FakeMounter(), backups=False)
    driver.start()
    assert driver.health.errors["ds0"].startswith("volume store ds0 (VCH sidecar mode): VCH_URL='ftp://vch' is not")
    driver.create("fine", {})
    assert driver.get("fine")["Status"]["VolumeStore"] == "default"
