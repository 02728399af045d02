"""Tasks that keep an object's views until the new set is complete: `add_views` and `rerender`.

The files of such a task's accepted attempt are moved into a hidden staging folder beside the
object's folder (`views/.<uid>.staged`), never into the folder itself. When all are there the staged
set becomes the object's folder in one step (`swap_in`): for `add_views` the old files the staged
set lacks (the views before `first_view`, their passes, captions.json) are hard-linked into it
first; for `rerender` the old set goes whole. Readers see the old set or the new one, never a
mix; a failed attempt never reaches the object's folder. The broker stages and swaps when it
installs an accepted attempt's files (broker/streamed.py).
"""
from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

from .store.schema import ADD_VIEWS, RERENDER

STAGED_MODES = (ADD_VIEWS, RERENDER)
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux 3.15+)
_AT_FDCWD = -100


def is_staged(mode: str | None) -> bool:
    return mode in STAGED_MODES


def staging_dir(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.staged"


def start_staging(folder: Path) -> Path:
    """A fresh, empty staging folder for `folder` (what a killed attempt left there is removed)."""
    staging = staging_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def swap_in(folder: Path, mode: str) -> None:
    """Make the staged set `folder`'s content (ADD_VIEWS: with the old files it lacks). A staging
    folder that is gone already (a repeated report) changes nothing."""
    staging = staging_dir(folder)
    if not staging.is_dir():
        return
    if mode == ADD_VIEWS and folder.is_dir():
        for old in folder.iterdir():
            if old.is_file() and not old.name.startswith(".") and not (staging / old.name).exists():
                _link(old, staging / old.name)
    if not folder.exists():
        os.rename(staging, folder)
        return
    if _exchange(staging, folder):
        shutil.rmtree(staging)  # the old set, now under the staging name
        return
    previous = folder.parent / f".{folder.name}.previous"  # no atomic exchange here: two renames
    shutil.rmtree(previous, ignore_errors=True)
    os.rename(folder, previous)
    os.rename(staging, folder)
    shutil.rmtree(previous)


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dest)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot
        return False
    raise OSError(errno, os.strerror(errno), str(b))
