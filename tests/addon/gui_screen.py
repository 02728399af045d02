"""Blender's screen as gui_driver.py's artist meets it: the 3D viewport and its sidebar tabs and
panel headers, file browsers, and the Info editor's reports. Built on gui_input's real events.
Generators, like gui_input: `yield seconds` lets Blender handle what was sent."""
import bpy

from gui_input import click, locate, move


def view3d():
    win = bpy.context.window_manager.windows[0]
    area = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    return win, area, {r.type: r for r in area.regions}


def click_until(win, area, points, done, settle=0.25):
    """Click each point in turn until done() (a panel drew, say); 3.4 has no API to open a tab or
    a panel, so the driver clicks where an artist would until the panel shows. Returns the
    number of clicks, or None."""
    for count, (x, y) in enumerate(points):
        area.tag_redraw()
        yield settle
        if done():
            return count
        click(win, x, y)
    return None


def scroll(win, region, notches, down=True):
    for _ in range(notches):
        win.event_simulate(type="WHEELDOWNMOUSE" if down else "WHEELUPMOUSE", value="PRESS",
                           x=region.x + region.width // 2, y=region.y + region.height // 2)


def choose_file(path, wanted="file.execute"):
    """In the file browser a button just opened: go to `path` and click its execute button."""
    import os

    win = None
    for _ in range(20):
        win = next((w for w in reversed(bpy.context.window_manager.windows)
                    if any(a.type == "FILE_BROWSER" for a in w.screen.areas)), None)
        if win:
            break
        yield 0.2
    assert win, "the click opened no file browser"
    area = next(a for a in win.screen.areas if a.type == "FILE_BROWSER")
    params = area.spaces.active.params
    params.directory = os.path.dirname(path).encode()
    params.filename = os.path.basename(path)
    yield 0.3
    region = next(r for r in area.regions if r.type == "EXECUTE")
    xs = [region.x + region.width - int(f * region.width) for f in (0.05, 0.1, 0.15, 0.2)]
    spot = yield from locate(win, area, region, wanted, xs=xs, step=4)
    assert spot, "no execute button in the file browser"
    click(win, *spot)
    yield 0.5


HOVER_PROBES = ("bpy.ops.ui.copy_python_command_button", "bpy.ops.ui.copy_data_path_button")


class InfoLog:
    """The Info editor in place of the timeline: what an artist reads after a click (the
    operator's reports) comes from there, copied out with the editor's own operators."""

    def __init__(self):
        win = bpy.context.window_manager.windows[0]
        area = next(a for a in win.screen.areas if a.type == "DOPESHEET_EDITOR")
        area.type = "INFO"
        self.win, self.area = win, area

    def take(self):
        """The reports since the last take, oldest first (then cleared)."""
        wm = bpy.context.window_manager
        wm.clipboard = "\n"  # not "": setting an empty clipboard leaves the old text there
        region = next(r for r in self.area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=self.win, area=self.area, region=region):
            bpy.ops.info.select_all(action="SELECT")
            bpy.ops.info.report_copy()
            bpy.ops.info.report_delete()
        return [line for line in wm.clipboard.splitlines() if line.strip() and not line.startswith(HOVER_PROBES)]


def hover_away(win, area):
    move(win, area.x + area.width // 3, area.y + area.height // 2)
