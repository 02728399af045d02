"""Attempt folders of attempts that can no longer deliver, removed by the broker.

A shared-storage worker's child writes an attempt into OUT/.farm/attempts/<attempt_id>/; a worker
without shared storage streams its files into OUT/.farm/incoming/<attempt_id>/ (farm/attempt_paths.py).
When the broker gives up on a lease (it expired, its worker died, disconnected or came back without
it, its job was canceled) both go at once. At start the broker sweeps each OUT its store knows: a
folder in either place named by an attempt of a job in that OUT whose lease is not live goes (a
worker SIGKILLed while the broker was down; a worker back from a pause whose child recreated its
folder and that died before its stale RESULT was acknowledged).

Only real folders named by such an attempt id are removed, nothing else under OUT. No link is
followed: a symbolic link (named like an attempt, or `.farm`, `.farm/attempts` or `.farm/incoming`
itself) is left as it is. A late finisher's RESULT is stale and ignored (tasks.py); its worker
removes the folder it may have recreated once that RESULT is acknowledged.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from blender_addon.contract.layout import FARM_DIR
from ..attempt_paths import ATTEMPTS, INCOMING, attempt_rel, real_folder, remove_real_folder
from ..store import Store, StoreError
from .submit_checks import check_out_root

log = logging.getLogger("farm.broker")

KINDS = (ATTEMPTS, INCOMING)  # the folders under OUT/.farm that hold attempts' folders


def remove_attempt_folder(out_root: str, attempt_id: int) -> None:
    """Remove the folders of an attempt the broker gave up on (nothing when there are none)."""
    for kind in KINDS:
        remove_real_folder(out_root, attempt_rel(attempt_id, kind))


def remove_job_attempt_folder(store: Store, job_id: str, attempt_id: int) -> None:
    """remove_attempt_folder for an attempt of `job_id`, in that job's OUT."""
    remove_attempt_folder(store.job(job_id)["out_root"], attempt_id)


def _attempt_names(folder: Path) -> dict[int, str]:
    """attempt id -> entry name, for the entries named as an attempt's folder is named."""
    names = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.isascii() and name.isdigit() and str(int(name)) == name:
                names[int(name)] = name
    return names


def _sweep_out(store: Store, out_root: str) -> int:
    """Remove the dead attempts' folders of one OUT; how many went."""
    removed = 0
    for kind in KINDS:
        folder = real_folder(out_root, f"{FARM_DIR}/{kind}")
        if folder is None:
            continue
        names = _attempt_names(folder)
        for attempt_id in store.dead_attempts(out_root, list(names)):
            removed += remove_real_folder(folder, names[attempt_id])
    return removed


def sweep_attempt_folders(store: Store, allowed_roots: tuple[str, ...]) -> int:
    """At broker start: remove the folders of attempts that can no longer deliver, in every OUT
    of the store that lies under an allowed root. Returns how many went."""
    removed = 0
    for out_root in store.job_out_roots():
        try:
            check_out_root(out_root, allowed_roots)
        except StoreError:
            continue  # no longer this broker's to write in
        try:
            removed += _sweep_out(store, out_root)
        except OSError as exc:  # an unreachable OUT must not stop the broker
            log.warning("could not sweep the attempt folders of %s: %s", out_root, exc)
    if removed:
        log.info("removed %d folders of attempts that can no longer deliver", removed)
    return removed
