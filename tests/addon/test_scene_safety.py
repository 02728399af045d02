"""The add-on never surprises the artist's scene: each mistake gets a message in the panel's words
and leaves the scene as it was; what the rig changes is put back by Delete Rig."""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

pytest.importorskip("bpy")

from blender_addon.rig import spec as S  # noqa: E402
from blender_addon.ui import fields, preview  # noqa: E402


def _artist_scene(bpy):
    """What an artist has before using the add-on: a camera, a world, a render size, a frame range."""
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Artist Camera", bpy.data.cameras.new("Artist Camera"))
    scene.collection.objects.link(cam)
    scene.camera, scene.world = cam, bpy.data.worlds.new("Artist World")
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = 1920, 1080, 50
    scene.frame_start, scene.frame_end = 10, 90
    scene.frame_set(42)
    return scene


def _render_settings(scene):
    r = scene.render
    return {"engine": r.engine, "film": r.film_transparent, "view": scene.view_settings.view_transform,
            "look": scene.view_settings.look, "exposure": scene.view_settings.exposure,
            "compositing": r.use_compositing, "sequencer": r.use_sequencer, "format": r.image_settings.file_format,
            "color_mode": r.image_settings.color_mode, "persistent": r.use_persistent_data}


def _small(s, views=4):
    s.camera.num_views = views
    s.render.resolution_x, s.render.resolution_y = 48, 32  # 3:2, unlike the scene's 16:9
    s.render.samples = 1


def test_build_rig_without_an_asset_is_refused(addon):
    bpy = addon
    scene = _artist_scene(bpy)
    before = sorted(ob.name for ob in bpy.data.objects)
    with pytest.raises(RuntimeError, match="no asset: import one first"):
        bpy.ops.mvcap.build_rig()
    assert preview.RIG_COLLECTION not in bpy.data.collections
    assert sorted(ob.name for ob in bpy.data.objects) == before and scene.camera.name == "Artist Camera"


def test_rig_keeps_the_scene_camera_world_and_size_and_delete_restores_them(addon, glb_dir):
    bpy = addon
    scene = _artist_scene(bpy)
    s = scene.mvcap
    _small(s)
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    # looking through the rig camera frames the spec's image: its size, so its aspect
    r = scene.render
    assert scene.camera.name == preview.CAMERA_NAME
    assert (r.resolution_x, r.resolution_y, r.resolution_percentage) == (48, 32, 100)
    assert r.resolution_x / r.resolution_y == pytest.approx(S.spec_from_dict(fields.settings_to_dict(s)).render.resolution_x / 32)
    # the spec's lights are there before any render
    assert any(ob.type == "LIGHT" for ob in bpy.data.collections[preview.RIG_COLLECTION].objects)
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}  # a rebuild keeps the first remembered values
    assert bpy.ops.mvcap.clear_rig() == {"FINISHED"}
    assert scene.camera.name == "Artist Camera" and scene.world.name == "Artist World"
    assert (r.resolution_x, r.resolution_y, r.resolution_percentage) == (1920, 1080, 50)
    assert [w.name for w in bpy.data.worlds] == ["Artist World"] and not bpy.data.lights


def test_render_view_leaves_the_scene_render_settings_alone(addon, glb_dir):
    bpy = addon
    scene = _artist_scene(bpy)
    s = scene.mvcap
    _small(s)
    s.render.denoise = True  # no denoiser in some builds: a warning, never a failed render
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Filmic"
    scene.render.use_compositing = True
    scene.render.image_settings.file_format = "JPEG"
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    before = _render_settings(scene)
    assert bpy.ops.mvcap.render_view() == {"FINISHED"}
    assert _render_settings(scene) == before
    assert [sc.name for sc in bpy.data.scenes] == [scene.name]
    assert tuple(bpy.data.images["MVCap Preview"].size) == (48, 32)


def test_normalize_keeps_the_frame_range_and_draws_a_small_empty(addon, glb_dir):
    bpy = addon
    scene = _artist_scene(bpy)
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    assert bpy.ops.mvcap.normalize() == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end, scene.frame_current) == (10, 90, 42)
    holder = next(ob for ob in scene.objects if ob.type == "EMPTY" and ob.get("mvcap_normalize"))
    drawn = holder.empty_display_size * max(holder.scale)  # axis length in the scene's units
    assert drawn == pytest.approx(preview.NORM_EMPTY_SIZE)


def test_markers_scale_with_the_orbit_and_the_current_view_stands_out(addon, glb_dir):
    bpy = addon
    s = bpy.context.scene.mvcap
    _small(s, views=6)
    bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb"))
    sizes = {}
    for distance in (1.5, 15.0):
        s.camera.distance = distance
        assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
        sizes[distance] = bpy.data.cameras[preview.MARKER_DATA].display_size
    assert sizes[15.0] == pytest.approx(10 * sizes[1.5])
    s.view_index = 3
    markers = {ob.name: ob for ob in bpy.data.collections[preview.RIG_COLLECTION].objects
               if ob.name.startswith(preview.MARKER_PREFIX)}
    current = [name for name, ob in markers.items() if ob.show_name]
    assert current == [preview.marker_name(3)]
    assert markers[preview.marker_name(3)].data.display_size > markers[preview.marker_name(2)].data.display_size


def test_errors_name_fields_as_the_panel_labels_them(addon, glb_dir):
    bpy = addon
    s = bpy.context.scene.mvcap
    _small(s)
    bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb"))
    s.camera.pattern = "hemisphere_random"
    s.camera.elevation_min_deg, s.camera.elevation_max_deg = math.radians(50), math.radians(20)
    with pytest.raises(RuntimeError, match=r"Cameras > Elevation Min: 50\.0 is above elevation max 20\.0"):
        bpy.ops.mvcap.build_rig()
    assert preview.RIG_COLLECTION not in bpy.data.collections
    # a slider move with a bad spec: the message is shown under the slider, not only printed
    s.camera.elevation_min_deg = 0.0
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    s.camera.pattern, s.camera.elevations_deg = "ring", "30, abc"
    s.view_index = 1
    assert s.view_message == "cannot show view 1: Cameras > Rings (°): '30, abc' is not a list of numbers"


def _limits():
    """(path, hint min, hint max) of every numeric field with a hard range in the panel."""
    for path, fld in fields.BY_PATH.items():
        if fld.kind in ("int", "float", "angle", "length", "lens", "factor", "pixels", "seconds"):
            yield path, fld.hints.get("min"), fld.hints.get("max")


PARTNERS = {"camera.clip_end": "camera.clip_start", "camera.distance_max": "camera.distance_min"}


def _spec_error(path, value, partner=None):
    """The spec's error for `value` in field `path` of the default spec ("" when taken); `partner`:
    the value of the field that bounds this one (clip_end > clip_start)."""
    data = S.ViewSpec().to_dict()
    for target, v in ((path, value), (PARTNERS.get(path), partner)):
        if target and v is not None:
            section, _, name = target.rpartition(".")
            (data[section] if section else data)[name] = v
    try:
        S.spec_from_dict(data)
    except S.SpecError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("path,low,high", list(_limits()), ids=lambda v: str(v))
def test_the_panel_refuses_exactly_what_the_spec_refuses(addon, path, low, high):
    """A property's hard min and max are the spec's range, so the panel cannot hold a value the
    farm would refuse; an open bound ("more than 0") is the least positive value a property holds."""
    fld = fields.BY_PATH[path]
    rna = (addon.context.scene.mvcap if not fld.section else getattr(addon.context.scene.mvcap, fld.section)).bl_rna
    prop = rna.properties[fld.name]
    scale = math.pi / 180 if fld.kind == "angle" else 1
    for bound, hard, outside in ((low, prop.hard_min, -1), (high, prop.hard_max, +1)):
        if bound is None:
            continue
        assert hard == pytest.approx(bound * scale, rel=1e-6), f"{path}: property bound {hard} != {bound}"
        error = _spec_error(path, bound, bound / 2)
        assert not error.startswith(path + ":"), f"{path}: the spec refuses the bound {bound}: {error}"
        if outside < 0 and fld.hints.get("open_min"):
            assert bound == fields.OPEN_MIN and _spec_error(path, 0).startswith(path)
            continue
        step = 1 if fld.kind in ("int", "pixels") else max(abs(bound) * 1e-3, 1e-7)
        assert _spec_error(path, bound + outside * step).startswith(path), f"{path}: spec takes {bound + outside * step}"


def test_a_spec_value_the_panel_cannot_hold_is_refused_not_clamped(addon, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    data = S.ViewSpec().to_dict()
    data["camera"]["distance"], data["camera"]["num_views"] = 1e-7, 7
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    before = fields.settings_to_dict(s)
    with pytest.raises(RuntimeError, match=r"Cameras > Distance: 1e-07 is below 1e-06, the least the panel holds"):
        bpy.ops.mvcap.load_spec(filepath=str(path))
    assert fields.settings_to_dict(s) == before


def _half_broken_glb(path, src):
    """The Duck plus a second mesh that reads an accessor that does not exist: the glTF importer
    builds the Duck's objects, then raises."""
    data = src.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_len])
    doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 999}}]})
    doc["nodes"].append({"mesh": len(doc["meshes"]) - 1, "name": "broken"})
    doc["scenes"][0]["nodes"].append(len(doc["nodes"]) - 1)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    rest = data[20 + json_len:]
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 20 + len(text) + len(rest))
                     + struct.pack("<I4s", len(text), b"JSON") + text + rest)


def test_a_failed_import_leaves_nothing_half_imported(addon, glb_dir, tmp_path):
    bpy = addon
    _artist_scene(bpy)
    bad = tmp_path / "half.glb"
    _half_broken_glb(bad, glb_dir / "Duck.glb")
    blocks = {kind: sorted(b.name for b in getattr(bpy.data, kind)) for kind in ("objects", "meshes", "materials", "images")}
    with pytest.raises(RuntimeError, match=r"cannot import: half\.glb: import failed"):
        bpy.ops.mvcap.import_asset(filepath=str(bad))
    assert {kind: sorted(b.name for b in getattr(bpy.data, kind)) for kind in blocks} == blocks
    assert bpy.context.scene.mvcap.asset_uid == ""
    np.testing.assert_equal(len(preview.asset_objects(bpy.context.scene)), 0)
