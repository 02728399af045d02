"""Camera conventions: poses, intrinsics, projection. The only camera math in the project.

World: Blender's, Z up. A view at (azimuth, elevation, distance) sits at
`d·(cos el·cos az, cos el·sin az, sin el)` and looks at the origin with world +Z up.
Camera axes are Blender/OpenGL (x right, y up, looking down -z); OpenCV axes flip y and z.
Pixels: u to the right, v down, pixel centres at +0.5, so the image centre is (W/2, H/2).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for annotations; importing at runtime would be circular
    from .patterns import View
    from .spec import CameraSpec

# c2w_cv = c2w_gl @ GL_TO_CV (the same matrix converts back: it is its own inverse)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def orbit_position(azimuth_deg: Any, elevation_deg: Any, distance: Any) -> np.ndarray:
    """Position(s) on the orbit; broadcasts, the last axis is xyz."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    d = np.asarray(distance, dtype=np.float64)
    return np.stack([d * np.cos(el) * np.cos(az), d * np.cos(el) * np.sin(az), d * np.sin(el)], axis=-1)


def orbit_rotation(azimuth_deg: float, elevation_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Rotation (3,3) of something at (azimuth, elevation) whose -z axis points at the origin.

    Columns are the local x, y, z axes in world coordinates (GL camera axes). x is taken
    from the azimuth, (-sin az, cos az, 0), rather than from cross(up, z): it is the same
    vector wherever the look-at is defined and its continuous limit at elevation ±90°, so
    looking straight down or up needs no special case. Roll turns x and y about the
    viewing axis, counter-clockwise as seen by the camera for positive roll.
    """
    az, el, roll = math.radians(azimuth_deg), math.radians(elevation_deg), math.radians(roll_deg)
    z_axis = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    x_axis = np.array([-math.sin(az), math.cos(az), 0.0])
    y_axis = np.cross(z_axis, x_axis)
    cos_r, sin_r = math.cos(roll), math.sin(roll)
    x_rolled = cos_r * x_axis + sin_r * y_axis
    y_rolled = -sin_r * x_axis + cos_r * y_axis
    return np.stack([x_rolled, y_rolled, z_axis], axis=1)


def c2w_from_view(view: "View") -> np.ndarray:
    """Camera-to-world (4,4) float64 in Blender/OpenGL camera axes."""
    c2w = np.eye(4)
    c2w[:3, :3] = orbit_rotation(view.azimuth_deg, view.elevation_deg, view.roll_deg)
    c2w[:3, 3] = orbit_position(view.azimuth_deg, view.elevation_deg, view.distance)
    return c2w + 0.0  # turns -0.0 into 0.0, so files do not show "-0.0"


def gl_to_cv(c2w: np.ndarray) -> np.ndarray:
    """Convert camera-to-world (4,4) or (N,4,4) between OpenGL and OpenCV camera axes (both ways)."""
    return np.asarray(c2w, dtype=np.float64) @ GL_TO_CV


def world_to_camera(c2w: np.ndarray) -> np.ndarray:
    """Inverse of a rigid camera-to-world (4,4) or (N,4,4): w2c in the same camera axes."""
    c2w = np.asarray(c2w, dtype=np.float64)
    rot_t = np.swapaxes(c2w[..., :3, :3], -1, -2)
    w2c = np.zeros_like(c2w)
    w2c[..., :3, :3] = rot_t
    w2c[..., :3, 3] = -(rot_t @ c2w[..., :3, 3:4])[..., 0]
    w2c[..., 3, 3] = 1.0
    return w2c


def focal_length_px(camera_spec: "CameraSpec", width: int) -> float:
    """Focal length in pixels with sensor_fit HORIZONTAL: the sensor width spans the image width."""
    return camera_spec.lens_mm / camera_spec.sensor_width_mm * width


def intrinsics(camera_spec: "CameraSpec", width: int, height: int) -> np.ndarray:
    """Pinhole K (3,3) for OpenCV-style pixels (v down); square pixels, principal point at the centre."""
    focal = focal_length_px(camera_spec, width)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def camera_angle_x(camera_spec: "CameraSpec") -> float:
    """Horizontal field of view in radians (NeRF's camera_angle_x)."""
    return 2.0 * math.atan(camera_spec.sensor_width_mm / (2.0 * camera_spec.lens_mm))


def auto_fit_distance(radius: float, camera_spec: "CameraSpec", width: int, height: int) -> float:
    """Distance at which a sphere of `radius` at the origin spans `fill_fraction` of the narrower side.

    The sphere's silhouette seen from distance d has half-angle asin(r/d); its projected radius
    is f·tan(asin(r/d)). Setting that to fill_fraction·min(W,H)/2 and solving for d is exact,
    not the small-angle guess d = r / tan(fov/2).
    """
    if radius <= 0:
        raise ValueError(f"bounding radius must be positive, got {radius}")
    focal = focal_length_px(camera_spec, width)
    half_extent_px = camera_spec.fill_fraction * min(width, height) / 2.0
    half_angle = math.atan(half_extent_px / focal)
    return radius / math.sin(half_angle)


def project_points(
    points_world: np.ndarray, c2w_gl: np.ndarray, K: np.ndarray, return_depth: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N,2) of world points (N,3); with return_depth, also depth (N,) along the view axis.

    Depth is positive in front of the camera. Points behind it get meaningless pixels, so
    check the depth when that can happen.
    """
    points = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
    w2c_cv = world_to_camera(gl_to_cv(c2w_gl))
    cam = points @ w2c_cv[:3, :3].T + w2c_cv[:3, 3]
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = (cam @ np.asarray(K, dtype=np.float64).T)[:, :2] / depth[:, None]
    return (pixels, depth) if return_depth else pixels


def euler_xyz_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """Blender 'XYZ' Euler angles (radians) of a rotation matrix, R = Rz·Ry·Rx."""
    r = np.asarray(rotation, dtype=np.float64)
    cos_y = math.hypot(r[0, 0], r[1, 0])
    if cos_y > 1e-9:
        return (math.atan2(r[2, 1], r[2, 2]), math.atan2(-r[2, 0], cos_y), math.atan2(r[1, 0], r[0, 0]))
    # gimbal lock: x and z turn about the same axis, so put it all in x
    return (math.atan2(-r[1, 2], r[1, 1]), math.atan2(-r[2, 0], cos_y), 0.0)
