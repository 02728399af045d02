"""Lighting presets: seeded randomisation per object or per view, and sane energies."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blender_addon.rig.cameras import c2w_from_view
from blender_addon.rig.lighting import (
    BLENDER_DEFAULT_WORLD_GREY,
    NEAR_SURFACE_RADIUS,
    OVERHEAD_LIGHT_HEIGHT,
    area_power_for,
    lighting_varies_per_view,
    lights_for,
    point_power_for,
)
from blender_addon.rig.patterns import View, sample_views
from blender_addon.rig.spec import LIGHTING_PRESETS, spec_from_dict


def make_spec(**sections):
    """A validated spec from partial sections (camera=..., lighting=..., ...)."""
    return spec_from_dict(sections)


RANDOMISED_PRESETS = ["area_top", "three_point", "sun_rig_random", "uniform", "random_area", "hdri", "camera_headlight"]
FIXED_PRESETS = ["trellis"]  # the original draws nothing
VIEW = View(4, 30.0, 20.0, 1.5)


def lighting(preset, randomize="object", **extra):
    spec = {"preset": preset, "randomize": randomize, **extra}
    if preset == "hdri":
        spec.setdefault("hdri_path", "/tmp/studio.exr")
    return spec


def as_data(lights_and_world):
    lights, world = lights_and_world
    return [light.to_dict() for light in lights], world.to_dict()


def test_every_spec_preset_has_a_builder():
    assert sorted(RANDOMISED_PRESETS + FIXED_PRESETS) == sorted(LIGHTING_PRESETS)
    for preset in LIGHTING_PRESETS:
        lights, world = lights_for(make_spec(lighting=lighting(preset)), "uid", view=VIEW)
        assert all(light.kind in ("AREA", "SUN", "POINT", "SPOT") and light.energy > 0 for light in lights)
        assert world.strength >= 0


@pytest.mark.parametrize("preset", RANDOMISED_PRESETS)
def test_same_seed_and_uid_give_the_same_lighting_and_other_uids_differ(preset):
    spec = make_spec(lighting=lighting(preset, "object"))
    first = as_data(lights_for(spec, "chair", view=VIEW))
    assert first == as_data(lights_for(spec, "chair", view=VIEW))
    others = [as_data(lights_for(spec, f"chair-{i}", view=VIEW)) for i in range(6)]
    assert any(other != first for other in others)


@pytest.mark.parametrize("preset", ["area_top", "three_point", "random_area", "uniform"])
def test_randomize_none_gives_nominal_lighting_for_every_object(preset):
    spec = make_spec(lighting=lighting(preset, "none"))
    assert as_data(lights_for(spec, "a")) == as_data(lights_for(spec, "b"))


def test_randomize_view_varies_per_view_and_is_repeatable():
    spec = make_spec(lighting=lighting("three_point", "view"))
    assert lighting_varies_per_view(spec)
    views = [View(i, 0.0, 30.0, 1.5) for i in range(5)]
    per_view = [as_data(lights_for(spec, "obj", view=v)) for v in views]
    assert len({str(d) for d in per_view}) == 5
    assert per_view[2] == as_data(lights_for(spec, "obj", view=views[2]))
    with pytest.raises(ValueError, match="needs the view"):
        lights_for(spec, "obj")


@pytest.mark.parametrize("preset", ["three_point", "random_area", "camera_headlight"])
def test_per_view_lights_of_view_k_do_not_depend_on_the_number_of_views(preset):
    camera = {"pattern": "sphere_random", "jitter_deg": 5.0, "roll_deg": 10.0, "distance_mode": "range"}

    def per_view_lights(num_views):
        spec = make_spec(camera={**camera, "num_views": num_views}, lighting=lighting(preset, "view"))
        return [as_data(lights_for(spec, "obj", view=view)) for view in sample_views(spec, "obj")]

    few, many = per_view_lights(12), per_view_lights(100)
    assert few == many[:12]
    assert len({str(d) for d in many}) == 100  # they are drawn per view


def test_object_scope_is_shared_by_all_views():
    spec = make_spec(lighting=lighting("three_point", "object"))
    assert not lighting_varies_per_view(spec)
    assert as_data(lights_for(spec, "obj", view=View(0, 0, 0, 1.5))) == as_data(lights_for(spec, "obj"))


def test_area_top_reproduces_objaverse_rendering():
    lights, world = lights_for(make_spec(lighting=lighting("area_top", "none")), "uid")
    (light,) = lights
    assert (light.kind, light.location, light.rotation_euler, light.energy, light.size) == (
        "AREA", (0.0, 0.0, OVERHEAD_LIGHT_HEIGHT), (0.0, 0.0, 0.0), 30000.0, 100.0)
    assert OVERHEAD_LIGHT_HEIGHT > 1.0  # above the unit sphere's top, never coplanar with a top face
    assert world.color == (BLENDER_DEFAULT_WORLD_GREY,) * 3
    randomized = [lights_for(make_spec(lighting=lighting("area_top", "object")), f"u{i}")[0][0] for i in range(50)]
    assert all(5000 <= l.energy <= 35000 for l in randomized)
    assert np.std([l.energy for l in randomized]) > 5000


def test_exposure_formulas_match_the_reference_rig():
    # objaverse-rendering's 30000 W on a 100 m light is about a white surface at 0.95
    assert area_power_for(0.95, 100.0, 0.5) == pytest.approx(30000, rel=0.01)
    # far away an area light of side s acts like a Lambertian point: P ≈ π² d² E / 1
    assert area_power_for(1.0, 0.01, 10.0) == pytest.approx(math.pi**2 * 100, rel=1e-3)
    assert point_power_for(1.0, 1.0) == pytest.approx(4 * math.pi**2)


def test_three_point_lights_aim_at_the_object():
    lights, _ = lights_for(make_spec(lighting=lighting("three_point", "object")), "obj")
    assert [l.name for l in lights] == ["Key", "Fill", "Rim"]
    for light in lights:
        x, y, z = light.rotation_euler
        rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
        ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
        rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
        shines_along = -(rz @ ry @ rx)[:, 2]
        to_origin = -np.asarray(light.location) / np.linalg.norm(light.location)
        assert shines_along == pytest.approx(to_origin, abs=1e-9)
    key_to_fill = lights[0].energy / lights[1].energy
    assert 1.5 < key_to_fill < 5  # the key dominates


def test_sun_rig_reproduces_objaverse_xl_choices():
    for i in range(20):
        lights, _ = lights_for(make_spec(lighting=lighting("sun_rig_random")), f"o{i}")
        assert [l.kind for l in lights] == ["SUN"] * 4
        assert not any(l.use_shadow for l in lights)
        key, fill, rim, bottom = (l.energy for l in lights)
        assert key in (3, 4, 5) and fill in (2, 3, 4) and rim in (3, 4, 5) and bottom in (1, 2, 3)


def test_uniform_is_world_colour_only():
    lights, world = lights_for(make_spec(lighting=lighting("uniform", "none", color=[0.5, 0.5, 0.5])), "u")
    assert lights == [] and world.color == (0.5, 0.5, 0.5) and world.strength == 1.0 and world.hdri_path == ""


def test_hdri_rotation_is_random_per_object_and_strength_multiplies():
    extra = {"hdri_strength": 2.0, "strength": 1.5}
    spec = make_spec(lighting=lighting("hdri", "object", **extra), background={"world_strength": 0.5})
    lights, world = lights_for(spec, "a")
    assert lights == [] and world.hdri_path == "/tmp/studio.exr"
    assert world.strength == pytest.approx(2.0 * 1.5 * 0.5)
    turns = {lights_for(spec, f"o{i}")[1].hdri_rotation_z for i in range(10)}
    assert len(turns) == 10 and all(0 <= t < 2 * math.pi for t in turns)
    fixed = make_spec(lighting=lighting("hdri", "object", hdri_random_rotation=False))
    assert lights_for(fixed, "a")[1].hdri_rotation_z == 0.0


def test_camera_headlight_follows_the_camera():
    spec = make_spec(lighting=lighting("camera_headlight", "none"))
    assert lighting_varies_per_view(spec)
    with pytest.raises(ValueError):
        lights_for(spec, "obj")
    for view in (View(0, 0.0, 0.0, 1.5), View(1, 200.0, 60.0, 2.5)):
        c2w = c2w_from_view(view)
        (from_view,), _ = lights_for(spec, "obj", view=view)
        (from_c2w,), _ = lights_for(spec, "obj", c2w=c2w)
        assert from_view == from_c2w
        offset = np.asarray(from_view.location) - c2w[:3, 3]
        assert np.linalg.norm(offset) < 0.3 * view.distance  # at the camera, lifted a little
        assert offset @ c2w[:3, 1] > 0  # above the lens in the image
        near_side = np.linalg.norm(from_view.location) - NEAR_SURFACE_RADIUS
        white_level_at_near_side = from_view.energy / (4 * math.pi**2 * near_side**2)
        assert white_level_at_near_side == pytest.approx(0.8)


def test_strength_and_colour_apply_to_every_light():
    plain, _ = lights_for(make_spec(lighting=lighting("three_point", "none")), "u")
    tinted, world = lights_for(make_spec(lighting=lighting("three_point", "none", strength=2.0,
                                                           color=[1.0, 0.5, 0.25])), "u")
    for a, b in zip(plain, tinted):
        assert b.energy == pytest.approx(2 * a.energy)
        assert b.color == (1.0, 0.5, 0.25)
    assert world.strength == 1.0  # the ambient world is not a light source of the preset


def test_pinned_lighting_draw_catches_changes():
    # If this changes, objects rendered before get different lighting on a re-render.
    (key, _, _), _ = lights_for(make_spec(lighting=lighting("three_point", "object")), "pinned-uid")
    assert key.location == pytest.approx((-1.95006945832498, -1.4954329649548415, 1.7207293090531381), abs=1e-12)
    assert key.energy == pytest.approx(72.3428642864191, abs=1e-9)
