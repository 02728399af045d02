"""spec.render's colour, filter, light-path, sampling and denoising fields reach Blender.

On the PyPI bpy each field is read back from the scene after configure_render, a changed field
changes the rendered pixels, and transforms.json / RenderResult record what was applied. On
Debian's Blender 3.4 (no OIDN, no light tree, no AgX) the settings fall back with warnings
instead of failing the object.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.rig.transforms import read_transforms  # noqa: E402
from blender_addon.scene import build, render_settings  # noqa: E402
from blender_addon.scene.render import render_asset  # noqa: E402
from tests.scene.test_scene import make_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("render_fields_script.py")
NON_DEFAULT = {
    "view_transform": "Filmic", "look": "High Contrast", "exposure": 0.75,
    "filter_type": "box", "filter_width": 0.01,
    "max_bounces": 7, "diffuse_bounces": 3, "glossy_bounces": 2, "transmission_bounces": 5,
    "transparent_max_bounces": 6, "volume_bounces": 1,
    "adaptive_sampling": False, "adaptive_threshold": 0.05, "adaptive_min_samples": 9,
    "denoise": True, "denoiser": "oidn", "denoise_prefilter": "fast", "denoise_quality": "balanced",
    "denoise_input_passes": "rgb_albedo", "light_tree": False,
}


def _configure(**render):
    return build.configure_render(make_spec([[0, 30, 1.5]], render=render), "cpu")


def _rgb_mean(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as img:
        rgba = np.asarray(img.convert("RGBA"), float)
    covered = rgba[..., 3] > 250
    return float(rgba[..., :3][covered].mean())


def test_each_field_reaches_cycles():
    setup = _configure(**NON_DEFAULT)
    scene = bpy.context.scene
    cyc, view = scene.cycles, scene.view_settings
    assert setup.warnings == []
    assert (view.view_transform, view.look) == ("Filmic", "High Contrast")
    assert view.exposure == pytest.approx(0.75)
    assert cyc.pixel_filter_type == "BOX" and cyc.filter_width == pytest.approx(0.01)
    assert (cyc.max_bounces, cyc.diffuse_bounces, cyc.glossy_bounces, cyc.transmission_bounces,
            cyc.transparent_max_bounces, cyc.volume_bounces) == (7, 3, 2, 5, 6, 1)
    assert cyc.use_adaptive_sampling is False
    assert cyc.adaptive_threshold == pytest.approx(0.05) and cyc.adaptive_min_samples == 9
    assert cyc.use_denoising is True and cyc.denoiser == "OPENIMAGEDENOISE"
    assert cyc.denoising_prefilter == "FAST" and cyc.denoising_input_passes == "RGB_ALBEDO"
    assert cyc.denoising_quality == "BALANCED"
    assert cyc.use_light_tree is False
    assert setup.settings["denoiser"] == "oidn" and setup.settings["look"] == "High Contrast"


def test_defaults_keep_the_settings_used_before_these_fields():
    _configure(**NON_DEFAULT)  # a previous asset's settings must not leak into the next
    setup = _configure()
    scene = bpy.context.scene
    cyc, view = scene.cycles, scene.view_settings
    assert (view.view_transform, view.look, view.exposure, view.gamma) == ("Standard", "None", 0.0, 1.0)
    assert cyc.pixel_filter_type == "BLACKMAN_HARRIS" and cyc.filter_width == pytest.approx(1.5)
    assert (cyc.diffuse_bounces, cyc.glossy_bounces, cyc.transparent_max_bounces, cyc.transmission_bounces) == (1, 1, 3, 3)
    assert cyc.max_bounces == 12 and cyc.volume_bounces == 0
    assert cyc.use_adaptive_sampling is True and cyc.adaptive_threshold == pytest.approx(0.01)
    assert cyc.use_denoising is False and setup.settings["denoiser"] == "none"
    assert cyc.use_light_tree is True
    assert setup.warnings == []


def test_agx_looks_map_to_blender_names():
    setup = _configure(view_transform="AgX", look="Medium Contrast")
    assert bpy.context.scene.view_settings.look == "AgX - Base Contrast"
    setup = _configure(view_transform="AgX", look="Punchy")
    assert bpy.context.scene.view_settings.look == "AgX - Punchy" and setup.warnings == []


def test_a_look_the_view_transform_lacks_falls_back_with_a_warning():
    setup = _configure(view_transform="Standard", look="Punchy")
    assert bpy.context.scene.view_settings.look == "None"
    assert any("render.look 'Punchy'" in w for w in setup.warnings), setup.warnings


def test_optix_without_an_optix_device_denoises_with_oidn_and_warns():
    if "OPTIX" in render_settings.enum_choices(bpy.context.scene.cycles, "denoiser"):
        pytest.skip("this machine has an OptiX device")
    setup = _configure(denoise=True, denoiser="optix")
    assert bpy.context.scene.cycles.denoiser == "OPENIMAGEDENOISE"
    assert setup.settings["denoiser"] == "oidn"
    assert any("'optix'" in w for w in setup.warnings), setup.warnings


def test_eevee_takes_colour_and_filter_width(tmp_path):
    setup = _configure(engine="eevee", view_transform="Filmic", exposure=-1.0, filter_width=2.5, filter_type="box")
    scene = bpy.context.scene
    assert scene.view_settings.view_transform == "Filmic" and scene.view_settings.exposure == -1.0
    assert scene.render.filter_size == pytest.approx(2.5)
    assert setup.settings["filter_type"] is None and setup.settings["denoiser"] == "none"
    assert any("render.filter_type 'box'" in w for w in setup.warnings)


def test_exposure_and_view_transform_change_the_pixels(glb_dir, tmp_path):
    means = {}
    for name, render in {"base": {}, "bright": {"exposure": 1.0}, "filmic": {"view_transform": "Filmic"}}.items():
        spec = make_spec([[30, 20, 1.5]], width=32, height=32, samples=2, render=render)
        render_asset(glb_dir / "Duck.glb", spec, tmp_path / name)
        means[name] = _rgb_mean(tmp_path / name / "000.png")
    assert means["bright"] > means["base"] + 10, means
    assert abs(means["filmic"] - means["base"]) > 3, means


def test_transforms_and_result_record_the_applied_settings(glb_dir, tmp_path):
    spec = make_spec([[0, 30, 1.5]], width=32, height=32, samples=2,
                     render={"denoise": True, "denoise_quality": "fast", "filter_width": 0.01,
                             "view_transform": "AgX", "look": "Punchy", "adaptive_min_samples": 4})
    result = render_asset(glb_dir / "Box.glb", spec, tmp_path / "box")
    data = read_transforms(tmp_path / "box" / "transforms.json")
    rec = data["render"]
    assert rec["denoiser"] == "oidn" and rec["denoise_quality"] == "fast"
    assert rec["filter_width"] == pytest.approx(0.01) and rec["filter_type"] == "blackman_harris"
    assert (rec["view_transform"], rec["look"]) == ("AgX", "AgX - Punchy")
    assert rec["adaptive_min_samples"] == 4 and rec["samples"] == 2 and rec["device"] == "CPU"
    for key in ("max_bounces", "diffuse_bounces", "adaptive_sampling", "adaptive_threshold",
                "denoise_prefilter", "denoise_input_passes", "light_tree", "exposure"):
        assert key in rec, key
    assert data["warnings"] == [] and result.to_dict()["warnings"] == []


@pytest.mark.slow
def test_blender_without_oidn_renders_undenoised_with_warnings(tmp_path):
    """Debian's Blender 3.4: Cycles without OIDN, light tree or AgX. The object still renders."""
    from tests.scene.test_blender_compat import run_installed_blender

    report = run_installed_blender(SCRIPT, tmp_path, "FIELDS")
    assert report.get("error") is None, report
    if "OPENIMAGEDENOISE" in report["denoisers"]:
        pytest.skip(f"this Blender {report['version']} has OIDN")
    warnings = report["result"]["warnings"]
    assert report["result"]["files"] == ["000.png"]
    data = read_transforms(tmp_path / "out" / "transforms.json")
    assert data["warnings"] == warnings
    assert data["render"]["denoiser"] == "none" and report["use_denoising"] is False
    assert any("render.denoiser 'oidn'" in w and "without denoising" in w for w in warnings), warnings
    if tuple(report["version"]) < (3, 5):
        assert any("render.light_tree" in w for w in warnings), warnings
    if tuple(report["version"]) < (4, 0):
        assert data["render"]["view_transform"] == "Filmic"
        assert any("render.view_transform 'AgX'" in w for w in warnings), warnings
