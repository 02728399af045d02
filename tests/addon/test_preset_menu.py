"""The add-on's preset menu lists every preset in the folder, mvcap-fast included, and applies it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from blender_addon.rig.presets import load_preset, preset_names


class MenuLayout:
    """Records the operator buttons a menu's draw() makes."""

    def __init__(self):
        self.buttons = []

    def operator(self, idname, text="", **kwargs):
        button = SimpleNamespace(idname=idname, text=text)
        self.buttons.append(button)
        return button


def test_preset_menu_offers_every_preset_and_applies_mvcap_fast(addon):
    from blender_addon.ui import fields
    from blender_addon.ui.ops import MVCAP_MT_presets

    layout = MenuLayout()
    MVCAP_MT_presets.draw(SimpleNamespace(layout=layout), addon.context)
    assert [b.text for b in layout.buttons] == preset_names()
    assert "mvcap-fast" in [b.name for b in layout.buttons]
    assert {b.idname for b in layout.buttons} == {"mvcap.apply_preset"}

    assert addon.ops.mvcap.apply_preset(name="mvcap-fast") == {"FINISHED"}
    s, spec = addon.context.scene.mvcap, load_preset("mvcap-fast")
    assert s.preset == "mvcap-fast"
    for name in ("samples", "denoise", "denoise_quality", "denoise_input_passes", "view_transform", "filter_width"):
        assert getattr(s.render, name) == pytest.approx(getattr(spec.render, name)), name
    assert fields.settings_to_spec(s) == spec  # and back, losslessly (float32 storage included)
