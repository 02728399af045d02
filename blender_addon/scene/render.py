"""Render every view of one asset in one scene: import, normalise, build the rig, render, write.

Import, BVH build and shader compilation happen once per asset, not once per view. Each image
appears under its final name only when complete, transforms.json comes last, and a failure
removes everything this attempt wrote.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bpy
import numpy as np

from ..rig import cameras, lighting, patterns, transforms
from . import build
from .errors import AssetError
from .importers import import_asset, missing_textures
from .normalize import normalize_objects

log = logging.getLogger(__name__)

TRANSFORMS_NAME = "transforms.json"
ALPHA_COVERED = 26  # alpha above ~0.1 counts as object (anti-aliased edges are fainter)
IN_FRAME_MIN = 0.5  # below this fraction of the projected bounding box inside the image: out_of_frame
QUALITY_ISSUES = ("blank", "out_of_frame", "clipped")


@dataclass
class RenderResult:
    uid: str
    views: int
    files: list[str]
    missing_textures: list[str]
    quality: list[dict]
    normalization: dict
    timings: dict = field(default_factory=dict)
    device: str = "CPU"

    def to_dict(self) -> dict:
        return {
            "uid": self.uid,
            "views": self.views,
            "files": list(self.files),
            "missing_textures": list(self.missing_textures),
            "quality": [dict(q) for q in self.quality],
            "normalization": dict(self.normalization),
            "timings": dict(self.timings),
        }


def view_file_name(index: int, file_format: str = "PNG") -> str:
    return f"{index:03d}.{'jpg' if file_format == 'JPEG' else 'png'}"


# --- quality gate -----------------------------------------------------------------------------------
def bbox_corners(lo, hi) -> np.ndarray:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def quality_issues(alpha: np.ndarray, corners_px: np.ndarray | None = None,
                   depth: np.ndarray | None = None) -> list[str]:
    """Problems of one view from its alpha channel (uint8, H x W) and the projected bounding box.

    blank: no pixel covered. clipped: covered pixels touch the image border. out_of_frame: the
    object's bounding box is behind the camera or mostly (over half its area) outside the image.
    """
    issues = []
    covered = alpha >= ALPHA_COVERED
    if not covered.any():
        issues.append("blank")
    elif covered[0].any() or covered[-1].any() or covered[:, 0].any() or covered[:, -1].any():
        issues.append("clipped")
    if corners_px is not None:
        h, w = alpha.shape
        if depth is not None and (np.asarray(depth) <= 0).any():
            issues.append("out_of_frame")
        else:
            lo, hi = corners_px.min(axis=0), corners_px.max(axis=0)
            # a flat object seen edge-on projects to a line: give the box at least 1 px each way
            centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.5)
            lo, hi = centre - half, centre + half
            area = float(np.prod(np.maximum(hi - lo, 1e-9)))
            inside = np.clip(np.minimum(hi, [w, h]) - np.maximum(lo, [0, 0]), 0, None)
            if float(np.prod(inside)) / area < IN_FRAME_MIN:
                issues.append("out_of_frame")
    return issues


def _read_alpha(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode != "RGBA":
            return np.full((img.height, img.width), 255, np.uint8)
        return np.asarray(img.getchannel("A"))


def finish_image(rendered: Path, final: Path, spec, temp: Path) -> None:
    """Move the rendered RGBA PNG to its final name, flattened onto the background colour when
    the background is opaque, and converted when the format is JPEG (via `temp`, then renamed)."""
    fmt, background = spec.render.file_format, spec.background
    if fmt == "PNG" and background.transparent:
        os.replace(rendered, final)
        return
    from PIL import Image

    with Image.open(rendered) as img:
        rgba = img.convert("RGBA")
    # JPEG has no alpha: a transparent background is flattened onto the background colour too.
    color = tuple(int(round(255 * min(max(c, 0.0), 1.0))) for c in background.color)
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, color + (255,)), rgba).convert("RGB")
    if fmt == "JPEG":
        flat.save(temp, "JPEG", quality=95)
    else:
        flat.save(temp, "PNG")
    os.replace(temp, final)
    rendered.unlink()


# --- one asset --------------------------------------------------------------------------------------
def _render_still(filepath: Path) -> None:
    scene = bpy.context.scene
    scene.render.filepath = str(filepath)
    result = bpy.ops.render.render(write_still=True)
    if "FINISHED" not in result:
        raise AssetError(f"render was cancelled ({', '.join(sorted(result))})")
    if not filepath.is_file() or filepath.stat().st_size == 0:
        raise AssetError(f"render produced no image at {filepath.name}")


def render_asset(asset_path, spec, out_dir, uid: str | None = None, *, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None) -> RenderResult:
    """Render every view of `asset_path` per `spec` into `out_dir` (NNN.png + transforms.json).

    Raises AssetError (one line) on any failure, after removing every file this attempt wrote.
    A stale transforms.json in out_dir is removed first: it marks a complete set of views.
    """
    t_start = time.perf_counter()
    asset_path = Path(asset_path)
    out_dir = Path(out_dir)
    uid = uid or asset_path.stem
    ren = spec.render
    written: list[Path] = []
    temps: list[Path] = []
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
    created_dir = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        final_transforms = out_dir / TRANSFORMS_NAME
        if final_transforms.exists():
            final_transforms.unlink()
        _remove(out_dir.glob(".*.part"))  # left by an attempt that was killed mid-render

        build.reset_scene()
        objects = import_asset(asset_path)
        missing = missing_textures()
        if missing:
            log.warning("%s: missing textures (rendering without them): %s", uid, ", ".join(missing))
        norm = normalize_objects(objects, spec.normalize.mode, spec.normalize.frame)
        norm_dict = norm.to_dict()
        views = patterns.sample_views(spec, uid, bounding_radius=norm.radius)
        backend = build.configure_render(spec, device)
        camera = build.build_camera(spec)
        per_view_lights = lighting.lighting_varies_per_view(spec)
        if not per_view_lights:
            lights, world = lighting.lights_for(spec, uid)
            build.apply_lighting(lights, world)
        t_import = time.perf_counter() - t_start

        K = cameras.intrinsics(spec.camera, ren.resolution_x, ren.resolution_y)
        corners = bbox_corners(norm.bbox_min, norm.bbox_max)
        render_s = write_s = 0.0
        files, quality = [], []
        for n, view in enumerate(views):
            c2w = build.apply_view(camera, view)
            if per_view_lights:
                lights, world = lighting.lights_for(spec, uid, view=view, c2w=c2w)
                build.apply_lighting(lights, world)
            name = view_file_name(view.index, ren.file_format)
            tmp_png = out_dir / f".{name}.{tag}.part"
            temps.append(tmp_png)
            t0 = time.perf_counter()
            _render_still(tmp_png)
            t1 = time.perf_counter()
            render_s += t1 - t0

            corners_px, depth = cameras.project_points(corners, c2w, K, return_depth=True)
            issues = quality_issues(_read_alpha(tmp_png), corners_px, depth)
            if issues:
                log.warning("%s view %d: %s", uid, view.index, ", ".join(issues))
            quality.append({"view": view.index, "issues": issues})
            final = out_dir / name
            tmp_final = out_dir / f".{name}.{tag}.final.part"
            temps.append(tmp_final)
            finish_image(tmp_png, final, spec, tmp_final)
            written.append(final)
            files.append(name)
            write_s += time.perf_counter() - t1
            if progress is not None:
                progress(n + 1, len(views))
            elapsed = time.perf_counter() - t_start
            if elapsed > ren.timeout_s and n + 1 < len(views):
                raise AssetError(f"render timed out: {elapsed:.0f} s > render.timeout_s {ren.timeout_s:g} s "
                                 f"after {n + 1} of {len(views)} views")

        t0 = time.perf_counter()
        data = transforms.build_transforms(spec, uid, views, norm_dict, files)
        data["blender_version"] = bpy.app.version_string  # provenance for the dataset card
        written.append(final_transforms)
        transforms.write_transforms(final_transforms, data)
        write_s += time.perf_counter() - t0
    except BaseException as exc:
        _remove(written + temps)
        if created_dir:
            try:
                out_dir.rmdir()  # only if empty: an empty views/<uid>/ would look like a started object
            except OSError:
                pass
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt/SystemExit: a supervisor's stop, not the asset's fault
        if isinstance(exc, AssetError):
            if str(exc).startswith(asset_path.name):
                raise
            raise AssetError(f"{asset_path.name}: {exc}") from None
        raise AssetError(f"{asset_path.name}: {type(exc).__name__}: {exc}") from exc
    _remove(temps)  # nothing should be left, but never leave a .part behind

    total = time.perf_counter() - t_start
    return RenderResult(
        uid=uid,
        views=len(views),
        files=files,
        missing_textures=missing,
        quality=quality,
        normalization=norm_dict,
        timings={"import_s": round(t_import, 4), "render_s": round(render_s, 4),
                 "write_s": round(write_s, 4), "total_s": round(total, 4)},
        device=backend,
    )


def _remove(paths) -> None:
    for path in paths:
        try:
            Path(path).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # report, but keep cleaning the rest
            log.error("could not remove %s: %s", path, exc)
