"""Runs inside a real Blender GUI (Debian's 3.4.1 under Xvfb) for test_gui.py.

Enables the legacy add-on `mvcap_studio`, imports an asset, builds the rig, opens the MVCap
sidebar tab (Ctrl+Wheel over the sidebar, by simulated events: 3.4 has no API to pick a tab),
takes a screenshot and writes a JSON report. Settings come from MVCAP_GUI_* environment variables.
"""
import json
import os
import sys
import traceback

import bpy

OUT = os.environ["MVCAP_GUI_OUT"]
ASSET = os.environ.get("MVCAP_GUI_ASSET", "")
ENABLE = os.environ.get("MVCAP_GUI_ENABLE", "1") == "1"
for extra in filter(None, os.environ.get("MVCAP_GUI_PYPATH", "").split(os.pathsep)):
    sys.path.insert(0, extra)  # numpy for Debian's blender, which does not depend on it
try:
    import numpy

    if not hasattr(numpy, "bool"):  # 3.4's glTF importer uses np.bool (official 3.4 bundles numpy 1.23)
        numpy.bool = bool
except ImportError:
    pass

report = {"blender": bpy.app.version_string, "python": sys.version.split()[0], "errors": [], "drawn": {}}
PANELS = ("MVCAP_PT_main", "MVCAP_PT_cameras", "MVCAP_PT_lighting", "MVCAP_PT_background", "MVCAP_PT_render",
          "MVCAP_PT_cameras_advanced")


def _instrument():
    """Count draw() calls per panel: proof that Blender drew it, not just registered it.
    Patched before the add-on registers (patching a registered class crashes Blender 3.4)."""
    import importlib

    panels = importlib.import_module("mvcap_studio.ui.panels")
    def counting(name, orig):
        def draw(self, context):  # Blender checks the argument count
            report["drawn"][name] = report["drawn"].get(name, 0) + 1
            orig(self, context)
        return draw

    for name in PANELS:
        cls = getattr(panels, name)
        cls.draw = counting(name, cls.draw)


def _view3d():
    win = bpy.context.window_manager.windows[0]
    area = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    regions = {r.type: r for r in area.regions}
    return win, area, regions


def steps():
    win = bpy.context.window_manager.windows[0]
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=win.width // 2, y=win.height // 2)
    win.event_simulate(type="ESC", value="PRESS")  # close the first-run splash
    win.event_simulate(type="ESC", value="RELEASE")
    yield 0.3
    if ENABLE:
        import addon_utils

        if os.environ.get("MVCAP_GUI_NOINSTR") != "1":
            _instrument()
        mod = addon_utils.enable("mvcap_studio", default_set=True, handle_error=lambda exc: report["errors"].append(
            f"enable: {type(exc).__name__}: {exc}"))
        report["enabled"] = mod is not None and hasattr(bpy.types.Scene, "mvcap")
        if not report["enabled"]:
            return
    for name in ("Cube", "Light", "Camera"):
        ob = bpy.data.objects.get(name)
        if ob is not None:
            bpy.data.objects.remove(ob)
    if ENABLE and ASSET:
        s = bpy.context.scene.mvcap
        bpy.ops.mvcap.apply_preset(name="mvcap")
        s.camera.num_views = 24
        for op in (lambda: bpy.ops.mvcap.import_asset(filepath=ASSET), bpy.ops.mvcap.normalize,
                   bpy.ops.mvcap.build_rig):
            result = op()
            if result != {"FINISHED"}:
                report["errors"].append(f"operator returned {result}")
        s.view_index = 5
        report["camera"] = [list(row) for row in bpy.context.scene.camera.matrix_world]
        report["rig_objects"] = len(bpy.data.collections["MVCap Rig"].objects)
    win, area, regions = _view3d()
    area.spaces.active.show_region_ui = True
    with bpy.context.temp_override(window=win, area=area, region=regions["WINDOW"]):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_orbit(angle=0.35, type="ORBITUP")
        bpy.ops.view3d.view_orbit(angle=0.6, type="ORBITLEFT")
        bpy.ops.view3d.view_all(center=True)
    yield 1.0
    ui = regions["UI"]
    # The tabs are a strip at the sidebar's right edge; click down it until the MVCap panel draws
    # (3.4 has no API to pick a tab, and Ctrl+Wheel needs a tab to have been picked before).
    x = ui.x + ui.width - max(6, int(10 * bpy.context.preferences.system.pixel_size))
    report["tab_clicks"] = 0
    # bottom-up: MVCap is the last tab, so it is the first one met from below
    for y in range(ui.y + ui.height - int(320 * bpy.context.preferences.system.pixel_size), ui.y + ui.height, 8):
        report["drawn"].clear()
        area.tag_redraw()
        yield 0.25
        if not ENABLE or report["drawn"].get("MVCAP_PT_main") or report["tab_clicks"] > 60:
            break
        win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
        win.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
        win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x, y=y)
        report["tab_clicks"] += 1
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=area.x + area.width // 3, y=area.y + area.height // 2)
    yield 0.5
    shot = os.path.join(OUT, "screenshot.png")
    with bpy.context.temp_override(window=win, area=area):
        bpy.ops.screen.screenshot(filepath=shot)
    report["screenshot"] = shot
    report["window"] = [win.width, win.height]
    report["sidebar"] = [ui.x, ui.y, ui.width, ui.height]
    report["pixel_size"] = bpy.context.preferences.system.pixel_size


def _driver():
    gen = steps()

    def tick():
        try:
            return next(gen)
        except StopIteration:
            pass
        except Exception:
            report["errors"].append(traceback.format_exc().strip().splitlines()[-1])
            report["traceback"] = traceback.format_exc()
        with open(os.path.join(OUT, "report.json"), "w") as fh:
            json.dump(report, fh, indent=1)
        bpy.ops.wm.quit_blender()
        return None

    return tick


bpy.app.timers.register(_driver(), first_interval=0.5)
