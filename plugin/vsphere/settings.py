"""Connection settings for vCenter: a plain dataclass and its mapping from plugin settings.

``VSphereSettings`` is what ``session.Session`` is built from. ``from_env`` maps the
plugin settings (``docker plugin set``, seen by the plugin as environment variables)
onto it and validates them, raising ``ConfigError`` with a message that names the
setting, what was wrong and what is accepted. The password never appears in a
message or in ``repr``.

Settings read:

- ``VSPHERE_URL``: ``https://host[:port][/sdk]`` (the path defaults to ``/sdk``).
- ``VSPHERE_USER``; ``VSPHERE_PASSWORD`` or ``VSPHERE_PASSWORD_FILE`` (exactly one).
- ``VSPHERE_DATACENTER``: inventory path of the datacenter; empty: the only one.
- ``VSPHERE_CA_FILE`` (PEM) or ``VSPHERE_THUMBPRINT`` (SHA-1 or SHA-256 of the
  certificate, hex, colons optional) or ``VSPHERE_INSECURE=1``: at most one. With none
  of them the certificate is verified against the system's CA store.
- ``VSPHERE_VM``: name of the Docker host's own VM; empty: found by SMBIOS UUID.
"""

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, shown
from ..redact import has_userinfo, shown_url
from ..settingvalues import flag

_HEX = re.compile(r"[0-9a-fA-F]+")          # whole text only: fullmatch


@dataclass(frozen=True)
class VSphereSettings:
    """Everything needed to log in to vCenter and verify its certificate."""

    url: str                                   # https://host[:port]/sdk
    user: str
    password: str = field(default="", repr=False)
    datacenter: str = ""                       # inventory path; "" = the only datacenter
    ca_file: str = ""                          # PEM file of the CA (or the certificate itself)
    thumbprint: str = ""                       # normalized: lower-case hex, no colons
    insecure: bool = False                     # explicit opt-out of verification
    vm: str = ""                               # the Docker host's VM name; "" = by SMBIOS UUID

    @property
    def host(self):
        """``host[:port]`` of the vCenter, for messages."""
        return urlsplit(self.url).netloc

    @property
    def base_url(self):
        """``https://host[:port]``: the root of the datastore file interface."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def normalize_thumbprint(text, setting="VSPHERE_THUMBPRINT"):
    """Return the thumbprint as lower-case hex without separators.

    Accepts ``AA:BB:..``, ``aa bb ..`` or plain hex of a SHA-1 (40 digits) or SHA-256
    (64 digits) digest; raises ConfigError otherwise.
    """
    digits = re.sub(r"[\s:]", "", text or "")
    if not _HEX.fullmatch(digits) or len(digits) not in (40, 64):
        raise ConfigError(
            f"{setting} is not a certificate thumbprint: give the SHA-1 (40 hex digits) or "
            "SHA-256 (64 hex digits) fingerprint of the vCenter certificate, colons allowed")
    return digits.lower()


def _url(text):
    if not text:
        raise ConfigError("VSPHERE_URL is required: https://vcenter.example.com/sdk")
    if has_userinfo(text):   # first: no message below may repeat a password
        raise ConfigError(f"VSPHERE_URL={shown_url(text)} must not contain a user or password: "
                          "use VSPHERE_USER and VSPHERE_PASSWORD or VSPHERE_PASSWORD_FILE")
    parts = urlsplit(text if "://" in text else f"https://{text}")
    if parts.scheme != "https":
        raise ConfigError(
            f"VSPHERE_URL={shown(text)} must use https:// (vCenter's API is only served over TLS)")
    if not parts.hostname:
        raise ConfigError(f"VSPHERE_URL={shown(text)} does not name a host: https://host[:port]/sdk")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"VSPHERE_URL={shown(text)} has an invalid port") from None
    path = parts.path.rstrip("/") or "/sdk"
    return urlunsplit(("https", parts.netloc, path, "", ""))


def _password(mapping, read_file):
    password = mapping.get("VSPHERE_PASSWORD", "")
    path = mapping.get("VSPHERE_PASSWORD_FILE", "")
    if password and path:
        raise ConfigError("set VSPHERE_PASSWORD or VSPHERE_PASSWORD_FILE, not both")
    if path:
        try:
            password = read_file(path).rstrip("\r\n")
        except OSError as err:
            raise ConfigError(
                f"VSPHERE_PASSWORD_FILE={path!r} cannot be read: {err.strerror or err}") from None
        if not password:
            raise ConfigError(f"VSPHERE_PASSWORD_FILE={path!r} is empty")
    if not password:
        raise ConfigError("a vCenter password is required: set VSPHERE_PASSWORD or VSPHERE_PASSWORD_FILE")
    return password


def _read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def from_env(mapping=None, read_file=_read_text, exists=os.path.exists):
    """Build VSphereSettings from plugin settings (default: ``os.environ``).

    ``read_file`` and ``exists`` are injectable for tests. Raises ConfigError.
    """
    mapping = os.environ if mapping is None else mapping
    url = _url(str(mapping.get("VSPHERE_URL", "")).strip())
    user = str(mapping.get("VSPHERE_USER", "")).strip()
    if not user:
        raise ConfigError("VSPHERE_USER is required (for example administrator@vsphere.local)")
    password = _password(mapping, read_file)
    ca_file = str(mapping.get("VSPHERE_CA_FILE", "")).strip()
    thumbprint = str(mapping.get("VSPHERE_THUMBPRINT", "")).strip()
    insecure = flag(mapping, "VSPHERE_INSECURE", False,
                    meaning=("do not verify vCenter's certificate", "verify it, the default"))
    chosen = [name for name, value in (("VSPHERE_CA_FILE", ca_file),
                                       ("VSPHERE_THUMBPRINT", thumbprint),
                                       ("VSPHERE_INSECURE", insecure)) if value]
    if len(chosen) > 1:
        raise ConfigError(
            f"{' and '.join(chosen)} are both set: choose one way to trust vCenter's certificate "
            "(a CA file, a thumbprint, or VSPHERE_INSECURE=1 to not verify it at all)")
    if ca_file and not exists(ca_file):
        raise ConfigError(f"VSPHERE_CA_FILE={ca_file!r} does not exist")
    if thumbprint:
        thumbprint = normalize_thumbprint(thumbprint)
    return VSphereSettings(
        url=url, user=user, password=password,
        datacenter=str(mapping.get("VSPHERE_DATACENTER", "")).strip().strip("/"),
        ca_file=ca_file, thumbprint=thumbprint, insecure=insecure,
        vm=str(mapping.get("VSPHERE_VM", "")).strip())
