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


def _has_numpy():
    try:
        import numpy  # noqa: F401  (the rig's maths; Debian's blender package lacks it)
    except ImportError:
        return False
    return True


def _gui():
    """The full UI, or only a notice that says what to install when numpy is missing."""
    from . import ui
    from .ui import notice

    return ui if _has_numpy() else notice


def register():
    _gui().register()


def unregister():
    _gui().unregister()
