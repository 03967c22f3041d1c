"""VCH_* settings: what is accepted, and what each refusal says."""

import pytest

from plugin.errors import ConfigError
from plugin.settings import from_env as plugin_settings
from plugin.vch.settings import from_env


def settings(**env):
    return from_env(env, exists=lambda path: not path.startswith("/missing"))


def test_sidecar_mode_is_off_without_a_url():
    assert settings() is None and settings(VCH_URL="  ") is None


@pytest.mark.parametrize("given, url", [
    ("tcp://vch.example.com:2376", "tcp://vch.example.com:2376"),
    ("tcp://vch.example.com", "tcp://vch.example.com:2376"),
    ("https://10.0.0.7:2376/", "tcp://10.0.0.7:2376"),
    ("tcp://[fd00::7]:2376", "tcp://[fd00::7]:2376"),
    ("unix:///run/vch/docker.sock", "unix:///run/vch/docker.sock"),
])
def test_urls(given, url):
    assert settings(VCH_URL=given).url == url


def test_verified_tls_is_the_default():
    plain = settings(VCH_URL="tcp://vch:2376")
    assert plain.verify and plain.uses_tls and plain.trust == "TLS verified against the system's CA store"
    full = settings(VCH_URL="tcp://vch:2376", VCH_TLS_CA="/p/ca.pem", VCH_TLS_CERT="/p/cert.pem",
                    VCH_TLS_KEY="/p/key.pem")
    assert (full.ca_file, full.cert_file, full.key_file, full.verify) == \
        ("/p/ca.pem", "/p/cert.pem", "/p/key.pem", True)
    assert full.trust == "TLS verified against VCH_TLS_CA (/p/ca.pem)"
    opted_out = settings(VCH_URL="tcp://vch:2376", VCH_TLS_VERIFY="0")
    assert not opted_out.verify and opted_out.trust == "TLS, certificate not verified (VCH_TLS_VERIFY=0)"


@pytest.mark.parametrize("env, says", [
    ({"VCH_URL": "http://vch:2375"}, "VCH_URL='http://vch:2375' is not valid: use tcp://host:2376 (TLS) or unix"),
    ({"VCH_URL": "vch:2376"}, "is not valid: use tcp://host:2376"),
    ({"VCH_URL": "tcp://vch:2376/v1.25"}, "nothing after the port"),
    ({"VCH_URL": "tcp://vch:http"}, "has an invalid port"),
    ({"VCH_URL": "unix://docker.sock"}, "a unix socket needs an absolute path"),
    ({"VCH_URL": "unix:///run/d.sock", "VCH_TLS_CA": "/p/ca.pem"}, "VCH_TLS_CA set, but VCH_URL=unix:///run/d.sock"),
    ({"VCH_URL": "tcp://vch", "VCH_TLS_CERT": "/p/cert.pem"}, "VCH_TLS_CERT and VCH_TLS_KEY go together"),
    ({"VCH_URL": "tcp://vch", "VCH_TLS_CA": "/p/ca.pem", "VCH_TLS_VERIFY": "0"},
     "VCH_TLS_CA is set but VCH_TLS_VERIFY=0 turns verification off"),
    ({"VCH_URL": "tcp://vch", "VCH_TLS_VERIFY": "maybe"}, "VCH_TLS_VERIFY='maybe' is not valid: use 1"),
    ({"VCH_URL": "tcp://vch", "VCH_TLS_CA": "/missing/ca.pem"}, "VCH_TLS_CA='/missing/ca.pem' does not exist"),
])
def test_refusals_name_the_setting(env, says):
    with pytest.raises(ConfigError) as refused:
        settings(**env)
    assert says in str(refused.value)


def test_the_url_is_shown_with_the_public_settings(tmp_path):
    shown = plugin_settings({"DATA_DIR": str(tmp_path), "VCH_URL": "tcp://vch:2376"}).public()
    assert shown["VCH_URL"] == "tcp://vch:2376"
    assert "VCH_URL" not in plugin_settings({"DATA_DIR": str(tmp_path)}).public()
