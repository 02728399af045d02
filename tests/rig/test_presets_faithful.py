"""Each peer preset holds its original's values, and its `reproduces` cites where they came from.

The originals' numbers are re-derived here from their published code (quoted with file and line
in each preset's `reproduces`), so a preset that drifts from its source fails.
"""
from __future__ import annotations

import argparse
import math
import re

import numpy as np
import pytest

from blender_addon.rig.cameras import c2w_from_view, camera_angle_x
from blender_addon.rig.lighting import BLENDER_DEFAULT_POINT_LIGHT, lights_for
from blender_addon.rig.patterns import sample_views
from blender_addon.rig.presets import load_preset, preset_names

PEERS = ["objaverse-rendering-12", "mvcap", "im3d", "zero123", "syncdreamer-16", "syncdreamer-16-random",
         "objaverse-xl-12", "trellis-150"]
OBJAVERSE_RENDERING_PATH = {"diffuse_bounces": 1, "glossy_bounces": 1, "transparent_max_bounces": 3,
                            "transmission_bounces": 3}
# Blender 3.x: Filmic was the default view transform from 2.80 to 3.6; the peers set none
BLENDER_3X = {"view_transform": "Filmic", "look": "None", "exposure": 0.0, "light_tree": False}


def render_fields(spec, names):
    return {name: getattr(spec.render, name) for name in names}


@pytest.mark.parametrize("name", PEERS)
def test_reproduces_cites_source_lines_and_lists_departures(name):
    text = load_preset(name).reproduces
    assert re.search(r"[\w-]+/[\w-]+@[0-9a-f]{7} [\w/.-]+\.py", text), "names repo@commit and file"
    assert len(re.findall(r"\b\d{1,3}(?:-\d{1,3})?\b[,)]", text)) >= 8, "cites lines for its values"
    assert "Departure" in text or "Not known" in text


def test_every_shipped_peer_preset_is_checked_here():
    assert set(PEERS) <= set(preset_names())


def test_objaverse_rendering_distance_is_its_default_and_its_parser_refuses_1_2():
    spec = load_preset("objaverse-rendering-12")
    # scripts/blender_script.py:43 as published: type=int, default 1.5
    parser = argparse.ArgumentParser()
    parser.add_argument("--camera_dist", type=int, default=1.5)
    assert parser.parse_args([]).camera_dist == spec.camera.distance == 1.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--camera_dist", "1.2"])
    # lines 190-198: theta = i/N*2pi, phi = 60 deg from +Z
    for view in sample_views(spec, "obj"):
        theta, phi = view.index / 12 * 2 * math.pi, math.radians(60)
        point = 1.5 * np.array([math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)])
        assert c2w_from_view(view)[:3, 3] == pytest.approx(point, abs=1e-12)
    assert render_fields(spec, ["samples", "filter_width", "denoise", *OBJAVERSE_RENDERING_PATH]) == {
        "samples": 32, "filter_width": 0.01, "denoise": True, **OBJAVERSE_RENDERING_PATH}
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X
    assert "BLENDER_EEVEE" in spec.reproduces and "dd04d88" in spec.reproduces
    (light,), _ = lights_for(spec, "obj")
    assert (light.kind, light.energy, light.size) == ("AREA", 30000.0, 100.0)


@pytest.mark.parametrize("name", ["mvcap", "im3d"])
def test_mvcap_renders_through_filmic_with_its_scripts_filter(name):
    spec = load_preset(name)
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X
    assert (spec.render.filter_width, spec.render.samples) == (0.01, 32)
    views = sample_views(spec, "obj")
    assert len(views) == 100 and min(v.elevation_deg for v in views) >= 0.0


def test_mvcap_says_its_code_has_no_view_sampler():
    text = load_preset("mvcap").reproduces
    assert "no view sampler" in text and "paper's text" in text and "fixed ring at elevation 30" in text


def test_im3d_says_what_is_known_and_what_is_assumed():
    text = load_preset("im3d").reproduces
    assert all(word in text for word in ("Known:", "Assumed:", "Not known:", "800", "hemispherical"))


def test_zero123_light_is_its_random_area_plus_blenders_default_light():
    spec = load_preset("zero123")
    assert spec.lighting.default_point_light and spec.lighting.randomize == "object"
    draws = []
    for i in range(300):
        lights, _ = lights_for(spec, f"obj-{i}")
        area = [light for light in lights if light.kind == "AREA"]
        assert len(area) == 1 and BLENDER_DEFAULT_POINT_LIGHT in lights and len(lights) == 2
        draws.append((area[0].energy, *area[0].location, area[0].size))
    energy, x, y, z, size = np.array(draws).T
    # objaverse-rendering/scripts/blender_script.py:148-151, scale 100 on light_add's 1 m (69, 73-75)
    assert 300 <= energy.min() and energy.max() <= 600 and np.ptp(energy) > 250
    assert -1 <= x.min() and x.max() <= 1 and -1 <= y.min() and y.max() <= 1 and np.ptp(x) > 1.6
    assert 0.5 <= z.min() and z.max() <= 1.5 and np.ptp(z) > 0.8
    assert set(size) == {100.0}
    # Blender's startup light: 1000 W POINT at its factory place
    assert (BLENDER_DEFAULT_POINT_LIGHT.energy, BLENDER_DEFAULT_POINT_LIGHT.kind) == (1000.0, "POINT")
    assert BLENDER_DEFAULT_POINT_LIGHT.location == pytest.approx((4.076245, 1.005454, 5.903862), abs=1e-6)
    assert spec.render.outputs == ["rgba", "npy_poses"]
    assert render_fields(spec, ["samples", "filter_width"]) == {"samples": 128, "filter_width": 0.01}
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X


@pytest.mark.parametrize("name", ["syncdreamer-16", "syncdreamer-16-random"])
def test_syncdreamer_keeps_the_default_light_and_grey_world(name):
    spec = load_preset(name)
    lights, world = lights_for(spec, "obj")
    assert lights == [BLENDER_DEFAULT_POINT_LIGHT]
    assert world.color == (0.5, 0.5, 0.5) and world.strength == 1.0
    assert (spec.render.resolution_x, spec.render.samples, spec.render.filter_width) == (256, 128, 0.01)
    assert spec.render.outputs == ["rgba", "syncdreamer_meta"]
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X
    views = sample_views(spec, "obj")
    assert [v.azimuth_deg for v in views] == pytest.approx([i * 22.5 for i in range(16)])
    assert {v.distance for v in views} == {1.5}


def test_syncdreamer_random_input_views_span_minus_10_to_40():
    spec = load_preset("syncdreamer-16-random")
    elevations = [v.elevation_deg for i in range(50) for v in sample_views(spec, f"o{i}")]
    assert -10 <= min(elevations) < -8 and 38 < max(elevations) <= 40
    assert load_preset("syncdreamer-16").camera.elevations_deg == [30.0]


def test_objaverse_xl_suns_are_drawn_unscaled_through_filmic():
    spec = load_preset("objaverse-xl-12")
    seen = set()
    for i in range(40):
        lights, _ = lights_for(spec, f"o{i}")
        assert [l.kind for l in lights] == ["SUN"] * 4 and not any(l.use_shadow for l in lights)
        seen.add(tuple(l.energy for l in lights))
    key, fill, rim, bottom = (set(column) for column in zip(*seen))
    # scripts/rendering/blender_script.py:223, 232, 241, 250: random.choice of these
    assert key <= {3, 4, 5} and fill <= {2, 3, 4} and rim <= {3, 4, 5} and bottom <= {1, 2, 3}
    assert len(key | fill | rim | bottom) >= 5
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X
    assert spec.camera.pattern == "cube_normalized_random"
    assert (spec.camera.distance_min, spec.camera.distance_max) == (1.5, 2.2)
    assert "EEVEE" in spec.reproduces and "main.py:126-127" in spec.reproduces
    assert spec.render.outputs == ["rgba", "npy_poses"]


def test_trellis_lights_and_the_one_left_out_lights_nothing():
    spec = load_preset("trellis-150")
    lights, _ = lights_for(spec, "obj")
    point, top = lights
    # dataset_toolkits/blender_script/render.py:185-196
    assert (point.kind, point.energy, point.location) == ("POINT", 1000.0, (4.0, 1.0, 6.0))
    assert (top.kind, top.energy, top.location, top.size, top.rotation_euler) == (
        "AREA", 10000.0, (0.0, 0.0, 10.0), 25.0, (0.0, 0.0, 0.0))
    # lines 198-203: 1000 W AREA at (0, 0, -10), rotation 0, so it emits along -Z; every point of the
    # unit box lies on its back side, where an area light gives nothing
    emits_along = np.array([0.0, 0.0, -1.0])
    box = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    assert np.all((box - np.array([0.0, 0.0, -10.0])) @ emits_along < 0)


def test_trellis_camera_and_render_settings():
    spec = load_preset("trellis-150")
    assert math.degrees(camera_angle_x(spec.camera)) == pytest.approx(40.0, abs=1e-4)
    assert spec.camera.lens_mm == pytest.approx(16 / math.tan(math.radians(20)), abs=1e-4)
    assert (spec.camera.distance, spec.view_count) == (2.0, 150)
    assert render_fields(spec, ["filter_type", "filter_width", "samples"]) == {
        "filter_type": "blackman_harris", "filter_width": 1.0, "samples": 128}
    assert render_fields(spec, BLENDER_3X) == BLENDER_3X
    assert spec.render.outputs == ["rgba", "trellis_transforms"]
    above = np.mean([v.elevation_deg > 0 for v in sample_views(spec, "obj")])
    assert above == pytest.approx(0.75, abs=0.01)
