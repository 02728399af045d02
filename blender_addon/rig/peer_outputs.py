"""Files beside the views that other pipelines' loaders read (`render.outputs`), and their listing.

- `npy_poses`: `NNN.npy`, the 3x4 world-to-camera [R|t] in Blender camera axes (x right, y up,
  looking down -z), float64: what zero123 and objaverse-xl save (get_3x4_RT_matrix_from_blender)
  and zero123's `ldm/data/simple.py` loads (`T = -R.T @ t` is the camera position).
- `syncdreamer_meta`: `meta.pkl`, the list [K, azimuths, elevations, distances, poses] that
  SyncDreamer's blender_script.py:279 pickles: K float32, azimuths float32 and elevations float64
  in radians, distances float64, poses (N,3,4) float64 world-to-camera in OpenCV axes.
  `ldm/data/sync_dreamer.py:72` unpickles it. It is written output only: nothing here loads a pickle.
- `trellis_transforms`: in transforms.json itself, a per-frame `camera_angle_x` and top-level
  `aabb`, `scale` and `offset`, as TRELLIS's render.py:451-497 writes and extract_feature.py reads.

Every extra output (the passes of rig/pass_files.py too) is named per view by `view_output_name`
and described in transforms.json's `outputs` by `add_outputs_to_transforms`.
"""
from __future__ import annotations

import io
import pickle
from typing import Any, Sequence

import numpy as np

from .cameras import c2w_from_view, camera_angle_x, gl_to_cv, intrinsics, world_to_camera
from .spec import PASS_OUTPUTS, ViewSpec

SYNCDREAMER_META = "meta.pkl"
TRELLIS_AABB = [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]]  # TRELLIS render.py:452: the unit cube
# suffix and extension of each per-view output; "" is the view's own number: 000.npy
VIEW_OUTPUT_FILES = {"npy_poses": ("", "npy"), "depth": ("_depth", "exr"), "normal": ("_normal", "exr"),
                     "albedo": ("_albedo", "png"), "mask": ("_mask", "png")}
DESCRIPTIONS = {
    "npy_poses": "numpy .npy, float64 (3,4): world-to-camera [R|t] in Blender camera axes (x right, y up, looking "
                 "down -z), as zero123 and objaverse-xl write it",
    "syncdreamer_meta": "pickle of [K float32 (3,3), azimuths float32 (N,) rad, elevations float64 (N,) rad, "
                        "distances float64 (N,), poses float64 (N,3,4) world-to-camera in OpenCV axes], as SyncDreamer "
                        "writes it",
    "trellis_transforms": "this file: per-frame camera_angle_x (rad) and top-level aabb, scale and offset, as TRELLIS "
                          "writes them",
    "depth": "OpenEXR float32, channel Z: z-depth, the distance along the camera's viewing axis (-z) in the "
             "normalised object frame's units; 0 where no surface was hit",
    "normal": "OpenEXR float32, channels X Y Z: the shading normal in world space (Z up, the normalised object "
              "frame), unit length inside a surface; 0 where no surface was hit",
    "albedo": "PNG RGBA 8-bit: Cycles' diffuse colour pass, sRGB-encoded (no view transform), alpha from the render",
    "mask": "PNG L 8-bit: 255 where the object covers the pixel (Cycles' object index pass), 0 elsewhere",
}


def view_output_name(output: str, index: int) -> str:
    """The file of one view's extra output: 000.npy, 000_depth.exr, ..."""
    suffix, ext = VIEW_OUTPUT_FILES[output]
    return f"{index:03d}{suffix}.{ext}"


def npy_pose(c2w_gl: np.ndarray) -> np.ndarray:
    """zero123's and objaverse-xl's RT: world-to-camera (3,4) in Blender camera axes."""
    return world_to_camera(np.asarray(c2w_gl, dtype=np.float64))[:3, :]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def syncdreamer_meta(spec: ViewSpec, views: Sequence[Any]) -> list:
    """[K, azimuths, elevations, distances, poses] with SyncDreamer's dtypes (blender_script.py:139-141,
    253-258, 251, 208-214)."""
    width, height = spec.render.resolution_x, spec.render.resolution_y
    K = intrinsics(spec.camera, width, height).astype(np.float32)
    azimuths = np.radians([v.azimuth_deg for v in views]).astype(np.float32)
    elevations = np.radians([v.elevation_deg for v in views]).astype(np.float64)
    distances = np.asarray([v.distance for v in views], dtype=np.float64)
    poses = np.stack([world_to_camera(gl_to_cv(c2w_from_view(v)))[:3, :] for v in views])
    return [K, azimuths, elevations, distances, poses]


def syncdreamer_meta_bytes(spec: ViewSpec, views: Sequence[Any]) -> bytes:
    return pickle.dumps(syncdreamer_meta(spec, views), protocol=4)


def object_files(spec: ViewSpec, views: Sequence[Any]) -> dict[str, bytes]:
    """The pose files of one object, name -> bytes (passes come from the renders, not from here)."""
    outputs = spec.render.outputs
    files = {}
    if "npy_poses" in outputs:
        for view in views:
            files[view_output_name("npy_poses", view.index)] = npy_bytes(npy_pose(c2w_from_view(view)))
    if "syncdreamer_meta" in outputs:
        files[SYNCDREAMER_META] = syncdreamer_meta_bytes(spec, views)
    return files


def add_outputs_to_transforms(data: dict[str, Any], spec: ViewSpec, views: Sequence[Any]) -> dict[str, Any]:
    """List every extra output in a transforms.json document (in place): per frame `<output>_file_path`,
    top level `outputs: {name: {files | file, format}}`; and TRELLIS's fields when asked for."""
    extras = [name for name in spec.render.outputs if name != "rgba"]
    listing: dict[str, Any] = {"rgba": {"files": [frame["file_path"] for frame in data["frames"]]}}
    for name in extras:
        if name in VIEW_OUTPUT_FILES:
            key = "pose_file_path" if name == "npy_poses" else f"{name}_file_path"
            names = [view_output_name(name, view.index) for view in views]
            for frame, file_name in zip(data["frames"], names):
                frame[key] = file_name
            listing[name] = {"files": names, "frame_key": key, "format": DESCRIPTIONS[name]}
        elif name == "syncdreamer_meta":
            listing[name] = {"file": SYNCDREAMER_META, "format": DESCRIPTIONS[name]}
        else:
            listing[name] = {"file": "transforms.json", "format": DESCRIPTIONS[name]}
    if "trellis_transforms" in extras:
        add_trellis_fields(data, spec)
    data["outputs"] = listing
    return data


def add_trellis_fields(data: dict[str, Any], spec: ViewSpec) -> None:
    norm = data["normalization"]
    data["aabb"] = TRELLIS_AABB
    data["scale"] = float(norm["scale"])
    data["offset"] = [float(v) for v in norm["offset"]]
    fov = camera_angle_x(spec.camera)
    for frame in data["frames"]:
        frame["camera_angle_x"] = fov


def pass_outputs(spec: ViewSpec) -> list[str]:
    """The passes a spec asks for, in a fixed order."""
    return [name for name in PASS_OUTPUTS if name in spec.render.outputs]

