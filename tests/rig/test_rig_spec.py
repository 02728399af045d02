"""ViewSpec: lossless round trips and one-line errors that name the field."""
from __future__ import annotations

import json

import pytest

from blender_addon.rig.presets import PRESET_DIR, load_preset, preset_names
from blender_addon.rig.spec import SPEC_VERSION, SpecError, ViewSpec, load_spec, save_spec, spec_from_dict


def assert_one_line_naming(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_default_spec_round_trips_through_dict_and_file(tmp_path):
    spec = ViewSpec()
    assert spec_from_dict(spec.to_dict()) == spec
    path = save_spec(spec, tmp_path / "spec.json")
    assert load_spec(path) == spec
    assert load_spec(path).spec_hash() == spec.spec_hash()


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_round_trips_losslessly(name, tmp_path):
    spec = load_preset(name)
    reloaded = load_spec(save_spec(spec, tmp_path / f"{name}.json"))
    assert reloaded == spec
    assert json.loads(reloaded.to_json()) == spec.to_dict()


def test_partial_document_fills_defaults_and_keeps_given_values():
    spec = spec_from_dict({"camera": {"pattern": "ring", "elevations_deg": [10, 20]}, "seed": 7})
    assert spec.camera.elevations_deg == [10.0, 20.0]
    assert spec.camera.lens_mm == ViewSpec().camera.lens_mm
    assert spec.seed == 7


def test_spec_hash_changes_with_content():
    assert ViewSpec().spec_hash() != ViewSpec(seed=1).spec_hash()


def test_with_overrides_and_view_count():
    spec = ViewSpec().with_overrides(views=8, resolution=128, samples=4, engine="eevee")
    assert (spec.camera.num_views, spec.render.resolution_x, spec.render.resolution_y) == (8, 128, 128)
    assert (spec.render.samples, spec.render.engine) == (4, "eevee")
    ring = spec_from_dict({"camera": {"pattern": "ring", "num_views": 6, "elevations_deg": [0, 30, 60]}})
    assert ring.view_count == 18


def test_version_1_spec_is_accepted_and_upgraded():
    old = ViewSpec().to_dict()
    old["version"] = 1
    spec = spec_from_dict(old)
    assert spec.version == SPEC_VERSION > 1
    assert spec == ViewSpec()
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"version": SPEC_VERSION + 1})
    assert_one_line_naming(exc_info, "version", str(SPEC_VERSION + 1), f"allowed: 1, {SPEC_VERSION}")


@pytest.mark.parametrize("name", preset_names())
def test_shipped_presets_are_at_the_current_version(name):
    assert json.loads((PRESET_DIR / f"{name}.json").read_text())["version"] == SPEC_VERSION


def test_bad_enum_names_field_and_allowed_values():
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"camera": {"pattern": "spiral"}})
    assert_one_line_naming(exc_info, "camera.pattern", "'spiral'", "ring", "hemisphere_random", "hammersley")


def test_bad_lighting_randomize_names_allowed_scopes():
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"lighting": {"randomize": "frame"}})
    assert_one_line_naming(exc_info, "lighting.randomize", "none", "object", "view")


def test_unknown_field_names_field_and_allowed_fields():
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"camera": {"fov": 40}})
    assert_one_line_naming(exc_info, "camera.fov", "unknown field", "lens_mm")


def test_wrong_type_and_out_of_range_name_the_field():
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"render": {"samples": "many"}})
    assert_one_line_naming(exc_info, "render.samples", "integer")
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"camera": {"fill_fraction": 1.5}})
    assert_one_line_naming(exc_info, "camera.fill_fraction", "1.5")
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"camera": {"elevation_min_deg": 60, "elevation_max_deg": 10}})
    assert_one_line_naming(exc_info, "camera.elevation_min_deg")


def test_explicit_rows_are_checked():
    with pytest.raises(SpecError) as exc_info:
        spec_from_dict({"camera": {"pattern": "explicit", "explicit": [[0, 10]]}})
    assert_one_line_naming(exc_info, "camera.explicit[0]")


def test_unreadable_or_invalid_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError) as exc_info:
        load_spec(bad)
    assert_one_line_naming(exc_info, "bad.json", "not valid JSON")
    with pytest.raises(SpecError) as exc_info:
        load_spec(tmp_path / "missing.json")
    assert_one_line_naming(exc_info, "missing.json", "cannot be read")
