"""Registration: twice on, twice off, nothing left behind; the code stays Python 3.10 compatible."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import blender_addon  # noqa: E402
from blender_addon.rig import spec as S  # noqa: E402

ADDON = Path(blender_addon.__file__).parent


def _footprint():
    handlers = {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
                if isinstance(getattr(bpy.app.handlers, name), list)}
    return {
        "types": sorted(n for n in dir(bpy.types) if "MVCAP" in n.upper()),
        "scene_props": sorted(p.identifier for p in bpy.types.Scene.bl_rna.properties),
        "handlers": handlers,
    }


def test_register_unregister_twice_leaves_no_trace():
    from blender_addon.ui import farm_link, ops_farm

    bpy.ops.wm.read_factory_settings(use_empty=True)
    before = _footprint()
    assert before["types"] == []
    for _ in range(2):
        blender_addon.register()
        assert hasattr(bpy.types, "MVCAP_PT_main") and hasattr(bpy.types, "MVCAP_OT_submit")
        assert "mvcap" in bpy.types.Scene.bl_rna.properties
        assert bpy.context.scene.mvcap.camera.lens_mm == pytest.approx(35.0)
        # a watched job owns a timer and a socket: unregister must drop both
        ops_farm.start_watching(bpy.context.scene, farm_link.peer("tcp://127.0.0.1:9"), "job-x")
        assert ops_farm.is_watching()
        blender_addon.unregister()
        assert not bpy.app.timers.is_registered(ops_farm.poll_farm)
        assert ops_farm.Watched.poller is None and farm_link._context is None
        assert _footprint() == before


def test_every_spec_field_has_a_property(addon):
    s = addon.context.scene.mvcap
    for section, cls in S.SECTIONS.items():
        group = getattr(s, section)
        for f in S.dataclasses.fields(cls):
            assert f.name in group.bl_rna.properties, f"{section}.{f.name} has no property"
    for name in ("name", "description", "reproduces", "seed"):
        assert name in s.bl_rna.properties


def test_units_on_angles_and_lengths(addon):
    cam = addon.context.scene.mvcap.camera.bl_rna.properties
    for name in ("azimuth_offset_deg", "elevation_min_deg", "elevation_max_deg", "jitter_deg", "roll_deg"):
        assert cam[name].subtype == "ANGLE" and cam[name].unit == "ROTATION", name
    for name in ("distance", "distance_min", "distance_max", "clip_start", "clip_end"):
        assert cam[name].unit == "LENGTH", name
    assert cam["lens_mm"].unit == "CAMERA" and cam["sensor_width_mm"].unit == "CAMERA"
    assert "°" in cam["elevations_deg"].name


def test_every_operator_has_a_tooltip_and_scene_changes_undo(addon):
    from blender_addon.ui import ops, ops_farm, ops_render

    read_only = {"mvcap.export_spec", "mvcap.stop_watching", "mvcap.render_all_cancel"}
    for cls in ops.CLASSES + ops_render.CLASSES + ops_farm.CLASSES:
        if issubclass(cls, bpy.types.Operator):
            assert len(cls.bl_description) > 15, cls.__name__
            assert cls.bl_idname in read_only or "UNDO" in cls.bl_options, cls.__name__


def test_sidebar_tab_and_folded_advanced_panels(addon):
    from blender_addon.ui import panels

    for cls in panels.CLASSES:
        assert (cls.bl_space_type, cls.bl_region_type, cls.bl_category) == ("VIEW_3D", "UI", "MVCap")
        if cls.bl_label == "Advanced":
            assert "DEFAULT_CLOSED" in cls.bl_options
    labels = [cls.bl_label for cls in panels.CLASSES]
    assert labels.index("Cameras") < labels.index("Lighting") < labels.index("Background") < labels.index("Render")


PY311_ONLY = re.compile(r"\b(typing\.Self|from typing import .*\bSelf\b|tomllib|StrEnum|datetime\.UTC|ExceptionGroup|TaskGroup)\b")


@pytest.mark.parametrize("path", sorted(ADDON.rglob("*.py")), ids=lambda p: str(p.relative_to(ADDON)))
def test_addon_code_runs_on_blender_34_python_310(path):
    """Blender 3.4 bundles Python 3.10: no 3.11-only syntax or names anywhere in blender_addon/."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 10))
    assert not PY311_ONLY.search(source), f"{path.name}: {PY311_ONLY.search(source).group(0)} needs Python 3.11"
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        bad = [n for n in names if n.split(".")[0] in ("blender_addon", "farm", "captioner")]
        assert not bad, f"{path.name}: absolute import of {bad[0]} (breaks the extension, or reaches outside the add-on)"


class FakeLayout:
    """Records what a panel's draw() puts on screen, checking every property and operator exists."""

    def __init__(self, drawn):
        self.drawn = drawn
        self.use_property_split = self.use_property_decorate = False

    def _child(self, *args, **kwargs):
        return FakeLayout(self.drawn)

    row = column = box = split = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier}.{name} does not exist"
        self.drawn.add((data.bl_rna.identifier, name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert getattr(getattr(bpy.ops, module), name).get_rna_type() is not None
        return type("OpProps", (), {})()

    def menu(self, menu_id, **kwargs):
        assert hasattr(bpy.types, menu_id), menu_id

    def label(self, **kwargs):
        pass

    def progress(self, **kwargs):
        assert 0.0 <= kwargs["factor"] <= 1.0


def test_panels_reach_every_spec_field(addon):
    """Draw every panel for every pattern, distance mode and lighting preset: nothing breaks, and
    every spec field can be edited somewhere."""
    from types import SimpleNamespace

    from blender_addon.ui import fields, panels

    s = addon.context.scene.mvcap
    s.job_id, s.job_total, s.job_done, s.job_progress, s.job_message = "j1", 4, 2, 50.0, "farm slow"
    drawn = set()
    for pattern in S.PATTERNS:
        for mode in S.DISTANCE_MODES:
            for preset in ("area_top", "hdri"):
                s.camera.pattern, s.camera.distance_mode, s.lighting.preset = pattern, mode, preset
                for cls in panels.CLASSES:
                    for method in ("draw_header_preset", "draw"):
                        if hasattr(cls, method):
                            getattr(cls, method)(SimpleNamespace(layout=FakeLayout(drawn)), addon.context)
    groups = {"": "MVCAP_PG_settings", **{sec: f"MVCAP_PG_{sec}" for sec in fields.SECTIONS}}
    missing = [f.path for flds in fields.FIELDS.values() for f in flds if (groups[f.section], f.name) not in drawn]
    assert missing == []
