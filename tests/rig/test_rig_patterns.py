"""Camera patterns: determinism, area-uniformity, coverage, offsets and distances."""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from blender_addon.rig.cameras import orbit_position
from blender_addon.rig.patterns import (
    UNIT_BOX_RADIUS,
    View,
    is_prefix_stable,
    sample_views,
    views_override_warning,
)
from blender_addon.rig.presets import load_preset
from blender_addon.rig.spec import PATTERNS, spec_from_dict


def make_spec(**sections):
    """A validated spec from partial sections (camera=..., lighting=..., ...)."""
    return spec_from_dict(sections)


def angles(views):
    return np.array([[v.azimuth_deg, v.elevation_deg] for v in views])


def unit_directions(views):
    az, el = angles(views).T
    return orbit_position(az, el, 1.0)


def ks_distance_to_uniform(values, low, high):
    """Kolmogorov-Smirnov statistic of values against U(low, high)."""
    x = np.sort((np.asarray(values) - low) / (high - low))
    n = len(x)
    return max(np.max(np.arange(1, n + 1) / n - x), np.max(x - np.arange(n) / n))


def covering_radius_deg(directions, probe_count=4000):
    """The largest angle from any probe direction on the sphere to its nearest view."""
    probes = np.random.default_rng(123).normal(size=(probe_count, 3))
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    nearest_cos = np.max(probes @ directions.T, axis=1)
    return math.degrees(math.acos(np.clip(nearest_cos.min(), -1, 1)))


# --- determinism -------------------------------------------------------------------------------
def test_same_seed_and_uid_give_identical_views():
    spec = load_preset("mvcap")
    assert sample_views(spec, "chair_01") == sample_views(spec, "chair_01")


def test_different_uid_or_seed_gives_different_views():
    spec = load_preset("mvcap")
    base = angles(sample_views(spec, "chair_01"))
    assert not np.allclose(base, angles(sample_views(spec, "chair_02")))
    reseeded = dataclasses.replace(spec, seed=1)
    assert not np.allclose(base, angles(sample_views(reseeded, "chair_01")))


def test_pinned_values_catch_changes_to_sampling():
    # If these change, every dataset rendered before renders different poses: bump the spec version.
    # (Spec version 2 changed them once: per-view streams, see CHANGELOG.md.)
    mvcap = sample_views(load_preset("mvcap"), "pinned-uid")
    assert angles(mvcap[:3]) == pytest.approx(np.array([
        [245.0286303004958, 48.76439211285942],
        [59.46918669724077, 67.01085073516381],
        [193.24788541142567, 55.00795833648439],
    ]), abs=1e-9)
    # the hammersley pattern as trellis-150 used it before it took TRELLIS's own remap (trellis_hammersley)
    hammersley = {"pattern": "hammersley", "num_views": 150, "elevation_min_deg": -90.0, "elevation_max_deg": 90.0}
    trellis = sample_views(spec_from_dict({"camera": hammersley}), "pinned-uid")
    assert angles(trellis[:2]) == pytest.approx(np.array([
        [15.991406427528677, -81.50955492237728],
        [195.9914064275287, -77.34506690902349],
    ]), abs=1e-9)
    zero123 = sample_views(load_preset("zero123"), "pinned-uid")
    assert [v.distance for v in zero123[:2]] == pytest.approx([1.5639480625300823, 1.9626903484209766], abs=1e-12)


# --- view k does not depend on the number of views ----------------------------------------------
ALL_RANDOM = {"jitter_deg": 4.0, "roll_deg": 15.0, "distance_mode": "range", "distance_min": 1.2,
              "distance_max": 2.4, "azimuth_offset_deg": 20.0, "elevation_min_deg": -30.0}


def view_table(views):
    return np.array([[v.index, v.azimuth_deg, v.elevation_deg, v.distance, v.roll_deg] for v in views])


@pytest.mark.parametrize("pattern", ["hemisphere_random", "sphere_random"])
@pytest.mark.parametrize("column, quantity", [(1, "azimuth"), (2, "elevation"), (3, "distance"), (4, "roll")])
def test_random_view_k_is_the_same_for_12_and_100_views(pattern, column, quantity):
    camera = {"pattern": pattern, **ALL_RANDOM}
    few = view_table(sample_views(make_spec(camera={**camera, "num_views": 12}), "obj"))
    many = view_table(sample_views(make_spec(camera={**camera, "num_views": 100}), "obj"))
    assert len(few) == 12 and len(many) == 100
    np.testing.assert_allclose(few[:, column], many[:12, column], rtol=0, atol=1e-9, err_msg=quantity)
    assert np.ptp(many[:, column]) > 0.1  # the quantity really is random here


def test_a_dataset_grows_by_rendering_only_the_new_views():
    spec = load_preset("mvcap")  # 100 random views
    fifty = sample_views(spec.with_overrides(views=50), "grow")
    hundred = sample_views(spec, "grow")
    assert hundred[:50] == fifty


@pytest.mark.parametrize("pattern", PATTERNS)
def test_views_override_warning_says_when_the_cameras_change(pattern):
    """The warning (shown by `farm render --views`) is given exactly where the first views move."""
    spec = make_spec(camera={"pattern": pattern, "num_views": 12, "explicit": [[0, 0, 1.5], [90, 30, 0]]})
    override = spec.with_overrides(views=4)
    first_views_kept = sample_views(override, "u")[:4] == sample_views(spec, "u")[:4]
    warning = views_override_warning(spec, 4)
    if pattern == "explicit":
        assert first_views_kept and "ignored" in warning
    else:
        assert is_prefix_stable(pattern) == first_views_kept
        assert (warning is None) == first_views_kept
        assert warning is None or (pattern in warning and "\n" not in warning)
    assert views_override_warning(spec, None) is None and views_override_warning(spec, 12) is None


def test_sampling_many_views_stays_fast():
    spec = make_spec(camera={"pattern": "sphere_random", "num_views": 1000, **ALL_RANDOM})
    best = min(_seconds(lambda: sample_views(spec, "fast")) for _ in range(5))
    assert best < 0.05


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_jitter_and_roll_streams_leave_directions_alone():
    plain = sample_views(make_spec(camera={"pattern": "hemisphere_random", "num_views": 50}), "u")
    jittered = sample_views(make_spec(camera={"pattern": "hemisphere_random", "num_views": 50,
                                              "jitter_deg": 3.0, "roll_deg": 10.0}), "u")
    delta = angles(jittered) - angles(plain)
    delta[:, 0] = (delta[:, 0] + 180.0) % 360.0 - 180.0
    assert np.all(np.abs(delta) <= 3.0 + 1e-9)
    assert np.abs(delta).max() > 1.0  # jitter really moved them
    rolls = np.array([v.roll_deg for v in jittered])
    assert np.all(np.abs(rolls) <= 10.0) and rolls.std() > 2.0
    assert all(v.roll_deg == 0.0 for v in plain)


# --- distributions -----------------------------------------------------------------------------
def test_hemisphere_random_is_uniform_in_area_not_in_angle():
    views = sample_views(make_spec(camera={"pattern": "hemisphere_random", "num_views": 20000}), "area")
    az, el = angles(views).T
    assert el.min() >= 0.0 and el.max() <= 90.0
    # sin(el) uniform on [0,1]; the 1% critical KS value for n=20000 is 1.63/sqrt(n) ≈ 0.0115
    assert ks_distance_to_uniform(np.sin(np.radians(el)), 0.0, 1.0) < 0.0115
    assert ks_distance_to_uniform(az, 0.0, 360.0) < 0.0115
    # E[asin(U)] = 90° - 180°/π ≈ 32.70°, where angle-uniform sampling would give 45°
    assert el.mean() == pytest.approx(90.0 - 180.0 / math.pi, abs=0.5)
    # uniform in angle would put 1/3 of the views above 60°; uniform in area puts 1 - sin 60° ≈ 13.4%
    assert np.mean(el > 60.0) == pytest.approx(1 - math.sin(math.radians(60)), abs=0.01)


def test_hemisphere_random_respects_the_elevation_band():
    views = sample_views(make_spec(camera={"pattern": "hemisphere_random", "num_views": 5000,
                                           "elevation_min_deg": 10, "elevation_max_deg": 40}), "band")
    el = angles(views)[:, 1]
    assert el.min() >= 10.0 and el.max() <= 40.0
    low, high = math.sin(math.radians(10)), math.sin(math.radians(40))
    assert ks_distance_to_uniform(np.sin(np.radians(el)), low, high) < 0.025


def test_sphere_random_covers_the_whole_sphere_evenly():
    views = sample_views(make_spec(camera={"pattern": "sphere_random", "num_views": 20000,
                                           "elevation_min_deg": 0}), "sphere")
    el = angles(views)[:, 1]
    assert el.min() < -80 and el.max() > 80  # the band is ignored
    assert ks_distance_to_uniform(np.sin(np.radians(el)), -1.0, 1.0) < 0.0115
    assert np.linalg.norm(unit_directions(views).mean(axis=0)) < 0.03


def test_ring_counts_spacing_and_offset():
    spec = make_spec(camera={"pattern": "ring", "num_views": 8, "elevations_deg": [-10, 30],
                             "azimuth_offset_deg": 15, "distance": 2.5})
    views = sample_views(spec, "ring")
    assert len(views) == spec.view_count == 16
    assert [v.index for v in views] == list(range(16))
    az, el = angles(views).T
    assert np.allclose(az[:8], 15.0 + 45.0 * np.arange(8))
    assert np.allclose(az[8:], az[:8])
    assert np.allclose(el, [-10.0] * 8 + [30.0] * 8)
    assert all(v.distance == 2.5 for v in views)
    assert sample_views(spec, "ring") == sample_views(spec, "another uid")  # nothing random


def test_azimuth_offset_wraps_into_0_360():
    views = sample_views(make_spec(camera={"pattern": "ring", "num_views": 4, "azimuth_offset_deg": 350}), "w")
    assert np.allclose(angles(views)[:, 0], [350.0, 80.0, 170.0, 260.0])


@pytest.mark.parametrize("pattern", ["fibonacci", "hammersley"])
def test_low_discrepancy_patterns_cover_better_than_random(pattern):
    n = 200
    camera = {"num_views": n, "elevation_min_deg": -90, "elevation_max_deg": 90}
    structured = unit_directions(sample_views(make_spec(camera={**camera, "pattern": pattern}), "cov"))
    random_dirs = unit_directions(sample_views(make_spec(camera={**camera, "pattern": "sphere_random"}), "cov"))
    assert len(structured) == n
    # the ideal for 200 points is about 9-10°; random points leave holes about twice as wide
    assert covering_radius_deg(structured) < 14.0
    assert covering_radius_deg(structured) < 0.75 * covering_radius_deg(random_dirs)
    assert np.linalg.norm(structured.mean(axis=0)) < 0.02


@pytest.mark.parametrize("pattern", ["fibonacci", "hammersley"])
def test_low_discrepancy_heights_are_stratified_in_area(pattern):
    n = 97
    views = sample_views(make_spec(camera={"pattern": pattern, "num_views": n,
                                           "elevation_min_deg": 0, "elevation_max_deg": 90}), "strata")
    heights = np.sin(np.radians(angles(views)[:, 1]))
    # exactly one view in each of the n equal-area bands
    assert sorted(np.floor(heights * n).astype(int).tolist()) == list(range(n))


def test_hammersley_offset_is_random_per_uid_but_fixed_per_uid():
    spec = make_spec(camera={"pattern": "hammersley", "num_views": 150,
                             "elevation_min_deg": -90, "elevation_max_deg": 90})
    a, b = angles(sample_views(spec, "obj-a")), angles(sample_views(spec, "obj-b"))
    assert not np.allclose(a, b)
    assert np.array_equal(a, angles(sample_views(spec, "obj-a")))


def test_explicit_rows_and_fallback_distance():
    rows = [[0, 0, 2.0], [90, 45, 0], [400, -90, 1.25]]
    spec = make_spec(camera={"pattern": "explicit", "explicit": rows, "distance": 1.7})
    views = sample_views(spec, "x")
    assert len(views) == spec.view_count == 3
    assert [(v.azimuth_deg, v.elevation_deg, v.distance) for v in views] == [
        (0.0, 0.0, 2.0), (90.0, 45.0, 1.7), (40.0, -90.0, 1.25)]


def test_distance_range_is_random_within_bounds():
    spec = make_spec(camera={"num_views": 200, "distance_mode": "range", "distance_min": 1.5, "distance_max": 2.2})
    distances = np.array([v.distance for v in sample_views(spec, "d")])
    assert distances.min() >= 1.5 and distances.max() <= 2.2
    assert distances.std() > 0.15  # uniform on 0.7 m has std 0.2


def test_auto_distance_depends_on_the_radius():
    box = make_spec(camera={"distance_mode": "auto", "num_views": 2}, normalize={"mode": "unit_box"})
    sphere = make_spec(camera={"distance_mode": "auto", "num_views": 2}, normalize={"mode": "unit_sphere"})
    d_box = sample_views(box, "a")[0].distance
    d_sphere = sample_views(sphere, "a")[0].distance
    assert d_sphere / d_box == pytest.approx(1.0 / UNIT_BOX_RADIUS)
    assert sample_views(box, "a", bounding_radius=1.0)[0].distance == pytest.approx(d_sphere)


def test_view_to_dict():
    assert View(3, 10.0, 20.0, 1.5, -4.0).to_dict() == {
        "index": 3, "azimuth_deg": 10.0, "elevation_deg": 20.0, "distance": 1.5, "roll_deg": -4.0}
