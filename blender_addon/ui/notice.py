"""What the add-on shows instead of its panel when Blender's Python lacks numpy (Debian's and
Ubuntu's blender packages do not depend on python3-numpy; Blender's own builds bundle it):
one clear message, in the MVCap tab and on the console, never a traceback."""
import bpy

LINES = (  # short: the sidebar is narrow
    "No numpy in the Python",
    "of this Blender: MVCap",
    "Studio needs it. Install",
    "python3-numpy and",
    "restart Blender:",
    "sudo apt install",
    "python3-numpy",
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


def register():
    bpy.utils.register_class(MVCAP_PT_needs_numpy)
    print(MESSAGE)


def unregister():
    bpy.utils.unregister_class(MVCAP_PT_needs_numpy)
