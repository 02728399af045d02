"""The `mvimgnet` task: sample one sequence's frames into its object folder (no bpy).

- K frames per sequence (default 30), evenly spaced in time (frame order is the natural sort of
  the file names);
- a frame is blurry when the variance of its Laplacian (numpy, on a grey image decoded at about
  512 px) is below `blur_ratio` times the sequence's 75th-percentile score, or below an absolute
  `blur_threshold` when one is given;
- a blurry target frame is replaced by its nearest sharp neighbour in time that is not taken yet;
- fewer than `min_views` usable frames (the original MVCap rule: 30) fails the object with a reason.

The frames and frames.json are written to a staging folder and renamed into place, so an object
appears complete or not at all.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from blender_addon.contract.layout import view_filename

from .mvimgnet import DEFAULT_OPTIONS, FRAMES_JSON, NAME, natural_key

FRAME_EXTENSIONS = (".jpg", ".jpeg")


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
    return sorted(frames, key=lambda f: natural_key(f.name))


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
        "source": NAME,
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
