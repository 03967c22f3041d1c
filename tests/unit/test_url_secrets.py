"""A password written into a URL setting is never repeated: not in an Err, not in
Plugin.Status, not in the log."""

import logging

import pytest

from plugin.errors import ConfigError, VolumeError
from plugin.redact import redact_url
from plugin.settings import from_env
from plugin.vch.settings import from_env as vch_from_env
from plugin.vsphere.settings import from_env as vsphere_from_env

SECRET = "Hunter2-PW"


@pytest.mark.parametrize("url", [
    f"http://admin:{SECRET}@vcenter.example/sdk",      # a wrong scheme: checked after the user-info
    f"https://:{SECRET}@/sdk",
    f"admin:{SECRET}@vcenter.example",
    f"https://admin:{SECRET}@vcenter.example:99999/sdk",
    f"https://ad/min:{SECRET}@vcenter.example/sdk",
])
def test_a_vsphere_url_with_a_password_is_refused_without_repeating_it(url):
    with pytest.raises(ConfigError) as refused:
        vsphere_from_env({"VSPHERE_URL": url, "VSPHERE_USER": "u", "VSPHERE_PASSWORD": "p"})
    assert SECRET not in str(refused.value) and "must not contain a user or password" in str(refused.value)


@pytest.mark.parametrize("url", [f"tcp://admin:{SECRET}@vch:2376", f"ftp://:{SECRET}@vch", f"admin:{SECRET}@vch"])
def test_a_vch_url_with_a_password_is_refused_without_repeating_it(url):
    with pytest.raises(ConfigError) as refused:
        vch_from_env({"VCH_URL": url})
    assert SECRET not in str(refused.value) and "must not contain a user or password" in str(refused.value)


def test_the_driver_status_and_the_log_never_show_it(make_driver, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"http://admin:{SECRET}@vcenter.example/sdk"
    driver = make_driver(VOLUME_STORES=f"file://{tmp_path}/fast:default;ds1/vols:vmdk",
                         VSPHERE_URL=url, VSPHERE_USER="u", VSPHERE_PASSWORD="p",
                         VCH_URL=f"tcp://admin:{SECRET}@vch:2376")
    with pytest.raises(VolumeError) as refused:
        driver.create("v", {"VolumeStore": "vmdk"})
    assert SECRET not in str(refused.value)
    assert SECRET not in str(driver.describe())
    assert SECRET not in caplog.text


def test_the_settings_shown_at_start_never_show_it(tmp_path):
    settings = from_env({"DATA_DIR": str(tmp_path), "VCH_URL": f"tcp://admin:{SECRET}@vch:2376",
                         "VOLUME_STORES": f"nfs://u:{SECRET}@nfs.example/export:shared"})
    assert SECRET not in str(settings.public())


def test_redact_url_keeps_what_is_not_a_secret():
    assert redact_url("https://vcenter.example/sdk") == "https://vcenter.example/sdk"
    assert redact_url(f"https://u:{SECRET}@h/sdk") == "https://***@h/sdk"


def test_a_redactor_takes_the_longest_secret_first_and_leaves_no_part_of_it():
    from plugin.redact import Redactor
    redact = Redactor(["abc", "abcdef", ""], mask="…")
    assert redact("x abcdef y abc z") == "x … y … z"
    assert Redactor(["s3cret"])("key s3cret") == "key <redacted>"
