"""An attempt's folders under OUT/.farm, and removing a folder without following links.

OUT/.farm/attempts/<attempt_id>/ holds a shared-storage worker's attempt (its child writes there);
OUT/.farm/incoming/<attempt_id>/ holds the parts a worker without shared storage streamed to the
broker. Each is named by its attempt id, so it holds that attempt's files and nothing else.

Removal (the worker's of its own folder, the broker's of an attempt it gave up on) never follows a
symbolic link: a folder goes only when it and every folder between it and its root are real
folders. A link in its place (or a linked `.farm` or `.farm/attempts`) is left as it is, and so is
what it points to. Used by farm/worker.py and farm/broker/attempt_folders.py alike.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from blender_addon.contract.layout import FARM_DIR

ATTEMPTS = "attempts"  # OUT/.farm/attempts/<attempt_id>: a shared-storage attempt's files
INCOMING = "incoming"  # OUT/.farm/incoming/<attempt_id>: a streamed attempt's parts
REFUSED = "refused"  # OUT/.farm/refused/<attempt_id>: a render refused by --quality fail, for a look


def attempt_rel(attempt_id: int, kind: str = ATTEMPTS) -> str:
    """`.farm/<kind>/<attempt_id>`, relative to OUT."""
    return f"{FARM_DIR}/{kind}/{int(attempt_id)}"


def _is_real_dir(path: Path) -> bool:
    """A folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def real_folder(root: str | os.PathLike, rel: str) -> Path | None:
    """root/rel when each folder below `root` on the way is a real folder (not a link), else None.
    `root` itself may be a link (an OUT on a linked mount)."""
    folder = Path(root)
    for part in Path(rel).parts:
        folder = folder / part
        if not _is_real_dir(folder):
            return None
    return folder


def remove_real_folder(root: str | os.PathLike, rel: str) -> bool:
    """Remove root/rel when it is a real folder reached through real folders (True); else
    nothing goes (False)."""
    folder = real_folder(root, rel)
    if folder is None:
        return False
    shutil.rmtree(folder, ignore_errors=True)  # unlinks the links inside, never following them
    return True
