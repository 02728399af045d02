"""Operators for the asset, the rig and the spec. Every failure is a one-line report in the
panel's words (messages.panel_message), never an exception; every scene change is undoable."""
import os
from pathlib import Path

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..rig import spec as S
from ..rig.assets import MESH_EXTENSIONS
from ..rig.errors import one_line
from . import fields
from .messages import panel_message


def settings_of(context):
    return context.scene.mvcap


def redraw_sidebars():
    """Redraw the 3D viewports, whose sidebar shows progress that a timer or modal updated."""
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class MVCapOperator(bpy.types.Operator):
    """Shared by the add-on's operators: undoable, and failures reported in the panel's words."""
    bl_options = {"REGISTER", "UNDO"}

    def fail(self, message):
        self.report({"ERROR"}, panel_message(one_line(message)))
        return {"CANCELLED"}


class MVCAP_OT_import_asset(MVCapOperator, ImportHelper):
    bl_idname = "mvcap.import_asset"
    bl_label = "Import Asset"
    bl_description = "Import a GLB, glTF, OBJ, FBX, PLY, STL or .blend asset as the rig's subject"

    filter_glob: StringProperty(default=";".join("*" + e for e in MESH_EXTENSIONS), options={"HIDDEN"})
    replace: bpy.props.BoolProperty(name="Replace Previous", default=True,
                                    description="Delete the previously imported asset first")

    def execute(self, context):
        from ..scene.importers import import_asset
        from . import preview

        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            return self.fail(f"asset {path}: no such file")
        if Path(path).suffix.lower() not in MESH_EXTENSIONS:
            return self.fail(f"asset {path}: unsupported type; allowed: {', '.join(MESH_EXTENSIONS)}")
        old = preview.asset_objects(context.scene) if self.replace else []
        try:
            objects = import_asset(path)  # removes whatever a failed import half-made
        except Exception as exc:  # AssetError, or an importer's own crash
            return self.fail(f"cannot import: {exc}")  # the error names the file
        for ob in old:
            if ob.name in bpy.data.objects:
                bpy.data.objects.remove(ob, do_unlink=True)
        uid = Path(path).stem
        for ob in objects:
            ob[preview.ASSET_KEY] = uid
        s = settings_of(context)
        s.asset_path, s.asset_uid = path, uid
        s.normalized, s.norm_radius, s.norm_scale = False, 0.0, 0.0
        self.report({"INFO"}, f"imported {uid}: {len(objects)} objects")
        return {"FINISHED"}


class MVCAP_OT_normalize(MVCapOperator):
    bl_idname = "mvcap.normalize"
    bl_label = "Normalize"
    bl_description = "Scale and centre the asset as the farm does (the Normalize mode below)"

    def execute(self, context):
        from . import preview

        try:
            norm = preview.normalize_asset(context.scene, settings_of(context))
        except Exception as exc:
            return self.fail(exc if isinstance(exc, preview.RigError) else f"cannot normalise: {exc}")
        self.report({"INFO"}, f"normalised: scale {norm.scale:.4g}, radius {norm.radius:.4g}")
        return {"FINISHED"}


class MVCAP_OT_build_rig(MVCapOperator):
    bl_idname = "mvcap.build_rig"
    bl_label = "Build Rig"
    bl_description = ("Build or refresh the rig around the asset: camera, lights and a marker at every view, "
                      "in the 'MVCap Rig' collection (Delete Rig puts the scene camera back)")

    def execute(self, context):
        from . import preview

        try:
            views = preview.build_rig(context.scene, settings_of(context))
        except preview.RigError as exc:
            return self.fail(exc)
        except Exception as exc:  # SpecError, or Blender's
            return self.fail(f"cannot build the rig: {exc}")
        self.report({"INFO"}, f"rig: {len(views)} views")
        return {"FINISHED"}


class MVCAP_OT_clear_rig(MVCapOperator):
    bl_idname = "mvcap.clear_rig"
    bl_label = "Delete Rig"
    bl_description = "Delete the 'MVCap Rig' collection and put back the scene's camera, world and render size"

    def execute(self, context):
        from . import preview

        preview.clear_rig(context.scene)
        return {"FINISHED"}


class MVCAP_OT_look_through(MVCapOperator):
    bl_idname = "mvcap.look_through"
    bl_label = "Look Through View"
    bl_description = "Look through the rig camera at this view in the 3D viewport (builds the rig if needed)"

    index: IntProperty(name="View", min=-1, default=-1, description="The view; -1: the current one")

    def execute(self, context):
        from . import preview

        s = settings_of(context)
        if self.index >= 0:
            s.view_index = self.index
        if s.view_message:
            return self.fail(s.view_message)
        if bpy.data.collections.get(preview.RIG_COLLECTION) is None:
            if bpy.ops.mvcap.build_rig() != {"FINISHED"}:
                return {"CANCELLED"}
        areas = [context.area] if context.area is not None and context.area.type == "VIEW_3D" else \
            [a for a in (context.screen.areas if context.screen else []) if a.type == "VIEW_3D"]
        for area in areas:
            area.spaces.active.region_3d.view_perspective = "CAMERA"
            area.tag_redraw()
        return {"FINISHED"}


class MVCAP_OT_export_spec(MVCapOperator, ExportHelper):
    bl_idname = "mvcap.export_spec"
    bl_label = "Export Spec"
    bl_description = "Save the settings as a spec JSON file for `farm render --spec`"
    bl_options = {"REGISTER"}  # writes a file, changes nothing in the scene

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            spec = fields.settings_to_spec(settings_of(context))
            S.save_spec(spec, bpy.path.abspath(self.filepath))
        except S.SpecError as exc:
            return self.fail(f"cannot export: {exc}")
        except OSError as exc:
            return self.fail(f"cannot write {self.filepath}: {exc.strerror or exc}")
        self.report({"INFO"}, f"spec saved to {self.filepath}")
        return {"FINISHED"}


class MVCAP_OT_load_spec(MVCapOperator, ImportHelper):
    bl_idname = "mvcap.load_spec"
    bl_label = "Load Spec"
    bl_description = "Load a spec JSON file into the settings"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        s = settings_of(context)
        try:
            spec = S.load_spec(bpy.path.abspath(self.filepath))
            fields.spec_to_settings(spec, s)
        except S.SpecError as exc:
            return self.fail(exc)
        s.preset = ""
        self.report({"INFO"}, f"loaded spec {spec.name!r}")
        return {"FINISHED"}


class MVCAP_OT_apply_preset(MVCapOperator):
    bl_idname = "mvcap.apply_preset"
    bl_label = "Apply Preset"
    bl_description = "Replace every setting with a bundled preset"

    name: StringProperty(name="Preset")

    def execute(self, context):
        from ..rig.presets import load_preset

        s = settings_of(context)
        try:
            spec = load_preset(self.name)
            fields.spec_to_settings(spec, s)
        except S.SpecError as exc:
            return self.fail(exc)
        s.preset = self.name
        self.report({"INFO"}, f"preset {self.name}")
        return {"FINISHED"}


class MVCAP_MT_presets(bpy.types.Menu):
    bl_idname = "MVCAP_MT_presets"
    bl_label = "Presets"
    bl_description = "Bundled view rig presets"

    def draw(self, context):
        from ..rig.presets import preset_names

        for name in preset_names():
            self.layout.operator(MVCAP_OT_apply_preset.bl_idname, text=name).name = name


CLASSES = (
    MVCAP_OT_import_asset,
    MVCAP_OT_normalize,
    MVCAP_OT_build_rig,
    MVCAP_OT_clear_rig,
    MVCAP_OT_look_through,
    MVCAP_OT_export_spec,
    MVCAP_OT_load_spec,
    MVCAP_OT_apply_preset,
    MVCAP_MT_presets,
)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
