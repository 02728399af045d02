"""Camera sampling patterns: where the views of one object are.

Every pattern yields azimuths and elevations (degrees). Distance, jitter and roll are then
applied the same way for all patterns. Each random quantity has its own seeded stream
(`seeding.view_uniforms(seed, uid, purpose, indices=...)`), so turning on jitter, say, leaves the
directions unchanged.

Random draws are per view: view k depends on (seed, uid, k) alone, never on the number of views.
So the random patterns are prefix-stable: a 12-view render is the first 12 views of a 100-view
one, and `--views 4` gives the add-on's views 0-3. `ring`, `fibonacci` and `hammersley` spread
their views over all N by nature, so changing N moves every camera (`views_override_warning`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .cameras import auto_fit_distance
from .seeding import rng_for, view_uniforms
from .spec import ViewSpec

GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))  # ≈ 137.5°, the fibonacci lattice's azimuth step
UNIT_BOX_RADIUS = math.sqrt(3.0) / 2.0  # bounding sphere of the unit cube
# view k of these is the same camera whatever the number of views ("explicit" ignores the number)
PREFIX_STABLE_PATTERNS = ("hemisphere_random", "sphere_random", "cube_normalized_random")


@dataclass(frozen=True)
class View:
    index: int
    azimuth_deg: float
    elevation_deg: float
    distance: float
    roll_deg: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_bounding_radius(normalize_mode: str) -> float:
    """The bounding-sphere radius a normalised object is guaranteed to fit in."""
    # "none" has no guarantee; the unit box is the documented default frame, so assume it.
    return 1.0 if normalize_mode == "unit_sphere" else UNIT_BOX_RADIUS


def sample_views(spec: ViewSpec, uid: str, bounding_radius: float | None = None) -> list[View]:
    """The views of object `uid`: the same spec seed and uid always give the same list."""
    cam = spec.camera
    azimuths, elevations, explicit_distances = _directions(spec, uid)
    indices = np.arange(len(azimuths))

    jitter = _symmetric(spec, uid, "jitter", indices, 2) * cam.jitter_deg
    azimuths = np.mod(azimuths + cam.azimuth_offset_deg + jitter[0], 360.0)
    elevations = np.clip(elevations + jitter[1], -90.0, 90.0)
    rolls = _symmetric(spec, uid, "roll", indices, 1)[0] * cam.roll_deg + 0.0  # no -0.0

    distances = _distances(spec, uid, indices, bounding_radius)
    if explicit_distances is not None:
        distances = np.where(explicit_distances > 0, explicit_distances, distances)

    return [
        View(i, float(azimuths[i]), float(elevations[i]), float(distances[i]), float(rolls[i]))
        for i in indices.tolist()
    ]


def is_prefix_stable(pattern: str) -> bool:
    """True when view k of `pattern` does not depend on the number of views."""
    return pattern in PREFIX_STABLE_PATTERNS


def views_override_warning(spec: ViewSpec, new_views: int | None) -> str | None:
    """A one-line warning when overriding num_views (farm `--views`) changes the spec's cameras."""
    cam = spec.camera
    if new_views is None or new_views == cam.num_views:
        return None
    if cam.pattern == "explicit":
        return f"--views {new_views} is ignored: the explicit pattern has its own {len(cam.explicit)} views"
    if is_prefix_stable(cam.pattern):
        return None
    return (f"--views {new_views} changes the cameras: the {cam.pattern} pattern spreads its views over "
            f"all of them, so these are not the first {new_views} of the spec's {cam.num_views}")


def _symmetric(spec: ViewSpec, uid: str, purpose: str, indices: np.ndarray, per_view: int) -> np.ndarray:
    """Per-view uniform numbers in [-1, 1), shape (per_view, len(indices))."""
    return 2.0 * view_uniforms(spec.seed, uid, purpose, indices=indices, per_view=per_view) - 1.0


def _directions(spec: ViewSpec, uid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(azimuths, elevations, explicit distances or None) before offset and jitter."""
    cam = spec.camera
    n = cam.num_views
    band = (cam.elevation_min_deg, cam.elevation_max_deg)
    if cam.pattern == "ring":
        ring_azimuths = 360.0 * np.arange(n) / n
        azimuths = np.tile(ring_azimuths, len(cam.elevations_deg))
        elevations = np.repeat(np.asarray(cam.elevations_deg, dtype=np.float64), n)
        return azimuths, elevations, None
    if cam.pattern == "explicit":
        rows = np.asarray(cam.explicit, dtype=np.float64).reshape(-1, 3)
        return rows[:, 0], rows[:, 1], rows[:, 2]
    if cam.pattern in ("hemisphere_random", "sphere_random"):
        if cam.pattern == "sphere_random":
            band = (-90.0, 90.0)
        uv = view_uniforms(spec.seed, uid, "directions", indices=np.arange(n), per_view=2)
        return 360.0 * uv[1], _elevations_uniform_in_area(uv[0], band), None
    if cam.pattern == "cube_normalized_random":
        return (*_cube_normalized_directions(spec, uid, n), None)
    if cam.pattern == "ring_random_elevation":
        # SyncDreamer's random input views: ring azimuths, elevation uniform in degrees (not in area)
        unit = view_uniforms(spec.seed, uid, "elevations", indices=np.arange(n))[0]
        return 360.0 * np.arange(n) / n, band[0] + (band[1] - band[0]) * unit, None
    if cam.pattern == "trellis_hammersley":
        return (*_trellis_hammersley(spec, uid, n), None)
    if cam.pattern == "fibonacci":
        heights = (np.arange(n) + 0.5) / n
        return GOLDEN_ANGLE_DEG * np.arange(n), _elevations_uniform_in_area(heights, band), None
    if cam.pattern == "hammersley":
        # Cranley-Patterson rotation: a random offset per object keeps the low discrepancy
        # while different objects get different views (as TRELLIS does).
        offset = rng_for(spec.seed, uid, "hammersley_offset").random(size=2)
        heights = (np.arange(n) + offset[0]) / n
        turns = np.mod(_radical_inverse_base2(np.arange(n)) + offset[1], 1.0)
        return 360.0 * turns, _elevations_uniform_in_area(heights, band), None
    raise AssertionError(f"unhandled pattern {cam.pattern}")  # validate() rejects others


def _cube_normalized_directions(spec: ViewSpec, uid: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """zero123 and objaverse-xl: a uniform point of the cube [-1, 1]^3, normalised. Not uniform on
    the sphere: directions towards the cube's 8 corners are about 5x denser than towards its faces."""
    cube = 2.0 * view_uniforms(spec.seed, uid, "directions", indices=np.arange(n), per_view=3) - 1.0
    norm = np.linalg.norm(cube, axis=0)
    unit = np.where(norm > 1e-12, cube / np.maximum(norm, 1e-12), np.array([[0.0], [0.0], [1.0]]))
    azimuths = np.mod(np.degrees(np.arctan2(unit[1], unit[0])), 360.0)
    return azimuths, np.degrees(np.arcsin(np.clip(unit[2], -1.0, 1.0)))


def _trellis_hammersley(spec: ViewSpec, uid: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """TRELLIS's sphere_hammersley_sequence (dataset_toolkits/utils.py): the hammersley pattern with
    its height remapped piecewise, u < 1/4 -> 2u and u >= 1/4 -> 2u/3 + 1/3, so that 75% of the views
    lie above the horizon; whole sphere, one random offset per object."""
    offset = rng_for(spec.seed, uid, "hammersley_offset").random(size=2)
    heights = (np.arange(n) + offset[0]) / n
    heights = np.where(heights < 0.25, 2.0 * heights, 2.0 / 3.0 * heights + 1.0 / 3.0)
    turns = np.mod(_radical_inverse_base2(np.arange(n)) + offset[1], 1.0)
    return 360.0 * turns, _elevations_uniform_in_area(heights, (-90.0, 90.0))


def _elevations_uniform_in_area(unit: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Map values in [0,1] to elevations so that uniform values give uniform density on the sphere.

    Area on a sphere between two elevations is proportional to the difference of their sines
    (Archimedes), so sin(el) must be uniform, not el itself.
    """
    low, high = np.sin(np.radians(band[0])), np.sin(np.radians(band[1]))
    return np.degrees(np.arcsin(np.clip(low + (high - low) * unit, -1.0, 1.0)))


def _radical_inverse_base2(indices: np.ndarray) -> np.ndarray:
    """Van der Corput sequence: the bits of i mirrored about the binary point."""
    remaining = indices.astype(np.int64)
    result = np.zeros(indices.shape, dtype=np.float64)
    scale = 0.5
    while np.any(remaining):
        result += (remaining & 1) * scale
        remaining >>= 1
        scale *= 0.5
    return result


def _distances(spec: ViewSpec, uid: str, indices: np.ndarray, bounding_radius: float | None) -> np.ndarray:
    cam = spec.camera
    count = len(indices)
    if cam.distance_mode == "range":
        unit = view_uniforms(spec.seed, uid, "distance", indices=indices)[0]
        return cam.distance_min + (cam.distance_max - cam.distance_min) * unit
    if cam.distance_mode == "auto":
        radius = bounding_radius if bounding_radius is not None else default_bounding_radius(spec.normalize.mode)
        fitted = auto_fit_distance(radius, cam, spec.render.resolution_x, spec.render.resolution_y)
        return np.full(count, fitted)
    return np.full(count, cam.distance)
