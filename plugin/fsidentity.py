"""File operations as another user: the calling thread's filesystem uid and gid.

VIC reaches an NFS volume store as one uid and gid (its own NFS client sends them as
AUTH_SYS credentials; default 1000), so that exports which squash root work and every
folder and file it makes belongs to that user. The kernel's NFS client sends the
calling thread's *filesystem* ids (fsuid, fsgid). ``acting_as(uid, gid)`` sets both for
the current thread only, for the length of a block, and restores them after:
``setfsuid(2)`` and ``setfsgid(2)`` act on the calling thread (glibc does not broadcast
them to the process's other threads as it does ``setuid``), so the plugin's other
threads keep acting as root meanwhile.

What this cannot change (said in the README): the supplementary groups in the
credential are the process's (root's, normally only group 0, which root-squashing
exports map like uid 0); and a subprocess started inside the block would inherit the
ids, so none is started there (mounting the export happens outside).
"""

import contextlib
import ctypes
import ctypes.util
import threading

from .errors import BackendError

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
for _call in (_libc.setfsuid, _libc.setfsgid):
    _call.argtypes = [ctypes.c_uint]
    _call.restype = ctypes.c_int

_QUERY = 0xFFFFFFFF        # (uid_t) -1: changes nothing, returns the current id
_held = threading.local()  # the ids this thread acts as inside acting_as, if any


def current_ids():
    """(fsuid, fsgid) of the calling thread."""
    return _libc.setfsuid(_QUERY), _libc.setfsgid(_QUERY)


@contextlib.contextmanager
def acting_as(uid, gid):
    """Run the block with the thread's filesystem ids set to ``uid`` and ``gid``.

    Re-entrant. Raises BackendError when the process may not take those ids (it lacks
    CAP_SETUID or CAP_SETGID).
    """
    if getattr(_held, "ids", None) == (uid, gid):
        yield
        return
    old_gid = _libc.setfsgid(gid)
    old_uid = _libc.setfsuid(uid)
    if current_ids() != (uid, gid):
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)
        raise BackendError(f"cannot act as uid {uid} and gid {gid} for file operations "
                           "(the plugin lacks CAP_SETUID or CAP_SETGID)")
    outer, _held.ids = getattr(_held, "ids", None), (uid, gid)
    try:
        yield
    finally:
        _libc.setfsuid(old_uid)        # first: back to uid 0 gives the file capabilities back
        _libc.setfsgid(old_gid)
        _held.ids = outer
