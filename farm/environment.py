"""Environment errors: a full disk, too many open files, a name too long, no permission.

They are no one's fault in particular (not the asset's, not the render code's), so they are named
as what they are ("no space left on device: ..."), never blamed on the asset they happened under.
Used by the render child (the exception it caught), the worker (the state of the disk after a
failure) and the broker (a store that cannot commit).
"""
from __future__ import annotations

import errno
import os
import sqlite3

ENV_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENAMETOOLONG,
                        errno.EACCES, errno.EROFS})
MIN_FREE_BYTES = 1024 * 1024  # a file system with less than this left is full for a render
PREFIX = "environment: "  # how an environment failure's reason starts (farm render stops on it)


def _describe(err: OSError) -> str:
    where = f" ({err.filename})" if err.filename else ""
    return f"{PREFIX}{os.strerror(err.errno).lower()}{where}"


def error_of(exc: BaseException | None) -> str | None:
    """The environment error in `exc` or its causes, as one line; None when there is none."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENV_ERRNOS:
            return _describe(exc)
        if isinstance(exc, sqlite3.OperationalError) and "database or disk is full" in str(exc):
            return f"{PREFIX}no space left on device (the farm's state: {exc})"
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full(path: str | os.PathLike) -> str | None:
    """'environment: no space left on device ...' when the file system holding `path` (or its
    nearest existing parent) is full (bytes or inodes); else None."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES or (st.f_files and st.f_favail == 0):
        return f"{PREFIX}no space left on device ({path}: {free // 1024} KiB free)"
    return None


# the ones no other task on this machine escapes either: `farm render` stops on them (a name too
# long or a file without permission concerns one asset, which fails alone)
MACHINE_WIDE = tuple(os.strerror(e).lower() for e in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE,
                                                       errno.EROFS))


def stops_the_run(reason: str | None) -> bool:
    """True for a failure reason naming a machine-wide environment error (a full disk...)."""
    return bool(reason) and reason.startswith(PREFIX) and any(m in reason for m in MACHINE_WIDE)
