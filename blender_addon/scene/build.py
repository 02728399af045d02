"""Build the render scene from a spec: reset, render settings, camera, lights and world.

Works on Blender 3.4 to 5.0. Camera poses and light placement come from blender_addon.rig; this
module only turns them into Blender data.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import bpy
from mathutils import Matrix

from ..rig import cameras
from ..rig.spec import SpecError
from . import render_settings

log = logging.getLogger(__name__)

RIG_TAG = "mvcap_rig"  # custom property on the camera, lights and world this module creates
VERSION = tuple(bpy.app.version)

# Every ID collection an imported asset can fill. Scenes, window managers, workspaces and
# screens stay: they are the long-lived process's own.
_ASSET_DATA = (
    "objects", "meshes", "materials", "textures", "images", "node_groups", "actions", "armatures",
    "cameras", "lights", "curves", "lattices", "metaballs", "fonts", "particles", "worlds",
    "collections", "grease_pencils", "hair_curves", "pointclouds", "volumes", "lightprobes",
    "speakers", "cache_files", "movieclips", "sounds", "masks", "libraries", "annotations",
)


def eevee_engine_name() -> str:
    """EEVEE's identifier: 'BLENDER_EEVEE_NEXT' in 4.2 to 4.x, 'BLENDER_EEVEE' before and in 5.0+."""
    return "BLENDER_EEVEE_NEXT" if (4, 2, 0) <= VERSION < (5, 0, 0) else "BLENDER_EEVEE"


def reset_scene() -> None:
    """Remove everything a previous asset or the startup file left, keeping bpy loaded.

    Cheaper than wm.read_factory_settings (measured on bpy 5.0.1: reset + import of a 1.5 MB GLB
    36 ms, against 79 ms with factory settings), and it frees the data blocks (meshes, images),
    so a long-lived worker does not grow: RSS stayed at 380-440 MB over 160 renders of 4 assets.
    """
    scene = bpy.context.scene
    # Other scenes (e.g. appended from a .blend) go first: they hold users of the data below.
    for other in [s for s in bpy.data.scenes if s != scene]:
        bpy.data.scenes.remove(other)
    for child in list(scene.collection.children):
        scene.collection.children.unlink(child)
    scene.world = None
    scene.camera = None
    for attr in _ASSET_DATA:
        blocks = getattr(bpy.data, attr, None)
        if blocks is None:
            continue
        if len(blocks):
            bpy.data.batch_remove(list(blocks))
    # Anything the removed blocks were the last users of goes too.
    try:
        bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)
    except TypeError:  # 3.x before the keyword arguments
        bpy.data.orphans_purge()
    scene.frame_start, scene.frame_end = 1, 1
    scene.frame_set(1)


def enable_gpu(device: str) -> str:
    """Turn on Cycles GPU rendering. Returns the backend in use: OPTIX, CUDA, HIP, ONEAPI, METAL or CPU.

    `device` is "cpu", "gpu" (best available) or a backend name. No usable GPU gives "CPU" and a
    warning, not an error: the render still works, only slower.
    """
    device = (device or "cpu").lower()
    if device == "cpu":
        return "CPU"
    if device in _gpu_choice:  # probing devices is slow (driver init); once per process
        backend = _gpu_choice[device]
        if backend != "CPU":
            bpy.context.preferences.addons["cycles"].preferences.compute_device_type = backend
        return backend
    _gpu_choice[device] = backend = _probe_gpu(device)
    return backend


_gpu_choice: dict[str, str] = {}


def _probe_gpu(device: str) -> str:
    wanted = ["OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"] if device == "gpu" else [device.upper()]
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
    except KeyError:
        log.warning("Cycles add-on preferences not found; rendering on CPU")
        return "CPU"
    allowed = {item.identifier for item in prefs.bl_rna.properties["compute_device_type"].enum_items}
    for backend in wanted:
        if backend not in allowed:
            continue
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        if hasattr(prefs, "refresh_devices"):
            prefs.refresh_devices()
        else:
            prefs.get_devices()
        devices = [d for d in prefs.devices if d.type == backend]
        if devices:
            for d in prefs.devices:
                d.use = d.type == backend
            return backend
    log.warning("no GPU found for device=%s (tried %s); rendering on CPU", device, ", ".join(wanted))
    prefs.compute_device_type = "NONE"
    return "CPU"


@dataclass
class RenderSetup:
    """What configure_render gave Blender: the device backend, the settings as applied (for
    transforms.json) and the warnings for settings this Blender could not honour."""
    backend: str
    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def configure_render(spec, device: str = "cpu") -> RenderSetup:
    """Apply spec.render and spec.background to the scene."""
    scene = bpy.context.scene
    ren, render = spec.render, scene.render
    backend = "CPU"
    if ren.engine == "cycles":
        render.engine = "CYCLES"
        backend = enable_gpu(device)
        scene.cycles.device = "CPU" if backend == "CPU" else "GPU"
        applied = render_settings.apply_cycles(scene, ren)
        # Keep BVH, shaders and textures between the views of one asset.
        render.use_persistent_data = True
    else:
        render.engine = eevee_engine_name()
        if backend == "CPU" and device != "cpu":
            backend = "GPU"  # EEVEE always renders on the GPU the OpenGL/Vulkan context uses
        applied = render_settings.apply_eevee(scene, ren)
    render.resolution_x, render.resolution_y = ren.resolution_x, ren.resolution_y
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    # Always render with a transparent film: the alpha feeds the quality gate, and an opaque
    # background colour is composited afterwards (render.finish_image), exact on every engine.
    render.film_transparent = True
    # Always RGBA PNG from Blender: the alpha feeds the quality gate; JPEG is made afterwards.
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # 5.0: file_format choices depend on the media type
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGBA"
    settings.color_depth = "8"
    settings.compression = 15
    render.use_file_extension = False  # the temporary names are exact
    # No compositing or sequencer: nothing to post-process, and 5.0 moved the compositor anyway.
    render.use_compositing = False
    render.use_sequencer = False
    for warning in applied.warnings:
        log.warning("%s", warning)
    return RenderSetup(backend=backend, settings={"engine": ren.engine, "device": backend, **applied.applied},
                       warnings=list(applied.warnings))


def build_camera(spec):
    """The scene camera with the spec's intrinsics (sensor fit HORIZONTAL, as rig.cameras assumes)."""
    cam_spec = spec.camera
    data = bpy.data.cameras.new("mvcap_camera")
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = cam_spec.sensor_width_mm
    data.lens_unit = "MILLIMETERS"
    data.lens = cam_spec.lens_mm
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = cam_spec.clip_start, cam_spec.clip_end
    obj = bpy.data.objects.new("mvcap_camera", data)
    obj[RIG_TAG] = True
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = obj
    return obj


def apply_view(camera, view):
    """Pose the camera for a rig View. Returns the camera-to-world (4,4) numpy matrix used."""
    c2w = cameras.c2w_from_view(view)
    camera.matrix_world = Matrix(c2w.tolist())
    return c2w


# --- lights and world -------------------------------------------------------------------------------
def _clear_rig_lights() -> None:
    old = [obj for obj in bpy.data.objects if obj.get(RIG_TAG) and obj.type == "LIGHT"]
    datas = [obj.data for obj in old]
    if old:
        bpy.data.batch_remove(old + datas)


def _make_light(i: int, light):
    kind = light.kind.upper()
    name = f"mvcap_{getattr(light, 'name', '') or 'light'}_{i}"
    data = bpy.data.lights.new(name, kind)
    data.energy = float(light.energy)
    data.color = tuple(float(c) for c in light.color)[:3]
    size = float(getattr(light, "size", 0.0) or 0.0)
    if kind == "AREA":
        shape = (getattr(light, "shape", "SQUARE") or "SQUARE").upper()
        data.shape = shape
        data.size = size
        if shape in ("RECTANGLE", "ELLIPSE"):
            data.size_y = size
    elif kind == "SUN":
        data.angle = size  # a sun's size is its angular diameter (radians)
    elif size > 0:
        data.shadow_soft_size = size
    shadow = bool(getattr(light, "use_shadow", True))
    data.use_shadow = shadow
    if hasattr(data, "cycles") and hasattr(data.cycles, "cast_shadow"):  # Cycles before 4.0
        data.cycles.cast_shadow = shadow
    obj = bpy.data.objects.new(name, data)
    obj[RIG_TAG] = True
    obj.location = tuple(float(v) for v in light.location)
    obj.rotation_mode = "XYZ"
    obj.rotation_euler = tuple(float(v) for v in light.rotation_euler)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _world_nodes(world):
    if VERSION < (5, 0, 0):
        world.use_nodes = True  # always on (and deprecated) from 5.0
    tree = world.node_tree
    tree.nodes.clear()
    return tree


def _load_hdri(path: str):
    abspath = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(abspath):
        raise SpecError(f"lighting.hdri_path: file not found: {path}")
    try:
        return bpy.data.images.load(abspath, check_existing=True)
    except RuntimeError as exc:
        raise SpecError(f"lighting.hdri_path: cannot load {path}: {str(exc).strip()}") from None


def apply_world(world_def):
    """Build the world shader that lights the object: a colour, or an HDRI rotated about Z."""
    scene = bpy.context.scene
    world = scene.world
    if world is None or not world.get(RIG_TAG):
        world = bpy.data.worlds.new("mvcap_world")
        world[RIG_TAG] = True
        scene.world = world
    tree = _world_nodes(world)
    nodes, links = tree.nodes, tree.links
    out = nodes.new("ShaderNodeOutputWorld")
    background = nodes.new("ShaderNodeBackground")
    background.inputs["Strength"].default_value = float(world_def.strength)
    hdri = getattr(world_def, "hdri_path", "") or ""
    if hdri:
        env = nodes.new("ShaderNodeTexEnvironment")
        env.image = _load_hdri(hdri)
        coords = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        rotation_z = float(getattr(world_def, "hdri_rotation_z", 0.0) or 0.0)
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, rotation_z)
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], env.inputs["Vector"])
        links.new(env.outputs["Color"], background.inputs["Color"])
    else:
        background.inputs["Color"].default_value = (*[float(c) for c in world_def.color][:3], 1.0)
    links.new(background.outputs["Background"], out.inputs["Surface"])
    return world


def apply_lighting(lights, world) -> list:
    """Replace the rig's lights with `lights` (rig.lighting.LightDef) and set the world (WorldDef)."""
    _clear_rig_lights()
    objs = [_make_light(i, light) for i, light in enumerate(lights)]
    apply_world(world)
    return objs
