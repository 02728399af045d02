"""What the dataset commands share: reading OUT tolerantly, asking each source where its objects
go, and finding finished objects on disk that objects.jsonl does not list."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from blender_addon.contract.layout import CAPTIONS_JSON, METADATA_JSON, OBJECTS_JSONL
from blender_addon.rig.errors import one_line

from ..metadata import read_objects
from ..sources import all_sources, get_source, source_names

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
        raise DatasetError(one_line(exc)) from None


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing or unreadable (tolerant readers)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def expected_out_rel(obj: dict) -> str | None:
    """The folder the object's source puts it in, or None when the record cannot say."""
    if not isinstance(obj.get("uid"), str) or obj.get("source") not in source_names():
        return None
    try:
        return get_source(obj["source"]).expected_out_rel(obj)
    except ValueError:  # LayoutError, SourceError
        return None


def discover_objects(out: Path, known: set[str] | frozenset = frozenset()) -> list[dict]:
    """Finished object folders in OUT (each source's folders holding its marker file) whose out_rel
    is not in `known`, as objects.jsonl records without obj_id, sorted by out_rel. What the folder
    cannot tell (the source of a views/ object, a category) comes from captions.json or stays None."""
    found: list[dict] = []
    for source in all_sources():
        for folder in source.object_folders(out):
            out_rel = folder.relative_to(out).as_posix()
            marker = None if out_rel in known else read_json(folder / source.marker)
            if not isinstance(marker, dict):
                continue
            obj = source.found_object(folder, marker)
            captions = read_json(folder / CAPTIONS_JSON)
            category = obj.category
            if not category and isinstance(captions, dict):
                category = captions.get("category")
            found.append({
                "uid": obj.uid, "source": source.name, "category": category, "asset": obj.asset,
                "out_rel": out_rel, "views": obj.views, "status": "done", "error": None,
                "attempts": 0, "missing_textures": [], "quality": [],
            })
    return sorted(found, key=lambda o: o["out_rel"])


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
