"""Extra render passes (depth, normal, albedo, mask) without the compositor.

Cycles renders the view's passes into one multilayer EXR (`write_still`, the path every version
since 2.8 writes all passes on), then the same render result is saved once more as the RGBA PNG
(`Image.save_render`: the view transform applied exactly as `write_still` applies it).
rig/pass_files.py splits the EXR. Not touching the compositor keeps one code path for 3.4 to
5.0, where 5.0 moved it to `scene.compositing_node_group`.
"""
from __future__ import annotations

from pathlib import Path

import bpy

from ..rig.peer_outputs import pass_outputs
from .build import RIG_TAG
from .errors import AssetError

# the view layer switch of each pass output
PASS_FLAGS = {"depth": "use_pass_z", "normal": "use_pass_normal", "albedo": "use_pass_diffuse_color",
              "mask": "use_pass_object_index"}
OBJECT_PASS_INDEX = 1  # every object of the asset; the mask is "index > 0.5"
_SAVED_SETTINGS = ("media_type", "file_format", "color_mode", "color_depth", "compression")


def configure_passes(spec) -> list[str]:
    """Switch the view layer's passes to exactly those the spec asks for (a worker's scene is reused).
    Returns the pass outputs. The asset must be imported: the mask marks its objects."""
    passes = pass_outputs(spec)
    layer = bpy.context.view_layer
    for name, flag in PASS_FLAGS.items():
        setattr(layer, flag, name in passes)
    if "mask" in passes:
        for obj in bpy.context.scene.objects:
            if not obj.get(RIG_TAG):
                obj.pass_index = OBJECT_PASS_INDEX
    return passes


def _use_multilayer_exr(settings) -> None:
    if hasattr(settings, "media_type"):  # 5.0: the format list depends on the media type
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"  # a temporary file, read once: no time spent compressing


def render_with_passes(exr_path: Path, png_path: Path) -> None:
    """Render the current view: every pass into `exr_path`, the RGBA image into `png_path`."""
    scene = bpy.context.scene
    settings = scene.render.image_settings
    saved = {name: getattr(settings, name) for name in _SAVED_SETTINGS if hasattr(settings, name)}
    try:
        _use_multilayer_exr(settings)
        scene.render.filepath = str(exr_path)
        result = bpy.ops.render.render(write_still=True)
        if "FINISHED" not in result:
            raise AssetError(f"render was cancelled ({', '.join(sorted(result))})")
    finally:
        for name, value in saved.items():  # media_type first: it decides which formats exist
            setattr(settings, name, value)
    if not exr_path.is_file():
        raise AssetError(f"render produced no passes file at {exr_path.name}")
    bpy.data.images["Render Result"].save_render(str(png_path), scene=scene)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise AssetError(f"render produced no image at {png_path.name}")
