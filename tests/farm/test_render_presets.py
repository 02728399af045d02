"""`farm render --preset mvcap-fast`: the preset is offered by name and its render settings reach
Blender (transforms.json records them), with nothing to warn about on the PyPI bpy."""
from __future__ import annotations

import json

import pytest

from blender_addon.rig.presets import load_preset

from .conftest import farm

pytestmark = pytest.mark.slow


def test_farm_render_with_the_fast_preset(box_glb, tmp_path):
    out = tmp_path / "out"
    r = farm("render", box_glb, "-o", out, "--preset", "mvcap-fast", "--views", "1", "--resolution", "32",
             "--workers", "1")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "views" / "Box" / "transforms.json").read_text())
    spec = load_preset("mvcap-fast").render
    assert data["spec_name"] == "mvcap-fast" and data["warnings"] == []
    rec = data["render"]
    assert rec["samples"] == spec.samples
    assert rec["denoiser"] == (spec.denoiser if spec.denoise else "none")
    for name in ("view_transform", "filter_type", "adaptive_sampling", "light_tree"):
        assert rec[name] == getattr(spec, name), name
    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert [(o["uid"], o["status"], o["warnings"]) for o in objects] == [("Box", "done", [])]
