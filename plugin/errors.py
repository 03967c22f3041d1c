"""Every error the plugin raises on purpose.

One root class, ``VolumeError``; typed subclasses below it. The message of each is
written for the person at the terminal: it says what was wrong and, where there is a
choice, what is accepted. The protocol layer turns any ``VolumeError`` into
``{"Err": str(error)}``; anything else is a bug and is logged with its traceback.

Messages never contain secrets (passwords, session cookies).
"""

import json


class VolumeError(Exception):
    """Root of every error the plugin reports to Docker or the CLI."""


# --- request errors: the caller asked for something wrong; nothing was changed ----------

class InvalidRequest(VolumeError):
    """A malformed request: bad name, bad option, missing field."""


class InvalidName(InvalidRequest):
    """A volume name that VIC would not accept."""


class InvalidOption(InvalidRequest):
    """A volume option that is unknown or has a value outside its grammar."""


class NotFound(VolumeError):
    """No volume (or backup, or store) by that name."""


class Conflict(VolumeError):
    """The request contradicts existing state (same name, other options; exists already)."""


class InUse(VolumeError):
    """The volume is mounted or attached and the request needs it idle."""


# --- configuration ------------------------------------------------------------------------

class ConfigError(VolumeError):
    """A plugin setting (VOLUME_STORES, VSPHERE_*, ...) is invalid. Raised at start."""


# --- backend errors: the storage or vCenter failed ----------------------------------------

class BackendError(VolumeError):
    """The storage backend failed to do what was asked."""


class MountError(BackendError):
    """A mount, unmount or mkfs step failed on this host."""


class VSphereError(BackendError):
    """Root of errors translated from vSphere faults and connection failures."""


class VSphereUnavailable(VSphereError):
    """vCenter cannot be reached (connection refused, reset, timeout)."""


class VSphereAuthError(VSphereError):
    """Login refused or session no longer authenticated after a re-login."""


class VSphereTLSError(VSphereError):
    """The vCenter certificate did not verify against the CA file or thumbprint."""


class FileAlreadyExists(VSphereError):
    """A datastore file or folder exists already."""


class FileNotFoundOnDatastore(VSphereError):
    """A datastore file or folder does not exist."""


class FileLocked(VSphereError):
    """A disk is locked: in use by a powered-on VM."""


class NoDiskSpace(VSphereError):
    """The datastore is out of space."""


class InvalidPowerState(VSphereError):
    """The VM is not in the power state the operation requires."""


class TaskFailed(VSphereError):
    """A vSphere task ended in error and no more specific class applies."""


class TaskTimeout(VSphereError):
    """A vSphere task did not finish within its bound."""


# --- backups ------------------------------------------------------------------------------

class BackupError(VolumeError):
    """A backup or restore could not be made."""


class BackupStorageError(BackupError):
    """The storage of backups or leases failed (full, read-only, an I/O error)."""


# --- echoing what the user gave -------------------------------------------------------------

ECHO_LIMIT = 100   # characters of a user-given value an error message repeats


def cut(value, limit=ECHO_LIMIT):
    """``str(value)`` cut to ``limit`` characters with an ellipsis and the full length, so
    that a 10 MB name or option value is never echoed whole into an Err or a log line."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def shown(value, limit=ECHO_LIMIT):
    """``value`` quoted like ``repr`` (control characters escaped), cut as ``cut`` does."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{repr(text[:limit])[:-1]}…{repr(text)[0]} ({len(text)} characters)"


def quoted(value, limit=ECHO_LIMIT):
    """``value`` in double quotes as Go's ``%q`` writes printable text (VIC's messages quote
    so: ``volume name "x y" includes invalid characters``), cut as ``cut`` does."""
    text = str(value)
    body = json.dumps(text[:limit], ensure_ascii=False)
    if len(text) <= limit:
        return body
    return f"{body[:-1]}…\" ({len(text)} characters)"
