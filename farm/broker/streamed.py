"""Streamed results: files of a worker without shared storage, sent in FILE_CHUNK messages.

Chunks land in OUT/.farm/incoming/<attempt_id>/<name>.part. A successful RESULT lists the files
with their sizes; they are then renamed into OUT/<out_rel>/ (atomic renames, the completion marker
last). A failed or abandoned attempt's parts are removed; a render refused for its quality
flags (`--quality fail`) is moved into OUT/.farm/refused/<attempt_id>/ instead, for a look.

A chunk may only continue a part or rewrite what it holds (offset <= its size; a worker sends each
file from offset 0, again after a reconnect), so a part never has holes and takes no more disk
than the bytes that came. With `--fsync` the files reach the disk before they are renamed, and so
before the commit that records them and the ACK.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

from blender_addon.contract.layout import FARM_DIR, LayoutError, check_identifier, confined_path
from .. import protocol as P
from ..attempt_paths import INCOMING, REFUSED, attempt_rel
from ..staged import is_staged, start_staging, swap_in
from ..store import Store
from .attempt_folders import remove_attempt_folder

if TYPE_CHECKING:  # workers.py uses this module
    from .workers import WorkerSession

MAX_STREAM_BYTES = 4 * 1024**3  # per streamed file
MARKERS = ("transforms.json", "frames.json")  # installed last: they say the object folder is complete


def incoming_dir(out_root: str, attempt_id: int) -> Path:
    return confined_path(out_root, attempt_rel(attempt_id, INCOMING))


def refused_dir(out_root: str, attempt_id: int) -> Path:
    """Where the files of an attempt refused for its quality flags are kept for a look."""
    return confined_path(out_root, attempt_rel(attempt_id, REFUSED))


def _attempt_files(out_root: str, attempt_id: int, streamed: bool) -> tuple[Path, str]:
    """(folder, file suffix) of an attempt's files: streamed parts in incoming/, or a shared-storage
    worker's attempt folder."""
    if streamed:
        return incoming_dir(out_root, attempt_id), ".part"
    return P.attempt_folder(out_root, attempt_id), ""


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StreamedFiles:
    """FILE_CHUNK writes, installing a finished attempt's files, and discarding an abandoned one's."""

    def __init__(self, store: Store, fsync: bool = False):
        self.store = store
        self.fsync = fsync

    def write_chunk(self, w: WorkerSession, msg: dict) -> bool:
        """Write one chunk. False when `w` does not hold that task's lease (the chunk is dropped);
        raises ValueError or LayoutError for a bad chunk."""
        key = (msg["task_id"], msg["attempt_id"])
        row = None if w.shared_storage else self.store.render_lease(*key, w.name)
        if row is None:
            return False
        out_root, _ = self.store.out_paths(row)
        name = check_identifier(msg["name"], "file name")
        data = base64.b64decode(msg["data"], validate=True)
        offset = msg["offset"]
        if offset < 0 or offset + len(data) > MAX_STREAM_BYTES:
            raise ValueError(f"chunk offset {offset} is out of range")
        d = incoming_dir(out_root, key[1])
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{name}.part", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if offset > size:
                raise ValueError(f"chunk of {name} at offset {offset} would leave a hole after byte {size}")
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        if w.task == key:
            w.streamed.add(name)
        return True

    def install(self, out_root: str, out_rel: str, attempt_id: int, files: list[dict], mode: str | None = None,
                streamed: bool = True) -> None:
        """Move an accepted attempt's files into OUT/<out_rel>/ (atomic renames by name, a stale
        completion marker removed first, the new one last; other files there are left alone).
        `streamed`: the parts in incoming/; else a shared-storage worker's attempt folder.
        An add_views or rerender task's files go to its staging folder, swapped in when all are
        there (farm/staged.py), so the old views stay until the new set is complete."""
        d, suffix = _attempt_files(out_root, attempt_id, streamed)
        plan = [self._planned_move(d, Path(out_root).resolve(), out_rel, f, suffix) for f in files]
        obj_dir = confined_path(out_root, out_rel)
        staging = start_staging(obj_dir) if is_staged(mode) and any(p[1].exists() for p in plan) else None
        if staging is None and any(p[1].exists() for p in plan):
            for marker in MARKERS:  # a stale marker would vouch for a half-installed folder
                (obj_dir / marker).unlink(missing_ok=True)
        for _, part, final in sorted(plan, key=lambda p: p[0]):
            if part.exists():
                final = final if staging is None else staging / final.name
                final.parent.mkdir(parents=True, exist_ok=True)
                if self.fsync:
                    _sync(part)
                os.replace(part, final)
        if self.fsync:
            for folder in {final.parent for _, _, final in plan} if staging is None else {staging}:
                _sync(folder)  # the renames themselves
        if staging is not None:
            swap_in(obj_dir, mode)
        try:
            d.rmdir()
        except OSError:
            pass

    def set_aside(self, out_root: str, attempt_id: int, files: list[dict], streamed: bool = True) -> Path:
        """Move a refused attempt's files (`--quality fail`) into OUT/.farm/refused/<attempt_id>/,
        never into the object's folder, so its previous set stays as it was; returns that folder.
        A file already moved (a RESULT repeated after a broker crash) is skipped."""
        d, suffix = _attempt_files(out_root, attempt_id, streamed)
        names = [check_identifier(str(f.get("name")), "file name") for f in files]
        dest = refused_dir(out_root, attempt_id)
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            if (d / f"{name}{suffix}").exists():
                os.replace(d / f"{name}{suffix}", dest / name)
        try:
            d.rmdir()
        except OSError:
            pass
        return dest

    @staticmethod
    def _planned_move(d: Path, root: Path, out_rel: str, f: dict, suffix: str) -> tuple[bool, Path, Path]:
        """(is a marker, part file, final path) for one listed file, checked before anything moves."""
        name = check_identifier(str(f.get("name")), "file name")
        size = f.get("size")
        part = d / f"{name}{suffix}"
        final = confined_path(root, f"{out_rel}/{name}")
        if final.parent == root or final.relative_to(root).parts[0] == FARM_DIR:
            raise LayoutError(f"streamed file {name!r} would land outside an object folder")
        if part.exists():
            if part.stat().st_size != size:
                raise ValueError(f"streamed file {name} is {part.stat().st_size} bytes, expected {size}")
        elif not (final.exists() and final.stat().st_size == size):  # installed before a broker crash
            raise ValueError(f"streamed file {name} never arrived")
        return name in MARKERS, part, final

    @staticmethod
    def discard(w: WorkerSession) -> None:
        """Remove the parts `w` streamed for its current task; for a shared-storage worker that
        vanished, its attempt's folder (named by the attempt id: nothing else is in it)."""
        if w.out_root and w.task and w.shared_storage:
            remove_attempt_folder(w.out_root, w.task[1])
        if w.out_root and w.task and w.streamed:
            d = incoming_dir(w.out_root, w.task[1])
            for name in list(w.streamed):
                try:
                    os.unlink(d / f"{name}.part")
                except OSError:
                    pass
            try:
                d.rmdir()
            except OSError:
                pass
