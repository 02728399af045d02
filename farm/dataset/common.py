"""What the dataset commands share: reading OUT tolerantly, the layout rule per source, and
finding finished objects on disk that objects.jsonl does not list."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..layout import CAPTIONS_JSON, METADATA_JSON, OBJECTS_JSONL, TRANSFORMS_JSON, LayoutError, check_identifier
from ..metadata import read_objects
from ..sources.mvimgnet import FRAMES_JSON, category_folder

IMAGE_NAME = re.compile(r"^(\d{3,})\.(png|jpg)$")
STATUSES = ("done", "failed", "pending")


class DatasetError(ValueError):
    """An OUT folder the dataset commands cannot work on. One line, shown without traceback."""


def out_dir(out_root: str | os.PathLike) -> Path:
    out = Path(out_root)
    if not out.is_dir():
        raise DatasetError(f"{out}: no such output folder")
    return out


def load_objects(out: Path) -> list[dict]:
    try:
        return read_objects(out)
    except (OSError, ValueError) as exc:
        raise DatasetError(str(exc).splitlines()[0]) from None


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing or unreadable (tolerant readers)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def expected_out_rel(obj: dict) -> str | None:
    """The folder the layout contract gives an object, or None when the record cannot say."""
    source, uid, category = obj.get("source"), obj.get("uid"), obj.get("category")
    if not isinstance(uid, str):
        return None
    try:
        if source in ("folder", "objaverse"):
            return f"views/{check_identifier(uid)}"
        if source == "im3d":
            return f"im3d/{check_identifier(uid, 'im3d object')}"
        if source == "mvimgnet" and isinstance(category, str):
            out_rel = obj.get("out_rel") or ""
            sequence = out_rel.rsplit("/", 1)[-1]
            return f"mvimgnet/{category_folder(category)}/{check_identifier(sequence, 'sequence')}"
    except (LayoutError, ValueError):
        return None
    return None


def discover_objects(out: Path, known: set[str] | frozenset = frozenset()) -> list[dict]:
    """Finished object folders in OUT (views/ and im3d/ with transforms.json, mvimgnet/ with
    frames.json) whose out_rel is not in `known`, as objects.jsonl records without obj_id, sorted
    by out_rel. What the folder cannot tell (the source of a views/ object, a category) comes from
    captions.json or stays None."""
    found: list[dict] = []

    def add(folder: Path, source: str, uid: str, category: str | None, views: int, asset: str = "") -> None:
        captions = read_json(folder / CAPTIONS_JSON)
        if isinstance(captions, dict) and not category:
            category = captions.get("category")
        found.append({
            "uid": uid, "source": source, "category": category, "asset": asset,
            "out_rel": folder.relative_to(out).as_posix(), "views": views, "status": "done", "error": None,
            "attempts": 0, "missing_textures": [], "quality": [],
        })

    for top, source in (("views", "folder"), ("im3d", "im3d")):
        for folder in _subdirs(out / top):
            if f"{top}/{folder.name}" in known:
                continue
            transforms = read_json(folder / TRANSFORMS_JSON)
            if not isinstance(transforms, dict):
                continue
            category = folder.name.rpartition("_")[0] if source == "im3d" else None
            add(folder, source, folder.name, category or None, len(transforms.get("frames") or []))
    for cat_dir in _subdirs(out / "mvimgnet"):
        for folder in _subdirs(cat_dir):
            if f"mvimgnet/{cat_dir.name}/{folder.name}" in known:
                continue
            frames = read_json(folder / FRAMES_JSON)
            if not isinstance(frames, dict):
                continue
            uid = frames.get("uid") or f"{cat_dir.name}-{folder.name}"
            add(folder, "mvimgnet", uid, frames.get("category"), len(frames.get("frames") or []), frames.get("sequence") or "")
    return sorted(found, key=lambda o: o["out_rel"])


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list[str]:
    """The view images in an object folder (NNN.png / NNN.jpg), in view order."""
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file() and IMAGE_NAME.match(e.name)]
    except OSError:
        return []
    return sorted(names, key=lambda n: int(IMAGE_NAME.match(n).group(1)))


__all__ = [
    "DatasetError", "IMAGE_NAME", "STATUSES", "out_dir", "load_objects", "read_json", "expected_out_rel",
    "discover_objects", "image_files", "CAPTIONS_JSON", "METADATA_JSON", "OBJECTS_JSONL",
]
