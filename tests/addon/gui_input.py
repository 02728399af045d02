"""Real input for gui_driver.py, inside a Blender GUI started with --enable-event-simulate.

An artist's eye finds a button and a hand clicks it. Here the eye is Blender's own "Copy Python
Command" and "Copy Data Path" (what the button under the mouse runs or shows: the hover that they
read is Blender's own button handling), and the hand is window events: mouse moves, clicks,
typing and key presses, which go through Blender's UI handlers and keymaps exactly as an X
server's would. Each function is a generator for gui_driver's timer: `yield seconds` waits for
Blender to handle the events; `found = yield from locate(...)` returns a value.
"""
import bpy

HANDLE_S = 0.02  # one pass of the event loop: the hovered button becomes active
LAG_MOVES = 3  # how many moves behind a hover may be seen, on a loaded machine
NOTHING = "(nothing under the mouse)"
MISSES = []  # what a failed row scan hovered, for the report


MOUSE = {}  # window -> where the mouse is: key presses happen there (else at 0, 0, which closes menus)


def move(win, x, y):
    MOUSE[win.as_pointer()] = x, y
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)


def at_mouse(win):
    x, y = MOUSE.get(win.as_pointer(), (win.width // 2, win.height // 2))
    return {"x": x, "y": y}


def click(win, x, y, button="LEFTMOUSE", **modifiers):
    move(win, x, y)
    win.event_simulate(type=button, value="PRESS", x=x, y=y, **modifiers)
    win.event_simulate(type=button, value="RELEASE", x=x, y=y, **modifiers)


def key(win, name, **modifiers):
    """Press and release a key where the mouse is (e.g. key(win, "Z", ctrl=True))."""
    win.event_simulate(type=name, value="PRESS", **at_mouse(win), **modifiers)
    win.event_simulate(type=name, value="RELEASE", **at_mouse(win), **modifiers)


KEY_NAMES = {".": "PERIOD", "-": "MINUS", "/": "SLASH", "_": "MINUS", " ": "SPACE", ":": "SEMI_COLON"}
DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def type_text(win, text):
    """Typing into the text field being edited: each character as a key press with its unicode."""
    for ch in text:
        name = DIGITS[int(ch)] if ch.isdigit() else KEY_NAMES.get(ch, ch.upper())
        win.event_simulate(type=name, value="PRESS", unicode=ch, shift=ch.isupper() or ch == "_", **at_mouse(win))
        win.event_simulate(type=name, value="RELEASE", **at_mouse(win))


def under_mouse(win, area, region):
    """What the hovered button runs (`bpy.ops.mvcap.build_rig()`) or shows (`mvcap.view_index`)."""
    wm = bpy.context.window_manager
    wm.clipboard = NOTHING  # not "": setting an empty clipboard leaves the old text there
    with bpy.context.temp_override(window=win, area=area, region=region):
        for op in (bpy.ops.ui.copy_python_command_button, bpy.ops.ui.copy_data_path_button):
            if op.poll():
                op()
                break
    return "" if wm.clipboard == NOTHING else wm.clipboard


def locate(win, area, region, wanted, xs=None, step=5, upward=False, pace=HANDLE_S):
    """Hover down the region (up it, with `upward`) at a few columns, until the button whose
    command or data path contains `wanted` is under the mouse. Returns its (x, y) in window
    coordinates, or None. `pace`: the wait after each move (a loaded machine needs longer)."""
    xs = xs or [region.x + int(region.width * f) for f in (0.5, 0.75, 0.9, 0.3)]
    yield from unhover(win, region)
    recent = []  # the last points hovered, newest first
    rows = range(region.y + region.height - 12, region.y, -step)
    for y in reversed(rows) if upward else rows:
        for x in xs:
            move(win, x, y)
            recent = [(x, y), *recent[:LAG_MOVES]]
            yield pace
            if wanted in under_mouse(win, area, region):
                # the hover can lag a few moves behind: settle on this point, else the ones before
                for cx, cy in recent:
                    if (yield from hovers(win, area, region, wanted, cx, cy)):
                        bottom = yield from last_hit(win, area, region, wanted, cx, cy)
                        return cx, (cy + bottom) // 2  # the middle: the row's other buttons share it
    return None


def hovers(win, area, region, wanted, x, y, settle=0.15):
    """Whether `wanted` is under the mouse at (x, y), given time to settle."""
    move(win, x, y)
    yield settle
    return wanted in under_mouse(win, area, region)


def unhover(win, region):
    """Move off the region: a button stays active while the mouse is over the region's edge."""
    move(win, region.x - 40 if region.x > 40 else region.x + region.width + 40, region.y + region.height // 2)
    yield HANDLE_S


def last_hit(win, area, region, wanted, x, y, step=2):
    """Down from (x, y), the lowest y at which `wanted` is still under the mouse."""
    while y - step > region.y:
        move(win, x, y - step)
        yield HANDLE_S
        if wanted not in under_mouse(win, area, region):
            break
        y -= step
    return y


def locate_in_row(win, area, region, wanted, y, step=6):
    """Hover along one row, right to left (icon buttons sit at the right end)."""
    seen = []
    yield from unhover(win, region)
    for x in range(region.x + region.width - 8, region.x, -step):
        move(win, x, y)
        yield HANDLE_S
        seen.append((x, y, under_mouse(win, area, region)))
        if wanted in seen[-1][2]:
            for cx in range(x, x + step * (LAG_MOVES + 1), step):  # the hover can lag a few moves behind
                if (yield from hovers(win, area, region, wanted, cx, y)):
                    return cx, y
    MISSES.append(seen)
    return None
