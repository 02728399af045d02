"""Render All Views: the farm's render_asset in a background process, with progress, cancel and a
contact sheet; the artist's scene is not touched."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("bpy")

from blender_addon.ui import fields, preview, render_all  # noqa: E402


def _setup(bpy, glb_dir, tmp_path, views=3):
    s = bpy.context.scene.mvcap
    s.camera.num_views = views
    s.render.resolution_x = s.render.resolution_y = 32
    s.render.samples = 1
    s.render_folder = str(tmp_path / "views")
    assert bpy.ops.mvcap.import_asset(filepath=str(glb_dir / "Duck.glb")) == {"FINISHED"}
    return s


def test_render_all_views_writes_the_farm_layout_and_a_contact_sheet(addon, glb_dir, tmp_path):
    bpy = addon
    s = _setup(bpy, glb_dir, tmp_path)
    objects = sorted(ob.name for ob in bpy.data.objects)
    assert bpy.ops.mvcap.render_all() == {"FINISHED"}
    out = tmp_path / "views" / "Duck"
    assert sorted(p.name for p in out.iterdir()) == ["000.png", "001.png", "002.png", "transforms.json"]
    assert (s.render_all_done, s.render_all_running) == (3, False)
    sheet = bpy.data.images[render_all.CONTACT_SHEET]
    assert sheet.filepath == str(tmp_path / "views" / "Duck_contact_sheet.png") and sheet.size[0] > 64
    assert sorted(ob.name for ob in bpy.data.objects) == objects and len(bpy.data.scenes) == 1
    # view k of the files is view k of the rig camera
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert bpy.ops.mvcap.build_rig() == {"FINISHED"}
    for k in (2, 0):
        s.view_index = k
        bpy.context.view_layer.update()
        np.testing.assert_allclose(np.array(bpy.context.scene.camera.matrix_world),
                                   np.array(frames[k]["transform_matrix"]), atol=1e-4)


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_cancelled_rerender_leaves_the_previous_set_as_it_was(addon, glb_dir, tmp_path):
    bpy = addon
    s = _setup(bpy, glb_dir, tmp_path, views=2)
    assert bpy.ops.mvcap.render_all() == {"FINISHED"}
    out = tmp_path / "views" / "Duck"
    before = _snapshot(out)
    s.camera.num_views, s.render.resolution_x = 40, 48  # another spec, slow enough to cancel
    job = render_all.RenderAllJob(s.asset_path, fields.settings_to_spec(s), out, "Duck")
    while job.done < 1 and not job.poll():  # let it get going: one new view is written
        job.reader.join(0.05)
    job.cancel()
    assert job.cancelled and job.proc.returncode is not None and job.poll()
    assert job.done < 40
    assert _snapshot(out) == before  # the complete 2-view set, byte for byte and untouched
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["Duck", "Duck_contact_sheet.png"]


def test_a_finished_rerender_replaces_the_set(addon, glb_dir, tmp_path):
    bpy = addon
    s = _setup(bpy, glb_dir, tmp_path, views=3)
    assert bpy.ops.mvcap.render_all() == {"FINISHED"}
    s.camera.num_views, s.render.resolution_x = 2, 48
    assert bpy.ops.mvcap.render_all() == {"FINISHED"}
    out = tmp_path / "views" / "Duck"
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert [f["file_path"] for f in frames] == ["000.png", "001.png"]
    assert bpy.data.images.load(str(out / "001.png")).size[0] == 48
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["Duck", "Duck_contact_sheet.png"]


def test_a_crashed_runs_leftovers_never_reach_the_set(addon, glb_dir, tmp_path):
    bpy = addon
    _setup(bpy, glb_dir, tmp_path, views=2)
    leftover = tmp_path / "views" / ".Duck.render-all"
    leftover.mkdir(parents=True)
    (leftover / "007.png").write_bytes(b"from a Blender that was killed")
    assert bpy.ops.mvcap.render_all() == {"FINISHED"}
    out = tmp_path / "views" / "Duck"
    assert sorted(p.name for p in out.iterdir()) == ["000.png", "001.png", "transforms.json"]
    assert not leftover.exists()


def test_a_link_in_place_of_the_staging_folder_is_refused_and_not_followed(addon, glb_dir, tmp_path):
    bpy = addon
    _setup(bpy, glb_dir, tmp_path, views=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not Render All's")
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / ".Duck.render-all").symlink_to(elsewhere)
    with pytest.raises(RuntimeError, match=r"\.Duck\.render-all is a symbolic link, not Render All's own folder"):
        bpy.ops.mvcap.render_all()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "views" / "Duck").exists() and not bpy.context.scene.mvcap.render_all_running


def test_render_all_without_an_asset_is_refused(addon, tmp_path):
    bpy = addon
    with pytest.raises(RuntimeError, match="no asset: import one first"):
        bpy.ops.mvcap.render_all()
    assert not preview.asset_objects(bpy.context.scene)
