"""Storage failures on the backup path, as typed errors with a message for the user.

Every ``OSError`` of the folders backups and leases live in (a full backup store, a
read-only one, an I/O error) becomes a ``BackupStorageError`` saying what was being
done, what the system answered, and what to do about it. Nothing on the backup path
lets an ``OSError`` through: Docker and the CLI would only see "internal error".
"""

import errno
from contextlib import contextmanager

from ..errors import BackupStorageError

_ADVICE = {
    errno.ENOSPC: "the backup store is full: free space on it (vsphere-volume prune or delete "
                  "removes old backups), then try again",
    errno.EDQUOT: "the backup store's quota is used up: free space on it (vsphere-volume prune or "
                  "delete removes old backups), then try again",
    errno.EROFS: "the backup store is mounted read-only",
    errno.EACCES: "the plugin may not write there: check the folder's owner and mode",
    errno.EPERM: "the plugin may not write there: check the folder's owner and mode",
}


def storage_failure(what, err):
    """A BackupStorageError for ``err`` (an OSError) met while doing ``what``."""
    reason = err.strerror or str(err) or type(err).__name__
    where = f" ({err.filename})" if err.filename and str(err.filename) not in what else ""
    advice = _ADVICE.get(err.errno)
    return BackupStorageError(f"{what}: {reason}{where}" + (f"; {advice}" if advice else ""))


@contextmanager
def storage_errors(what, passing=()):
    """Turn an OSError raised inside into ``storage_failure(what, ...)``; the OSError
    classes in ``passing`` (FileNotFoundError, when a caller handles it) go through."""
    try:
        yield
    except passing:
        raise
    except OSError as err:
        raise storage_failure(what, err) from None
