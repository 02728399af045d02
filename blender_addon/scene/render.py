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

from ..rig import cameras, lighting, pass_files, patterns, peer_outputs, transforms
from ..rig.fileio import atomic_write_bytes
from . import build, passes
from .errors import AssetError, RenderFault
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
    warnings: list[str] = field(default_factory=list)  # settings this Blender could not honour
    rendered_views: int | None = None  # views rendered by this call (all but those before first_view)

    def to_dict(self) -> dict:
        return {
            "uid": self.uid,
            "views": self.views,
            "rendered_views": self.views if self.rendered_views is None else self.rendered_views,
            "files": list(self.files),
            "missing_textures": list(self.missing_textures),
            "quality": [dict(q) for q in self.quality],
            "normalization": dict(self.normalization),
            "timings": dict(self.timings),
            "warnings": list(self.warnings),
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
@dataclass
class PreparedScene:
    """What every view of one asset shares, built once: the imported and normalised asset, the
    camera, the render settings and (unless they vary per view) the lights."""
    views: list
    camera: object
    normalization: dict
    missing_textures: list[str]
    render_setup: build.RenderSetup
    lights_per_view: bool
    intrinsics: np.ndarray
    corners: np.ndarray  # the normalised bounding box, projected per view by the quality gate
    passes: list[str] = field(default_factory=list)  # depth, normal, albedo, mask (render.outputs)


@dataclass
class RenderedViews:
    files: list[str] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    render_s: float = 0.0
    write_s: float = 0.0


class AttemptFiles:
    """The files one render attempt writes into out_dir, so that a failure removes exactly those."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.tag = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self.written: list[Path] = []
        self.temps: list[Path] = []
        self.created_dir = not out_dir.exists()

    def start(self) -> None:
        """Make out_dir and drop a stale completion marker. Files of other attempts (and anything
        else in the folder) are not this attempt's to remove: the farm renders each attempt into a
        folder of its own."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        marker = self.out_dir / TRANSFORMS_NAME
        if marker.exists():
            marker.unlink()

    def temp(self, name: str, kind: str = "") -> Path:
        path = self.out_dir / f".{name}.{self.tag}{kind}.part"
        self.temps.append(path)
        return path

    def discard(self) -> None:
        _remove(self.written + self.temps)
        if self.created_dir:
            try:
                self.out_dir.rmdir()  # only if empty: an empty views/<uid>/ would look like a started object
            except OSError:
                pass


def _render_still(filepath: Path) -> None:
    scene = bpy.context.scene
    scene.render.filepath = str(filepath)
    result = bpy.ops.render.render(write_still=True)
    if "FINISHED" not in result:
        raise RenderFault(f"render was cancelled ({', '.join(sorted(result))})")
    if not filepath.is_file() or filepath.stat().st_size == 0:
        raise RenderFault(f"render produced no image at {filepath.name}")


def prepare_scene(asset_path: Path, spec, uid: str, device: str) -> PreparedScene:
    """Import and normalise the asset, and build everything its views share (once per asset)."""
    build.reset_scene()
    objects = import_asset(asset_path)
    missing = missing_textures()
    if missing:
        log.warning("%s: missing textures (rendering without them): %s", uid, ", ".join(missing))
    norm = normalize_objects(objects, spec.normalize.mode, spec.normalize.frame)
    views = patterns.sample_views(spec, uid, bounding_radius=norm.radius)
    render_setup = build.configure_render(spec, device)
    camera = build.build_camera(spec)
    lights_per_view = lighting.lighting_varies_per_view(spec)
    view_passes = passes.configure_passes(spec)
    if not lights_per_view:
        lights, world = lighting.lights_for(spec, uid)
        build.apply_lighting(lights, world)
    ren = spec.render
    return PreparedScene(views=views, camera=camera, normalization=norm.to_dict(), missing_textures=missing,
                         render_setup=render_setup, lights_per_view=lights_per_view,
                         intrinsics=cameras.intrinsics(spec.camera, ren.resolution_x, ren.resolution_y),
                         corners=bbox_corners(norm.bbox_min, norm.bbox_max), passes=view_passes)


def render_view(scene: PreparedScene, view, spec, uid: str, attempt: AttemptFiles, done: RenderedViews) -> None:
    """Render one view, check it with the quality gate and move it to its final name."""
    c2w = build.apply_view(scene.camera, view)
    if scene.lights_per_view:
        lights, world = lighting.lights_for(spec, uid, view=view, c2w=c2w)
        build.apply_lighting(lights, world)
    name = view_file_name(view.index, spec.render.file_format)
    tmp_png = attempt.temp(name)
    t0 = time.perf_counter()
    exr = attempt.temp(name, ".passes") if scene.passes else None
    if exr is None:
        _render_still(tmp_png)
    else:
        passes.render_with_passes(exr, tmp_png)
    t1 = time.perf_counter()
    done.render_s += t1 - t0

    corners_px, depth = cameras.project_points(scene.corners, c2w, scene.intrinsics, return_depth=True)
    issues = quality_issues(_read_alpha(tmp_png), corners_px, depth)
    if issues:
        log.warning("%s view %d: %s", uid, view.index, ", ".join(issues))
    done.quality.append({"view": view.index, "issues": issues})
    final = attempt.out_dir / name
    finish_image(tmp_png, final, spec, attempt.temp(name, ".final"))
    attempt.written.append(final)
    done.files.append(name)
    if exr is not None:
        write_pass_files(exr, scene.passes, view.index, attempt)
    done.write_s += time.perf_counter() - t1


def render_views(scene: PreparedScene, spec, uid: str, attempt: AttemptFiles,
                 progress: Callable[[int, int], None] | None, t_start: float, first_view: int = 0) -> RenderedViews:
    """Every view from `first_view` on, in turn; AssetError once the whole asset has taken longer
    than render.timeout_s."""
    done = RenderedViews()
    todo = scene.views[first_view:]
    total = len(todo)
    for n, view in enumerate(todo):
        render_view(scene, view, spec, uid, attempt, done)
        if progress is not None:
            progress(n + 1, total)
        elapsed = time.perf_counter() - t_start
        if elapsed > spec.render.timeout_s and n + 1 < total:
            raise AssetError(f"render timed out: {elapsed:.0f} s > render.timeout_s {spec.render.timeout_s:g} s "
                             f"after {n + 1} of {total} views")
    return done


def write_pass_files(exr: Path, outputs: list[str], index: int, attempt: AttemptFiles) -> None:
    """Split one view's multilayer EXR into its pass files (each atomic), then drop the EXR."""
    try:
        rendered = pass_files.blender_passes(exr)
        for output in outputs:
            final = attempt.out_dir / peer_outputs.view_output_name(output, index)
            temp = attempt.temp(final.name)
            pass_files.write_pass(output, rendered, temp)
            os.replace(temp, final)
            attempt.written.append(final)
    except pass_files.PassError as exc:
        raise AssetError(str(exc)) from None
    finally:
        _remove([exr])


def write_object_files(scene: PreparedScene, spec, attempt: AttemptFiles) -> None:
    """The pose files for peers' loaders (NNN.npy, meta.pkl), each atomic."""
    for name, payload in peer_outputs.object_files(spec, scene.views).items():
        final = attempt.out_dir / name
        attempt.written.append(final)
        atomic_write_bytes(final, payload)


def write_transforms_file(scene: PreparedScene, spec, uid: str, attempt: AttemptFiles, files: list[str]) -> None:
    """transforms.json, the object's completion marker: written last, listing every output."""
    write_object_files(scene, spec, attempt)
    data = transforms.build_transforms(spec, uid, scene.views, scene.normalization, files)
    peer_outputs.add_outputs_to_transforms(data, spec, scene.views)
    data["blender_version"] = bpy.app.version_string  # provenance for the dataset card
    transforms.record_render(data, scene.render_setup.settings, scene.render_setup.warnings)
    marker = attempt.out_dir / TRANSFORMS_NAME
    attempt.written.append(marker)
    transforms.write_transforms(marker, data)


def render_asset(asset_path, spec, out_dir, uid: str | None = None, *, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None, first_view: int = 0) -> RenderResult:
    """Render every view of `asset_path` per `spec` into `out_dir` (NNN.png + transforms.json).

    `first_view` > 0 renders only views first_view..N-1 (adding views to a set rendered with the
    same spec and fewer views: random patterns are prefix-stable), while transforms.json and
    `files` still list all N views, the first ones by their file names (farm/staged.py puts the
    old files beside them). Raises AssetError (one line) on any failure, after removing every
    file this attempt wrote. A stale transforms.json in out_dir is removed first: it marks a
    complete set of views.
    """
    t_start = time.perf_counter()
    asset_path = Path(asset_path)
    uid = uid or asset_path.stem
    attempt = AttemptFiles(Path(out_dir))
    try:
        attempt.start()
        scene = prepare_scene(asset_path, spec, uid, device)
        t_import = time.perf_counter() - t_start
        if not 0 <= first_view < len(scene.views):
            raise AssetError(f"first_view {first_view} is not one of the spec's {len(scene.views)} views")
        done = render_views(scene, spec, uid, attempt, progress, t_start, first_view)
        kept = [view_file_name(v.index, spec.render.file_format) for v in scene.views[:first_view]]
        t0 = time.perf_counter()
        write_transforms_file(scene, spec, uid, attempt, kept + done.files)
        done.write_s += time.perf_counter() - t0
    except BaseException as exc:
        attempt.discard()
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt/SystemExit: a supervisor's stop, not the asset's fault
        if isinstance(exc, RenderFault):
            raise RenderFault(f"{asset_path.name}: {exc}") from None  # the machine's, maybe: not an AssetError
        if not isinstance(exc, AssetError):
            raise AssetError(f"{asset_path.name}: {type(exc).__name__}: {exc}") from exc
        if str(exc).startswith(asset_path.name):
            raise
        raise AssetError(f"{asset_path.name}: {exc}") from None
    _remove(attempt.temps)  # nothing should be left, but never leave a .part behind

    total = time.perf_counter() - t_start
    return RenderResult(
        uid=uid,
        views=len(scene.views),
        rendered_views=len(done.files),
        files=kept + done.files,
        missing_textures=scene.missing_textures,
        quality=done.quality,
        normalization=scene.normalization,
        timings={"import_s": round(t_import, 4), "render_s": round(done.render_s, 4),
                 "write_s": round(done.write_s, 4), "total_s": round(total, 4)},
        device=scene.render_setup.backend,
        warnings=list(scene.render_setup.warnings),
    )


def _remove(paths) -> None:
    for path in paths:
        try:
            Path(path).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # report, but keep cleaning the rest
            log.error("could not remove %s: %s", path, exc)
