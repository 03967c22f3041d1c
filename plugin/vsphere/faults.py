"""Classify failures of vSphere calls and translate them into plugin.errors types.

Three kinds of failure reach ``session.Session``:

- transport failures (connection refused or reset, the server going away mid-call,
  HTTP 503): ``is_transient`` says True; the session retries them with a bounded
  backoff, then raises ``unavailable(...)``;
- certificate failures: ``is_tls_failure``; never retried, ``tls_error(...)``;
- vSphere faults (``vmodl.MethodFault``, also the ``info.error`` of a failed task):
  ``translate(fault, action)`` returns the typed error to raise.

Messages say what was being done (``action``) and what vSphere answered; they never
contain a password or a session cookie.
"""

import http.client
import socket
import ssl

import requests
from pyVmomi import vim, vmodl

from ..errors import (
    FileAlreadyExists,
    FileLocked,
    FileNotFoundOnDatastore,
    InvalidPowerState,
    NoDiskSpace,
    TaskFailed,
    VSphereAuthError,
    VSphereError,
    VSphereTLSError,
    VSphereUnavailable,
)

# Fault class -> (error class, what it means). The first match in order wins, so
# subclasses come before their parents.
_FAULTS = (
    (vim.fault.FileAlreadyExists, FileAlreadyExists, "it already exists"),
    (vim.fault.FileNotFound, FileNotFoundOnDatastore, "it does not exist"),
    (vim.fault.FileLocked, FileLocked, "the file is locked (in use by a powered-on VM)"),
    (vim.fault.NoDiskSpace, NoDiskSpace, "the datastore is out of space"),
    (vim.fault.InsufficientStorageSpace, NoDiskSpace, "the datastore does not have enough free space"),
    (vim.fault.InvalidPowerState, InvalidPowerState, "the VM is not in the required power state"),
    (vim.fault.InvalidLogin, VSphereAuthError, "wrong user name or password"),
    (vim.fault.NotAuthenticated, VSphereAuthError, "the session is not authenticated"),
    (vim.fault.NoPermission, VSphereAuthError, "the user lacks a privilege"),
)

_HTTP_OVERLOAD = {502, 503, 504}


def fault_name(fault):
    """``vim.fault.FileAlreadyExists`` -> ``FileAlreadyExists``; any other exception: its
    type's name (``ConnectionRefusedError``)."""
    return type(fault).__name__.rsplit(".", 1)[-1]


def _fault_detail(fault):
    parts = []
    file_name = getattr(fault, "file", None)
    if file_name:
        parts.append(str(file_name))
    message = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None)
    if message and not message.startswith("*types."):   # the simulator's Go type names say nothing
        parts.append(str(message))
    privilege = getattr(fault, "privilegeId", None)
    if privilege:
        parts.append(f"privilege {privilege}")
    return "; ".join(parts)


def translate(fault, action, task=False):
    """The plugin error for vSphere ``fault`` raised while doing ``action``.

    ``task``: the fault is a task's ``info.error`` (unknown faults become TaskFailed,
    not a bare VSphereError).
    """
    detail = _fault_detail(fault)
    suffix = f" ({detail})" if detail else ""
    for fault_class, error_class, meaning in _FAULTS:
        if isinstance(fault, fault_class):
            return error_class(f"{action} failed: {meaning}{suffix}")
    error_class = TaskFailed if task else VSphereError
    return error_class(f"{action} failed: vSphere fault {fault_name(fault)}{suffix}")


def is_tls_failure(exc):
    """True for a certificate that did not verify (never worth a retry)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        inner = exc.args[0] if exc.args else None
        text = str(exc)
        return "CERTIFICATE_VERIFY_FAILED" in text or "thumbprint" in text or is_tls_failure(
            getattr(inner, "reason", None))
    return False


def is_transient(exc):
    """True for failures of the transport that a later attempt may not meet."""
    if is_tls_failure(exc) or isinstance(exc, vmodl.MethodFault):
        return False
    if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError, ssl.SSLError,
                        http.client.RemoteDisconnected, http.client.IncompleteRead,
                        http.client.BadStatusLine)):
        return True
    if isinstance(exc, OSError):          # EHOSTUNREACH, ENETUNREACH, name resolution
        return True
    if isinstance(exc, http.client.HTTPException):
        return str(exc).split(" ", 1)[0].isdigit() and int(str(exc).split(" ", 1)[0]) in _HTTP_OVERLOAD
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def http_overloaded(status):
    """True for HTTP statuses that mean "try again later"."""
    return status in _HTTP_OVERLOAD


def _reason(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unavailable(host, action, exc, attempts):
    """VSphereUnavailable after ``attempts`` tries of ``action`` failed in transport."""
    return VSphereUnavailable(
        f"vCenter {host} cannot be reached ({action}, {attempts} attempt"
        f"{'s' if attempts != 1 else ''}): {_reason(exc)}")


def tls_error(host, exc, settings_hint):
    """VSphereTLSError for a certificate of ``host`` that did not verify."""
    reason = getattr(exc, "verify_message", None) or str(exc)
    return VSphereTLSError(
        f"the TLS certificate of vCenter {host} was not accepted: {reason}. {settings_hint}")
