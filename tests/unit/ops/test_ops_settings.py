"""METRICS_* and NOTIFY_* settings: a bad value turns its feature off with the reason."""

from datetime import timedelta

import pytest

from plugin.errors import ConfigError
from plugin.ops.delivery import (
    APPRISE,
    WEBHOOK,
    parse_destinations,
    read_destinations,
    redact,
    scrub,
)
from plugin.ops.settings import ops_settings_from_env, parse_address


@pytest.mark.parametrize("text, expected", [
    ("", None), ("  ", None),
    ("127.0.0.1:9100", ("127.0.0.1", 9100)),
    ("localhost:1", ("localhost", 1)),
    ("[::1]:9100", ("::1", 9100)),
    (":9100", ("0.0.0.0", 9100)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9100", "host:", "host:port", "host:0", "host:65536", "::1:9100",
                                  "http://host:9100", "a b:1"])
def test_bad_addresses_say_what_is_accepted(text):
    with pytest.raises(ConfigError, match=r"METRICS_ADDRESS=.* is not valid: use host:port"):
        parse_address(text)


def test_defaults_are_off():
    settings = ops_settings_from_env({})
    assert (settings.metrics_address, settings.textfile_dir, settings.notify_urls_file) == (None, "", "")
    assert settings.textfile_interval == 30 and settings.stale_grace == timedelta(hours=1)
    assert settings.errors == {}


def test_every_bad_value_is_reported_and_only_its_feature_is_off():
    settings = ops_settings_from_env({"METRICS_ADDRESS": "nonsense", "METRICS_TEXTFILE_DIR": "/var/lib/node",
                                      "METRICS_TEXTFILE_INTERVAL": "1", "BACKUP_STALE_GRACE_MINUTES": "x",
                                      "NOTIFY_URLS_FILE": "/run/secrets/urls"})
    assert sorted(settings.errors) == ["BACKUP_STALE_GRACE_MINUTES", "METRICS_ADDRESS", "METRICS_TEXTFILE_INTERVAL"]
    assert settings.errors["METRICS_TEXTFILE_INTERVAL"] == (
        "METRICS_TEXTFILE_INTERVAL='1' is not valid: use a whole number from 5 to 3600")
    assert settings.metrics_address is None and settings.textfile_dir == ""
    assert settings.stale_grace == timedelta(hours=1)
    assert settings.notify_urls_file == "/run/secrets/urls"


def test_textfile_folder_must_be_absolute():
    settings = ops_settings_from_env({"METRICS_TEXTFILE_DIR": "relative/dir"})
    assert "use an absolute folder path" in settings.errors["METRICS_TEXTFILE_DIR"]


def test_url_file_lines_and_comments():
    text = ("# webhooks\n\nhttps://hooks.example.com/services/T0KEN/SECRET\n"
            "  json://127.0.0.1:8080/hook?token=abcdef  \nmailto://user:pass@example.com\n")
    found = parse_destinations(text)
    assert [(d.kind, d.line) for d in found] == [(WEBHOOK, 3), (APPRISE, 4), (APPRISE, 5)]
    assert found[1].url == "json://127.0.0.1:8080/hook?token=abcdef"
    assert [str(d) for d in found] == ["webhook on line 3 (https://hooks.example.com/…)",
                                       "apprise on line 4 (json://…)", "apprise on line 5 (mailto://…)"]
    assert "SECRET" not in repr(found)


@pytest.mark.parametrize("line, message", [
    ("hooks.example.com/SECRET-TOKEN", "line 1 is not a URL: use scheme://"),
    ("https:///SECRET-TOKEN", "line 1: a webhook URL needs a host"),
    ("nosuchservice://SECRET-TOKEN@host", "line 1: apprise does not accept this URL (scheme 'nosuchservice')"),
])
def test_a_bad_url_names_its_line_never_the_url(line, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        parse_destinations(line)
    assert "SECRET-TOKEN" not in str(raised.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"NOTIFY_URLS_FILE='.*missing' cannot be read: FileNotFoundError"):
        read_destinations(str(tmp_path / "missing"))


def test_redact_and_scrub_keep_no_secret():
    url = "https://user:pa%24ss@hooks.example.com:8443/services/T0KEN/B1G-SECRET?sig=s1gnature"
    assert redact(url) == "https://hooks.example.com:8443/…"
    assert redact("tgram://123456:BOT-TOKEN/chat") == "tgram://…"
    said = (f"HTTPSConnectionPool(host='hooks.example.com', port=8443): Max retries exceeded with url: "
            f"/services/T0KEN/B1G-SECRET?sig=s1gnature user pa$ss {url}")
    cleaned = scrub(said, url)
    for secret in ("T0KEN", "B1G-SECRET", "s1gnature", "pa$ss", "pa%24ss"):
        assert secret not in cleaned
    assert "hooks.example.com" in cleaned
    assert "BOT-TOKEN" not in scrub("sending to 123456:BOT-TOKEN failed", "tgram://123456:BOT-TOKEN/chat")


class Reading(dict):
    """An environment that records which keys are read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_every_operations_setting_is_declared_with_its_default_and_documented():
    import json
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    declared = {e["name"]: e for e in json.loads((root / "config.json").read_text())["env"]}
    readme = (root / "README.md").read_text()
    env = Reading()
    defaults = ops_settings_from_env(env)
    assert env.read == {"METRICS_ADDRESS", "METRICS_TEXTFILE_DIR", "METRICS_TEXTFILE_INTERVAL", "NOTIFY_URLS_FILE",
                        "BACKUP_STALE_GRACE_MINUTES"}
    for key in env.read:
        assert key in declared and len(declared[key]["description"]) > 40, key
        assert f"`{key}`" in readme.split("## Settings")[1].split("\n## ")[0], f"{key} is not in README's settings"
    as_declared = ops_settings_from_env({key: declared[key]["value"] for key in env.read})
    assert as_declared == defaults and as_declared.errors == {}
    mounts = {m["name"]: m for m in json.loads((root / "config.json").read_text())["mounts"]}
    assert mounts["metrics-textfile"]["destination"] in declared["METRICS_TEXTFILE_DIR"]["description"]
