"""The MVCap tab's top panel (asset, rig, views, renders), the Spec group and the Farm panel.
The section panels (Cameras, Lighting, Background, Render) are in panels.py."""
import bpy

from ..rig.spec import SPEC_VERSION
from . import fields


class Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MVCap"


def split_columns(layout):
    """Label column and value column (Blender's property split), no animation dots."""
    layout.use_property_split = True
    layout.use_property_decorate = False
    return layout


def view_count(s):
    try:
        return fields.settings_to_spec(s).view_count
    except Exception:  # an invalid spec is reported by the operators
        return "?"


def progress_bar(layout, owner, prop, factor, text):
    if hasattr(layout, "progress"):  # Blender 4.0+
        layout.progress(factor=factor, type="BAR", text=text)
    else:
        layout.prop(owner, prop, text=text, slider=True)


def _asset_box(layout, s):
    box = layout.box()
    row = box.row(align=True)
    row.operator("mvcap.import_asset", text="Import", icon="IMPORT")
    row.operator("mvcap.normalize", icon="OBJECT_ORIGIN")
    col = split_columns(box.column())
    col.prop(s.normalize, "mode")
    col.prop(s.normalize, "frame")
    if s.asset_uid:
        state = f"scale {s.norm_scale:.3g}" if s.normalized else "not normalised"
        box.label(text=f"{s.asset_uid}  ({state})", icon="MESH_DATA")


def _rig_box(layout, s):
    box = layout.box()
    row = box.row(align=True)
    row.operator("mvcap.build_rig", icon="OUTLINER_OB_CAMERA")
    row.operator("mvcap.clear_rig", text="", icon="TRASH")
    row = box.row(align=True)
    row.prop(s, "view_index", text=f"View (of {view_count(s)})")
    row.operator("mvcap.look_through", text="", icon="VIEW_CAMERA").index = -1
    row.operator("mvcap.render_view", text="", icon="RENDER_STILL")
    if s.view_message:
        box.label(text=s.view_message, icon="ERROR")
    col = box.column(align=True)
    col.label(text="Render All Views Into:")
    col.prop(s, "render_folder", text="")
    if s.render_all_running:
        row = col.row(align=True)
        progress_bar(row, s, "render_all_progress", s.render_all_progress / 100.0,
                     f"{s.render_all_done}/{s.render_all_total} views")
        row.operator("mvcap.render_all_cancel", text="", icon="CANCEL")
    else:
        col.operator("mvcap.render_all", icon="RENDER_ANIMATION")


class MVCAP_PT_main(Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_main"
    bl_label = "MVCap Studio"

    def draw(self, context):
        s = context.scene.mvcap
        layout = self.layout
        row = layout.row(align=True)
        row.menu("MVCAP_MT_presets", text=s.preset or "Presets", icon="PRESET")
        row.operator("mvcap.load_spec", text="", icon="FILEBROWSER")
        row.operator("mvcap.export_spec", text="", icon="EXPORT")
        _asset_box(layout, s)
        _rig_box(layout, s)


class MVCAP_PT_spec(Panel, bpy.types.Panel):
    """What the spec is: its name and notes, and the seed of every random choice."""
    bl_idname = "MVCAP_PT_spec"
    bl_label = "Spec"
    bl_parent_id = "MVCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.mvcap
        layout = split_columns(self.layout)
        layout.prop(s, "name")
        layout.prop(s, "seed")
        layout.prop(s, "description")
        layout.prop(s, "reproduces")
        layout.label(text=f"Spec format v{SPEC_VERSION}")


class MVCAP_PT_farm(Panel, bpy.types.Panel):
    bl_idname = "MVCAP_PT_farm"
    bl_label = "Farm"
    bl_parent_id = "MVCAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header_preset(self, context):
        s = context.scene.mvcap
        if s.job_id:  # progress stays visible with the panel folded
            self.layout.label(text=f"{s.job_state or 'submitted'} {s.job_progress:.0f}%")

    def draw(self, context):
        s = context.scene.mvcap
        col = self.layout.column(align=True)
        col.label(text="Farm Address:")  # long values: a full-width field under its label
        col.prop(s, "farm_address", text="")
        col.label(text="Dataset Folder:")
        col.prop(s, "farm_output", text="")
        col.label(text="Keys (remote farm only):")
        row = col.row(align=True)
        row.prop(s, "farm_keys", text="")
        row.prop(s, "farm_key_name", text="")
        self.layout.row().prop(s, "farm_source", expand=True)
        if s.farm_source == "FOLDER":
            self.layout.prop(s, "farm_folder", text="")
        self.layout.prop(s, "farm_caption")
        self.layout.operator("mvcap.submit", icon="EXPORT")
        if s.job_id:
            _job_box(self.layout, s)


def _job_box(layout, s):
    from .ops_farm import is_watching

    box = layout.box()
    box.label(text=f"Job {s.job_id}: {s.job_state or 'submitted'}", icon="SORTTIME")
    objects = f"{s.job_done + s.job_failed}/{s.job_total} objects" + (f", {s.job_failed} failed" if s.job_failed else "")
    views = f"{s.job_views_done}/{s.job_views_total} views, " if s.job_views_total else ""
    progress_bar(box, s, "job_progress", s.job_progress / 100.0, views + objects)
    if s.job_message:
        box.label(text=s.job_message, icon="ERROR")
    if is_watching():
        box.operator("mvcap.stop_watching", icon="PAUSE")
