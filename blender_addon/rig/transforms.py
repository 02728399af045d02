"""transforms.json: the NeRF-synthetic camera file written beside each object's views.

`transform_matrix` is camera-to-world, 4x4, in Blender/OpenGL camera axes (x right, y up,
looking down -z), in the normalised object frame (Z-up world). The normalisation applied to
the asset (`world_normalised = scale · world_original + offset`) is recorded with it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cameras import c2w_from_view, camera_angle_x, intrinsics
from .fileio import atomic_write_json
from .patterns import View
from .spec import ViewSpec

CAMERA_CONVENTION = "c2w, Blender/OpenGL camera axes (x right, y up, looking down -z), Z-up world"
REQUIRED_TOP_KEYS = ("camera_angle_x", "fl_x", "fl_y", "cx", "cy", "w", "h", "frames")
REQUIRED_FRAME_KEYS = ("file_path", "transform_matrix", "azimuth_deg", "elevation_deg", "distance")


class TransformsError(ValueError):
    """A transforms.json that does not follow the contract. The message is one line."""


def build_transforms(
    spec: ViewSpec,
    uid: str,
    views: Sequence[View],
    normalization: dict[str, Any],
    file_names: Sequence[str],
) -> dict[str, Any]:
    """The transforms.json document for one object's views (file names relative to the file)."""
    if len(views) != len(file_names):
        raise ValueError(f"{len(views)} views but {len(file_names)} file names")
    missing = [key for key in ("scale", "offset") if key not in normalization]
    if missing:
        raise ValueError(f"normalization needs {', '.join(missing)}")
    width, height = spec.render.resolution_x, spec.render.resolution_y
    K = intrinsics(spec.camera, width, height)
    frames = [
        {
            "file_path": file_name,
            "transform_matrix": c2w_from_view(view).tolist(),
            "azimuth_deg": view.azimuth_deg,
            "elevation_deg": view.elevation_deg,
            "distance": view.distance,
            "roll_deg": view.roll_deg,
        }
        for view, file_name in zip(views, file_names)
    ]
    return {
        "camera_angle_x": camera_angle_x(spec.camera),
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": width,
        "h": height,
        "lens_mm": spec.camera.lens_mm,
        "sensor_width_mm": spec.camera.sensor_width_mm,
        "camera_convention": CAMERA_CONVENTION,
        "uid": uid,
        "spec_hash": spec.spec_hash(),
        "spec_name": spec.name,
        "seed": spec.seed,
        "normalization": normalization,
        "frames": frames,
    }


def record_render(data: dict[str, Any], settings: dict[str, Any], warnings: Sequence[str]) -> dict[str, Any]:
    """Record how the pixels were formed: `render` holds the settings Blender was given (engine,
    device, samples, colour, filter, bounces, adaptive sampling, denoiser, light tree; null where
    the engine has no such setting) and `warnings` each spec setting this Blender could not honour."""
    data["render"] = dict(settings)
    data["warnings"] = list(warnings)
    return data


def write_transforms(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write atomically: the file appears under its name only when complete."""
    return atomic_write_json(path, data)


def read_transforms(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a transforms.json. Raises TransformsError with a one-line message."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TransformsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise TransformsError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise TransformsError(f"{path}: expected a JSON object")
    for key in REQUIRED_TOP_KEYS:
        if key not in data:
            raise TransformsError(f"{path}: missing {key!r}")
    if not isinstance(data["frames"], list):
        raise TransformsError(f"{path}: 'frames' must be a list")
    for i, frame in enumerate(data["frames"]):
        for key in REQUIRED_FRAME_KEYS:
            if not isinstance(frame, dict) or key not in frame:
                raise TransformsError(f"{path}: frames[{i}] is missing {key!r}")
        if np.shape(frame["transform_matrix"]) != (4, 4):
            raise TransformsError(f"{path}: frames[{i}].transform_matrix must be 4x4")
    return data


def frame_matrices(data: dict[str, Any]) -> np.ndarray:
    """All frames' camera-to-world matrices as one (N,4,4) float64 array (GL axes)."""
    return np.asarray([frame["transform_matrix"] for frame in data["frames"]], dtype=np.float64).reshape(-1, 4, 4)
