"""Runs inside a real Blender GUI (Debian's 3.4.1 under Xvfb) for test_gui.py, as an artist would.

It installs the legacy zip with the Preferences' own install and enable operators. From there on
every add-on action is a real click, drag, typed value or key press (gui_input.py): it clicks the
MVCap tab open, clicks Import and picks an OBJ, then a GLB, in the file browser, clicks Build Rig,
undoes and redoes with Ctrl+Z / Ctrl+Shift+Z, drags and types into the view slider, clicks Look
Through, Render View, Render All (cancels one run with its cancel button), Export Spec, opens the
Farm panel by its header and clicks Submit to a real broker, and clicks Delete Rig. What each
click reported is read from the Info editor; a screenshot follows each step; a JSON report ends
it. It lends Blender nothing: numpy, pyzmq and Pillow are Debian's, as the README says. Settings
come from MVCAP_GUI_* environment variables.
"""
import json
import os
import sys
import time
import traceback

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gui_input import click, hovers, key, locate, locate_in_row, move, type_text, unhover  # noqa: E402
from gui_labels import truncated_labels  # noqa: E402
from gui_screen import InfoLog, choose_file, click_until, hover_away, scroll, view3d  # noqa: E402

OUT = os.environ["MVCAP_GUI_OUT"]
ENV = {key: os.environ.get("MVCAP_GUI_" + key, "") for key in ("ZIP", "GLB", "OBJ", "FARM", "FARM_OUT", "VIEWS_OUT")}
PANELS = ("MVCAP_PT_main", "MVCAP_PT_cameras", "MVCAP_PT_lighting", "MVCAP_PT_background", "MVCAP_PT_render",
          "MVCAP_PT_cameras_advanced", "MVCAP_PT_farm")
T0 = time.monotonic()
report = {"blender": bpy.app.version_string, "python": sys.version.split()[0], "errors": [], "drawn": {},
          "steps": [], "shots": [], "clicks": 0, "spots": [], "step_times": []}
spots = {}  # where each button was last found: tried first next time


def settings():
    """Fresh each time: an undo replaces the scene's data, and old references dangle."""
    return bpy.context.scene.mvcap


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


def _shot(name):
    win = bpy.context.window_manager.windows[-1]  # the newest window: the render view once it opens
    path = os.path.join(OUT, f"{len(report['shots']) + 1:02d}-{name}.png")
    with bpy.context.temp_override(window=win, area=win.screen.areas[0]):
        bpy.ops.screen.screenshot(filepath=path)
    report["shots"].append(path)


def find(wanted, row_of=None, upward=False):
    """The sidebar button that runs or shows `wanted` (in the row of `row_of`, for icon buttons;
    searched from the bottom up, with `upward`)."""
    win, area, regions = view3d()
    ui = regions["UI"]
    if wanted in spots:
        yield from unhover(win, ui)
        if (yield from hovers(win, area, ui, wanted, *spots[wanted])):
            return spots[wanted]
    if row_of:
        _, y = yield from find(row_of)
        spot = yield from locate_in_row(win, area, ui, wanted, y)
    else:
        # two columns: the sidebar's rows are one wide button or two halves (icons: by row);
        # again at a slower pace if a loaded machine handled the moves too late to be seen
        xs = [ui.x + int(ui.width * f) for f in (0.3, 0.75)]
        spot = yield from locate(win, area, ui, wanted, xs=xs, upward=upward)
        if spot is None:
            spot = yield from locate(win, area, ui, wanted, xs=xs, upward=upward, pace=0.12)
    assert spot, f"no button for {wanted} in the sidebar"
    spots[wanted] = spot
    return spot


def press(wanted, row_of=None, file=None, settle=0.5, upward=False):
    """Click the button an artist would, pick `file` in the browser it opens, and return what it
    reported in the Info editor."""
    spot = yield from find(wanted, row_of, upward)
    report["spots"].append([wanted, spot])
    click(view3d()[0], *spot)
    report["clicks"] += 1
    yield settle
    if file:
        yield from choose_file(file)
    said = INFO.take()
    report["steps"].append([wanted, said])
    report["step_times"].append([wanted, round(time.monotonic() - T0, 1)])
    return said


def type_into(wanted, text):
    """Click a number field (a click without a drag edits its text, all selected), type, Enter."""
    spot = yield from find(wanted)
    win = view3d()[0]
    click(win, *spot)
    yield 0.1
    type_text(win, text)
    key(win, "RET")
    yield 0.2


def drag(wanted, dx):
    spot = yield from find(wanted)
    win, (x, y) = view3d()[0], spot
    move(win, x, y)
    win.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
    for step in range(1, 11):
        move(win, x + dx * step // 10, y)
        yield 0.03
    win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x + dx, y=y)
    yield 0.2


def undo_key(redo=False):
    win, area, _ = view3d()
    hover_away(win, area)
    key(win, "Z", ctrl=True, shift=redo)
    yield 1.0
    INFO.take()


def rig_state():
    scene = bpy.context.scene
    rig = bpy.data.collections.get("MVCap Rig")
    return {"rig": rig is not None, "camera": scene.camera.name if scene.camera else None,
            "size": [scene.render.resolution_x, scene.render.resolution_y],
            "assets": sorted(ob.name for ob in scene.objects if "mvcap_asset" in ob)}


def open_tab():
    """Click down the tab strip at the sidebar's right edge until the MVCap panel draws."""
    win, area, regions = view3d()
    area.spaces.active.show_region_ui = True
    yield 0.5
    ui = regions["UI"]
    x = ui.x + ui.width - max(6, int(10 * bpy.context.preferences.system.pixel_size))
    points = [(x, y) for y in range(ui.y + ui.height - 320, ui.y + ui.height, 8)]  # MVCap: the last tab
    report["drawn"].clear()
    report["tab_clicks"] = yield from click_until(win, area, points, lambda: report["drawn"].get("MVCAP_PT_main"))
    hover_away(win, area)
    report["sidebar"], report["window"] = [ui.x, ui.y, ui.width, ui.height], [win.width, win.height]
    yield 0.5


def open_farm_panel():
    """Scroll to the bottom of the tab and click up from there until the Farm panel's header
    opens it (its header is the last one; the space below it is empty). Each click is judged
    after the sidebar has drawn again: a second click on the header would fold it."""
    win, area, regions = view3d()
    ui = regions["UI"]
    scroll(win, ui, 60)
    yield 0.5
    report["farm_header_clicks"] = 0
    for y in range(ui.y + 6, ui.y + 260, 6):
        click(win, ui.x + 40, y)
        report["farm_header_clicks"] += 1
        if (yield from farm_panel_open(area)):
            break
    scroll(win, ui, 60)
    yield 0.5
    spots.clear()  # the layout moved
    assert (yield from farm_panel_open(area)), "the Farm panel did not open"


def farm_panel_open(area):
    """Whether the Farm panel drew its body in the sidebar's second full redraw from now (on a
    loaded machine the first one can come before the click is handled)."""
    is_open = False
    for _ in range(2):
        report["drawn"].clear()
        area.tag_redraw()
        for _ in range(50):
            yield 0.1
            if report["drawn"].get("MVCAP_PT_main"):
                is_open = bool(report["drawn"].get("MVCAP_PT_farm"))
                break
    return is_open


def install_and_enable():
    """Preferences > Add-ons > Install... and the add-on's checkbox, by their operators."""
    bpy.ops.preferences.addon_install(filepath=ENV["ZIP"], overwrite=True)
    _instrument()
    result = bpy.ops.preferences.addon_enable(module="mvcap_studio")
    report["enabled"] = result == {"FINISHED"} and hasattr(bpy.types.Scene, "mvcap")
    report["addon_file"] = sys.modules["mvcap_studio"].__file__


def use_test_spec():
    """The test's values over the preset (as typed values would be); the views are typed later."""
    s = settings()
    s.camera.num_views, s.render.samples = 7, 16  # views slow enough for the progress to be seen
    s.render.resolution_x = s.render.resolution_y = 128
    s.render_folder, s.farm_output, s.farm_address = ENV["VIEWS_OUT"], ENV["FARM_OUT"], ENV["FARM"]


def choose_preset(name):
    """Click the Presets menu (the row of Load and Export Spec, left) and pick `name` with Home,
    the arrow keys and Enter."""
    from mvcap_studio.rig.presets import preset_names

    _, y = yield from find("mvcap.export_spec")
    win, _, regions = view3d()
    x = regions["UI"].x + int(regions["UI"].width * 0.3)
    move(win, x, y)
    yield 0.1  # the hover moves to the menu button before the press, else the press is lost
    click(win, x, y)
    report["clicks"] += 1
    yield 0.5
    key(win, "HOME")  # the first item (a menu opens on the item picked last time)
    for _ in range(preset_names().index(name)):
        yield 0.05
        key(win, "DOWN_ARROW")
    yield 0.05
    _shot(f"presets-menu-{name}")
    key(win, "RET")
    yield 0.5
    return INFO.take()


def spec_steps():
    """A preset from the menu, then the test's spec: views typed (0 first: below the field's
    minimum), the rest set as typed values would be."""
    from mvcap_studio.rig.presets import load_preset

    report["zero123_said"] = yield from choose_preset("zero123")
    expected = load_preset("zero123").camera
    report["zero123"] = [settings().preset, settings().camera.num_views, settings().camera.pattern,
                         expected.num_views, expected.pattern]
    yield from choose_preset("mvcap")
    report["mvcap_preset"] = settings().preset
    use_test_spec()
    yield from type_into("mvcap.camera.num_views", "0")
    report["views_typed_0"] = settings().camera.num_views
    yield from type_into("mvcap.camera.num_views", "12")
    report["views_typed_12"] = settings().camera.num_views


def import_steps():
    """Build Rig with nothing to build around, then the OBJ (undone and redone) and the GLB."""
    report["no_asset_said"] = yield from press("mvcap.build_rig")
    report["no_asset_rig"] = bpy.data.collections.get("MVCap Rig") is None
    yield from press("mvcap.import_asset", file=ENV["OBJ"])
    report["obj_objects"] = rig_state()["assets"]
    yield from undo_key()
    report["obj_undone"] = [rig_state()["assets"], settings().asset_uid]
    yield from undo_key(redo=True)
    report["obj_redone"] = [rig_state()["assets"], settings().asset_uid]
    yield from press("mvcap.import_asset", file=ENV["GLB"])
    # Debian's numpy 1.24 fails 3.4's glTF importer on np.bool: the retry must leave one Duck
    report["glb_meshes"] = sorted(m.name for m in bpy.data.meshes if m.users)
    report["normalize_said"] = yield from press("mvcap.normalize")
    report["normalized"] = normalize_state()
    yield from undo_key()
    report["normalize_undone"] = normalize_state()
    yield from undo_key(redo=True)
    report["normalize_redone"] = normalize_state()


def normalize_state():
    return [settings().normalized, "mvcap_normalize" in rig_state()["assets"]]


def rig_steps():
    """Build Rig, undo it and redo it by keys, then the view slider dragged and typed into."""
    report["before_rig"] = rig_state()
    yield from press("mvcap.build_rig")
    report["after_rig"] = rig_state()
    yield from undo_key()
    report["rig_undone"] = rig_state()
    yield from undo_key(redo=True)
    report["rig_redone"] = rig_state()
    rig = bpy.data.collections["MVCap Rig"]
    report["rig_objects"] = len(rig.objects)
    report["rig_lights"] = sum(ob.type == "LIGHT" for ob in rig.objects)
    yield from drag("mvcap.view_index", 8)
    report["dragged_to"] = settings().view_index
    _shot("dragged")
    report["cameras"] = {settings().view_index: camera_matrix()}
    for k in (3, 0, settings().camera.num_views - 1, 5):
        yield from type_into("mvcap.view_index", str(k))
        report["cameras"][settings().view_index] = camera_matrix()
    yield from type_into("mvcap.view_index", "99")
    report["view_99"] = settings().view_message
    yield from type_into("mvcap.view_index", "5")


def camera_matrix():
    bpy.context.view_layer.update()
    return [list(row) for row in bpy.context.scene.camera.matrix_world]


def frame_the_orbit():
    win, area, regions = view3d()
    for ob in bpy.context.scene.objects:
        ob.select_set(False)
    with bpy.context.temp_override(window=win, area=area, region=regions["WINDOW"]):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_orbit(angle=0.35, type="ORBITUP")
        bpy.ops.view3d.view_orbit(angle=0.6, type="ORBITLEFT")
    rv3d = area.spaces.active.region_3d
    rv3d.view_location, rv3d.view_distance = (0.0, 0.0, 0.3), 5.0  # the orbit, not the artist's far camera


def steps():
    win = bpy.context.window_manager.windows[0]
    move(win, win.width // 2, win.height // 2)
    key(win, "ESC")  # close the first-run splash
    yield 0.3
    install_and_enable()
    if not report["enabled"]:
        return
    global INFO
    INFO = InfoLog()
    bpy.data.objects.remove(bpy.data.objects["Cube"])  # the artist's Camera and Light stay
    use_test_spec()
    yield from open_tab()
    _shot("enabled")
    report["truncated"] = truncated_labels(settings(), report)
    yield from spec_steps()
    yield from import_steps()
    yield from rig_steps()
    frame_the_orbit()
    yield 1.0
    _shot("rig")
    report["look_through_said"] = yield from press("mvcap.look_through", row_of="mvcap.view_index")
    report["look_through"] = view3d()[1].spaces.active.region_3d.view_perspective
    yield 1.0
    _shot("look-through-view-5")
    view3d()[1].spaces.active.region_3d.view_perspective = "PERSP"
    yield from render_steps()
    yield from farm_steps()
    scroll(view3d()[0], view3d()[2]["UI"], 60, down=False)
    spots.clear()
    yield 0.5
    artist = report["before_rig"]
    yield from press("mvcap.clear_rig", row_of="mvcap.build_rig")
    report["after_clear"] = rig_state()
    report["camera_restored"] = report["after_clear"]["camera"] == artist["camera"]
    report["render_size_restored"] = report["after_clear"]["size"]


def render_steps():
    scene = bpy.context.scene
    engine = scene.render.engine
    properties = next(a for a in bpy.context.window_manager.windows[0].screen.areas if a.type == "PROPERTIES")
    properties.type = "IMAGE_EDITOR"  # an artist's open Image Editor: the renders are shown there
    report["render_view_said"] = yield from press("mvcap.render_view", row_of="mvcap.view_index", settle=2.0)
    report["engine_kept"] = scene.render.engine == engine and not scene.render.film_transparent
    report["scenes_after_render"] = [sc.name for sc in bpy.data.scenes]
    yield 1.0
    _shot("render-view")
    settings().render.samples = 512  # slow views: time to find and click cancel
    yield from press("mvcap.render_all")
    report["render_all_cancel"] = yield from cancel_render_all()
    settings().render.samples = 16
    yield from press("mvcap.render_all")
    report["render_all_progress"] = yield from watch_render_all(shot_at=4)
    report["render_all_said"] = INFO.take()
    report["contact_sheet"] = bpy.data.images.get("MVCap Contact Sheet") is not None
    yield 1.0
    _shot("contact-sheet")
    report["render_all_esc"] = yield from escape_render_all()


def escape_render_all():
    """Esc over the viewport stops a running Render All too."""
    settings().render.samples = 512
    yield from press("mvcap.render_all")
    yield from watch_render_all(until=lambda: settings().render_all_done >= 1)
    win, area, _ = view3d()
    hover_away(win, area)
    key(win, "ESC")
    yield from watch_render_all()
    settings().render.samples = 16
    return [settings().render_all_done, settings().render_all_total, INFO.take()]


def watch_render_all(shot_at=None, until=None):
    seen = []
    start = time.monotonic()
    while settings().render_all_running and time.monotonic() < start + 120:
        seen.append([round(time.monotonic() - start, 2), settings().render_all_done])
        if len(seen) == shot_at:
            _shot("render-all-progress")
        if until and until():
            break
        yield 0.25
    return seen


def cancel_render_all():
    """Click the cancel button that replaced Render All's, beside the progress, at two views done."""
    yield from watch_render_all(until=lambda: settings().render_all_done >= 1)
    win, area, regions = view3d()
    spot = yield from locate_in_row(win, area, regions["UI"], "mvcap.render_all_cancel", spots["mvcap.render_all"][1])
    assert spot, "no cancel button beside Render All's progress"
    click(win, *spot)
    report["clicks"] += 1
    yield from watch_render_all()
    return [settings().render_all_done, settings().render_all_total, INFO.take()]


def farm_steps():
    yield from press("mvcap.export_spec", file=os.path.join(OUT, "spec.json"))
    yield from open_farm_panel()
    report["submit_said"] = yield from press("mvcap.submit", upward=True)  # at the bottom
    seen = []
    deadline = time.monotonic() + 120
    from mvcap_studio.ui.ops_farm import is_watching

    while is_watching() and time.monotonic() < deadline:
        s = settings()
        seen.append([s.job_state, s.job_views_done, s.job_views_total, round(s.job_progress, 1)])
        yield 0.25
    s = settings()
    report["farm_progress"] = seen
    report["farm_final"] = [s.job_state, s.job_views_done, s.job_views_total, s.job_progress, s.job_message]
    scroll(view3d()[0], view3d()[2]["UI"], 60)  # down to the job's progress box
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
            from gui_input import MISSES
            report["misses"] = MISSES
        with open(os.path.join(OUT, "report.json"), "w") as fh:
            json.dump(report, fh, indent=1)
        bpy.ops.wm.quit_blender()
        return None

    return tick


INFO = None
bpy.app.timers.register(_driver(), first_interval=0.5)
