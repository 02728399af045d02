"""The peers' loaders, re-written from their published code, read our pose files (render.outputs).

Each loader below follows the named file and lines; the numbers it gets must match
transforms.json to 1e-6. The files are made by the same functions the render uses
(rig/peer_outputs.py); tests/scene/test_passes.py reads them from a real render too.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from blender_addon.rig.fileio import atomic_write_bytes
from blender_addon.rig.patterns import sample_views
from blender_addon.rig.peer_outputs import add_outputs_to_transforms, object_files
from blender_addon.rig.presets import load_preset
from blender_addon.rig.spec import SpecError, spec_from_dict
from blender_addon.rig.transforms import build_transforms, read_transforms, write_transforms

NORMALIZATION = {"scale": 0.37, "offset": [0.1, -0.2, 0.05], "radius": 0.8}


def write_object(spec, folder: Path, uid: str = "obj") -> dict:
    """What render_asset writes besides the images: pose files, then transforms.json."""
    views = sample_views(spec, uid)
    for name, payload in object_files(spec, views).items():
        atomic_write_bytes(folder / name, payload)
    files = [f"{v.index:03d}.png" for v in views]
    data = add_outputs_to_transforms(build_transforms(spec, uid, views, NORMALIZATION, files), spec, views)
    write_transforms(folder / "transforms.json", data)
    return read_transforms(folder / "transforms.json")


# --- zero123: zero123/ldm/data/simple.py ----------------------------------------------------------
def zero123_cartesian_to_spherical(xyz):  # simple.py:248-255
    xy = xyz[:, 0] ** 2 + xyz[:, 1] ** 2
    z = np.sqrt(xy + xyz[:, 2] ** 2)
    theta = np.arctan2(np.sqrt(xy), xyz[:, 2])
    azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
    return np.array([theta, azimuth, z])


def zero123_camera_position(rt):  # simple.py:258-259
    R, T = rt[:3, :3], rt[:, -1]
    return -R.T @ T


@pytest.mark.parametrize("preset", ["zero123", "objaverse-xl-12"])
def test_zero123_loader_reads_npy_poses(tmp_path, preset):
    data = write_object(load_preset(preset), tmp_path)
    assert data["outputs"]["npy_poses"]["files"] == [f"{i:03d}.npy" for i in range(12)]
    for i, frame in enumerate(data["frames"]):
        rt = np.load(tmp_path / ("%03d.npy" % i))  # simple.py:304
        assert rt.shape == (3, 4) and frame["pose_file_path"] == "%03d.npy" % i
        c2w = np.asarray(frame["transform_matrix"])
        assert zero123_camera_position(rt) == pytest.approx(c2w[:3, 3], abs=1e-6)
        assert rt[:3, :3] == pytest.approx(c2w[:3, :3].T, abs=1e-6)  # Blender camera axes, world-to-camera
        theta, azimuth, radius = zero123_cartesian_to_spherical(zero123_camera_position(rt)[None, :])[:, 0]
        assert math.degrees(theta) == pytest.approx(90.0 - frame["elevation_deg"], abs=1e-6)
        assert math.degrees(azimuth) % 360 == pytest.approx(frame["azimuth_deg"] % 360, abs=1e-6)
        assert radius == pytest.approx(frame["distance"], abs=1e-6)


# --- SyncDreamer: ldm/data/sync_dreamer.py and blender_script.py -----------------------------------
def syncdreamer_read_pickle(pkl_path):  # ldm/base_utils.py read_pickle
    with open(pkl_path, "rb") as f:
        return pickle.load(f)


def syncdreamer_K(lens, sensor_width, width, height):  # blender_script.py:111-142, sensor fit HORIZONTAL
    s_u = width / sensor_width
    alpha_u = alpha_v = lens * s_u
    return np.asarray(((alpha_u, 0, width / 2), (0, alpha_v, height / 2), (0, 0, 1)), np.float32)


@pytest.mark.parametrize("preset", ["syncdreamer-16", "syncdreamer-16-random"])
def test_syncdreamer_loader_reads_meta_pkl(tmp_path, preset):
    spec = load_preset(preset)
    data = write_object(spec, tmp_path)
    assert data["outputs"]["syncdreamer_meta"]["file"] == "meta.pkl"
    K, azimuths, elevations, distances, cam_poses = syncdreamer_read_pickle(tmp_path / "meta.pkl")  # :72
    assert (K.dtype, azimuths.dtype, elevations.dtype, distances.dtype) == (np.float32, np.float32, np.float64, np.float64)
    assert np.array_equal(K, syncdreamer_K(spec.camera.lens_mm, spec.camera.sensor_width_mm, data["w"], data["h"]))
    assert K[0, 0] == pytest.approx(data["fl_x"], abs=1e-4) and K[0, 2] == data["cx"]
    assert cam_poses.shape == (16, 3, 4)
    for i, frame in enumerate(data["frames"]):
        input_elevation = elevations[i:i + 1].astype(np.float32)  # sync_dreamer.py:73
        assert math.degrees(input_elevation[0]) == pytest.approx(frame["elevation_deg"], abs=1e-4)
        assert math.degrees(elevations[i]) == pytest.approx(frame["elevation_deg"], abs=1e-6)
        assert azimuths[i] == pytest.approx(math.radians(frame["azimuth_deg"]), abs=1e-6)
        assert distances[i] == pytest.approx(frame["distance"], abs=1e-6)
        # blender_script.py:208-214: RT = diag(1,-1,-1) [R^T | -R^T t], OpenCV axes
        R, t = cam_poses[i][:, :3], cam_poses[i][:, 3]
        c2w = np.asarray(frame["transform_matrix"])
        assert -R.T @ t == pytest.approx(c2w[:3, 3], abs=1e-6)
        assert R == pytest.approx(np.diag([1.0, -1.0, -1.0]) @ c2w[:3, :3].T, abs=1e-6)


# --- TRELLIS: dataset_toolkits/extract_feature.py:37-41 with utils3d@9a4eb15 ---------------------------
def utils3d_intrinsics_from_fov_xy(fov_x, fov_y):  # utils3d/torch/transforms.py:206-223
    focal_x, focal_y = 0.5 / np.tan(fov_x / 2), 0.5 / np.tan(fov_y / 2)
    return np.array([[focal_x, 0, 0.5], [0, focal_y, 0.5], [0, 0, 1]])


def utils3d_project_cv(points, extrinsics, intrinsics):  # utils3d/torch/transforms.py:580-607
    points = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1)
    points = points @ extrinsics.T
    points = points[..., :3] @ intrinsics.T
    return points[..., :2] / points[..., 2:], points[..., 2]


def test_trellis_feature_extractor_reads_transforms(tmp_path):
    from blender_addon.rig.cameras import intrinsics, project_points

    spec = load_preset("trellis-150")
    data = write_object(spec, tmp_path)
    assert data["aabb"] == [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]]
    assert (data["scale"], data["offset"]) == (NORMALIZATION["scale"], NORMALIZATION["offset"])
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    K = intrinsics(spec.camera, data["w"], data["h"])
    for frame in data["frames"][::7]:
        c2w = np.array(frame["transform_matrix"])
        c2w[:3, 1:3] *= -1  # extract_feature.py:38
        extrinsics = np.linalg.inv(c2w)
        uv, depth = utils3d_project_cv(points, extrinsics, utils3d_intrinsics_from_fov_xy(frame["camera_angle_x"], frame["camera_angle_x"]))
        ours, our_depth = project_points(points, np.array(frame["transform_matrix"]), K, return_depth=True)
        assert uv * [data["w"], data["h"]] == pytest.approx(ours, abs=1e-6 * data["w"])
        assert depth == pytest.approx(our_depth, abs=1e-6)


def test_outputs_are_validated(tmp_path):
    with pytest.raises(SpecError, match="trellis_transforms.*unit_box"):
        spec_from_dict({"normalize": {"mode": "unit_sphere"}, "render": {"outputs": ["rgba", "trellis_transforms"]}})
    with pytest.raises(SpecError, match="'depth' needs render.engine 'cycles'"):
        spec_from_dict({"render": {"engine": "eevee", "outputs": ["rgba", "depth"]}})
    with pytest.raises(SpecError, match=r"render.outputs\[0\]: 'npy' is not allowed"):
        spec_from_dict({"render": {"outputs": ["npy", "rgba"]}})
    plain = write_object(spec_from_dict({"camera": {"num_views": 3}}), tmp_path)
    assert set(plain["outputs"]) == {"rgba"} and sorted(p.name for p in tmp_path.iterdir()) == ["transforms.json"]
