"""Camera sampling patterns: where the views of one object are.

Every pattern yields azimuths and elevations (degrees). Distance, jitter and roll are then
applied the same way for all patterns. Each random quantity has its own seeded stream
(`rng_for(seed, uid, purpose)`), so turning on jitter, say, leaves the directions unchanged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .cameras import auto_fit_distance
from .seeding import rng_for
from .spec import ViewSpec

GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))  # ≈ 137.5°, the fibonacci lattice's azimuth step
UNIT_BOX_RADIUS = math.sqrt(3.0) / 2.0  # bounding sphere of the unit cube


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
    count = len(azimuths)

    jitter = rng_for(spec.seed, uid, "jitter").uniform(-1.0, 1.0, size=(2, count)) * cam.jitter_deg
    azimuths = np.mod(azimuths + cam.azimuth_offset_deg + jitter[0], 360.0)
    elevations = np.clip(elevations + jitter[1], -90.0, 90.0)
    rolls = rng_for(spec.seed, uid, "roll").uniform(-1.0, 1.0, size=count) * cam.roll_deg + 0.0  # no -0.0

    distances = _distances(spec, uid, count, bounding_radius)
    if explicit_distances is not None:
        distances = np.where(explicit_distances > 0, explicit_distances, distances)

    return [
        View(i, float(azimuths[i]), float(elevations[i]), float(distances[i]), float(rolls[i]))
        for i in range(count)
    ]


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
        uv = rng_for(spec.seed, uid, "directions").random(size=(2, n))
        return 360.0 * uv[1], _elevations_uniform_in_area(uv[0], band), None
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


def _distances(spec: ViewSpec, uid: str, count: int, bounding_radius: float | None) -> np.ndarray:
    cam = spec.camera
    if cam.distance_mode == "range":
        return rng_for(spec.seed, uid, "distance").uniform(cam.distance_min, cam.distance_max, size=count)
    if cam.distance_mode == "auto":
        radius = bounding_radius if bounding_radius is not None else default_bounding_radius(spec.normalize.mode)
        fitted = auto_fit_distance(radius, cam, spec.render.resolution_x, spec.render.resolution_y)
        return np.full(count, fitted)
    return np.full(count, cam.distance)
