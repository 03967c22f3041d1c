"""One bad or unreachable volume store never takes the others down: the driver built from
settings as the plugin builds it, with stores that cannot be served among good ones."""

import pytest

from plugin.errors import BackendError, ConfigError
from plugin.settings import from_env


@pytest.fixture
def stores(tmp_path):
    # An NFS store this host cannot mount (this machine has no NFS client; 192.0.2.1 is
    # TEST-NET-1, nobody answers there either), a spec with VIC's port parameter, then a folder store, then a
    # spec VIC refuses (a datastore target with a query).
    return (f"nfs://192.0.2.1/exports/vols?uid=1000&gid=1000&proto=tcp&port=2049:nfsfqdn;"
            f"file://{tmp_path}/local:default;"
            f"LocalDS_0/vols?x=1:broken")


def test_bad_and_unreachable_stores_leave_the_others_working(make_driver, stores, tmp_path, caplog):
    assert [s.label for s in from_env({"VOLUME_STORES": stores}).volume_stores] == ["nfsfqdn", "default", "broken"]
    driver = make_driver(VOLUME_STORES=stores)
    driver.create("works", {})
    assert (tmp_path / "local" / "volumes" / "works").is_dir()
    assert driver.get("works")["Status"]["VolumeStore"] == "default"

    # This machine's kernel has no NFS client (see the README, Tests): that is why it is unavailable.
    with pytest.raises(BackendError, match="^volume store nfsfqdn is unavailable: volume store nfsfqdn: this "
                                           "host's kernel has no NFS client"):
        driver.create("far", {"VolumeStore": "nfsfqdn"})
    with pytest.raises(BackendError, match='^volume store broken is unavailable: .*unsupported character "[?]"'):
        driver.create("odd", {"VolumeStore": "broken"})
    status = {s["Label"]: s for s in driver.describe()["Stores"]}
    assert status["default"]["Error"] == "" and status["default"]["Default"]
    assert status["nfsfqdn"]["Error"] and status["nfsfqdn"]["Spec"].startswith("nfs://192.0.2.1/")
    assert "contains unsupported characters for datastore target" in status["broken"]["Error"]
    assert "volume store broken is unavailable" in caplog.text and "volume store nfsfqdn is unavailable" in caplog.text


def test_a_store_declared_twice_is_unavailable_not_the_plugin(make_driver, tmp_path):
    driver = make_driver(VOLUME_STORES=f"file://{tmp_path}/a:default;file://{tmp_path}/b:x;file://{tmp_path}/c:x")
    driver.create("fine", {})
    with pytest.raises(BackendError, match="declared twice in VOLUME_STORES"):
        driver.create("which", {"VolumeStore": "x"})


def test_settings_other_than_stores_still_refuse_the_plugin():
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        from_env({"LOG_LEVEL": "LOUD"})
