"""MVCap Studio view rig: design, preview and submit multi-view render specs from Blender.

Installs as a Blender 4.2+ extension (blender_manifest.toml) or as a legacy add-on (bl_info).
bpy is imported only inside register(), so `blender_addon.rig` stays importable without Blender.
"""

bl_info = {
    "name": "MVCap Studio View Rig",
    "author": "MVCap Studio",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D Viewport > Sidebar > MVCap",
    "description": "Design camera orbits, lighting and render settings for multi-view datasets",
    "category": "Render",
}


def register():
    from . import ui

    ui.register()


def unregister():
    from . import ui

    ui.unregister()
