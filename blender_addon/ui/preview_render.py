"""Render View: one view rendered with the spec's settings on a temporary scene that holds only
the asset, the rig camera, lights and world, as the farm's scene does. The artist's scene keeps
its engine, film, colour management and compositor, and the temporary scene is removed after.
"""
import os
import tempfile

import bpy

from ..scene import build
from . import preview

PREVIEW_IMAGE = "MVCap Preview"
TEMP_SCENE = "MVCap Render View"


def _temp_scene(scene):
    """A scene with the asset, the rig camera, lights and the rig's world."""
    tmp = bpy.data.scenes.new(TEMP_SCENE)
    rig = bpy.data.collections[preview.RIG_COLLECTION]
    for ob in preview.asset_objects(scene) + [ob for ob in rig.objects if ob.type in ("CAMERA", "LIGHT")]:
        if not ob.name.startswith(preview.MARKER_PREFIX):
            tmp.collection.objects.link(ob)
    tmp.camera, tmp.world = scene.camera, scene.world
    tmp.frame_current = scene.frame_current
    return tmp


def render_view(context, settings):
    """Render the current view; returns (image, warnings from the render setup)."""
    scene = context.scene
    views = preview.build_rig(scene, settings)  # the spec may have changed since the last build
    message = preview.view_message(settings, len(views))
    if message:
        raise preview.RigError(message)
    spec = preview.spec_of(settings)
    tmp = _temp_scene(scene)
    path = os.path.join(bpy.app.tempdir or tempfile.gettempdir(), "mvcap_preview.png")
    try:
        with context.temp_override(scene=tmp, view_layer=tmp.view_layers[0]):
            setup = build.configure_render(spec, "cpu")
            bpy.ops.render.render(write_still=False, scene=tmp.name)
        result = bpy.data.images.get("Render Result")
        if result is None:
            raise RuntimeError("the render produced no image")
        result.save_render(path, scene=tmp)
    finally:
        bpy.data.scenes.remove(tmp)
    return load_image(PREVIEW_IMAGE, path), list(setup.warnings)


def load_image(name, path):
    """The image called `name`, (re)loaded from `path`."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = name
    else:
        image.filepath = path
        image.reload()
    return image


def show_image(context, image):
    """Show the image in an open Image Editor, or open the render window for it. False if headless."""
    wm = context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                region = next(r for r in area.regions if r.type == "WINDOW")
                with context.temp_override(window=window, area=area, region=region):
                    bpy.ops.image.view_all(fit_view=True)
                return True
    if context.window is not None and not bpy.app.background:
        try:
            bpy.ops.render.view_show("INVOKE_DEFAULT")
        except RuntimeError:
            return False
        return show_image(context, image) if any(
            a.type == "IMAGE_EDITOR" for w in wm.windows for a in w.screen.areas) else False
    return False
