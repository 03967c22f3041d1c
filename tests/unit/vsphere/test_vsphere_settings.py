"""VSPHERE_* plugin settings -> VSphereSettings, and the errors a user sees."""

import pytest

from plugin.errors import ConfigError
from plugin.vsphere.settings import from_env, normalize_thumbprint

BASE = {"VSPHERE_URL": "https://vc.example.com", "VSPHERE_USER": "admin@vsphere.local",
        "VSPHERE_PASSWORD": "hunter2"}
SHA1 = "F2:3D:CD:02:6B:C5:92:67:6E:56:40:57:36:5A:B9:B6:A0:4E:5E:C8"


def env(**changes):
    values = dict(BASE)
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def error(mapping, **kwargs):
    with pytest.raises(ConfigError) as raised:
        from_env(mapping, **kwargs)
    return str(raised.value)


def test_a_minimal_configuration():
    settings = from_env(env(VSPHERE_DATACENTER="/DC0/", VSPHERE_VM="docker-01"))
    assert settings.url == "https://vc.example.com/sdk"
    assert (settings.datacenter, settings.vm) == ("DC0", "docker-01")
    assert not settings.insecure and not settings.thumbprint and not settings.ca_file
    assert "hunter2" not in repr(settings)


def test_the_url_must_be_https_with_a_host():
    assert "must use https://" in error(env(VSPHERE_URL="http://vc.example.com/sdk"))
    assert "VSPHERE_URL is required" in error(env(VSPHERE_URL=None))
    assert "must not contain a user or password" in error(env(VSPHERE_URL="https://a:b@vc/sdk"))
    assert from_env(env(VSPHERE_URL="vc.example.com:8443")).url == "https://vc.example.com:8443/sdk"


def test_password_or_password_file_exactly_one():
    assert "not both" in error(env(VSPHERE_PASSWORD_FILE="/run/secrets/pw"))
    assert "a vCenter password is required" in error(env(VSPHERE_PASSWORD=None))
    settings = from_env(env(VSPHERE_PASSWORD=None, VSPHERE_PASSWORD_FILE="/run/secrets/pw"),
                        read_file=lambda path: "from-file\n")
    assert settings.password == "from-file"


def test_an_unreadable_password_file_names_the_file():
    def unreadable(path):
        raise PermissionError(13, "Permission denied")
    message = error(env(VSPHERE_PASSWORD=None, VSPHERE_PASSWORD_FILE="/run/secrets/pw"), read_file=unreadable)
    assert message == "VSPHERE_PASSWORD_FILE='/run/secrets/pw' cannot be read: Permission denied"


def test_one_way_to_trust_the_certificate():
    message = error(env(VSPHERE_CA_FILE="/ca.pem", VSPHERE_INSECURE="1"), exists=lambda p: True)
    assert "VSPHERE_CA_FILE and VSPHERE_INSECURE are both set" in message
    assert "does not exist" in error(env(VSPHERE_CA_FILE="/nope.pem"), exists=lambda p: False)
    assert "VSPHERE_INSECURE='maybe' is not valid: use 1" in error(env(VSPHERE_INSECURE="maybe"))
    assert from_env(env(VSPHERE_INSECURE="true")).insecure


def test_thumbprints_are_normalized_or_refused():
    assert from_env(env(VSPHERE_THUMBPRINT=SHA1)).thumbprint == SHA1.replace(":", "").lower()
    assert len(normalize_thumbprint("ab" * 32)) == 64
    assert "SHA-1 (40 hex digits) or SHA-256 (64 hex digits)" in error(env(VSPHERE_THUMBPRINT="AB:CD"))
