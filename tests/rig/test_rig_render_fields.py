"""spec.render's colour, filter, light-path, sampling and denoising fields: defaults, validation."""
from __future__ import annotations

import pytest

from blender_addon.rig.spec import RenderSpec, SpecError, ViewSpec, spec_from_dict


def render(**fields):
    return spec_from_dict({"render": fields}).render


def test_defaults_are_the_settings_rendered_before_these_fields_existed():
    ren = ViewSpec().render
    assert (ren.view_transform, ren.look, ren.exposure) == ("Standard", "None", 0.0)
    assert (ren.filter_type, ren.filter_width) == ("blackman_harris", 1.5)
    assert (ren.diffuse_bounces, ren.glossy_bounces, ren.transmission_bounces, ren.transparent_max_bounces) == (1, 1, 3, 3)
    assert (ren.max_bounces, ren.volume_bounces) == (12, 0)
    assert (ren.adaptive_sampling, ren.adaptive_threshold, ren.adaptive_min_samples) == (True, 0.01, 0)
    assert (ren.denoise, ren.denoiser, ren.denoise_prefilter, ren.denoise_quality, ren.denoise_input_passes) == (
        False, "oidn", "accurate", "high", "rgb_albedo_normal")
    assert ren.light_tree is True


def test_an_old_spec_without_the_fields_loads_with_the_defaults():
    old = {"render": {"engine": "cycles", "resolution_x": 64, "resolution_y": 64, "samples": 4, "denoise": True,
                      "file_format": "PNG", "timeout_s": 60.0}}
    ren = spec_from_dict(old).render
    assert ren == RenderSpec(resolution_x=64, resolution_y=64, samples=4, denoise=True, timeout_s=60.0)


def test_every_field_round_trips():
    fields = {"view_transform": "AgX", "look": "Punchy", "exposure": -1.5, "filter_type": "box", "filter_width": 1.0,
              "max_bounces": 4, "diffuse_bounces": 2, "glossy_bounces": 0, "transmission_bounces": 8,
              "transparent_max_bounces": 16, "volume_bounces": 2, "adaptive_sampling": False,
              "adaptive_threshold": 0.0, "adaptive_min_samples": 16, "denoiser": "optix", "denoise_prefilter": "none",
              "denoise_quality": "fast", "denoise_input_passes": "rgb", "light_tree": False}
    ren = render(**fields)
    for key, value in fields.items():
        assert getattr(ren, key) == value, key
    assert spec_from_dict(spec_from_dict({"render": fields}).to_dict()).render == ren


@pytest.mark.parametrize("field, value, needle", [
    ("view_transform", "Filmic Log", "allowed: Standard, Filmic, AgX"),
    ("view_transform", "standard", "allowed"),
    ("look", "AgX - Punchy", "allowed"),
    ("filter_type", "BOX", "allowed: blackman_harris, gaussian, box"),
    ("denoiser", "none", "allowed: oidn, optix"),
    ("denoise_prefilter", "slow", "allowed"),
    ("denoise_quality", "low", "allowed"),
    ("denoise_input_passes", "rgb_normal", "allowed"),
])
def test_unknown_choices_are_one_line_errors_naming_the_field(field, value, needle):
    with pytest.raises(SpecError) as info:
        render(**{field: value})
    message = str(info.value)
    assert message.startswith(f"render.{field}:") and needle in message and "\n" not in message


@pytest.mark.parametrize("field, value", [
    ("exposure", 33.0), ("exposure", -32.5), ("filter_width", 0.0), ("filter_width", 10.5),
    ("max_bounces", -1), ("diffuse_bounces", 1025), ("volume_bounces", -2),
    ("adaptive_threshold", -0.01), ("adaptive_threshold", 1.5), ("adaptive_min_samples", -1),
    ("adaptive_min_samples", 5000),
])
def test_out_of_range_values_are_rejected(field, value):
    with pytest.raises(SpecError, match=rf"^render\.{field}: .* out of range"):
        render(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("light_tree", 1), ("adaptive_sampling", "yes"), ("max_bounces", 2.5), ("exposure", "bright"),
])
def test_wrong_types_are_rejected(field, value):
    with pytest.raises(SpecError, match=rf"^render\.{field}: expected"):
        render(**{field: value})


def test_new_fields_change_the_spec_hash():
    assert spec_from_dict({"render": {"denoise_quality": "fast"}}).spec_hash() != ViewSpec().spec_hash()


def test_mvcap_fast_is_mvcap_with_the_benchmarked_setting_and_states_its_cost():
    """mvcap-fast = mvcap + one setting of scripts/bench_quality.py, and its `reproduces` quotes that
    setting's measured speed-up and PSNR loss at 512 px as BENCHMARKS.md holds them."""
    import re
    import sys
    from pathlib import Path

    from blender_addon.rig.presets import load_preset

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "scripts"))
    from bench_quality import SETTINGS

    fast, mvcap = load_preset("mvcap-fast"), load_preset("mvcap")
    setting = re.search(r"setting `([\w.-]+)`", fast.reproduces).group(1)
    overrides, seed = SETTINGS[setting]
    expected = mvcap.to_dict()
    expected["render"].update(overrides)
    expected.update(name="mvcap-fast", description=fast.description, reproduces=fast.reproduces)
    assert seed == 0 and fast.to_dict() == expected

    block = (repo / "BENCHMARKS.md").read_text().split("<!-- bench_quality:begin -->")[1].split("**512x512 px**")[1]
    row = next(line for line in block.splitlines() if line.startswith(f"| {setting} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    speedup, delta_psnr = cells[3], cells[6]
    assert float(speedup.rstrip("x")) >= 1.5
    assert f"at 512 px {speedup} mvcap's views/s" in fast.reproduces
    assert f"({delta_psnr} dB;" in fast.reproduces
