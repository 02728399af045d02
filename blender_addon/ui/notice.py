"""What the add-on shows instead of its panel when Blender's Python lacks numpy (Debian's and
Ubuntu's blender packages do not depend on python3-numpy; Blender's own builds bundle it):
one clear message in the MVCap tab and a popup, never a traceback."""
import bpy

LINES = (
    "This Blender's Python has no numpy,",
    "which MVCap Studio needs.",
    "Install it, then restart Blender:",
    "sudo apt install python3-numpy",
)
MESSAGE = "MVCap Studio: this Blender's Python has no numpy; install python3-numpy " \
          "(sudo apt install python3-numpy) and restart Blender"


class MVCAP_PT_needs_numpy(bpy.types.Panel):
    bl_idname = "MVCAP_PT_needs_numpy"
    bl_label = "MVCap Studio"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MVCap"

    def draw(self, context):
        col = self.layout.column(align=True)
        for i, line in enumerate(LINES):
            col.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def _draw_popup(menu, context):
    for line in LINES:
        menu.layout.label(text=line)


def _popup():
    """Shown once, after enabling, in the first window (a timer has no window of its own)."""
    wm = bpy.context.window_manager
    windows = getattr(wm, "windows", [])
    if windows:
        with bpy.context.temp_override(window=windows[0]):
            wm.popup_menu(_draw_popup, title="MVCap Studio needs numpy", icon="ERROR")
    return None


def register():
    bpy.utils.register_class(MVCAP_PT_needs_numpy)
    print(MESSAGE)
    if not bpy.app.background:
        bpy.app.timers.register(_popup, first_interval=0.1)


def unregister():
    if bpy.app.timers.is_registered(_popup):
        bpy.app.timers.unregister(_popup)
    bpy.utils.unregister_class(MVCAP_PT_needs_numpy)
