"""Render passes as files: split Blender's multilayer EXR into one file per pass, and read them back.

No bpy: scene/passes.py makes Cycles write every pass of a view into one multilayer EXR; this
module turns it into the files that `render.outputs` names (rig/peer_outputs.DESCRIPTIONS says
what each holds), and gives the gallery a preview of each. EXR files go through rig/exr.py.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from . import exr

# Cycles writes this depth where a pixel's first sample hit nothing
NO_HIT_DEPTH = 1e9
# Blender names a pass differently across versions (3.x/4.x short names, 5.0 long ones)
PASS_NAMES = {"Combined": "Combined", "Depth": "Depth", "Normal": "Normal", "DiffCol": "DiffCol",
              "Diffuse Color": "DiffCol", "IndexOB": "IndexOB", "Object Index": "IndexOB"}
# mask: the object index pass is 1 on the object (scene/passes.py sets pass_index), 0 elsewhere
MASK_INDEX_THRESHOLD = 0.5


class PassError(RuntimeError):
    """A pass that cannot be written or read; the message is one line."""


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Every channel of an EXR (all parts of a multi-part file), name -> float32 (H, W)."""
    try:
        return exr.read(path)
    except (OSError, ValueError, KeyError, IndexError, struct.error, zlib.error) as exc:
        raise PassError(f"{Path(path).name}: cannot read EXR ({exc})") from None


def blender_passes(path: str | Path) -> dict[str, np.ndarray]:
    """A Blender multilayer EXR as {"Depth.Z": ..., "Normal.X": ..., "Combined.A": ...} (one view layer)."""
    passes = {}
    for name, pixels in read_exr(path).items():
        parts = name.rsplit(".", 2)  # "<view layer>.<pass>.<channel>"
        if len(parts) == 3 and parts[1] in PASS_NAMES:
            passes[f"{PASS_NAMES[parts[1]]}.{parts[2]}"] = pixels
    return passes


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] to 8-bit sRGB (IEC 61966-2-1)."""
    x = np.clip(linear, 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(encoded * 255.0).astype(np.uint8)


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def write_pass(output: str, passes: dict[str, np.ndarray], path: Path) -> None:
    """Write one pass file of `output` ("depth" | "normal" | "albedo" | "mask") from blender_passes()."""
    try:
        if output == "depth":
            depth = passes["Depth.Z"]
            exr.write(path, {"Z": np.where(depth >= NO_HIT_DEPTH, 0.0, depth)})
        elif output == "normal":
            exr.write(path, {axis: passes[f"Normal.{axis}"] for axis in "XYZ"})
        elif output == "albedo":
            rgb = srgb_encode(np.stack([passes[f"DiffCol.{c}"] for c in "RGB"], axis=-1))
            alpha = np.round(np.clip(passes["Combined.A"], 0.0, 1.0) * 255.0).astype(np.uint8)
            path.write_bytes(_png_bytes(np.dstack([rgb, alpha]), "RGBA"))
        elif output == "mask":
            mask = np.where(passes["IndexOB.X"] > MASK_INDEX_THRESHOLD, 255, 0).astype(np.uint8)
            path.write_bytes(_png_bytes(mask, "L"))
        else:
            raise PassError(f"unknown pass output {output!r}")
    except KeyError as exc:
        raise PassError(f"{output}: the render has no {exc.args[0]} pass") from None


def read_depth(path: str | Path) -> np.ndarray:
    return read_exr(path)["Z"]


def read_normal(path: str | Path) -> np.ndarray:
    """(H, W, 3) world-space normals."""
    channels = read_exr(path)
    return np.stack([channels[axis] for axis in "XYZ"], axis=-1)


def preview(output: str, path: str | Path):
    """An 8-bit RGB(A) PIL image of one pass file, for the gallery: depth near = bright."""
    from PIL import Image

    if output == "depth":
        depth = read_depth(path)
        hit = depth > 0
        grey = np.zeros(depth.shape, np.uint8)
        if hit.any():
            near, far = float(depth[hit].min()), float(depth[hit].max())
            grey[hit] = np.round(255 - 200 * (depth[hit] - near) / max(far - near, 1e-9)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if output == "normal":
        return Image.fromarray(np.round((np.clip(read_normal(path), -1, 1) + 1) * 127.5).astype(np.uint8), "RGB")
    with Image.open(path) as image:
        return image.convert("RGBA")
