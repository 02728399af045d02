"""Camera conventions: poses, GL/CV axes, intrinsics, projection and auto-fit."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blender_addon.rig.cameras import (
    auto_fit_distance,
    c2w_from_view,
    camera_angle_x,
    euler_xyz_from_rotation,
    gl_to_cv,
    intrinsics,
    project_points,
    world_to_camera,
)
from blender_addon.rig.patterns import View
from blender_addon.rig.spec import CameraSpec

PAPER_CAMERA = CameraSpec(lens_mm=35.0, sensor_width_mm=32.0)

EDGE_VIEWS = [
    View(0, 0.0, 0.0, 2.0),
    View(1, 123.0, 37.0, 1.5, 12.0),
    View(2, 45.0, 90.0, 1.5),
    View(3, 300.0, -90.0, 1.5),
    View(4, 200.0, -89.999, 3.0, -170.0),
]


def rotation_from_euler_xyz(angles):
    x, y, z = angles
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("view", EDGE_VIEWS, ids=lambda v: f"az{v.azimuth_deg}_el{v.elevation_deg}")
def test_c2w_is_a_rigid_pose_at_the_view_looking_at_the_origin(view):
    c2w = c2w_from_view(view)
    assert c2w.shape == (4, 4) and c2w.dtype == np.float64
    assert np.all(np.isfinite(c2w))
    rotation = c2w[:3, :3]
    assert rotation.T @ rotation == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(view.distance)
    # GL cameras look down -z: -z must point from the camera to the origin
    assert -rotation[:, 2] == pytest.approx(-c2w[:3, 3] / view.distance, abs=1e-12)
    assert c2w[3] == pytest.approx([0, 0, 0, 1])


def test_unrolled_camera_keeps_world_up_in_the_upper_half_of_the_image():
    views = [View(i, az, el, 2.0) for i, (az, el) in enumerate([(0, 0), (90, 30), (200, -60), (10, 89)])]
    for view in views:
        c2w = c2w_from_view(view)
        assert c2w[2, 1] >= -1e-12  # camera y (up) has a non-negative world-Z component
        assert abs(c2w[2, 0]) < 1e-12  # camera x is horizontal: no roll



def test_top_view_is_the_continuous_limit_of_views_just_below_it():
    top = c2w_from_view(View(0, 30.0, 90.0, 1.5))
    near_top = c2w_from_view(View(0, 30.0, 89.999, 1.5))
    assert top == pytest.approx(near_top, abs=1e-4)


def test_origin_projects_to_the_image_centre_at_the_view_distance():
    K = intrinsics(PAPER_CAMERA, 640, 480)
    for view in EDGE_VIEWS:
        pixels, depth = project_points(np.zeros((1, 3)), c2w_from_view(view), K, return_depth=True)
        assert pixels[0] == pytest.approx([320.0, 240.0], abs=1e-9)
        assert depth[0] == pytest.approx(view.distance)


def test_known_points_project_to_expected_pixels():
    # Camera on +X at distance 2 looking at the origin: image right is world +Y, image up is +Z.
    K = intrinsics(PAPER_CAMERA, 512, 512)
    assert K[0, 0] == pytest.approx(35.0 / 32.0 * 512)  # 560 px
    points = np.array([[0.0, 0.1, 0.0], [0.0, 0.0, 0.1], [1.0, 0.0, 0.1]])
    pixels, depth = project_points(points, c2w_from_view(View(0, 0.0, 0.0, 2.0)), K, return_depth=True)
    assert pixels == pytest.approx(np.array([[256 + 560 * 0.1 / 2, 256], [256, 256 - 560 * 0.1 / 2],
                                             [256, 256 - 560 * 0.1 / 1]]))
    assert depth == pytest.approx([2.0, 2.0, 1.0])
    assert project_points(points, c2w_from_view(View(0, 0.0, 0.0, 2.0)), K).shape == (3, 2)


def test_positive_roll_turns_image_content_clockwise():
    K = intrinsics(PAPER_CAMERA, 512, 512)
    right_of_centre = np.array([[0.0, 0.1, 0.0]])  # world +Y is image right for this camera
    pixel = project_points(right_of_centre, c2w_from_view(View(0, 0.0, 0.0, 2.0, 90.0)), K)[0]
    assert pixel == pytest.approx([256.0, 256.0 + 28.0])  # moved from right of centre to below it


def test_points_behind_the_camera_have_negative_depth():
    K = intrinsics(PAPER_CAMERA, 64, 64)
    _, depth = project_points(np.array([[5.0, 0, 0]]), c2w_from_view(View(0, 0.0, 0.0, 2.0)), K, return_depth=True)
    assert depth[0] == pytest.approx(-3.0)


def test_gl_cv_conversion_flips_y_and_z_and_is_its_own_inverse():
    c2w = c2w_from_view(View(0, 70.0, 20.0, 1.8, 5.0))
    c2w_cv = gl_to_cv(c2w)
    assert c2w_cv[:3, 0] == pytest.approx(c2w[:3, 0])
    assert c2w_cv[:3, 1:3] == pytest.approx(-c2w[:3, 1:3])
    assert c2w_cv[:3, 3] == pytest.approx(c2w[:3, 3])
    assert gl_to_cv(c2w_cv) == pytest.approx(c2w)
    batch = np.stack([c2w, c2w_cv])
    assert gl_to_cv(batch)[1] == pytest.approx(c2w)


def test_opencv_pinhole_by_hand_matches_project_points():
    c2w = c2w_from_view(View(0, 250.0, 40.0, 1.6, -20.0))
    K = intrinsics(PAPER_CAMERA, 400, 300)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(20, 3))
    w2c_cv = world_to_camera(gl_to_cv(c2w))
    cam = (w2c_cv[:3, :3] @ points.T).T + w2c_cv[:3, 3]
    assert np.all(cam[:, 2] > 0)  # OpenCV: +z forward
    by_hand = np.stack([K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]], 1)
    assert project_points(points, c2w, K) == pytest.approx(by_hand)


def test_world_to_camera_inverts_c2w_also_in_batches():
    c2ws = np.stack([c2w_from_view(v) for v in EDGE_VIEWS])
    assert world_to_camera(c2ws) @ c2ws == pytest.approx(np.broadcast_to(np.eye(4), c2ws.shape), abs=1e-12)


def test_intrinsics_and_field_of_view():
    K = intrinsics(PAPER_CAMERA, 640, 480)
    assert K == pytest.approx(np.array([[700.0, 0, 320.0], [0, 700.0, 240.0], [0, 0, 1]]))
    assert camera_angle_x(PAPER_CAMERA) == pytest.approx(2 * math.atan(16 / 35))
    assert math.degrees(camera_angle_x(PAPER_CAMERA)) == pytest.approx(49.134, abs=1e-3)


@pytest.mark.parametrize("width,height,lens", [(512, 512, 35.0), (640, 360, 50.0), (300, 600, 20.0)])
def test_auto_fit_sphere_fills_the_fraction_of_the_narrower_side(width, height, lens):
    camera = CameraSpec(lens_mm=lens, sensor_width_mm=32.0, fill_fraction=0.8)
    radius = 0.9
    distance = auto_fit_distance(radius, camera, width, height)
    view = View(0, 33.0, 21.0, distance)
    # dense points on the sphere; the silhouette is the outermost projection
    n = 40000
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = k * math.pi * (3 - math.sqrt(5))
    sphere = radius * np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    pixels = project_points(sphere, c2w_from_view(view), intrinsics(camera, width, height))
    projected_radius = np.max(np.linalg.norm(pixels - [width / 2, height / 2], axis=1))
    assert projected_radius == pytest.approx(0.8 * min(width, height) / 2, rel=2e-3)


def test_auto_fit_rejects_a_non_positive_radius():
    with pytest.raises(ValueError):
        auto_fit_distance(0.0, PAPER_CAMERA, 64, 64)


def test_euler_xyz_rebuilds_the_rotation_including_gimbal_lock():
    rng = np.random.default_rng(5)
    rotations = [c2w_from_view(View(0, az, el, 1.0, roll))[:3, :3]
                 for az, el, roll in rng.uniform([0, -90, -180], [360, 90, 180], size=(50, 3))]
    rotations.append(rotation_from_euler_xyz((0.3, math.pi / 2, 0.0)))
    rotations.append(rotation_from_euler_xyz((0.0, -math.pi / 2, 1.1)))
    for rotation in rotations:
        assert rotation_from_euler_xyz(euler_xyz_from_rotation(rotation)) == pytest.approx(rotation, abs=1e-9)
