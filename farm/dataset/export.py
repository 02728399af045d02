"""`farm dataset export OUT --format hf|webdataset`. webdataset: tar shards (export_webdataset.py).
hf: a folder that Hugging Face `datasets` loads as an imagefolder.

    OUT/hf/README.md                  the dataset card, with a `configs` entry for the train split
    OUT/hf/train/metadata.jsonl       one line per image: file_name, caption, obj_id, img_id, uid,
                                      category, source, view, transform_matrix, intrinsics
                                      (export_samples.py; null camera for sampled frames)
    OUT/hf/train/<out_rel>/NNN.png    the images, hard links to OUT's files (copies across devices)

`load_dataset("imagefolder", data_dir="OUT/hf")` or `load_dataset("OUT/hf")` gives a `train`
split with an `image` column beside those. The folder is built under a temporary name inside OUT
and renamed into place; the export always stays inside OUT.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

from tqdm import tqdm

from blender_addon.contract.layout import LayoutError, confined_path
from blender_addon.rig.fileio import atomic_write_text

from .card import render_card
from .card_stats import collect
from .common import DatasetError, out_dir
from .export_samples import iter_samples
from .export_webdataset import DEFAULT_SHARD_SIZE, WebDatasetExport

FORMATS = ("hf", "webdataset")
HF_CONFIGS = """configs:
- config_name: default
  data_files:
  - split: train
    path: train/**"""


SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
MIN_SHARD_SIZE = 4096


def parse_size(text: str, name: str) -> int:
    """'1GB', '500MB', '64KiB' or plain bytes; DatasetError naming the option otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if unit not in SIZE_UNITS:
        raise DatasetError(f"{name}: {text!r} is not a size; use bytes or a unit like 500MB or 1GB")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size < MIN_SHARD_SIZE:
        raise DatasetError(f"{name}: {text!r} is out of range; must be >= {MIN_SHARD_SIZE} bytes")
    return size


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export_dataset(out_root: str | os.PathLike, fmt: str = "hf", dest: str | None = None, *,
                   shard_size: int = DEFAULT_SHARD_SIZE, shuffle_seed: int | None = None,
                   progress: bool = False) -> tuple[Path, int]:
    """Write the export to DEST (default OUT/<format>). Returns (folder, images)."""
    if fmt not in FORMATS:
        raise DatasetError(f"--format: {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    out = out_dir(out_root)
    target = _target(out, dest or fmt, inside_only=fmt == "hf")
    if fmt == "webdataset":
        return _export_webdataset(out, target, shard_size, shuffle_seed, progress)
    return _export_hf(out, target)


def _target(out: Path, dest: str, inside_only: bool) -> Path:
    """DEST: a relative path is inside OUT; an absolute one (webdataset only) may be anywhere."""
    if os.path.isabs(dest) and not inside_only:
        target = Path(dest).resolve()
    else:
        try:
            target = confined_path(out, dest)
        except LayoutError as exc:
            raise DatasetError(f"--dest: {exc}") from None
    if target == out.resolve() or target.name.startswith("."):
        raise DatasetError(f"--dest: {dest!r} must name a new folder" + (" inside OUT" if inside_only else ""))
    return target


def _export_webdataset(out: Path, target: Path, shard_size: int, shuffle_seed: int | None,
                       progress: bool) -> tuple[Path, int]:
    iter_samples(out)  # a missing metadata.json is refused before anything is written
    with tqdm(desc="export", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        index = WebDatasetExport(out, target, shard_size, shuffle_seed, bar).run(lambda: iter_samples(out))
    return target, index["samples"]


def _export_hf(out: Path, target: Path) -> tuple[Path, int]:
    samples = iter_samples(out)  # checks metadata.json before anything is written
    stage = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    count = 0
    try:
        train = stage / "train"
        train.mkdir(parents=True)
        with (train / "metadata.jsonl").open("w", encoding="utf-8") as fh:
            for sample in samples:
                _place(sample.src, train / sample.rel)
                line = {"file_name": sample.rel, "caption": sample.caption, **sample.meta}
                del line["path"]
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
        atomic_write_text(stage / "README.md", render_card(collect(out), extra_yaml=HF_CONFIGS, data_note=(
            "This folder is the Hugging Face imagefolder export: `train/metadata.jsonl` holds one line per image "
            "(`file_name`, `caption`, `obj_id`, `img_id`, `uid`, `category`, `source`, `view`, and the camera: "
            "`transform_matrix`, camera-to-world in Blender/OpenGL axes, and `intrinsics`).")))
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            os.replace(target, old)
        os.replace(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target, count
