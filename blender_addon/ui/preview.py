"""The preview rig in the user's scene: asset tracking, camera markers, orbit guide, view scrubbing
and a one-view render. Cameras come from rig.patterns.sample_views + rig.cameras.c2w_from_view,
the same code path the farm renders with.
"""
import os
import tempfile

import bpy
import numpy as np
from mathutils import Matrix

from ..rig.cameras import c2w_from_view, orbit_position
from ..rig.lighting import lighting_varies_per_view, lights_for
from ..rig.patterns import sample_views
from ..scene import build
from . import fields

RIG_COLLECTION = "MVCap Rig"
CAMERA_NAME = "MVCap Camera"
MARKER_DATA = "MVCap Marker"
ORBIT_NAME = "MVCap Orbit"
ASSET_KEY = "mvcap_asset"  # custom property on the imported asset's objects
PREVIEW_IMAGE = "MVCap Preview"
DEFAULT_UID = "preview"


def spec_of(settings):
    return fields.settings_to_spec(settings)


def uid_of(settings):
    return settings.asset_uid or DEFAULT_UID


def views_of(settings, spec=None):
    spec = spec or spec_of(settings)
    radius = settings.norm_radius if settings.normalized and settings.norm_radius > 0 else None
    return sample_views(spec, uid_of(settings), bounding_radius=radius)


def asset_objects(scene):
    return [ob for ob in scene.objects if ASSET_KEY in ob]


# --- rig objects -------------------------------------------------------------------------------
def rig_collection(scene):
    """The "MVCap Rig" collection, linked to the scene: delete it and the rig is gone."""
    coll = bpy.data.collections.get(RIG_COLLECTION) or bpy.data.collections.new(RIG_COLLECTION)
    if scene.collection.children.get(coll.name) is None:
        scene.collection.children.link(coll)
    return coll


def _move_to_rig(scene, ob):
    coll = rig_collection(scene)
    for other in list(ob.users_collection):
        other.objects.unlink(ob)
    coll.objects.link(ob)


def ensure_camera(scene, spec, fresh=False):
    """The preview camera (scene.build.build_camera, as the farm makes it) in the rig collection,
    made the scene camera. `fresh` rebuilds it so lens changes in the spec apply."""
    ob = bpy.data.objects.get(CAMERA_NAME)
    if ob is not None and (fresh or ob.type != "CAMERA"):
        _remove_object(ob)
        ob = None
    if ob is None:
        ob = build.build_camera(spec)
        ob.name = ob.data.name = CAMERA_NAME
        _move_to_rig(scene, ob)
    scene.camera = ob
    return ob


def _remove_object(ob):
    data = ob.data
    bpy.data.objects.remove(ob, do_unlink=True)
    if data is not None and data.users == 0:
        for coll in (bpy.data.cameras, bpy.data.curves, bpy.data.lights):
            if data.name in coll and coll[data.name] == data:
                coll.remove(data)
                break


def clear_rig(scene):
    """Delete the rig collection and everything in it."""
    coll = bpy.data.collections.get(RIG_COLLECTION)
    if coll is None:
        return
    for ob in list(coll.objects):
        _remove_object(ob)
    bpy.data.collections.remove(coll)
    for data in (bpy.data.cameras.get(MARKER_DATA), bpy.data.cameras.get(CAMERA_NAME)):
        if data is not None and data.users == 0:
            bpy.data.cameras.remove(data)


def _points(azimuth_deg, elevation_deg, distance):
    return orbit_position(*np.broadcast_arrays(azimuth_deg, elevation_deg, distance)).tolist()


def _circle(radius, elevation_deg, steps=72):
    return _points(np.linspace(0.0, 360.0, steps, endpoint=False), elevation_deg, radius)


def _arc(radius, azimuth_deg, el_lo, el_hi, steps=24):
    return _points(azimuth_deg, np.linspace(el_lo, el_hi, steps + 1), radius)


def orbit_polylines(spec, views):
    """(points, cyclic) polylines that show where the cameras live: rings, or the band's dome."""
    cam = spec.camera
    dists = sorted(v.distance for v in views)
    radius = dists[len(dists) // 2] if dists else cam.distance
    if cam.pattern == "explicit":
        return [(_points([v.azimuth_deg for v in views], [v.elevation_deg for v in views],
                         [v.distance for v in views]), False)]
    if cam.pattern == "ring":
        return [(_circle(radius, el), True) for el in cam.elevations_deg]
    lo, hi = (-90.0, 90.0) if cam.pattern == "sphere_random" else (cam.elevation_min_deg, cam.elevation_max_deg)
    lines = [(_circle(radius, el), True) for el in sorted({lo, hi, 0.0}) if lo <= el <= hi and abs(el) < 89.9]
    lines += [(_arc(radius, az, lo, hi), False) for az in (0.0, 90.0, 180.0, 270.0)]
    return lines


def build_rig(scene, settings):
    """(Re)build the preview rig: the camera, one marker per view and the orbit guide."""
    spec = spec_of(settings)
    views = views_of(settings, spec)
    coll = rig_collection(scene)
    for ob in list(coll.objects):
        if ob.name != CAMERA_NAME:
            _remove_object(ob)
    marker = bpy.data.cameras.get(MARKER_DATA) or bpy.data.cameras.new(MARKER_DATA)
    marker.sensor_fit, marker.sensor_width = "HORIZONTAL", spec.camera.sensor_width_mm
    marker.lens, marker.display_size = spec.camera.lens_mm, 0.08
    for view in views:
        ob = bpy.data.objects.new("MVCap View %03d" % view.index, marker)
        ob.matrix_world = Matrix(c2w_from_view(view).tolist())
        ob.hide_render = True
        ob.hide_select = True
        coll.objects.link(ob)
    curve = bpy.data.curves.new(ORBIT_NAME, "CURVE")
    curve.dimensions = "3D"
    for points, cyclic in orbit_polylines(spec, views):
        spline = curve.splines.new("POLY")
        spline.points.add(len(points) - 1)
        for p, co in zip(spline.points, points):
            p.co = (co[0], co[1], co[2], 1.0)
        spline.use_cyclic_u = cyclic
    orbit = bpy.data.objects.new(ORBIT_NAME, curve)
    orbit.hide_render = True
    orbit.hide_select = True
    coll.objects.link(orbit)
    camera = ensure_camera(scene, spec, fresh=True)
    show_view(scene, settings, min(settings.view_index, len(views) - 1), views=views, spec=spec, camera=camera)
    return views


def show_view(scene, settings, index, views=None, spec=None, camera=None):
    """Move the preview camera to view `index`; returns its camera-to-world matrix."""
    spec = spec or spec_of(settings)
    views = views or views_of(settings, spec)
    view = views[max(0, min(index, len(views) - 1))]
    camera = camera or ensure_camera(scene, spec)
    return build.apply_view(camera, view)


_updating = False


def on_view_index(settings, context):
    """IntProperty update: clamp to the view count and move the camera."""
    global _updating
    if _updating:
        return
    _updating = True
    try:
        spec = spec_of(settings)
        views = views_of(settings, spec)
        if settings.view_index > len(views) - 1:
            settings.view_index = len(views) - 1
        show_view(context.scene, settings, settings.view_index, views=views, spec=spec)
    except Exception as exc:  # an update callback cannot report; keep the UI alive
        print(f"MVCap: cannot show view {settings.view_index}: {' '.join(str(exc).split())}")
    finally:
        _updating = False


# --- one-view render ---------------------------------------------------------------------------
def apply_preview_lighting(scene, settings, spec, view, c2w):
    """The farm's lights for this view (rig.lighting.lights_for), moved into the rig collection."""
    if lighting_varies_per_view(spec):
        lights, world = lights_for(spec, uid_of(settings), view=view, c2w=c2w)
    else:
        lights, world = lights_for(spec, uid_of(settings))
    for ob in build.apply_lighting(lights, world):
        _move_to_rig(scene, ob)


def render_view(scene, settings):
    """Render the current view with the spec's settings and lights; returns the preview image."""
    spec = spec_of(settings)
    views = views_of(settings, spec)
    index = max(0, min(settings.view_index, len(views) - 1))
    camera = ensure_camera(scene, spec, fresh=True)
    c2w = show_view(scene, settings, index, views=views, spec=spec, camera=camera)
    apply_preview_lighting(scene, settings, spec, views[index], c2w)
    build.configure_render(spec, "cpu")
    bpy.ops.render.render(write_still=False)
    result = bpy.data.images.get("Render Result")
    if result is None:
        raise RuntimeError("the render produced no image")
    path = os.path.join(bpy.app.tempdir or tempfile.gettempdir(), "mvcap_preview.png")
    result.save_render(path, scene=scene)
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = PREVIEW_IMAGE
    else:
        image.filepath = path
        image.reload()
    return image

def show_image(context, image):
    """Show the image in an open Image Editor, or open the render view for it. False if headless."""
    wm = context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                area.tag_redraw()
                return True
    if context.window is not None and not bpy.app.background:
        try:
            bpy.ops.render.view_show("INVOKE_DEFAULT")
            for window in wm.windows:
                for area in window.screen.areas:
                    if area.type == "IMAGE_EDITOR":
                        area.spaces.active.image = image
                        return True
        except RuntimeError:
            pass
    return False
