"""The "MVCap" sidebar tab in the 3D viewport: the spec's sections, common fields first, advanced
ones folded; a field the chosen pattern, distance mode or preset ignores is not shown."""
import bpy

from . import fields
from .panels_main import MVCAP_PT_farm, MVCAP_PT_main, MVCAP_PT_spec
from .panels_main import Panel as _Panel
from .panels_main import split_columns as _cols

# Patterns whose views ignore the elevation band (the others sample inside it).
NO_BAND_PATTERNS = {"ring", "explicit", "sphere_random", "cube_normalized_random", "trellis_hammersley"}


def _pair(layout, owner, title, low, high):
    """Two related numbers side by side under one label ("Elevation: Min | Max"): short labels
    that never truncate at the sidebar's default width."""
    col = layout.column(align=True)
    row = col.row(align=True)
    row.alignment = "LEFT"
    row.label(text=title)
    row = col.row(align=True)
    row.prop(owner, low, text="Min")
    row.prop(owner, high, text="Max")


class MVCAP_PT_cameras(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_cameras"
    bl_label = "Cameras"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        c = context.scene.mvcap.camera
        layout = _cols(self.layout)
        layout.prop(c, "pattern")
        if c.pattern == "explicit":
            layout.prop(c, "explicit")
        else:
            layout.prop(c, "num_views")
        if c.pattern == "ring":
            layout.prop(c, "elevations_deg")
        elif c.pattern not in NO_BAND_PATTERNS:
            _pair(self.layout, c, "Elevation:", "elevation_min_deg", "elevation_max_deg")
        layout.prop(c, "distance_mode")
        if c.distance_mode == "fixed":
            layout.prop(c, "distance")
        elif c.distance_mode == "range":
            _pair(self.layout, c, "Distance:", "distance_min", "distance_max")
        else:
            layout.prop(c, "fill_fraction")
        layout.prop(c, "lens_mm")


class MVCAP_PT_cameras_advanced(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_cameras_advanced"
    bl_label = "Advanced"
    bl_parent_id = "MVCAP_PT_cameras"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        c = context.scene.mvcap.camera
        layout = _cols(self.layout)
        layout.prop(c, "azimuth_offset_deg")
        layout.prop(c, "jitter_deg")
        layout.prop(c, "roll_deg")
        layout.prop(c, "sensor_width_mm")
        col = layout.column(align=True)
        col.prop(c, "clip_start")
        col.prop(c, "clip_end")


class MVCAP_PT_lighting(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_lighting"
    bl_label = "Lighting"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        li = context.scene.mvcap.lighting
        layout = _cols(self.layout)
        layout.prop(li, "preset")
        layout.prop(li, "strength")
        layout.prop(li, "color")
        if li.preset == "hdri":
            layout.prop(li, "hdri_path")
            layout.prop(li, "hdri_strength")
            layout.prop(li, "hdri_random_rotation")


class MVCAP_PT_lighting_advanced(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_lighting_advanced"
    bl_label = "Advanced"
    bl_parent_id = "MVCAP_PT_lighting"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        li = context.scene.mvcap.lighting
        layout = _cols(self.layout)
        layout.prop(li, "randomize")
        layout.prop(li, "default_point_light")


class MVCAP_PT_background(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_background"
    bl_label = "Background"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        bg = context.scene.mvcap.background
        layout = _cols(self.layout)
        layout.prop(bg, "transparent")
        layout.prop(bg, "color")
        layout.prop(bg, "world_strength")


class MVCAP_PT_render(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_render"
    bl_label = "Render"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        r = context.scene.mvcap.render
        layout = _cols(self.layout)
        layout.prop(r, "engine")
        col = layout.column(align=True)
        col.prop(r, "resolution_x")
        col.prop(r, "resolution_y")
        layout.prop(r, "samples")


class MVCAP_PT_render_advanced(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_render_advanced"
    bl_label = "Advanced"
    bl_parent_id = "MVCAP_PT_render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.mvcap
        layout = _cols(self.layout)
        layout.prop(s.render, "denoise")
        layout.prop(s.render, "file_format")
        layout.prop(s.render, "outputs")
        layout.prop(s.render, "timeout_s")


class MVCAP_PT_render_quality(_Panel, bpy.types.Panel):
    """Colour, pixel filter, light paths, sampling and denoising (spec.render)."""
    bl_idname = "MVCAP_PT_render_quality"
    bl_label = "Quality"
    bl_parent_id = "MVCAP_PT_render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        r = context.scene.mvcap.render
        groups = {}  # heading -> fields, in the spec's order (fields.HINTS names each field's group)
        for fld in fields.FIELDS["render"]:
            if "group" in fld.hints:
                groups.setdefault(fld.hints["group"], []).append(fld.name)
        for heading, names in groups.items():
            self.layout.label(text=heading)
            col = _cols(self.layout.column(align=True))
            for name in names:
                col.prop(r, name)


CLASSES = (
    MVCAP_PT_main,
    MVCAP_PT_cameras,
    MVCAP_PT_cameras_advanced,
    MVCAP_PT_lighting,
    MVCAP_PT_lighting_advanced,
    MVCAP_PT_background,
    MVCAP_PT_render,
    MVCAP_PT_render_advanced,
    MVCAP_PT_render_quality,
    MVCAP_PT_spec,
    MVCAP_PT_farm,
)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
