"""Depth, normal, albedo and mask passes on real Cycles renders of the unit cube (Box.glb, 64 px).

Every pixel's expected value comes from casting its ray (pose and K from transforms.json) at
the cube [-0.5, 0.5]^3: the hit's z-depth and the hit face's normal.
"""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("bpy")

from blender_addon.rig.pass_files import read_depth, read_normal  # noqa: E402
from blender_addon.rig.spec import OUTPUTS, spec_from_dict  # noqa: E402
from blender_addon.scene.render import render_asset  # noqa: E402

VIEWS = [[30, 25, 3.0], [135, -35, 3.0], [250, 60, 3.0]]
SIZE = 64


def cube_spec(outputs):
    return spec_from_dict({"camera": {"pattern": "explicit", "explicit": VIEWS},
                           "render": {"resolution_x": SIZE, "resolution_y": SIZE, "samples": 4, "outputs": outputs}})


@pytest.fixture(scope="module")
def cube(glb_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("passes") / "views" / "Box"
    result = render_asset(glb_dir / "Box.glb", cube_spec(list(OUTPUTS)), out)
    return out, json.loads((out / "transforms.json").read_text()), result


def cast(frame, data):
    """Per pixel: z-depth of the ray's hit on the unit cube (nan on a miss), hit face id (-1 on a miss),
    and the length of the ray direction per unit of z (ray distance = z-depth x this)."""
    c2w = np.asarray(frame["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV axes
    v, u = np.mgrid[0:data["h"], 0:data["w"]] + 0.5
    d_cam = np.stack([(u - data["cx"]) / data["fl_x"], (v - data["cy"]) / data["fl_y"], np.ones_like(u)], -1)
    d = d_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-0.5 - o) / d, (0.5 - o) / d
    t_near = np.minimum(t1, t2).max(-1)
    t_far = np.maximum(t1, t2).min(-1)
    hit = (t_near <= t_far) & (t_far > 0)
    axis = np.minimum(t1, t2).argmax(-1)
    sign = np.where(np.take_along_axis(d, axis[..., None], -1)[..., 0] > 0, -1, 1)  # the face faces the camera
    face = np.where(hit, axis * 2 + (sign > 0), -1)
    return np.where(hit, t_near, np.nan), face, np.linalg.norm(d_cam, axis=-1)


def interior(face, radius=2):
    """Pixels whose neighbours within `radius` all see the same cube face."""
    keep = face >= 0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            keep &= np.roll(np.roll(face, dy, 0), dx, 1) == face
    return keep


def face_normal(face_id):
    normal = np.zeros(3)
    normal[face_id // 2] = 1.0 if face_id % 2 else -1.0
    return normal


@pytest.mark.parametrize("view", range(len(VIEWS)))
def test_depth_is_z_depth_of_the_hit_within_1_percent(cube, view):
    out, data, _ = cube
    frame = data["frames"][view]
    depth = read_depth(out / frame["depth_file_path"])
    expected, face, ray_per_z = cast(frame, data)
    inside = interior(face)
    assert inside.sum() > 200
    error = np.abs(depth[inside] - expected[inside]) / expected[inside]
    assert error.max() < 0.01
    # it is z-depth, not the distance along the ray, which differs by up to a few percent here
    assert (np.abs(depth[inside] - expected[inside] * ray_per_z[inside]) / expected[inside]).max() > 0.01
    assert (depth[face < 0] == 0).mean() > 0.95  # no surface: 0


@pytest.mark.parametrize("view", range(len(VIEWS)))
def test_normals_match_their_face_within_2_degrees(cube, view):
    out, data, _ = cube
    frame = data["frames"][view]
    normals = read_normal(out / frame["normal_file_path"])
    _, face, _ = cast(frame, data)
    inside = interior(face)
    faces_seen = set(np.unique(face[inside]).tolist())
    assert len(faces_seen) >= 2
    for face_id in faces_seen:
        got = normals[inside & (face == face_id)]
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
        angles = np.degrees(np.arccos(np.clip(got @ face_normal(face_id), -1, 1)))
        assert angles.max() < 2.0, f"face {face_id}"


@pytest.mark.parametrize("view", range(len(VIEWS)))
def test_mask_is_alpha_over_half_within_1_percent_and_albedo_is_the_base_colour(cube, view):
    out, data, _ = cube
    frame = data["frames"][view]
    alpha = np.asarray(Image.open(out / frame["file_path"]).getchannel("A"))
    mask = np.asarray(Image.open(out / frame["mask_file_path"]))
    assert set(np.unique(mask).tolist()) <= {0, 255}
    assert np.mean((mask > 127) != (alpha > 127)) < 0.01
    albedo = np.asarray(Image.open(out / frame["albedo_file_path"]).convert("RGBA")).astype(int)
    _, face, _ = cast(frame, data)
    red = albedo[interior(face)]
    assert np.abs(red[:, :3] - [231, 0, 0]).max() <= 4  # Box.glb's base colour 0.8 red, sRGB-encoded


def test_outputs_are_listed_and_nothing_temporary_is_left(cube):
    out, data, result = cube
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".")]
    for output, entry in data["outputs"].items():
        for file_name in entry.get("files", [entry.get("file")]):
            assert (out / file_name).is_file(), (output, file_name)
    listed = {f for e in data["outputs"].values() for f in e.get("files", [e.get("file")])}
    assert listed == set(names)
    assert result.files == ["000.png", "001.png", "002.png"]


def test_pose_files_of_a_real_render_match_transforms(cube):
    out, data, _ = cube
    K, azimuths, elevations, distances, poses = pickle.loads((out / "meta.pkl").read_bytes())
    for i, frame in enumerate(data["frames"]):
        c2w = np.asarray(frame["transform_matrix"])
        rt = np.load(out / frame["pose_file_path"])
        assert -rt[:, :3].T @ rt[:, 3] == pytest.approx(c2w[:3, 3], abs=1e-6)
        assert -poses[i][:, :3].T @ poses[i][:, 3] == pytest.approx(c2w[:3, 3], abs=1e-6)
        assert math.degrees(elevations[i]) == pytest.approx(frame["elevation_deg"], abs=1e-6)
        assert frame["camera_angle_x"] == data["camera_angle_x"]
    assert data["aabb"] == [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]] and data["scale"] == data["normalization"]["scale"]


def test_passes_leave_the_rgba_image_unchanged(cube, glb_dir, tmp_path):
    out, _, _ = cube
    render_asset(glb_dir / "Box.glb", cube_spec(["rgba"]), tmp_path / "plain")
    for name in ("000.png", "001.png", "002.png"):
        with Image.open(out / name) as with_passes, Image.open(tmp_path / "plain" / name) as plain:
            assert np.array_equal(np.asarray(with_passes), np.asarray(plain)), name
    # and a worker that rendered passes before does not keep them on for the next asset
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["000.png", "001.png", "002.png", "transforms.json"]


def test_gallery_shows_view_0_and_its_passes(cube):
    from farm.dataset.gallery import write_gallery

    out, _, _ = cube
    root = out.parent.parent
    record = {"obj_id": 0, "uid": "Box", "source": "folder", "category": "box", "out_rel": "views/Box",
              "views": 3, "status": "done"}
    (root / "objects.jsonl").write_text(json.dumps(record) + "\n")
    page = write_gallery(root, thumb=64).read_text()
    assert 'src="sheets/0-passes.jpg"' in page
    strip = np.asarray(Image.open(root / "gallery" / "sheets" / "0-passes.jpg").convert("L")).astype(int)
    assert strip.shape == (68, 5 * 66 + 2)
    tiles = [strip[2:66, 2 + i * 66: 66 + i * 66] for i in range(5)]  # rgba, depth, normal, albedo, mask
    assert all(tile.std() > 10 for tile in tiles)
