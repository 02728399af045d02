"""Assemble MVCap's metadata.json from objects.jsonl and each object's captions.json.

metadata.json: [{"path": "./views/<uid>/000.png", "caption": ..., "obj_id": n, "img_id": n*stride+view}]
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from blender_addon.rig.fileio import atomic_write_json

from .layout import CAPTIONS_JSON, METADATA_JSON, OBJECTS_JSONL, confined_path, img_id, img_id_stride


def read_objects(out_root: str | os.PathLike) -> list[dict]:
    """objects.jsonl as a list of dicts (empty when absent)."""
    path = Path(out_root) / OBJECTS_JSONL
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def dataset_stride(objects: list[dict]) -> int:
    return img_id_stride(max((int(o.get("views") or 0) for o in objects), default=0))


def iter_metadata_records(out_root: str | os.PathLike, objects: list[dict] | None = None) -> Iterator[dict]:
    out_root = Path(out_root)
    objects = read_objects(out_root) if objects is None else objects
    stride = dataset_stride(objects)
    for obj in sorted(objects, key=lambda o: o["obj_id"]):
        if obj.get("status") != "done":
            continue
        captions_path = confined_path(out_root, f"{obj['out_rel']}/{CAPTIONS_JSON}")
        if not captions_path.exists():
            continue
        captions = json.loads(captions_path.read_text(encoding="utf-8"))
        for entry in captions["captions"]:
            if entry.get("caption") is None:
                continue  # a failed image is recorded in captions.json, not in metadata
            yield {
                "path": f"./{obj['out_rel']}/{entry['file']}",
                "caption": entry["caption"],
                "obj_id": int(obj["obj_id"]),
                "img_id": img_id(int(obj["obj_id"]), int(entry["view"]), stride),
            }


def write_metadata(out_root: str | os.PathLike) -> Path:
    """Rebuild OUT/metadata.json atomically from what is done and captioned."""
    records = list(iter_metadata_records(out_root))
    return atomic_write_json(Path(out_root) / METADATA_JSON, records, indent=None)
