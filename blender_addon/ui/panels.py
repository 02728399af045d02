"""The "MVCap" sidebar tab in the 3D viewport: common fields first, advanced ones folded."""
import bpy

from ..rig.spec import BOUNCE_FIELDS, SPEC_VERSION
from . import fields


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MVCap"


def _view_count(s):
    try:
        return fields.settings_to_spec(s).view_count
    except Exception:  # an invalid spec is reported by the operators
        return "?"


def _cols(layout):
    layout.use_property_split = True
    layout.use_property_decorate = False
    return layout


class MVCAP_PT_main(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_main"
    bl_label = "MVCap Studio"

    def draw(self, context):
        s = context.scene.mvcap
        layout = self.layout
        row = layout.row(align=True)
        row.menu("MVCAP_MT_presets", text=s.preset or "Presets", icon="PRESET")
        row.operator("mvcap.load_spec", text="", icon="FILEBROWSER")
        row.operator("mvcap.export_spec", text="", icon="EXPORT")

        box = layout.box()
        row = box.row(align=True)
        row.operator("mvcap.import_asset", text="Import", icon="IMPORT")
        row.operator("mvcap.normalize", icon="OBJECT_ORIGIN")
        if s.asset_uid:
            state = f"scale {s.norm_scale:.3g}" if s.normalized else "not normalised"
            box.label(text=f"{s.asset_uid}  ({state})", icon="MESH_DATA")

        box = layout.box()
        row = box.row(align=True)
        row.operator("mvcap.build_rig", icon="OUTLINER_OB_CAMERA")
        row.operator("mvcap.clear_rig", text="", icon="TRASH")
        row = box.row(align=True)
        row.prop(s, "view_index", text=f"View (of {_view_count(s)})")
        row.operator("mvcap.render_view", text="", icon="RENDER_STILL")


class MVCAP_PT_cameras(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_cameras"
    bl_label = "Cameras"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        c = context.scene.mvcap.camera
        layout = _cols(self.layout)
        layout.prop(c, "pattern")
        layout.prop(c, "num_views")
        if c.pattern == "ring":
            layout.prop(c, "elevations_deg")
        elif c.pattern == "explicit":
            layout.prop(c, "explicit")
        elif c.pattern != "sphere_random":
            col = layout.column(align=True)
            col.prop(c, "elevation_min_deg", text="Elev. Min")
            col.prop(c, "elevation_max_deg", text="Max")
        layout.prop(c, "distance_mode")
        if c.distance_mode == "fixed":
            layout.prop(c, "distance")
        elif c.distance_mode == "range":
            col = layout.column(align=True)
            col.prop(c, "distance_min", text="Dist. Min")
            col.prop(c, "distance_max", text="Max")
        else:
            layout.prop(c, "fill_fraction")
        layout.prop(c, "lens_mm", text="Lens")


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
        col.prop(c, "clip_end", text="End")
        # the fields the pattern above hides, so every field stays reachable
        if c.pattern != "ring":
            layout.prop(c, "elevations_deg")
        if c.pattern != "explicit":
            layout.prop(c, "explicit")
        if c.pattern in ("ring", "explicit", "sphere_random"):
            col = layout.column(align=True)
            col.prop(c, "elevation_min_deg", text="Elev. Min")
            col.prop(c, "elevation_max_deg", text="Max")
        if c.distance_mode != "fixed":
            layout.prop(c, "distance")
        if c.distance_mode != "range":
            col = layout.column(align=True)
            col.prop(c, "distance_min", text="Dist. Min")
            col.prop(c, "distance_max", text="Max")
        if c.distance_mode != "auto":
            layout.prop(c, "fill_fraction")


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


class MVCAP_PT_lighting_advanced(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_lighting_advanced"
    bl_label = "Advanced"
    bl_parent_id = "MVCAP_PT_lighting"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        li = context.scene.mvcap.lighting
        layout = _cols(self.layout)
        layout.prop(li, "randomize")
        if li.preset != "hdri":
            layout.prop(li, "hdri_path")
        layout.prop(li, "hdri_strength")
        layout.prop(li, "hdri_random_rotation")
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
        layout.prop(bg, "world_strength", text="Strength")


class MVCAP_PT_render(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_render"
    bl_label = "Render"
    bl_parent_id = "MVCAP_PT_main"

    def draw(self, context):
        r = context.scene.mvcap.render
        layout = _cols(self.layout)
        layout.prop(r, "engine")
        col = layout.column(align=True)
        col.prop(r, "resolution_x", text="Width")
        col.prop(r, "resolution_y", text="Height")
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
        layout.prop(s.normalize, "mode")
        layout.prop(s.normalize, "frame")
        layout.prop(s, "seed")
        layout.prop(s, "name")
        layout.prop(s, "description")
        layout.prop(s, "reproduces")
        layout.label(text=f"Spec format v{SPEC_VERSION}")


class MVCAP_PT_render_quality(_Panel, bpy.types.Panel):
    """Colour, pixel filter, light paths, sampling and denoising (spec.render)."""
    bl_idname = "MVCAP_PT_render_quality"
    bl_label = "Quality"
    bl_parent_id = "MVCAP_PT_render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        r = context.scene.mvcap.render
        layout = _cols(self.layout)
        for name in ("view_transform", "look", "exposure", "filter_type", "filter_width", *BOUNCE_FIELDS,
                     "adaptive_sampling", "adaptive_threshold", "adaptive_min_samples", "light_tree",
                     "denoiser", "denoise_prefilter", "denoise_quality", "denoise_input_passes"):
            layout.prop(r, name)


class MVCAP_PT_farm(_Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_farm"
    bl_label = "Farm"
    bl_parent_id = "MVCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header_preset(self, context):
        s = context.scene.mvcap
        if s.job_id:  # progress stays visible with the panel folded
            self.layout.label(text=f"{s.job_state or 'submitted'} {s.job_progress:.0f}%")

    def draw(self, context):
        from . import ops

        s = context.scene.mvcap
        layout = _cols(self.layout)
        layout.prop(s, "farm_address")
        layout.prop(s, "farm_output")
        layout.prop(s, "farm_source", expand=True)
        if s.farm_source == "FOLDER":
            layout.prop(s, "farm_folder")
        layout.prop(s, "farm_caption")
        layout.operator("mvcap.submit", icon="EXPORT")
        if s.job_id:
            box = layout.box()
            box.use_property_split = False
            box.label(text=f"Job {s.job_id}: {s.job_state or 'submitted'}", icon="SORTTIME")
            text = f"{s.job_done + s.job_failed}/{s.job_total} objects" + (f", {s.job_failed} failed" if s.job_failed else "")
            if hasattr(box, "progress"):  # Blender 4.0+
                box.progress(factor=s.job_progress / 100.0, type="BAR", text=text)
            else:
                box.prop(s, "job_progress", text=text, slider=True)
            if s.job_message:
                box.label(text=s.job_message, icon="ERROR")
            if ops.is_watching():
                box.operator("mvcap.stop_watching", icon="PAUSE")


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
    MVCAP_PT_farm,
)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
