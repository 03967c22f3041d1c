"""What restic's error texts mean: its stderr read into one typed error.

restic 0.14 exits with status 1 for nearly every failure (3: a snapshot was saved but
some files could not be read); what went wrong is only in its words on stderr. The
phrases matched here are restic's own (cmd/restic/global.go, internal/repository/key.go,
internal/restic/lock.go) and those of the Go libraries under it (net, crypto/x509, the
minio S3 client). Anything unmatched is an ``OffsiteError`` carrying restic's last lines.

What restic printed passes through a ``redact.Redactor`` (the target's secrets) first.
"""

import re

from ..errors import cut
from .errors import (
    OffsiteError,
    RepositoryLocked,
    RepositoryMissing,
    SnapshotNotFound,
    TargetAuthError,
    TargetTLSError,
    TargetUnreachable,
    WrongPassword,
)

MESSAGE_LIMIT = 600         # characters of restic's words quoted in one message

# A backend call restic retries (cmd/restic/global.go: "%v returned error, retrying after %v: %v").
RETRY_RE = re.compile(r"^(?P<what>.+?) returned error, retrying after (?P<after>[^:]+): (?P<error>.*)$")

_WRONG_PASSWORD = ("wrong password or no key found",)
_LOCKED = ("repository is already locked",)
_MISSING = ("unable to open config file",)
_MISSING_DETAIL = ("does not exist", "no such file or directory", "not found")
_NO_SNAPSHOT = ("no matching id found", "invalid id ")
_AUTH = ("signature we calculated does not match", "invalidaccesskeyid", "access denied",
         "accessdenied", "access key id you provided does not exist", "forbidden")
_TLS = ("x509:", "tls:", "certificate")
_NETWORK = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
            "no route to host", "connection reset", "server misbehaving", "dial tcp",
            "context deadline exceeded", "timeout awaiting response headers",
            "unexpected eof", ": eof")


def meaningful_lines(lines):
    """restic's error lines without its retry notices and hints."""
    return [line.strip() for line in lines
            if line.strip() and not RETRY_RE.match(line.strip())
            and not line.startswith("the `unlock` command")]


def quote(lines, redact):
    """restic's words for a message: the meaningful lines joined, redacted, capped."""
    text = " / ".join(meaningful_lines(lines)) or "(restic printed nothing)"
    return cut(redact(text), MESSAGE_LIMIT)


def _has(text, phrases):
    return any(phrase in text for phrase in phrases)


def error_class(lines):
    """The OffsiteError subclass that restic's stderr ``lines`` describe."""
    text = "\n".join(lines).lower()
    if _has(text, _WRONG_PASSWORD):
        return WrongPassword
    if _has(text, _LOCKED):
        return RepositoryLocked
    if _has(text, _AUTH):
        return TargetAuthError
    if _has(text, _TLS):
        return TargetTLSError
    if _has(text, _NETWORK):
        return TargetUnreachable
    if _has(text, _MISSING) and _has(text, _MISSING_DETAIL):
        return RepositoryMissing
    if _has(text, _NO_SNAPSHOT):
        return SnapshotNotFound
    return OffsiteError


_WHAT = {
    WrongPassword: "the password does not open the repository (check the target's password "
                   "setting; restic said: {said})",
    RepositoryLocked: "the repository is locked by another restic process; a stale lock of a "
                      "process that is gone is removed by unlock (restic said: {said})",
    TargetAuthError: "the object store refused the access key or secret key (check the "
                     "target's S3 key settings; restic said: {said})",
    TargetTLSError: "the server's TLS certificate did not verify (give its CA file, or opt "
                    "out explicitly; restic said: {said})",
    TargetUnreachable: "the server cannot be reached (restic said: {said})",
    RepositoryMissing: "there is no restic repository there (restic said: {said})",
    SnapshotNotFound: "no such snapshot (restic said: {said})",
    OffsiteError: "restic failed (restic said: {said})",
}


def translate(lines, what, target, redact, returncode=None):
    """The typed error for a failed restic call.

    ``what``: the operation, for the message ("backup of /mnt/x"); ``target``: how the
    target is named to the user ("backup target offsite (s3:https://...)").
    """
    kind = error_class(lines)
    detail = _WHAT[kind].format(said=quote(lines, redact))
    status = f" (exit status {returncode})" if kind is OffsiteError and returncode else ""
    return kind(f"{what} on {target} failed{status}: {detail}")
