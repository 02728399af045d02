"""The GUI's rig is the farm's: import, normalise, build, scrub views, render, export/load specs."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from .conftest import farm_cli, run

pytest.importorskip("bpy")

from blender_addon.rig import spec as S  # noqa: E402
from blender_addon.ui import fields, preview, preview_render  # noqa: E402


def _set_small(s, views=5):
    s.camera.num_views = views
    s.camera.distance_mode = "auto"  # depends on the normalised radius: the GUI must use the same one
    s.camera.roll_deg = np.radians(10.0)
    s.render.resolution_x = s.render.resolution_y = 32
    s.render.samples = 1


def _farm_transforms(asset, spec_path, out, views=None):
    """transforms.json for the asset rendered by `farm render [--views N]` (or render_asset, its worker code)."""
    farm = farm_cli()
    if farm:
        override = ["--views", str(views)] if views else []
        proc = run(farm + ["render", str(asset), "-o", str(out), "--spec", str(spec_path), "--workers", "1",
                           "--no-caption", *override])
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return json.loads((out / "views" / asset.stem / "transforms.json").read_text())
    code = ("import sys; from blender_addon.rig.spec import load_spec; from blender_addon.scene.render import render_asset;"
            "views = int(sys.argv[4]) if sys.argv[4] else None;"
            "render_asset(sys.argv[1], load_spec(sys.argv[2]).with_overrides(views=views), sys.argv[3])")
    proc = run([sys.executable, "-c", code, str(asset), str(spec_path), str(out), str(views or "")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "transforms.json").read_text())


def test_slider_camera_equals_farm_transforms(addon, glb_dir, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    _set_small(s)
    spec_path = tmp_path / "spec.json"
    assert bpy.ops.mvcap.export_spec(filepath=str(spec_path)) == {"FINISHED"}
    transforms = _farm_transforms(glb_dir / "Duck.glb", spec_path, tmp_path / "out")

    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    assert s.asset_uid == "Duck" and preview.asset_objects(bpy.context.scene)
    assert bpy.ops.mvcap.normalize() == {"FINISHED"}
    assert s.normalized and s.norm_radius > 0
    # normalising again and re-importing reuse and replace the asset: nothing piles up
    assert bpy.ops.mvcap.normalize() == {"FINISHED"}
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    assert bpy.ops.mvcap.normalize() == {"FINISHED"}
    assert len([ob for ob in bpy.data.objects if ob.type == "EMPTY" and ob.parent is None]) == 1
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}

    rig = bpy.data.collections[preview.RIG_COLLECTION]
    names = {ob.name for ob in rig.objects}
    assert {preview.CAMERA_NAME, preview.ORBIT_NAME} <= names
    assert sum(n.startswith("MVCap View ") for n in names) == 5
    assert bpy.context.scene.camera.name == preview.CAMERA_NAME

    frames = transforms["frames"]
    assert len(frames) == 5
    for k in (3, 0, 4):
        s.view_index = k
        bpy.context.view_layer.update()
        got = np.array(bpy.context.scene.camera.matrix_world)
        np.testing.assert_allclose(got, np.array(frames[k]["transform_matrix"]), atol=1e-4, err_msg=f"view {k}")
        marker = bpy.data.objects["MVCap View %03d" % k]
        np.testing.assert_allclose(np.array(marker.matrix_world), got, atol=1e-5)
    # the camera's intrinsics are the farm's too
    cam = bpy.context.scene.camera.data
    assert cam.sensor_fit == "HORIZONTAL"
    assert 2 * np.arctan(cam.sensor_width / (2 * cam.lens)) == pytest.approx(transforms["camera_angle_x"], rel=1e-5)
    # a view past the last one is said so under the slider, and the camera stays where it was
    before = np.array(bpy.context.scene.camera.matrix_world)
    s.view_index = 99
    assert s.view_message == "View 99 does not exist: this spec has 5 views (0-4)"
    np.testing.assert_array_equal(np.array(bpy.context.scene.camera.matrix_world), before)
    with pytest.raises(RuntimeError, match="View 99 does not exist"):
        bpy.ops.mvcap.render_view()
    s.view_index = 2
    assert s.view_message == ""


def test_slider_view_k_equals_farm_view_k_with_a_views_override(addon, glb_dir, tmp_path):
    """A 12-view spec in the GUI, `farm render --views 4` on its export: the farm's 4 views are the slider's 0-3."""
    bpy = addon
    s = bpy.context.scene.mvcap
    _set_small(s, views=12)
    s.camera.pattern = "hemisphere_random"
    s.camera.elevation_min_deg = np.radians(-20.0)
    s.camera.jitter_deg = np.radians(5.0)
    s.camera.distance_mode = "range"  # a random distance per view, drawn from its own stream
    s.seed = 11
    spec_path = tmp_path / "spec.json"
    assert bpy.ops.mvcap.export_spec(filepath=str(spec_path)) == {"FINISHED"}
    assert S.load_spec(spec_path).camera.num_views == 12
    frames = _farm_transforms(glb_dir / "Duck.glb", spec_path, tmp_path / "out", views=4)["frames"]
    assert len(frames) == 4

    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    assert bpy.ops.mvcap.normalize() == {"FINISHED"}
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    assert sum(ob.name.startswith("MVCap View ") for ob in bpy.data.collections[preview.RIG_COLLECTION].objects) == 12
    for k in (3, 0, 2, 1):
        s.view_index = k
        bpy.context.view_layer.update()
        got = np.array(bpy.context.scene.camera.matrix_world)
        np.testing.assert_allclose(got, np.array(frames[k]["transform_matrix"]), atol=1e-4, err_msg=f"view {k}")


def test_rig_is_one_collection_that_deletes_cleanly(addon, glb_dir):
    bpy = addon
    s = bpy.context.scene.mvcap
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Box.glb")) == {"FINISHED"}
    s.camera.pattern = "ring"
    s.camera.elevations_deg = "15, 45"
    s.camera.num_views = 6
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    rig = bpy.data.collections[preview.RIG_COLLECTION]
    assert sum(ob.name.startswith("MVCap View") for ob in rig.objects) == 12
    orbit = bpy.data.objects[preview.ORBIT_NAME]
    assert len(orbit.data.splines) == 2 and all(sp.use_cyclic_u for sp in orbit.data.splines)
    for spline, el in zip(orbit.data.splines, (15.0, 45.0)):  # the rings pass through the cameras
        pts = np.array([p.co[:3] for p in spline.points])
        np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 1.5, rtol=1e-5)
        np.testing.assert_allclose(pts[:, 2], 1.5 * np.sin(np.radians(el)), atol=1e-5)
    # a refresh replaces the markers, it does not add to them
    s.camera.num_views = 3
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    assert sum(ob.name.startswith("MVCap View") for ob in rig.objects) == 6
    assert bpy.ops.mvcap.clear_rig() == {"FINISHED"}
    assert preview.RIG_COLLECTION not in bpy.data.collections
    assert not [ob for ob in bpy.data.objects if ob.name.startswith("MVCap") or ob.type in ("LIGHT", "CAMERA")]
    assert not [c for c in bpy.data.cameras if c.name.startswith("MVCap")] and not bpy.data.curves
    assert not bpy.data.lights and not bpy.data.worlds


def test_render_view_shows_the_object(addon, glb_dir):
    bpy = addon
    s = bpy.context.scene.mvcap
    _set_small(s, views=3)
    bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb"))
    bpy.ops.mvcap.normalize()
    s.view_index = 1
    assert bpy.ops.mvcap.render_view() == {"FINISHED"}
    image = bpy.data.images[preview_render.PREVIEW_IMAGE]
    assert tuple(image.size) == (32, 32)
    alpha = np.array(image.pixels[:]).reshape(32, 32, 4)[..., 3]
    assert 0.02 < (alpha > 0.5).mean() < 0.98  # the duck is there, and so is transparent background
    rig = bpy.data.collections[preview.RIG_COLLECTION]
    assert any(ob.type == "LIGHT" for ob in rig.objects)  # the spec's lights live in the rig collection


def test_export_load_round_trip_and_farm_accepts_it(addon, glb_dir, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    assert bpy.ops.mvcap.apply_preset(name="mvcap") == {"FINISHED"}
    s.camera.pattern = "ring"
    s.camera.elevations_deg = "-10, 20.5, 60"
    s.camera.elevation_min_deg = np.radians(12.5)
    s.camera.distance = 1.7
    s.camera.clip_start = 0.01
    s.lighting.color = (0.9, 0.8, 0.7)
    s.background.transparent = False
    s.render.samples = 1
    s.render.resolution_x = s.render.resolution_y = 16
    s.camera.num_views = 1
    s.seed = 7
    s.name = "round-trip"
    path = tmp_path / "rt.json"
    assert bpy.ops.mvcap.export_spec(filepath=str(path)) == {"FINISHED"}
    exported = S.load_spec(path)
    assert exported.camera.elevations_deg == [-10.0, 20.5, 60.0]
    assert exported.camera.elevation_min_deg == 12.5 and exported.camera.clip_start == 0.01
    assert exported.lighting.color == [0.9, 0.8, 0.7] and exported.seed == 7

    bpy.ops.mvcap.apply_preset(name="zero123")  # change everything, then load the file back
    assert fields.settings_to_spec(s) != exported
    assert bpy.ops.mvcap.load_spec(filepath=str(path)) == {"FINISHED"}
    assert fields.settings_to_spec(s) == exported

    farm = farm_cli()
    if farm is None:
        pytest.skip("farm CLI not available: spec checked with load_spec only")
    proc = run(farm + ["render", str(glb_dir / "Box.glb"), "-o", str(tmp_path / "out"), "--spec", str(path),
                       "--workers", "1", "--no-caption"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["mvcap", "zero123", "trellis-150", "im3d"])
def test_presets_survive_the_properties(addon, name):
    """spec -> props -> spec is lossless for every shipped preset (float32 storage included)."""
    from blender_addon.rig.presets import load_preset, preset_names

    if name not in preset_names():
        pytest.skip(f"preset {name} not shipped")
    bpy = addon
    assert bpy.ops.mvcap.apply_preset(name=name) == {"FINISHED"}
    assert fields.settings_to_spec(bpy.context.scene.mvcap) == load_preset(name)


def test_bad_input_is_reported_not_raised(addon, broken_dir, tmp_path):
    bpy = addon
    s = bpy.context.scene.mvcap
    for bad in sorted(broken_dir.iterdir()):
        with pytest.raises(RuntimeError, match=bad.name):  # bpy.ops turns an ERROR report into this
            bpy.ops.mvcap.import_asset(filepath=str(bad))
    assert s.asset_uid == "" and not preview.asset_objects(bpy.context.scene)

    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text('{"camera": {"num_views": 0}}')
    with pytest.raises(RuntimeError, match="Cameras > Views: 0 is out of range"):
        bpy.ops.mvcap.load_spec(filepath=str(bad_spec))
    assert s.camera.num_views == 12  # untouched
    with pytest.raises(RuntimeError, match="unknown"):
        bpy.ops.mvcap.apply_preset(name="no-such-preset")
    s.camera.elevations_deg = "30, abc"
    with pytest.raises(RuntimeError, match=r"Cameras > Rings \(°\): '30, abc' is not a list of numbers"):
        bpy.ops.mvcap.export_spec(filepath=str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(RuntimeError, match="nothing to normalise"):
        bpy.ops.mvcap.normalize()
