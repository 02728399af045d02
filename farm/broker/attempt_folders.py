"""Attempt folders of attempts that can no longer deliver, removed by the broker.

A shared-storage worker's child writes an attempt into OUT/.farm/attempts/<attempt_id>/ (see
farm/protocol.py `attempt_folder`). When the broker gives up on a lease (it expired, its worker
died or disconnected, its job was canceled) the folder goes at once. At start the broker sweeps
each OUT its store knows: a folder named by an attempt of a job in that OUT whose lease is not live
goes (a worker SIGKILLed while the broker was down; a worker back from a pause whose child
recreated its folder and that died before its stale RESULT was acknowledged).

Only real folders named by such an attempt id are removed, nothing else under OUT. No link is
followed: a symbolic link (named like an attempt, or `.farm` or `.farm/attempts` itself) is left
as it is. A late finisher's RESULT is stale and ignored (tasks.py); its worker removes the folder
it may have recreated once that RESULT is acknowledged.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from blender_addon.contract.layout import FARM_DIR
from ..store import Store, StoreError
from .submit_checks import check_out_root

log = logging.getLogger("farm.broker")


def _is_real_dir(path: Path) -> bool:
    """A folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def attempts_dir(out_root: str) -> Path | None:
    """OUT/.farm/attempts when it and OUT/.farm are real folders, else None."""
    folder = Path(out_root)
    for part in (FARM_DIR, "attempts"):
        folder = folder / part
        if not _is_real_dir(folder):
            return None
    return folder


def _remove(folder: Path) -> bool:
    """Remove a real folder (True); a link or anything else stays (False)."""
    if not _is_real_dir(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)  # unlinks the links inside, never following them
    return True


def remove_attempt_folder(out_root: str, attempt_id: int) -> None:
    """Remove the folder of an attempt the broker gave up on (nothing when there is none)."""
    folder = attempts_dir(out_root)
    if folder is not None:
        _remove(folder / str(int(attempt_id)))


def _attempt_names(folder: Path) -> dict[int, str]:
    """attempt id -> entry name, for the entries named as the worker names an attempt's folder."""
    names = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.isascii() and name.isdigit() and str(int(name)) == name:
                names[int(name)] = name
    return names


def sweep_attempt_folders(store: Store, allowed_roots: tuple[str, ...]) -> int:
    """At broker start: remove the folders of attempts that can no longer deliver, in every OUT
    of the store that lies under an allowed root. Returns how many went."""
    removed = 0
    for out_root in store.job_out_roots():
        try:
            check_out_root(out_root, allowed_roots)
        except StoreError:
            continue  # no longer this broker's to write in
        folder = attempts_dir(out_root)
        try:
            names = _attempt_names(folder) if folder is not None else {}
            for attempt_id in store.dead_attempts(out_root, list(names)):
                removed += _remove(folder / names[attempt_id])
        except OSError as exc:  # an unreachable OUT must not stop the broker
            log.warning("could not sweep the attempt folders of %s: %s", out_root, exc)
    if removed:
        log.info("removed %d folders of attempts that can no longer deliver", removed)
    return removed
