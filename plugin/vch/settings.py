"""Settings of VCH sidecar mode: how the plugin reaches the VCH's Docker API.

Read from the plugin settings (``docker plugin set``):

- ``VCH_URL``: ``tcp://host:port`` (TLS; ``https://`` means the same; port 2376 when
  omitted) or ``unix:///path/docker.sock``. Empty: sidecar mode is off.
- ``VCH_TLS_CA``: PEM file of the CA that signed the VCH's server certificate. Without it
  the certificate is verified against the system's CA store.
- ``VCH_TLS_CERT`` and ``VCH_TLS_KEY``: this plugin's client certificate and key (both or
  neither), for a VCH deployed with client verification (vic-machine ``--tls-cacert``).
- ``VCH_TLS_VERIFY``: ``1`` (default) verifies the VCH's certificate; ``0`` is the
  explicit opt-out (the connection is still TLS, as ``docker --tls`` without verify).

Every error is a ConfigError naming the setting, what was wrong and what is accepted.
"""

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError, shown
from ..redact import has_userinfo, shown_url
from ..settingvalues import flag

DEFAULT_TLS_PORT = 2376


@dataclass(frozen=True)
class VchSettings:
    """Where the VCH's Docker API is and how its TLS is checked."""

    url: str                # tcp://host:port or unix:///path, normalized
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True

    @property
    def uses_tls(self):
        return self.url.startswith("tcp://")

    @property
    def trust(self):
        """How the VCH's certificate is checked, for messages."""
        if not self.uses_tls:
            return "a unix socket, no TLS"
        if not self.verify:
            return "TLS, certificate not verified (VCH_TLS_VERIFY=0)"
        return f"TLS verified against VCH_TLS_CA ({self.ca_file})" if self.ca_file else \
            "TLS verified against the system's CA store"


def _verify(mapping):
    return flag(mapping, "VCH_TLS_VERIFY", True, meaning=("verify, the default", "do not verify the VCH's certificate"))


def _url(text):
    if has_userinfo(text):   # first: no message below may repeat a password
        raise ConfigError(f"VCH_URL={shown_url(text)} must not contain a user or password: the VCH's "
                          "Docker API authenticates with TLS client certificates (VCH_TLS_CERT, VCH_TLS_KEY)")
    parts = urlsplit(text)
    if parts.scheme == "unix":
        if not parts.path.startswith("/"):
            raise ConfigError(f"VCH_URL={shown(text)}: a unix socket needs an absolute path, "
                              "unix:///path/docker.sock")
        return f"unix://{parts.path}"
    if parts.scheme not in ("tcp", "https"):
        raise ConfigError(f"VCH_URL={shown(text)} is not valid: use tcp://host:2376 (TLS) or "
                          "unix:///path/docker.sock")
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"VCH_URL={shown(text)} is not valid: use tcp://host:port, nothing after the port")
    try:
        port = parts.port or DEFAULT_TLS_PORT
    except ValueError:
        raise ConfigError(f"VCH_URL={shown(text)} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"tcp://{host}:{port}"


def from_env(mapping=None, exists=os.path.isfile):
    """VchSettings from the plugin settings (default ``os.environ``), or None when
    ``VCH_URL`` is empty. Raises ConfigError. ``exists`` is injectable for tests."""
    mapping = os.environ if mapping is None else mapping
    text = str(mapping.get("VCH_URL", "")).strip()
    if not text:
        return None
    url = _url(text)
    files = {key: str(mapping.get(key, "")).strip() for key in ("VCH_TLS_CA", "VCH_TLS_CERT", "VCH_TLS_KEY")}
    verify = _verify(mapping)
    if url.startswith("unix://"):
        given = [key for key, value in files.items() if value]
        if given:
            raise ConfigError(f"{', '.join(given)} set, but VCH_URL={url} is a unix socket, which has no TLS: "
                              "unset them or use tcp://host:2376")
    if bool(files["VCH_TLS_CERT"]) != bool(files["VCH_TLS_KEY"]):
        raise ConfigError("VCH_TLS_CERT and VCH_TLS_KEY go together: set both (the client certificate "
                          "and its key) or neither")
    if files["VCH_TLS_CA"] and not verify:
        raise ConfigError("VCH_TLS_CA is set but VCH_TLS_VERIFY=0 turns verification off: unset one of them")
    for key, path in files.items():
        if path and not exists(path):
            raise ConfigError(f"{key}={path!r} does not exist (a path inside the plugin, such as a file "
                              "under /var/lib/vsphere-volume)")
    return VchSettings(url=url, ca_file=files["VCH_TLS_CA"], cert_file=files["VCH_TLS_CERT"],
                       key_file=files["VCH_TLS_KEY"], verify=verify)
