"""The peers' own camera samplers: each against a re-implementation of the original's code."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.rig.patterns import is_prefix_stable, sample_views
from blender_addon.rig.seeding import rng_for
from blender_addon.rig.spec import spec_from_dict

CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / np.sqrt(3.0)


def directions(views) -> np.ndarray:
    az = np.radians([v.azimuth_deg for v in views])
    el = np.radians([v.elevation_deg for v in views])
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)


def share_near_corners(unit: np.ndarray, cone_deg: float = 20.0) -> float:
    """Fraction of directions within cone_deg of one of the cube's 8 corner directions."""
    return float(np.mean((unit @ CORNERS.T).max(axis=1) > np.cos(np.radians(cone_deg))))


def zero123_sample_spherical(rng: np.random.Generator, radius_min=1.5, radius_max=2.2, maxz=2.2, minz=-2.2):
    """cvlab-columbia/zero123 objaverse-rendering/scripts/blender_script.py:119-128, with a Generator
    for np.random; returns (position, tries)."""
    tries = 0
    while True:
        tries += 1
        vec = rng.uniform(-1, 1, 3)
        radius = rng.uniform(radius_min, radius_max, 1)
        vec = vec / np.linalg.norm(vec, axis=0) * radius[0]
        if maxz > vec[2] > minz:
            return vec, tries


def many_views(pattern: str, uids: int, **camera) -> list:
    spec = spec_from_dict({"camera": {"pattern": pattern, **camera}})
    return [v for i in range(uids) for v in sample_views(spec, f"obj-{i}")]


def test_cube_normalized_matches_zero123s_corner_bias():
    rng = np.random.default_rng(7)
    original = [zero123_sample_spherical(rng) for _ in range(20000)]
    assert max(tries for _, tries in original) == 1  # its z test never rejects: the whole sphere
    positions = np.array([p for p, _ in original])
    original_unit = positions / np.linalg.norm(positions, axis=1, keepdims=True)

    ours = many_views("cube_normalized_random", 400, num_views=12, distance_mode="range",
                      distance_min=1.5, distance_max=2.2)
    uniform = many_views("sphere_random", 400, num_views=12)
    expected = share_near_corners(original_unit)
    assert share_near_corners(directions(ours)) == pytest.approx(expected, abs=0.03)
    # the bias is real: a uniform sphere has about 0.24 of its area in those cones
    assert share_near_corners(directions(uniform)) == pytest.approx(0.2412, abs=0.03)
    assert expected > 0.2412 + 0.08
    distances = np.array([v.distance for v in ours])
    assert 1.5 <= distances.min() and distances.max() <= 2.2
    assert distances.mean() == pytest.approx(np.linalg.norm(positions, axis=1).mean(), abs=0.02)


def test_cube_normalized_is_prefix_stable():
    def views(n):
        return sample_views(spec_from_dict({"camera": {"pattern": "cube_normalized_random", "num_views": n}}), "u")

    assert is_prefix_stable("cube_normalized_random")
    assert views(12) == views(100)[:12]


def test_ring_random_elevation_is_syncdreamers_random_mode():
    # SyncDreamer blender_script.py:256-257: ring azimuths, np.random.uniform(-10, 40) elevations (degrees)
    camera = {"num_views": 16, "elevation_min_deg": -10.0, "elevation_max_deg": 40.0}
    spec = spec_from_dict({"camera": {"pattern": "ring_random_elevation", **camera}})
    views = sample_views(spec, "obj")
    assert [v.azimuth_deg for v in views] == pytest.approx([i / 16 * 360 for i in range(16)])
    ours = np.sort([v.elevation_deg for v in many_views("ring_random_elevation", 400, **camera)])
    original = np.sort(np.random.default_rng(3).uniform(-10, 40, 20000))
    grid = np.linspace(-10, 40, 201)
    ks = np.abs(np.searchsorted(ours, grid) / len(ours) - np.searchsorted(original, grid) / len(original)).max()
    assert ks < 0.03  # two-sample Kolmogorov-Smirnov distance; 5% critical value here is about 0.02-0.03
    assert -10 <= ours[0] and ours[-1] <= 40


def trellis_sphere_hammersley_sequence(n, num_samples, offset):
    """microsoft/TRELLIS dataset_toolkits/utils.py:19-43."""
    def radical_inverse(base, k):
        val, inv_base = 0.0, 1.0 / base
        inv_base_n = inv_base
        while k > 0:
            digit = k % base
            val += digit * inv_base_n
            k //= base
            inv_base_n *= inv_base
        return val

    u, v = n / num_samples, radical_inverse(2, n)
    u += offset[0] / num_samples
    v += offset[1]
    u = 2 * u if u < 0.25 else 2 / 3 * u + 1 / 3
    theta = np.arccos(1 - 2 * u) - np.pi / 2
    phi = v * 2 * np.pi
    return [phi, theta]


@pytest.mark.parametrize("uid", ["a", "chair", "7f3c"])
def test_trellis_hammersley_is_trellis_sequence_given_its_offset(uid):
    spec = spec_from_dict({"camera": {"pattern": "trellis_hammersley", "num_views": 150}})
    views = sample_views(spec, uid)
    offset = rng_for(spec.seed, uid, "hammersley_offset").random(size=2)
    for view in views:
        yaw, pitch = trellis_sphere_hammersley_sequence(view.index, 150, offset)
        assert view.elevation_deg == pytest.approx(np.degrees(pitch), abs=1e-9)
        assert view.azimuth_deg == pytest.approx(np.degrees(yaw) % 360.0, abs=1e-9)
    above = np.mean([v.elevation_deg > 0 for v in views])
    assert above == pytest.approx(0.75, abs=1 / 150)


def test_pinned_values_of_the_peer_patterns():
    # If these change, datasets rendered with these presets render different poses: bump the spec version.
    from blender_addon.rig.presets import load_preset

    zero123 = sample_views(load_preset("zero123"), "pinned-uid")[:2]
    assert [a for v in zero123 for a in (v.azimuth_deg, v.elevation_deg)] == pytest.approx(
        [35.63259518965702, 53.60174672383831, 136.3642549385114, 4.548215285010777], abs=1e-9)
    sync = sample_views(load_preset("syncdreamer-16-random"), "pinned-uid")[:2]
    assert [v.elevation_deg for v in sync] == pytest.approx([-4.159158593852776, 9.418178881220477], abs=1e-9)
