"""The output layout contract (architecture section 3): file names, ids and confinement under OUT.

Where each source puts its objects (`views/<uid>`, `im3d/<class>_<NN>`, ...) is the source's own
rule (farm/sources/); this module holds what every source and reader shares.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..rig.assets import identifier_problem

FARM_DIR = ".farm"
OBJECTS_JSONL = "objects.jsonl"
METADATA_JSON = "metadata.json"
TRANSFORMS_JSON = "transforms.json"
CAPTIONS_JSON = "captions.json"


class LayoutError(ValueError):
    """An identifier or path that would escape the output folder."""


def check_identifier(value: str, what: str = "uid") -> str:
    """Refuse identifiers that could escape OUT: separators, '..', absolute paths, control chars."""
    problem = identifier_problem(value)
    if problem:
        raise LayoutError(f"{what} {value!r} is not allowed: {problem}")
    return value


def confined_path(out_root: str | os.PathLike, rel: str) -> Path:
    """OUT/rel, refusing anything that resolves outside OUT."""
    root = Path(out_root).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise LayoutError(f"path {rel!r} escapes the output folder {root}")
    return target


# objects.jsonl field: the stride of every img_id in OUT, fixed at OUT's first submit (never changes)
STRIDE_FIELD = "img_id_stride"


def img_id_stride(view_count: int) -> int:
    """100, or the next power of ten at or above the view count (the stride an OUT's first submit
    fixes from the view count its spec gives)."""
    stride = 100
    while stride < view_count:
        stride *= 10
    return stride


def img_id(obj_id: int, view_index: int, stride: int = 100) -> int:
    return obj_id * stride + view_index


def view_filename(view_index: int, file_format: str = "PNG") -> str:
    ext = {"PNG": "png", "JPEG": "jpg"}[file_format]
    return f"{view_index:03d}.{ext}"
