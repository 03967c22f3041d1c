"""Typed errors of off-site targets, all under ``plugin.errors.BackupError``.

Each message names the target and says what was wrong and what to check; restic's own
words are quoted where they help. No message ever contains a repository password or an
S3 secret key (``redact.Redactor`` removes them from anything restic printed).
"""

from ..errors import BackupError


class OffsiteError(BackupError):
    """An off-site target failed; the most specific subclass below says how."""


class TargetUnreachable(OffsiteError):
    """The target's server does not answer (refused, no route, DNS, stalled retries)."""


class TargetAuthError(OffsiteError):
    """The object store refused the access key or secret key."""


class TargetTLSError(OffsiteError):
    """The object store's certificate did not verify (CA file, or the system's store)."""


class WrongPassword(OffsiteError):
    """The repository exists but the password opens none of its keys."""


class RepositoryMissing(OffsiteError):
    """No restic repository at the location (and it was not to be created)."""


class RepositoryLocked(OffsiteError):
    """Another restic process holds a lock that the operation conflicts with."""


class SnapshotNotFound(OffsiteError):
    """No snapshot with that id in the repository."""


class PathNotInSnapshot(OffsiteError):
    """A restore of one path that the snapshot does not hold."""


class CheckFailed(OffsiteError):
    """``restic check`` found damage; ``problems`` holds restic's messages."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class BackupIncomplete(OffsiteError):
    """A snapshot was saved but some files could not be read (restic's exit status 3)."""

    def __init__(self, message, snapshot_id="", errors=()):
        super().__init__(message)
        self.snapshot_id = snapshot_id
        self.errors = list(errors)


class OperationTimeout(OffsiteError):
    """restic did not finish within the time the operation was given; it was stopped."""
