"""Operators. Every failure is a one-line self.report({'ERROR'}, ...), never an exception."""
import os
import time
from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..rig import spec as S
from ..rig.assets import MESH_EXTENSIONS
from ..rig.errors import one_line
from . import farm_link, fields

POLL_INTERVAL_S = 0.5


def _settings(context):
    return context.scene.mvcap


class _Op(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    def fail(self, message):
        self.report({"ERROR"}, message)
        return {"CANCELLED"}


class MVCAP_OT_import_asset(_Op, ImportHelper):
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
            objects = import_asset(path)
        except Exception as exc:  # AssetError, or an importer's own crash
            return self.fail(f"cannot import {os.path.basename(path)}: {one_line(exc)}")
        for ob in old:
            if ob.name in bpy.data.objects:
                bpy.data.objects.remove(ob, do_unlink=True)
        uid = Path(path).stem
        for ob in objects:
            ob[preview.ASSET_KEY] = uid
        s = _settings(context)
        s.asset_path, s.asset_uid = path, uid
        s.normalized, s.norm_radius, s.norm_scale = False, 0.0, 0.0
        self.report({"INFO"}, f"imported {uid}: {len(objects)} objects")
        return {"FINISHED"}


class MVCAP_OT_normalize(_Op):
    bl_idname = "mvcap.normalize"
    bl_label = "Normalize"
    bl_description = "Scale and centre the asset as the farm does (normalize mode of the spec)"

    def execute(self, context):
        from ..scene.normalize import normalize_objects
        from . import preview

        s = _settings(context)
        objects = preview.asset_objects(context.scene) or list(context.selected_objects)
        if not objects:
            return self.fail("nothing to normalise: import an asset or select objects")
        try:
            norm = normalize_objects(objects, s.normalize.mode, s.normalize.frame)
        except Exception as exc:
            return self.fail(f"cannot normalise: {one_line(exc)}")
        for ob in objects:  # the holder normalisation parents the asset to belongs to the asset
            while ob.parent is not None:
                ob = ob.parent
                ob[preview.ASSET_KEY] = s.asset_uid or preview.DEFAULT_UID
        s.normalized, s.norm_radius, s.norm_scale = True, float(norm.radius), float(norm.scale)
        self.report({"INFO"}, f"normalised: scale {norm.scale:.4g}, radius {norm.radius:.4g}")
        return {"FINISHED"}


class MVCAP_OT_build_rig(_Op):
    bl_idname = "mvcap.build_rig"
    bl_label = "Build Rig"
    bl_description = "Build or refresh the preview rig: a camera marker at every view and the orbit, in the 'MVCap Rig' collection"

    def execute(self, context):
        from . import preview

        try:
            views = preview.build_rig(context.scene, _settings(context))
        except S.SpecError as exc:
            return self.fail(f"spec: {one_line(exc)}")
        except Exception as exc:
            return self.fail(f"cannot build the rig: {one_line(exc)}")
        self.report({"INFO"}, f"rig: {len(views)} views")
        return {"FINISHED"}


class MVCAP_OT_clear_rig(_Op):
    bl_idname = "mvcap.clear_rig"
    bl_label = "Delete Rig"
    bl_description = "Delete the 'MVCap Rig' collection with its camera, markers and orbit"

    def execute(self, context):
        from . import preview

        preview.clear_rig(context.scene)
        return {"FINISHED"}


class MVCAP_OT_render_view(_Op):
    bl_idname = "mvcap.render_view"
    bl_label = "Render View"
    bl_description = "Render the current view with the spec's settings and show it in an Image Editor"
    bl_options = {"REGISTER"}

    def execute(self, context):
        from . import preview

        s = _settings(context)
        try:
            image = preview.render_view(context.scene, s)
        except S.SpecError as exc:
            return self.fail(f"spec: {one_line(exc)}")
        except Exception as exc:
            return self.fail(f"cannot render view {s.view_index}: {one_line(exc)}")
        preview.show_image(context, image)
        self.report({"INFO"}, f"rendered view {s.view_index} ({image.size[0]}x{image.size[1]})")
        return {"FINISHED"}


class MVCAP_OT_export_spec(_Op, ExportHelper):
    bl_idname = "mvcap.export_spec"
    bl_label = "Export Spec"
    bl_description = "Save the settings as a spec JSON file for `farm render --spec`"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            spec = fields.settings_to_spec(_settings(context))
            S.save_spec(spec, bpy.path.abspath(self.filepath))
        except S.SpecError as exc:
            return self.fail(f"spec: {one_line(exc)}")
        except OSError as exc:
            return self.fail(f"cannot write {self.filepath}: {exc.strerror or exc}")
        self.report({"INFO"}, f"spec saved to {self.filepath}")
        return {"FINISHED"}


class MVCAP_OT_load_spec(_Op, ImportHelper):
    bl_idname = "mvcap.load_spec"
    bl_label = "Load Spec"
    bl_description = "Load a spec JSON file into the settings"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            spec = S.load_spec(bpy.path.abspath(self.filepath))
        except S.SpecError as exc:
            return self.fail(one_line(exc))
        s = _settings(context)
        fields.spec_to_settings(spec, s)
        s.preset = ""
        self.report({"INFO"}, f"loaded spec {spec.name!r}")
        return {"FINISHED"}


class MVCAP_OT_apply_preset(_Op):
    bl_idname = "mvcap.apply_preset"
    bl_label = "Apply Preset"
    bl_description = "Replace every setting with a bundled preset"

    name: StringProperty(name="Preset")

    def execute(self, context):
        from ..rig.presets import load_preset

        try:
            spec = load_preset(self.name)
        except S.SpecError as exc:
            return self.fail(one_line(exc))
        s = _settings(context)
        fields.spec_to_settings(spec, s)
        s.preset = self.name
        self.report({"INFO"}, f"preset {self.name}")
        return {"FINISHED"}


# --- farm ---------------------------------------------------------------------------------------
class _Job:
    """The one job being watched: its poller and the scene whose panel shows it."""

    poller = None
    scene_name = ""


def _scene_settings():
    scene = bpy.data.scenes.get(_Job.scene_name)
    return scene.mvcap if scene is not None else None


def _redraw():
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def apply_job_status(s, job):
    """Copy a STATUS_REPLY job record into the panel's properties."""
    state, done, failed, total = farm_link.job_progress(job)
    s.job_state, s.job_done, s.job_failed, s.job_total = state, done, failed, total
    s.job_progress = 100.0 * (done + failed) / total if total else 0.0
    return state.startswith("done") or state == "canceled"


def _tick():
    """bpy.app.timers callback: one non-blocking poll; returns the next interval or None to stop."""
    s = _scene_settings()
    if _Job.poller is None or s is None:
        stop_watching()
        return None
    try:
        job = _Job.poller.poll(time.monotonic())
    except Exception as exc:
        s.job_message = one_line(exc)
        stop_watching()
        _redraw()
        return None
    if job is not None:
        final = apply_job_status(s, job)
        s.job_message = ""
        _redraw()
        if final:
            stop_watching()
            return None
    return POLL_INTERVAL_S


def start_watching(scene, address, job_id):
    stop_watching()
    _Job.poller = farm_link.StatusPoller(address, job_id)
    _Job.scene_name = scene.name
    bpy.app.timers.register(_tick, first_interval=0.05)


def stop_watching():
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _Job.poller is not None:
        _Job.poller.close()
        _Job.poller = None


def is_watching():
    return bpy.app.timers.is_registered(_tick)


class MVCAP_OT_submit(_Op):
    bl_idname = "mvcap.submit"
    bl_label = "Submit to Farm"
    bl_description = "Send the current asset or a folder with these settings to the farm and watch the job"
    bl_options = {"REGISTER"}

    def execute(self, context):
        s = _settings(context)
        try:
            spec = fields.settings_to_spec(s)
        except S.SpecError as exc:
            return self.fail(f"spec: {one_line(exc)}")
        if s.farm_source == "ASSET":
            paths = [bpy.path.abspath(s.asset_path)] if s.asset_path else []
            if not paths:
                return self.fail("no asset to submit: import one first, or submit a folder")
        else:
            folder = bpy.path.abspath(s.farm_folder)
            if not folder or not os.path.isdir(folder):
                return self.fail(f"folder {s.farm_folder!r} does not exist")
            paths = [folder]
        out = bpy.path.abspath(s.farm_output)
        if out.startswith("//"):  # unsaved .blend: no folder to be relative to
            out = os.path.join(os.path.expanduser("~"), out[2:])
        try:
            reply = farm_link.submit(s.farm_address, spec.to_dict(), paths, out, name=spec.name, caption=s.farm_caption)
            start_watching(context.scene, s.farm_address, reply["job_id"])
        except farm_link.FarmError as exc:
            return self.fail(one_line(exc))
        s.job_id, s.job_state, s.job_message = reply["job_id"], "queued", ""
        s.job_done = s.job_failed = 0
        s.job_total, s.job_progress = int(reply.get("objects", 0)), 0.0
        self.report({"INFO"}, f"submitted job {reply['job_id']}: {reply.get('objects', 0)} objects")
        return {"FINISHED"}


class MVCAP_OT_stop_watching(_Op):
    bl_idname = "mvcap.stop_watching"
    bl_label = "Stop Watching"
    bl_description = "Stop polling the farm for this job's progress (the job keeps running)"
    bl_options = {"REGISTER"}

    def execute(self, context):
        stop_watching()
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
    MVCAP_OT_render_view,
    MVCAP_OT_export_spec,
    MVCAP_OT_load_spec,
    MVCAP_OT_apply_preset,
    MVCAP_OT_submit,
    MVCAP_OT_stop_watching,
    MVCAP_MT_presets,
)


register, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def unregister():
    stop_watching()
    farm_link.shutdown()
    _unregister_classes()
