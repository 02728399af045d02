"""The preview rig in the artist's scene: the asset, the rig camera, one marker per view, the orbit
guide and the spec's lights. Cameras come from rig.patterns.sample_views + rig.cameras.c2w_from_view
and lights from rig.lighting.lights_for: the code the farm renders with. What the rig changes in
the scene (camera, world, render size) is remembered and put back by clear_rig (rig_state.py).
"""
import bpy
import numpy as np
from mathutils import Matrix

from ..rig.cameras import c2w_from_view, orbit_position
from ..rig.lighting import lighting_varies_per_view, lights_for
from ..rig.patterns import sample_views
from ..scene import build
from ..scene.normalize import normalize_objects
from . import fields, messages, rig_state

RIG_COLLECTION = "MVCap Rig"
CAMERA_NAME = "MVCap Camera"
MARKER_DATA = "MVCap Marker"
CURRENT_MARKER_DATA = "MVCap Marker (current view)"
MARKER_PREFIX = "MVCap View "
ORBIT_NAME = "MVCap Orbit"
ASSET_KEY = "mvcap_asset"  # custom property on the imported asset's objects
MARKER_SIZE = 0.05  # marker frustum size per unit of orbit radius
CURRENT_MARKER_SCALE = 2.5  # the current view's marker is drawn this much larger, with its name


class RigError(ValueError):
    """The rig cannot be built or shown. One-line message."""


def spec_of(settings):
    return fields.settings_to_spec(settings)


def uid_of(settings):
    return settings.asset_uid


def views_of(settings, spec=None):
    spec = spec or spec_of(settings)
    radius = settings.norm_radius if settings.normalized and settings.norm_radius > 0 else None
    return sample_views(spec, uid_of(settings) or "preview", bounding_radius=radius)


def asset_objects(scene):
    return [ob for ob in scene.objects if ASSET_KEY in ob]


def marker_name(index):
    return MARKER_PREFIX + "%03d" % index


# --- rig objects -------------------------------------------------------------------------------
def rig_collection(scene, create=True):
    """The "MVCap Rig" collection, linked to the scene: delete it and the rig is gone."""
    coll = bpy.data.collections.get(RIG_COLLECTION)
    if coll is None and create:
        coll = bpy.data.collections.new(RIG_COLLECTION)
    if coll is not None and scene.collection.children.get(coll.name) is None:
        scene.collection.children.link(coll)
    return coll


def _move_to_rig(scene, ob):
    coll = rig_collection(scene)
    for other in list(ob.users_collection):
        other.objects.unlink(ob)
    coll.objects.link(ob)


def ensure_camera(scene, spec, fresh=False):
    """The rig camera (scene.build.build_camera, as the farm makes it), made the scene camera.
    `fresh` rebuilds it so lens changes in the spec apply."""
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
    """Delete the rig collection and everything in it, and put back the scene's camera, world
    and render size."""
    coll = bpy.data.collections.get(RIG_COLLECTION)
    if coll is None:
        return
    rig_world = scene.world if scene.world is not None and scene.world.get(build.RIG_TAG) else None
    rig_state.restore(scene, coll)
    for ob in list(coll.objects):
        _remove_object(ob)
    bpy.data.collections.remove(coll)
    if rig_world is not None and rig_world.users == 0:
        bpy.data.worlds.remove(rig_world)
    for name in (MARKER_DATA, CURRENT_MARKER_DATA, CAMERA_NAME):
        data = bpy.data.cameras.get(name)
        if data is not None and data.users == 0:
            bpy.data.cameras.remove(data)


# --- orbit guide -------------------------------------------------------------------------------
def _points(azimuth_deg, elevation_deg, distance):
    return orbit_position(*np.broadcast_arrays(azimuth_deg, elevation_deg, distance)).tolist()


def _circle(radius, elevation_deg, steps=72):
    return _points(np.linspace(0.0, 360.0, steps, endpoint=False), elevation_deg, radius)


def _arc(radius, azimuth_deg, el_lo, el_hi, steps=24):
    return _points(azimuth_deg, np.linspace(el_lo, el_hi, steps + 1), radius)


def orbit_radius(spec, views):
    dists = sorted(v.distance for v in views)
    return dists[len(dists) // 2] if dists else spec.camera.distance


def orbit_polylines(spec, views):
    """(points, cyclic) polylines that show where the cameras live: rings, or the band's dome."""
    cam = spec.camera
    radius = orbit_radius(spec, views)
    if cam.pattern == "explicit":
        return [(_points([v.azimuth_deg for v in views], [v.elevation_deg for v in views],
                         [v.distance for v in views]), False)]
    if cam.pattern == "ring":
        return [(_circle(radius, el), True) for el in cam.elevations_deg]
    lo, hi = (-90.0, 90.0) if cam.pattern == "sphere_random" else (cam.elevation_min_deg, cam.elevation_max_deg)
    lines = [(_circle(radius, el), True) for el in sorted({lo, hi, 0.0}) if lo <= el <= hi and abs(el) < 89.9]
    lines += [(_arc(radius, az, lo, hi), False) for az in (0.0, 90.0, 180.0, 270.0)]
    return lines


def _add_orbit(coll, spec, views):
    curve = bpy.data.curves.new(ORBIT_NAME, "CURVE")
    curve.dimensions = "3D"
    for points, cyclic in orbit_polylines(spec, views):
        spline = curve.splines.new("POLY")
        spline.points.add(len(points) - 1)
        for p, co in zip(spline.points, points):
            p.co = (co[0], co[1], co[2], 1.0)
        spline.use_cyclic_u = cyclic
    orbit = bpy.data.objects.new(ORBIT_NAME, curve)
    orbit.hide_render = orbit.hide_select = True
    coll.objects.link(orbit)


# --- markers -----------------------------------------------------------------------------------
def _marker_data(name, spec, size):
    data = bpy.data.cameras.get(name) or bpy.data.cameras.new(name)
    data.sensor_fit, data.sensor_width = "HORIZONTAL", spec.camera.sensor_width_mm
    data.lens, data.display_size = spec.camera.lens_mm, size
    return data


def _add_markers(coll, spec, views):
    """One camera marker per view, sized to the orbit so they read at any distance."""
    size = MARKER_SIZE * orbit_radius(spec, views)
    marker = _marker_data(MARKER_DATA, spec, size)
    _marker_data(CURRENT_MARKER_DATA, spec, size * CURRENT_MARKER_SCALE)
    for view in views:
        ob = bpy.data.objects.new(marker_name(view.index), marker)
        ob.matrix_world = Matrix(c2w_from_view(view).tolist())
        ob.hide_render = ob.hide_select = True
        coll.objects.link(ob)


def highlight_marker(index):
    """The current view's marker drawn larger and named; the others plain."""
    plain, current = bpy.data.cameras.get(MARKER_DATA), bpy.data.cameras.get(CURRENT_MARKER_DATA)
    coll = bpy.data.collections.get(RIG_COLLECTION)
    if coll is None or plain is None or current is None:
        return
    wanted = marker_name(index)
    for ob in coll.objects:
        if ob.name.startswith(MARKER_PREFIX):
            is_current = ob.name == wanted
            if ob.show_name != is_current or (ob.data == current) != is_current:
                ob.data, ob.show_name = (current if is_current else plain), is_current


# --- asset ---------------------------------------------------------------------------------------
NORM_EMPTY_SIZE = 0.5  # the normalisation empty's axes, in normalised units


def normalize_asset(scene, settings):
    """Normalise the asset as the farm does (spec.normalize), keeping the scene's frame range."""
    objects = asset_objects(scene)
    if not objects:
        raise RigError("nothing to normalise: import an asset first")
    frames = scene.frame_start, scene.frame_end, scene.frame_current
    try:
        norm = normalize_objects(objects, settings.normalize.mode, settings.normalize.frame)
    finally:
        scene.frame_start, scene.frame_end = frames[:2]
        scene.frame_set(frames[2])
    for ob in objects:  # the holder normalisation parents the asset to belongs to the asset
        while ob.parent is not None:
            ob = ob.parent
            ob[ASSET_KEY] = settings.asset_uid
            if ob.type == "EMPTY" and norm.scale > 0:
                ob.empty_display_size = NORM_EMPTY_SIZE / norm.scale
    settings.normalized, settings.norm_radius, settings.norm_scale = True, float(norm.radius), float(norm.scale)
    return norm


# --- build and scrub ---------------------------------------------------------------------------
def build_rig(scene, settings):
    """(Re)build the rig: camera, markers, orbit and lights, at the spec's render size. The asset
    is normalised first if it is not yet, as the farm does."""
    if not asset_objects(scene):
        raise RigError("no asset: import one first (Import), then build the rig around it")
    if not settings.normalized:
        normalize_asset(scene, settings)
    spec = spec_of(settings)
    views = views_of(settings, spec)
    coll = rig_collection(scene)
    rig_state.remember(scene, coll)
    for ob in list(coll.objects):
        if ob.name != CAMERA_NAME:
            _remove_object(ob)
    _add_markers(coll, spec, views)
    _add_orbit(coll, spec, views)
    camera = ensure_camera(scene, spec, fresh=True)
    rig_state.show_spec_size(scene, spec)
    index = min(settings.view_index, len(views) - 1)
    c2w = show_view(scene, settings, index, views=views, spec=spec, camera=camera)
    if not lighting_varies_per_view(spec):  # else show_view has lit this view
        apply_preview_lighting(scene, settings, spec, views[index], c2w)
    return views


def show_view(scene, settings, index, views=None, spec=None, camera=None):
    """Move the rig camera to view `index` (and the lights, when they follow the view);
    returns its camera-to-world matrix."""
    spec = spec or spec_of(settings)
    views = views or views_of(settings, spec)
    view = views[max(0, min(index, len(views) - 1))]
    camera = camera or ensure_camera(scene, spec)
    c2w = build.apply_view(camera, view)
    highlight_marker(view.index)
    if lighting_varies_per_view(spec) and bpy.data.collections.get(RIG_COLLECTION) is not None:
        apply_preview_lighting(scene, settings, spec, view, c2w)
    return c2w


def apply_preview_lighting(scene, settings, spec, view, c2w):
    """The farm's lights for this view (rig.lighting.lights_for), moved into the rig collection."""
    uid = uid_of(settings) or "preview"
    if lighting_varies_per_view(spec):
        lights, world = lights_for(spec, uid, view=view, c2w=c2w)
    else:
        lights, world = lights_for(spec, uid)
    for ob in build.apply_lighting(lights, world):
        _move_to_rig(scene, ob)


def view_message(settings, count):
    """The panel's note for a view index past the last view, else ""."""
    if settings.view_index >= count:
        return f"View {settings.view_index} does not exist: this spec has {count} views (0-{count - 1})"
    return ""


def on_view_index(settings, context):
    """IntProperty update: move the camera; a bad index or spec is shown under the slider."""
    try:
        spec = spec_of(settings)
        views = views_of(settings, spec)
        settings.view_message = view_message(settings, len(views))
        if not settings.view_message and bpy.data.collections.get(RIG_COLLECTION) is not None:
            show_view(context.scene, settings, settings.view_index, views=views, spec=spec)
    except Exception as exc:  # an update callback cannot report: the panel shows it
        settings.view_message = messages.panel_message(f"cannot show view {settings.view_index}: {exc}")
