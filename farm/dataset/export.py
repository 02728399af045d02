"""`farm dataset export OUT --format hf`: a folder that Hugging Face `datasets` loads as an
imagefolder.

    OUT/hf/README.md                  the dataset card, with a `configs` entry for the train split
    OUT/hf/train/metadata.jsonl       one line per image: file_name, caption, obj_id, img_id, uid,
                                      category, source, view
    OUT/hf/train/<out_rel>/NNN.png    the images, hard links to OUT's files (copies across devices)

`load_dataset("imagefolder", data_dir="OUT/hf")` or `load_dataset("OUT/hf")` gives a `train`
split with an `image` column beside those. The folder is built under a temporary name inside OUT
and renamed into place; the export always stays inside OUT.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from blender_addon.rig.fileio import atomic_write_text

from ..layout import METADATA_JSON, LayoutError, confined_path
from ..metadata import iter_json_array
from .card import collect, render_card
from .common import IMAGE_NAME, DatasetError, load_objects, out_dir

FORMATS = ("hf",)
HF_CONFIGS = """configs:
- config_name: default
  data_files:
  - split: train
    path: train/**"""


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export_dataset(out_root: str | os.PathLike, fmt: str = "hf", dest: str = "hf") -> tuple[Path, int]:
    """Write the export to OUT/<dest>. Returns (folder, images)."""
    if fmt not in FORMATS:
        raise DatasetError(f"--format: {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    out = out_dir(out_root)
    try:
        target = confined_path(out, dest)
    except LayoutError as exc:
        raise DatasetError(f"--dest: {exc}") from None
    if target == out.resolve() or target.name.startswith("."):
        raise DatasetError(f"--dest: {dest!r} must name a new folder inside OUT")
    metadata = out / METADATA_JSON
    if not metadata.is_file():
        raise DatasetError(f"{metadata}: missing; run `farm dataset build {out_root}` first")
    objects = {o.get("obj_id"): o for o in load_objects(out)}
    stage = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    count = 0
    try:
        train = stage / "train"
        train.mkdir(parents=True)
        with (train / "metadata.jsonl").open("w", encoding="utf-8") as fh:
            for rec in iter_json_array(metadata):
                rel = str(rec["path"])[2:]
                src = confined_path(out, rel)
                if not src.is_file():
                    raise DatasetError(f"metadata.json lists {rec['path']}, which does not exist (run farm dataset validate)")
                obj = objects.get(rec["obj_id"]) or {}
                match = IMAGE_NAME.match(src.name)
                _place(src, train / rel)
                fh.write(json.dumps({
                    "file_name": rel, "caption": rec["caption"], "obj_id": rec["obj_id"], "img_id": rec["img_id"],
                    "uid": obj.get("uid"), "category": obj.get("category"), "source": obj.get("source"),
                    "view": int(match.group(1)) if match else None,
                }, ensure_ascii=False) + "\n")
                count += 1
        atomic_write_text(stage / "README.md", render_card(collect(out), extra_yaml=HF_CONFIGS, data_note=(
            "This folder is the Hugging Face imagefolder export: `train/metadata.jsonl` holds one line per image "
            "(`file_name`, `caption`, `obj_id`, `img_id`, `uid`, `category`, `source`, `view`).")))
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            os.replace(target, old)
        os.replace(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    except (KeyError, TypeError, ValueError, LayoutError) as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{METADATA_JSON}: cannot export ({exc}); run farm dataset validate") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target, count
