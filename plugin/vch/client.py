"""The VCH's Docker API, through the docker SDK: the few volume calls sidecar mode makes.

``VchClient`` lists, inspects, creates and removes volumes on the VCH. Every call has a
timeout (``LIST_TIMEOUT`` for reads, ``CHANGE_TIMEOUT`` for create and remove: a VCH
makes or deletes a disk then). Every failure becomes a VolumeError whose message names
the VCH and what was asked, and carries the VCH's own answer verbatim:

- ``VchRefused``: the VCH answered with an error; ``explanation`` is its message exactly
  as it sent it ("A volume named x already exists. Choose a different volume name.",
  "No volume store named (x) exists", "volume is in use - [...]"), ``status`` its HTTP
  status (409 for a volume in use).
- ``VchUnreachable``: no answer (connection refused, timeout, name not resolved).
- ``VchTLSError`` (a VchUnreachable): the TLS handshake failed: the VCH's certificate did
  not verify, or the VCH refused this plugin's client certificate.

The SDK client is made on first use (nothing connects before) with a pinned API
version (``API_VERSION``: VIC 1.x serves 1.25; newer engines accept it), so no version
negotiation round trip is made. It never uses proxy or CA settings from the process
environment: the VCH is reached directly, with exactly the TLS settings given.
"""

import logging
import re
import threading

from ..errors import BackendError

log = logging.getLogger(__name__)

API_VERSION = "1.25"
LIST_TIMEOUT = 20        # seconds, listing and inspecting
CHANGE_TIMEOUT = 60      # seconds, create and remove (Docker waits 2 minutes for the plugin)
VIC_DRIVER = "vsphere"   # the VCH's volume driver

_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\"()]*")
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\"()]*")


class VchError(BackendError):
    """A call to the VCH failed."""


class VchRefused(VchError):
    """The VCH answered with an error: ``explanation`` is its message, verbatim."""

    def __init__(self, message, explanation, status):
        super().__init__(message)
        self.explanation = explanation
        self.status = status


class VchUnreachable(VchError):
    """The VCH did not answer."""


class VchTLSError(VchUnreachable):
    """The TLS handshake with the VCH failed."""


def docker_api(settings, timeout):
    """The docker SDK's low-level client for the VCH of ``settings`` (vch.settings.VchSettings)."""
    import docker

    tls = False
    if settings.uses_tls:
        if not settings.verify:
            # Said once in the log by the connection; not once per request by urllib3.
            import urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        tls = docker.tls.TLSConfig(
            client_cert=(settings.cert_file, settings.key_file) if settings.cert_file else None,
            ca_cert=settings.ca_file or None, verify=settings.verify)
    api = docker.DockerClient(base_url=settings.url, tls=tls, timeout=timeout, version=API_VERSION).api
    api.trust_env = False
    return api


class VchClient:
    """Volume calls to the VCH at ``settings.url``.

    ``api_factory(settings, timeout)`` returns an object with the docker SDK APIClient's
    ``volumes``, ``inspect_volume``, ``create_volume`` and ``remove_volume`` (default
    ``docker_api``; tests pass a fake).
    """

    def __init__(self, settings, api_factory=docker_api):
        self.settings = settings
        self.url = settings.url
        self._factory = api_factory
        self._apis = {}
        self._lock = threading.Lock()

    def _api(self, timeout):
        with self._lock:
            if timeout not in self._apis:
                self._apis[timeout] = self._factory(self.settings, timeout)
            return self._apis[timeout]

    def list_names(self):
        """The names of every volume the VCH has (whatever its driver)."""
        answer = self._call("list its volumes", LIST_TIMEOUT, lambda api: api.volumes())
        return {str(v.get("Name")) for v in (answer or {}).get("Volumes") or [] if v.get("Name")}

    def exists(self, name):
        """True when the VCH has a volume ``name``."""
        return self._call(f"look up volume {name}", LIST_TIMEOUT,
                          lambda api: api.inspect_volume(name), missing=False) is not False

    def create(self, name, options):
        """Create volume ``name`` with driver ``vsphere`` and driver options ``options``."""
        self._call(f"create volume {name}", CHANGE_TIMEOUT,
                   lambda api: api.create_volume(name=name, driver=VIC_DRIVER, driver_opts=dict(options)))

    def remove(self, name):
        """Remove volume ``name``; False when the VCH has no such volume."""
        return self._call(f"remove volume {name}", CHANGE_TIMEOUT,
                          lambda api: api.remove_volume(name) or True, missing=False)

    def _call(self, what, timeout, call, missing=None):
        """``call(api)``'s result; ``missing`` when the VCH answers 404 and ``missing`` is
        not None; else raises a VchError (see the module docstring)."""
        import docker.errors
        import requests.exceptions

        try:
            return call(self._api(timeout))
        except docker.errors.APIError as err:
            if missing is not None and err.status_code == 404:
                return missing
            explanation = str(err.explanation or err)
            raise VchRefused(f"the VCH at {self.url} refused to {what}: {explanation}",
                             explanation, err.status_code) from None
        except requests.exceptions.SSLError as err:
            raise VchTLSError(f"cannot {what} on the VCH at {self.url}: the TLS handshake failed "
                              f"({_reason(err, _SSL_REASON)}); this plugin uses {self.settings.trust}. "
                              "Check VCH_TLS_CA (the CA of the VCH's certificate) and VCH_TLS_CERT/"
                              "VCH_TLS_KEY (a client certificate the VCH accepts)") from None
        except requests.exceptions.Timeout:
            raise VchUnreachable(f"cannot {what} on the VCH at {self.url}: it did not answer within "
                                 f"{timeout} seconds") from None
        except (requests.exceptions.ConnectionError, OSError) as err:
            raise VchUnreachable(f"cannot {what} on the VCH at {self.url}: "
                                 f"{_reason(err, _ERRNO)}") from None
        except docker.errors.DockerException as err:
            raise VchError(f"cannot {what} on the VCH at {self.url}: {err}") from None


def _reason(err, pattern):
    """The telling part of a requests/urllib3 error (the SSL reason, the errno text)."""
    text = str(err)
    found = pattern.search(text)
    return found.group(0).strip().rstrip(",") if found else text
