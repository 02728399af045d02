"""The `paper` preset shows the model what the original's InstructBLIP saw, and says where its
prompt comes from. The original (Omniview_Tuning scripts/caption_VLM_instrucBLIP.py:61) loaded each
render with Image.open(p).convert("RGB")."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from captioner.images import load_rgb
from captioner.models import PRESETS

from .helpers import captioner, make_out


@pytest.fixture(scope="module")
def real_render(tmp_path_factory):
    """A real Cycles render on a transparent film (what the farm writes)."""
    pytest.importorskip("bpy")
    from blender_addon.rig.spec import spec_from_dict
    from blender_addon.scene.render import render_asset
    from tests.conftest import GLB_DIR

    if not GLB_DIR.is_dir():
        pytest.skip(f"test assets not found at {GLB_DIR}")
    out = tmp_path_factory.mktemp("render")
    spec = spec_from_dict({"camera": {"pattern": "explicit", "explicit": [[30, 20, 2.5]]},
                           "render": {"resolution_x": 48, "resolution_y": 48, "samples": 2}})
    render_asset(GLB_DIR / "Duck.glb", spec, out)
    return out / "000.png"


def test_convert_rgb_drops_alpha_leaving_blenders_black(real_render):
    with Image.open(real_render) as img:
        rgba = np.asarray(img)
        original = np.asarray(img.convert("RGB"))  # what the original script handed InstructBLIP
    transparent, opaque = rgba[..., 3] == 0, rgba[..., 3] == 255
    assert transparent.sum() > 100 and opaque.sum() > 100
    # Blender writes black under alpha 0 (at most 1/255 where a sliver of coverage rounded to alpha 0)
    assert original[transparent].max() <= 1 and np.mean(original[transparent] == 0) > 0.9
    paper = np.asarray(load_rgb(real_render, PRESETS["paper"].background)).astype(int)
    assert np.abs(paper[transparent | opaque] - original[transparent | opaque]).max() <= 1
    white = np.asarray(load_rgb(real_render, PRESETS["fast"].background))
    assert (white[transparent] == 255).all()


def test_paper_preset_records_its_prompt_source_and_background():
    paper = PRESETS["paper"]
    assert paper.background == (0, 0, 0)
    assert "caption_VLM_instrucBLIP.py:63" in paper.prompt_source and "--no-consistency" in paper.prompt_source
    assert all(PRESETS[name].background == (255, 255, 255) for name in PRESETS if name != "paper")


@pytest.mark.slow
def test_run_with_paper_and_no_consistency_records_both(tiny_instructblip, tmp_path):
    out = make_out(tmp_path / "out", [("chair01", "rocking_chair", 2)])
    proc = captioner("run", str(out), "--model", str(tiny_instructblip), "--preset", "paper", "--no-consistency",
                     "--max-new-tokens", "4", "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "views" / "chair01" / "captions.json").read_text())
    assert (doc["preset"], doc["consistency"], doc["background"]) == ("paper", False, "#000000")
    assert "caption_VLM_instrucBLIP.py" in doc["prompt_source"]
    assert {e["route"] for e in doc["captions"]} == {"guided"}  # no re-caption, whatever the caption says
    proc = captioner("run", str(out), "--model", str(tiny_instructblip), "--preset", "fast", "--retry-failed",
                     "--background", "gray", "--max-new-tokens", "4")
    assert proc.returncode == 0, proc.stderr
