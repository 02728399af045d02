"""The `mvimgnet` source: real capture sequences `<root>/<category_id>/<sequence>/images/*.jpg`.

Frames are sampled, not rendered (mvimgnet_frames.py, a task kind of its own that needs no bpy).

The category id -> name mapping is MVImgNet's `mvimgnet_category.txt` (CSV `id,name`), a JSON
`{id: name}`, or LVIS-style JSON `{name: [ids]}`. Without `--categories`, the mapping is looked for
in the root and its parent. An id without a name is an error: categories are never guessed.

Output: `OUT/mvimgnet/<category>/<sequence>/000.jpg ...` (the original JPEG bytes) and `frames.json`,
its completion marker.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable

from blender_addon.contract.layout import LayoutError, check_identifier

from .base import Asset, FoundObject, Source, SourceError, subdirs
from .categories import load_categories

NAME = "mvimgnet"  # the source, its task kind and its top folder under OUT
CATEGORY_FILES = ("mvimgnet_category.txt", "mvimgnet2_category.json", "categories.csv", "categories.json")
FRAMES_JSON = "frames.json"

DEFAULT_OPTIONS = {
    "frames": 30,  # K frames sampled per sequence
    "min_views": 30,  # fewer usable frames fail the object (the original's rule)
    "blur_ratio": 0.4,  # blurry: score < blur_ratio * 75th percentile of the sequence's scores
    "blur_threshold": None,  # and/or an absolute Laplacian-variance floor
    "sharpness_max_side": 512,  # frames are scored at about this size
}
SAMPLING_PROVENANCE = "MVImgNet frame sampling (from frames.json)"  # its line on the dataset card


# --- categories ---------------------------------------------------------------------------------
def load_category_names(path: str | os.PathLike) -> dict[str, str]:
    """category id -> name from CSV `id,name`, JSON `{id: name}` or LVIS JSON `{name: [ids]}`."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = None  # load_categories gives the one-line reason
        if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
            return {str(k).strip(): v.strip() for k, v in data.items() if v.strip()}
    return {k.strip(): v.strip() for k, v in load_categories(path).items() if v.strip()}


def find_category_file(root: Path) -> Path | None:
    for folder in (root, root.parent):
        for name in CATEGORY_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def category_folder(name: str) -> str:
    """A category name as a folder name: `remote control` -> `remote_control`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_.")
    if not slug:
        raise SourceError(f"mvimgnet: category {name!r} has no usable characters for a folder name")
    return slug


def mvimgnet_rel(category: str, sequence: str) -> str:
    return f"{NAME}/{check_identifier(category, 'category')}/{check_identifier(sequence, 'sequence')}"


# --- assets -------------------------------------------------------------------------------------
def _is_sequence(folder: Path) -> bool:
    return (folder / "images").is_dir()


def mvimgnet_assets(paths: Iterable[str | os.PathLike], categories_path: str | os.PathLike | None = None) -> list[Asset]:
    """One asset per sequence folder, sorted by (category id, sequence). A path is a root, one
    `<category_id>` folder, or one sequence folder. A sequence without frames is still an asset:
    it fails alone when sampled."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_dir():
            raise SourceError(f"mvimgnet: {p}: no such folder (expected <root>/<category_id>/<sequence>/images/)")
    if categories_path is None:
        found = find_category_file(paths[0]) if paths else None
        if found is None:
            raise SourceError("mvimgnet: --categories is required (a file mapping category ids to names, e.g. mvimgnet_category.txt)")
        categories_path = found
    names = load_category_names(categories_path)

    sequences: list[tuple[str, Path]] = []  # (category id, sequence folder)
    for p in paths:
        if _is_sequence(p):
            sequences.append((p.parent.name, p))
            continue
        cat_dirs = [p] if any(_is_sequence(s) for s in subdirs(p)) else subdirs(p)
        for cat_dir in cat_dirs:
            sequences.extend((cat_dir.name, seq) for seq in subdirs(cat_dir))
    if not sequences:
        raise SourceError(f"mvimgnet: no <category_id>/<sequence>/ folders under {', '.join(map(str, paths))}")

    unnamed = sorted({cid for cid, _ in sequences if cid not in names}, key=natural_key)
    if unnamed:
        raise SourceError(
            f"mvimgnet: category id(s) {', '.join(unnamed[:10])} have no name in {categories_path} (categories are never guessed)"
        )
    assets: dict[str, Asset] = {}
    for cid, seq in sorted(sequences, key=lambda cs: (natural_key(cs[0]), cs[1].name)):
        name = names[cid]
        try:
            out_rel = mvimgnet_rel(category_folder(name), seq.name)
        except LayoutError as exc:
            raise SourceError(f"mvimgnet: {exc}") from None
        uid = f"{cid}-{seq.name}"
        assets.setdefault(uid, Asset(uid=uid, path=str(seq.resolve()), category=name, source=NAME, out_rel=out_rel))
    return list(assets.values())


def natural_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


class MvimgnetSource(Source):
    name = NAME
    task_kind = NAME  # frames are sampled by sample_task, not rendered
    marker = FRAMES_JSON
    structure = "mvimgnet/<category>/<sequence>/000.jpg ...  sampled MVImgNet frames, with frames.json"
    task_options = tuple(DEFAULT_OPTIONS)

    def assets(self, paths: list[str], categories_path: str | None) -> list[Asset]:
        return mvimgnet_assets(paths, categories_path)

    def expected_out_rel(self, record: dict) -> str:
        category = record.get("category")
        if not isinstance(category, str):
            raise SourceError(f"mvimgnet: category {category!r} is not a name")
        sequence = (record.get("out_rel") or "").rsplit("/", 1)[-1]  # the folder keeps the sequence's name
        return mvimgnet_rel(category_folder(category), sequence)

    def views_per_object(self, spec_views: int, views: int | None) -> int:
        return views or DEFAULT_OPTIONS["frames"]  # --views is the frames per sequence

    def object_folders(self, out: Path) -> list[Path]:
        return [seq for cat_dir in subdirs(out / NAME) for seq in subdirs(cat_dir)]

    def found_object(self, folder: Path, marker: dict) -> FoundObject:
        uid = marker.get("uid") or f"{folder.parent.name}-{folder.name}"
        return FoundObject(folder, uid, marker.get("category"), len(marker.get("frames") or []),
                           marker.get("sequence") or "")

    def provenance(self, marker: dict) -> dict[str, str]:
        opts = marker.get("options") or {}
        sampling = {k: opts.get(k) for k in ("frames", "min_views", "blur_ratio", "blur_threshold")}
        return {SAMPLING_PROVENANCE: json.dumps(sampling)}

    def run_task(self, asset: dict, out_dir: str, options: dict, progress: Callable[[int, int], None]) -> dict:
        from .mvimgnet_frames import sample_task  # numpy and Pillow: loaded by the render child only

        return sample_task(asset, out_dir, options)


SOURCE = MvimgnetSource()
