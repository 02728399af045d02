"""Shipped presets: all load and validate, say what they reproduce, and hold the documented values."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from blender_addon.rig.cameras import camera_angle_x
from blender_addon.rig.presets import PRESET_DIR, load_preset, preset_names
from blender_addon.rig.spec import SpecError

REPO = Path(__file__).resolve().parents[2]
EXPECTED = ["im3d", "mvcap", "mvcap-fast", "objaverse-rendering-12", "objaverse-xl-12", "syncdreamer-16",
            "syncdreamer-16-random", "trellis-150", "zero123"]


def test_all_documented_presets_ship():
    assert preset_names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_preset_loads_validates_and_cites_its_source(name):
    spec = load_preset(name)
    assert spec.name == name
    assert len(spec.reproduces) > 80
    assert spec.view_count >= 12


def test_mvcap_is_the_paper_rig():
    spec = load_preset("mvcap")
    cam = spec.camera
    assert spec.view_count == 100
    assert (cam.pattern, cam.elevation_min_deg, cam.elevation_max_deg) == ("hemisphere_random", 0.0, 90.0)
    assert (cam.distance_mode, cam.distance, cam.lens_mm, cam.sensor_width_mm) == ("fixed", 1.5, 35.0, 32.0)
    assert (cam.jitter_deg, cam.roll_deg) == (0.0, 0.0)
    assert (spec.render.resolution_x, spec.render.resolution_y, spec.render.file_format) == (512, 512, "PNG")
    assert spec.background.transparent is True
    assert spec.normalize.mode == "unit_box"
    assert (spec.lighting.preset, spec.lighting.randomize) == ("area_top", "none")
    assert "objaverse-rendering" in spec.reproduces


def test_im3d_follows_the_mvcap_rig():
    mvcap, im3d = load_preset("mvcap"), load_preset("im3d")
    assert im3d.camera == mvcap.camera and im3d.render == mvcap.render and im3d.lighting == mvcap.lighting


def test_peer_presets_hold_their_originals_settings():
    orl = load_preset("objaverse-rendering-12").camera
    assert (orl.pattern, orl.num_views, orl.elevations_deg, orl.distance) == ("ring", 12, [30.0], 1.5)
    zero123 = load_preset("zero123")
    assert (zero123.camera.pattern, zero123.view_count) == ("cube_normalized_random", 12)
    assert (zero123.camera.distance_mode, zero123.camera.distance_min, zero123.camera.distance_max) == ("range", 1.5, 2.2)
    assert zero123.lighting.preset == "random_area"
    sync = load_preset("syncdreamer-16")
    assert (sync.camera.pattern, sync.view_count, sync.camera.elevations_deg, sync.camera.distance) == ("ring", 16, [30.0], 1.5)
    assert (sync.render.resolution_x, sync.lighting.preset, sync.lighting.color) == (256, "uniform", [0.5, 0.5, 0.5])
    xl = load_preset("objaverse-xl-12")
    assert (xl.camera.pattern, xl.view_count, xl.lighting.preset) == ("cube_normalized_random", 12, "sun_rig_random")
    trellis = load_preset("trellis-150")
    assert (trellis.camera.pattern, trellis.view_count, trellis.camera.distance) == ("trellis_hammersley", 150, 2.0)
    assert math.degrees(camera_angle_x(trellis.camera)) == pytest.approx(40.0, abs=1e-4)


def test_unknown_preset_is_a_one_line_spec_error_listing_the_known_ones():
    with pytest.raises(SpecError) as exc_info:
        load_preset("../spec")
    message = str(exc_info.value)
    assert message.startswith("preset: '../spec' is unknown; allowed: ") and "mvcap" in message and "\n" not in message


def test_presets_are_packaged():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "presets/*.json" in pyproject["tool"]["setuptools"]["package-data"]["blender_addon.rig"]
    assert PRESET_DIR == REPO / "blender_addon" / "rig" / "presets"
