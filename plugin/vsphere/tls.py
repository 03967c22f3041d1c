"""TLS contexts that verify vCenter's certificate the way the settings say.

- a CA file: standard verification (chain and host name) against that file only;
- a thumbprint: the peer certificate's SHA-1 or SHA-256 fingerprint must match; this
  is checked here, right after every handshake, by the socket class of the context
  (so pyVmomi's and requests' connections are both pinned, every time they connect);
- insecure: no verification (only by explicit setting);
- none of these: standard verification against the system's CA store.

``new_context`` returns a fresh context for each user (pyVmomi, requests): urllib3
adjusts the context it is given, so the two must not share one.
"""

import hashlib
import ssl

from .settings import normalize_thumbprint


class ThumbprintMismatch(ssl.SSLCertVerificationError):
    """The peer certificate's fingerprint is not the configured thumbprint."""

    def __init__(self, message):
        super().__init__(message)
        self.verify_message = message

    def __str__(self):
        return self.verify_message


def colon_hex(digest_hex):
    """``aabb..`` -> ``AA:BB:..``, the way vSphere displays thumbprints."""
    upper = digest_hex.upper()
    return ":".join(upper[i:i + 2] for i in range(0, len(upper), 2))


def fingerprint(der, hex_length):
    """The SHA-1 (40) or SHA-256 (64 hex digits) fingerprint of a DER certificate."""
    algorithm = hashlib.sha1 if hex_length == 40 else hashlib.sha256
    return algorithm(der).hexdigest()


def check_fingerprint(der, expected):
    """Raise ThumbprintMismatch unless ``der`` has the fingerprint ``expected`` (normalized hex)."""
    actual = fingerprint(der or b"", len(expected))
    if actual != expected:
        kind = "SHA-1" if len(expected) == 40 else "SHA-256"
        raise ThumbprintMismatch(
            f"the certificate's {kind} thumbprint is {colon_hex(actual)}, "
            f"not the configured {colon_hex(expected)}")


def _pinned_socket_class(expected):
    class PinnedSSLSocket(ssl.SSLSocket):
        """An SSLSocket that checks the peer's fingerprint after each handshake."""

        def do_handshake(self, *args, **kwargs):
            super().do_handshake(*args, **kwargs)
            try:
                check_fingerprint(self.getpeercert(binary_form=True), expected)
            except ThumbprintMismatch:
                self.close()
                raise

    return PinnedSSLSocket


def new_context(settings):
    """A new ``ssl.SSLContext`` for connections to the vCenter of ``settings``."""
    if settings.thumbprint:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.sslsocket_class = _pinned_socket_class(normalize_thumbprint(settings.thumbprint))
        return context
    if settings.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    return ssl.create_default_context()


def requests_verify(settings):
    """The ``verify`` value to pair with ``new_context`` in requests.

    True when the context verifies the chain; False when it does not (thumbprint, whose
    check lives in the socket class, or insecure).
    """
    return not (settings.thumbprint or settings.insecure)
