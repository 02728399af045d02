"""Runs inside a real Blender GUI (Debian's 3.4.1 under Xvfb) for test_gui.py, as an artist would:

installs the legacy zip with the Preferences' own install and enable operators, opens the MVCap
sidebar tab by clicking it (simulated events: 3.4 has no API to pick a tab), imports an OBJ and a
GLB, builds the rig, moves the view slider, looks through a view, renders a view, renders all
views, exports the spec and submits to a real broker, with a screenshot after each step and a JSON
report. It lends Blender nothing: numpy, pyzmq and Pillow are Debian's, as the README says.
Settings come from MVCAP_GUI_* environment variables.
"""
import json
import os
import sys
import time
import traceback

import bpy

OUT = os.environ["MVCAP_GUI_OUT"]
ENV = {key: os.environ.get("MVCAP_GUI_" + key, "") for key in ("ZIP", "GLB", "OBJ", "FARM", "FARM_OUT", "VIEWS_OUT")}
PANELS = ("MVCAP_PT_main", "MVCAP_PT_cameras", "MVCAP_PT_lighting", "MVCAP_PT_background", "MVCAP_PT_render",
          "MVCAP_PT_cameras_advanced")
report = {"blender": bpy.app.version_string, "python": sys.version.split()[0], "errors": [], "drawn": {},
          "steps": [], "shots": [], "reports": []}


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
    return win, area, {r.type: r for r in area.regions}


def _op(op_name, *args, **kwargs):
    """Run an mvcap operator as a click does (INVOKE in the 3D viewport); keep what it reported."""
    win, area, regions = _view3d()
    with bpy.context.temp_override(window=win, area=area, region=regions["UI"]):
        try:
            result = getattr(bpy.ops.mvcap, op_name)(*args, **kwargs)
        except RuntimeError as exc:  # an ERROR report
            result = {"ERROR": str(exc).strip()}
    report["steps"].append([op_name, sorted(result) if isinstance(result, set) else result])
    return result


def _shot(name):
    win = bpy.context.window_manager.windows[-1]  # the newest window: the render view once it opens
    path = os.path.join(OUT, f"{len(report['shots']) + 1:02d}-{name}.png")
    with bpy.context.temp_override(window=win, area=win.screen.areas[0]):
        bpy.ops.screen.screenshot(filepath=path)
    report["shots"].append(path)


def _click(win, x, y):
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    win.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
    win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x, y=y)


def open_tab():
    """Click down the tab strip at the sidebar's right edge until the MVCap panel draws."""
    win, area, regions = _view3d()
    area.spaces.active.show_region_ui = True
    yield 0.5
    ui = regions["UI"]
    px = bpy.context.preferences.system.pixel_size
    x = ui.x + ui.width - max(6, int(10 * px))
    report["tab_clicks"] = 0
    for y in range(ui.y + ui.height - int(320 * px), ui.y + ui.height, 8):  # MVCap is the last tab
        report["drawn"].clear()
        area.tag_redraw()
        yield 0.25
        if report["drawn"].get("MVCAP_PT_main") or report["tab_clicks"] > 60:
            break
        _click(win, x, y)
        report["tab_clicks"] += 1
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=area.x + area.width // 3, y=area.y + area.height // 2)
    report["sidebar"] = [ui.x, ui.y, ui.width, ui.height]
    report["window"] = [win.width, win.height]
    yield 0.5


class LabelRecorder:
    """A stand-in for a panel's layout that keeps the labels of property-split rows: a field's in
    the label column, a checkbox's beside it in the value column. Their drawn width is measured
    with the UI font."""

    def __init__(self, labels, split=False):
        self.labels, self.use_property_split, self.use_property_decorate = labels, split, False
        self.alignment, self.active, self.enabled = "EXPAND", True, True

    def _child(self, *args, **kwargs):
        return LabelRecorder(self.labels, self.use_property_split)

    row = column = box = split = _child

    def prop(self, data, name, text=None, **kwargs):
        if self.use_property_split and text != "" and not kwargs.get("expand"):
            rna = data.bl_rna.properties[name]
            self.labels.add((rna.type == "BOOLEAN", text if text is not None else rna.name))

    def operator(self, *args, **kwargs):
        return type("Props", (), {})()

    def menu(self, *args, **kwargs):
        pass

    label = progress = menu


def truncated_labels(s):
    """Labels wider than the label column of the sidebar at its default width, over every
    pattern, distance mode and lighting preset."""
    import blf
    from types import SimpleNamespace

    import mvcap_studio.ui.panels as panels

    labels = set()
    for pattern in ("ring", "hemisphere_random", "explicit"):
        for mode in ("fixed", "range", "auto"):
            for preset in ("area_top", "hdri"):
                s.camera.pattern, s.camera.distance_mode, s.lighting.preset = pattern, mode, preset
                for cls in panels.CLASSES:
                    cls.draw(SimpleNamespace(layout=LabelRecorder(labels)), bpy.context)
    _, _, regions = _view3d()
    scale = bpy.context.preferences.system.ui_scale
    blf.size(0, 11 * scale, 72)  # the theme's widget label style
    # a property split: 40% of the panel's width (inside its margins and the tab strip) for labels,
    # 60% for values, less the text's padding; a checkbox's text follows the box. (Measured on
    # 3.4 at the default 229 px: "Reproduces", 64 px, shows whole; "Resolution X", 67 px, does not.)
    inside = regions["UI"].width - 50 * scale
    room = {False: 0.4 * inside - 6 * scale, True: 0.6 * inside - 28 * scale}
    widths = {label: round(blf.dimensions(0, label)[0], 1) for _, label in labels}
    report["label_room"], report["label_widths"] = room, widths
    return sorted(label for is_check, label in labels if widths[label] > room[is_check])


def install_and_enable():
    """Preferences > Add-ons > Install... and the add-on's checkbox, by their operators."""
    bpy.ops.preferences.addon_install(filepath=ENV["ZIP"], overwrite=True)
    _instrument()
    result = bpy.ops.preferences.addon_enable(module="mvcap_studio")
    report["enabled"] = result == {"FINISHED"} and hasattr(bpy.types.Scene, "mvcap")
    report["addon_file"] = sys.modules["mvcap_studio"].__file__


def use_test_spec(s):
    _op("apply_preset", name="mvcap")
    s.camera.num_views, s.render.samples = 12, 16  # views slow enough for the progress to be seen
    s.render.resolution_x = s.render.resolution_y = 128


def rig_steps(s, scene):
    """Mistakes first (nothing to build around), then OBJ and GLB imports, the rig and the slider."""
    artist_camera = scene.camera
    _op("build_rig")  # no asset yet: refused, nothing built
    report["no_asset_rig"] = bpy.data.collections.get("MVCap Rig") is None
    _op("import_asset", filepath=ENV["OBJ"])
    report["obj_objects"] = sorted(ob.name for ob in scene.objects if "mvcap_asset" in ob)
    _op("import_asset", filepath=ENV["GLB"])
    # Debian's numpy 1.24 fails 3.4's glTF importer on np.bool: the retry must leave one Duck
    report["glb_meshes"] = sorted(m.name for m in bpy.data.meshes if m.users)
    _op("build_rig")
    report["rig_objects"] = len(bpy.data.collections["MVCap Rig"].objects)
    report["rig_lights"] = sum(ob.type == "LIGHT" for ob in bpy.data.collections["MVCap Rig"].objects)
    report["render_size"] = [scene.render.resolution_x, scene.render.resolution_y]
    report["cameras"] = {}
    for k in (3, 0, s.camera.num_views - 1, 5):
        s.view_index = k
        bpy.context.view_layer.update()
        report["cameras"][k] = [list(row) for row in scene.camera.matrix_world]
    s.view_index = 99
    report["view_99"] = s.view_message
    s.view_index = 5
    return artist_camera


def steps():
    win = bpy.context.window_manager.windows[0]
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=win.width // 2, y=win.height // 2)
    win.event_simulate(type="ESC", value="PRESS")  # close the first-run splash
    win.event_simulate(type="ESC", value="RELEASE")
    yield 0.3
    install_and_enable()
    if not report["enabled"]:
        return
    scene = bpy.context.scene
    bpy.data.objects.remove(bpy.data.objects["Cube"])  # the artist's Camera and Light stay
    s = scene.mvcap
    s.render_folder, s.farm_output, s.farm_address = ENV["VIEWS_OUT"], ENV["FARM_OUT"], ENV["FARM"]
    use_test_spec(s)
    yield from open_tab()
    _shot("enabled")
    report["truncated"] = truncated_labels(s)
    use_test_spec(s)
    artist_camera = rig_steps(s, scene)
    win, area, regions = _view3d()
    for ob in scene.objects:
        ob.select_set(False)
    with bpy.context.temp_override(window=win, area=area, region=regions["WINDOW"]):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_orbit(angle=0.35, type="ORBITUP")
        bpy.ops.view3d.view_orbit(angle=0.6, type="ORBITLEFT")
    rv3d = area.spaces.active.region_3d
    rv3d.view_location, rv3d.view_distance = (0.0, 0.0, 0.3), 5.0  # the orbit, not the artist's far camera
    yield 1.0
    _shot("rig")
    _op("look_through", index=5)
    report["look_through"] = area.spaces.active.region_3d.view_perspective
    yield 1.0
    _shot("look-through-view-5")
    with bpy.context.temp_override(window=win, area=area, region=regions["WINDOW"]):
        area.spaces.active.region_3d.view_perspective = "PERSP"
    yield from render_steps(s, scene)
    yield from farm_steps(s, scene)
    _op("clear_rig")
    report["camera_restored"] = scene.camera == artist_camera
    report["render_size_restored"] = [scene.render.resolution_x, scene.render.resolution_y]


def render_steps(s, scene):
    engine = scene.render.engine
    properties = next(a for a in bpy.context.window_manager.windows[0].screen.areas if a.type == "PROPERTIES")
    properties.type = "IMAGE_EDITOR"  # an artist's open Image Editor: the renders are shown there
    _op("render_view")
    report["engine_kept"] = scene.render.engine == engine and not scene.render.film_transparent
    report["scenes_after_render"] = [sc.name for sc in bpy.data.scenes]
    yield 1.0
    _shot("render-view")
    _op("render_all", "INVOKE_DEFAULT")
    start = time.monotonic()
    seen = []
    deadline = time.monotonic() + 120
    while s.render_all_running and time.monotonic() < deadline:
        seen.append([round(time.monotonic() - start, 2), s.render_all_done])
        if len(seen) == 4:
            _shot("render-all-progress")
        yield 0.25
    report["render_all_progress"] = seen
    report["contact_sheet"] = bpy.data.images.get("MVCap Contact Sheet") is not None
    yield 1.0
    _shot("contact-sheet")


def farm_steps(s, scene):
    _op("export_spec", filepath=os.path.join(OUT, "spec.json"))
    _op("submit")
    seen = []
    deadline = time.monotonic() + 120
    from mvcap_studio.ui.ops_farm import is_watching

    while is_watching() and time.monotonic() < deadline:
        seen.append([s.job_state, s.job_views_done, s.job_views_total, round(s.job_progress, 1)])
        yield 0.25
    report["farm_progress"] = seen
    report["farm_final"] = [s.job_state, s.job_views_done, s.job_views_total, s.job_progress, s.job_message]
    win, area, regions = _view3d()
    ui = regions["UI"]
    for _ in range(40):  # scroll the sidebar down to the Farm panel, as a mouse wheel does
        win.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=ui.x + ui.width // 2, y=ui.y + ui.height // 2)
    yield 1.0
    _shot("farm")


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
