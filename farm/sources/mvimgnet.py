"""The `mvimgnet` source: real capture sequences `<root>/<category_id>/<sequence>/images/*.jpg`.

Frames are sampled, not rendered, so this needs no bpy:
- K frames per sequence (default 30), evenly spaced in time (frame order is the natural sort of
  the file names);
- a frame is blurry when the variance of its Laplacian (numpy, on a grey image decoded at about
  512 px) is below `blur_ratio` times the sequence's 75th-percentile score, or below an absolute
  `blur_threshold` when one is given;
- a blurry target frame is replaced by its nearest sharp neighbour in time that is not taken yet;
- fewer than `min_views` usable frames (the original MVCap rule: 30) fails the object with a reason.

The category id -> name mapping is MVImgNet's `mvimgnet_category.txt` (CSV `id,name`), a JSON
`{id: name}`, or LVIS-style JSON `{name: [ids]}`. Without `--categories`, the mapping is looked for
in the root and its parent. An id without a name is an error: categories are never guessed.

Output: `OUT/mvimgnet/<category>/<sequence>/000.jpg ...` (the original JPEG bytes) and `frames.json`,
written to a staging folder and renamed into place, so an object appears complete or not at all.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..layout import LayoutError, mvimgnet_rel, view_filename
from .base import Asset, SourceError
from .categories import load_categories

FRAME_EXTENSIONS = (".jpg", ".jpeg")
CATEGORY_FILES = ("mvimgnet_category.txt", "mvimgnet2_category.json", "categories.csv", "categories.json")
FRAMES_JSON = "frames.json"

DEFAULT_OPTIONS = {
    "frames": 30,  # K frames sampled per sequence
    "min_views": 30,  # fewer usable frames fail the object (the original's rule)
    "blur_ratio": 0.4,  # blurry: score < blur_ratio * 75th percentile of the sequence's scores
    "blur_threshold": None,  # and/or an absolute Laplacian-variance floor
    "sharpness_max_side": 512,  # frames are scored at about this size
}


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
        cat_dirs = [p] if any(_is_sequence(s) for s in _subdirs(p)) else _subdirs(p)
        for cat_dir in cat_dirs:
            sequences.extend((cat_dir.name, seq) for seq in _subdirs(cat_dir))
    if not sequences:
        raise SourceError(f"mvimgnet: no <category_id>/<sequence>/ folders under {', '.join(map(str, paths))}")

    unnamed = sorted({cid for cid, _ in sequences if cid not in names}, key=_natural_key)
    if unnamed:
        raise SourceError(
            f"mvimgnet: category id(s) {', '.join(unnamed[:10])} have no name in {categories_path} (categories are never guessed)"
        )
    assets: dict[str, Asset] = {}
    for cid, seq in sorted(sequences, key=lambda cs: (_natural_key(cs[0]), cs[1].name)):
        name = names[cid]
        try:
            out_rel = mvimgnet_rel(category_folder(name), seq.name)
        except LayoutError as exc:
            raise SourceError(f"mvimgnet: {exc}") from None
        uid = f"{cid}-{seq.name}"
        assets.setdefault(uid, Asset(uid=uid, path=str(seq.resolve()), category=name, source="mvimgnet", out_rel=out_rel))
    return list(assets.values())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _natural_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


# --- sharpness and selection (pure, testable) ----------------------------------------------------
def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D grey image."""
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] < 3:
        return 0.0
    lap = a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4.0 * a[1:-1, 1:-1]
    return float(lap.var())


def frame_sharpness(path: str | os.PathLike, max_side: int = 512) -> float:
    """Laplacian variance of a frame decoded in grey at about `max_side` px (JPEG draft mode)."""
    with Image.open(path) as im:
        im.draft("L", (max_side, max_side))
        im = im.convert("L")
        if max(im.size) > max_side * 2:
            im.thumbnail((max_side, max_side))
        return laplacian_variance(np.asarray(im))


def blur_cutoff(scores: list[float], blur_ratio: float, blur_threshold: float | None) -> float:
    """The score below which a frame counts as blurry."""
    cutoff = blur_ratio * float(np.percentile(scores, 75)) if scores else 0.0
    return max(cutoff, blur_threshold or 0.0)


def target_indices(n: int, k: int) -> list[int]:
    """k frame indices evenly spaced over n frames (first and last included); all when n <= k."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [(n - 1) // 2]
    return [(2 * i * (n - 1) + (k - 1)) // (2 * (k - 1)) for i in range(k)]


def select_frames(sharp: list[bool], k: int) -> list[int]:
    """Evenly spaced targets; a blurry target falls back to its nearest sharp, untaken neighbour."""
    n = len(sharp)
    taken: set[int] = set()
    for t in target_indices(n, k):
        for d in range(n):
            pick = next((c for c in (t - d, t + d) if 0 <= c < n and sharp[c] and c not in taken), None)
            if pick is not None:
                taken.add(pick)
                break
    return sorted(taken)


def list_frames(sequence_dir: Path) -> list[Path]:
    images = sequence_dir / "images"
    if not images.is_dir():
        return []
    frames = [f for f in images.iterdir() if f.is_file() and f.suffix.lower() in FRAME_EXTENSIONS and not f.name.startswith(".")]
    return sorted(frames, key=lambda f: _natural_key(f.name))


# --- the farm task ------------------------------------------------------------------------------
def sample_task(asset: dict, out_dir: str | os.PathLike, options: dict | None = None) -> dict:
    """Sample one sequence's frames into `out_dir` (= OUT/<out_rel>).

    Returns a result dict shaped like RenderResult.to_dict(). Raises AssetError (one line) when
    the sequence cannot give `min_views` usable frames; nothing from this attempt is left then.
    """
    from blender_addon.scene.errors import AssetError  # no bpy: errors.py is plain Python

    opts = {**DEFAULT_OPTIONS, **{k: v for k, v in (options or {}).items() if k in DEFAULT_OPTIONS and v is not None}}
    k, min_views = int(opts["frames"]), int(opts["min_views"])
    if k < 1 or min_views < 0:
        raise AssetError(f"mvimgnet: frames must be >= 1 and min_views >= 0 (got {k}, {min_views})")
    t0 = time.perf_counter()
    seq = Path(asset["path"])
    frames = list_frames(seq)
    if not frames:
        raise AssetError(f"mvimgnet: {seq} has no frames (expected {seq}/images/*.jpg)")
    scores = []
    for f in frames:
        try:
            scores.append(frame_sharpness(f, int(opts["sharpness_max_side"])))
        except (OSError, ValueError, Image.DecompressionBombError):
            scores.append(-1.0)  # unreadable: never picked
    readable = [s for s in scores if s >= 0]
    cutoff = blur_cutoff(readable, float(opts["blur_ratio"]), opts["blur_threshold"])
    sharp = [s >= 0 and s >= cutoff for s in scores]
    chosen = select_frames(sharp, k)
    t_score = time.perf_counter()
    if len(chosen) < min(min_views, k) or not chosen:
        blurry = sum(1 for s in scores if 0 <= s < cutoff)
        unreadable = sum(1 for s in scores if s < 0)
        raise AssetError(
            f"mvimgnet: only {len(chosen)} usable frame(s), at least {min(min_views, k)} needed: "
            f"{len(frames)} frames, {blurry} blurry (Laplacian variance < {cutoff:.1f}), {unreadable} unreadable"
        )

    out_dir = Path(out_dir)
    files = [view_filename(i, "JPEG") for i in range(len(chosen))]
    record = {
        "source": "mvimgnet",
        "uid": asset.get("uid"),
        "category": asset.get("category"),
        "sequence": str(seq),
        "total_frames": len(frames),
        "blur_cutoff": cutoff,
        "options": opts,
        "frames": [
            {"file_path": name, "source_frame": frames[i].name, "frame_index": i, "sharpness": round(scores[i], 3)}
            for name, i in zip(files, chosen)
        ],
        "skipped_blurry": [frames[i].name for i, s in enumerate(scores) if 0 <= s < cutoff],
    }
    _install_folder(out_dir, [(frames[i], name) for i, name in zip(chosen, files)], record)
    t_end = time.perf_counter()
    return {
        "uid": asset.get("uid"),
        "views": len(files),
        "files": files,
        "missing_textures": [],
        "quality": [],
        "normalization": None,
        "source_frames": [frames[i].name for i in chosen],
        "sharpness": [round(scores[i], 3) for i in chosen],
        "skipped_blurry": record["skipped_blurry"],
        "timings": {"score_s": t_score - t0, "write_s": t_end - t_score, "total_s": t_end - t0},
    }


def _install_folder(out_dir: Path, copies: list[tuple[Path, str]], record: dict) -> None:
    """Write the frames and frames.json into a staging folder beside out_dir, then rename it into
    place (replacing an older attempt), so readers see the whole object or nothing."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage = out_dir.parent / f".{out_dir.name}.tmp-{tag}"
    old = out_dir.parent / f".{out_dir.name}.old-{tag}"
    try:
        stage.mkdir()
        for src, name in copies:
            shutil.copyfile(src, stage / name)
        (stage / FRAMES_JSON).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
