"""The two transports to vCenter, built from the settings: SOAP (pyVmomi) and HTTP (requests).

- ``soap_stub``: pyVmomi's ``SoapStubAdapter`` speaking the vSphere 6.5 API, reporting
  the method name of every request it sends (that is how round trips are counted).
- ``http_session``: a ``requests.Session`` for the datastore file interface whose
  connections use a TLS context from ``tls.new_context`` and nothing else (no proxy
  variables, no extra CA bundle).

``session.Session`` takes both as injectable factories.
"""

import warnings
from urllib.parse import urlsplit

import requests
from pyVmomi import SoapStubAdapter
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning

from . import tls

#: The API version spoken: vSphere 6.5, the oldest that VIC supports; later vCenters accept it.
API_NAMESPACE = "vim25/6.5"


class _CountingStub(SoapStubAdapter):
    """pyVmomi's SOAP stub, reporting each request's method name before sending it."""

    def __init__(self, *args, on_request, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_request = on_request

    def InvokeMethod(self, mo, info, args, outerStub=None):  # noqa: N802, N803 - pyVmomi's names
        self._on_request(info.wsdlName)
        return super().InvokeMethod(mo, info, args, outerStub)


def soap_stub(settings, ssl_context, on_request, timeout):
    """The default stub factory: a counting SoapStubAdapter for ``settings.url``."""
    parts = urlsplit(settings.url)
    return _CountingStub(host=parts.hostname, port=parts.port or 443, path=parts.path,
                         ns=API_NAMESPACE, sslContext=ssl_context, on_request=on_request,
                         httpConnectionTimeout=timeout)


class _ContextAdapter(HTTPAdapter):
    """A requests adapter whose connections use one given SSLContext and nothing else."""

    def __init__(self, ssl_context, pin=None):
        self._ssl_context = ssl_context
        self._pin = pin
        super().__init__(pool_connections=1, pool_maxsize=8)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._ssl_context
        if self._pin:
            # urllib3 checks the pin as well, and then counts the connection as verified.
            kwargs["assert_fingerprint"] = self._pin
        return super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        """Keep the context's trust as it is (requests would add its own CA bundle)."""


def http_session(settings):
    """The default factory of the ``requests.Session`` used for datastore files."""
    if settings.insecure:
        # Said once at login; not on every request.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    session = requests.Session()
    session.trust_env = False         # pyVmomi ignores proxy variables; so does this
    session.verify = tls.requests_verify(settings)
    session.mount("https://", _ContextAdapter(tls.new_context(settings), settings.thumbprint or None))
    return session
