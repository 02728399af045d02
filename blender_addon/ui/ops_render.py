"""Render operators: Render View (one view, in Blender) and Render All Views (every view, by the
farm's render_asset in a background Blender, with progress and cancel)."""
import os

import bpy

from ..rig import spec as S
from . import fields
from .ops import MVCapOperator, redraw_sidebars, settings_of

POLL_INTERVAL_S = 0.2


def absolute_dir(path):
    """A folder property as an absolute path; '//' (relative to an unsaved .blend) is under ~."""
    out = bpy.path.abspath(path)
    if out.startswith("//"):
        out = os.path.join(os.path.expanduser("~"), out[2:])
    return os.path.abspath(out)


class MVCAP_OT_render_view(MVCapOperator):
    bl_idname = "mvcap.render_view"
    bl_label = "Render View"
    bl_description = ("Render the current view with the spec's settings on a temporary scene (this scene's "
                      "render settings stay as they are) and show it in an Image Editor")

    def execute(self, context):
        from . import preview, preview_render

        s = settings_of(context)
        try:
            image, warnings = preview_render.render_view(context, s)
        except (S.SpecError, preview.RigError) as exc:
            return self.fail(exc)
        except Exception as exc:
            return self.fail(f"cannot render view {s.view_index}: {exc}")
        preview_render.show_image(context, image)
        done = f"rendered view {s.view_index} ({image.size[0]}x{image.size[1]})"
        if warnings:
            self.report({"WARNING"}, f"{done}; " + "; ".join(warnings))
        else:
            self.report({"INFO"}, done)
        return {"FINISHED"}


class _Running:
    job = None  # the one Render All Views running


class MVCAP_OT_render_all(MVCapOperator):
    bl_idname = "mvcap.render_all"
    bl_label = "Render All Views"
    bl_description = ("Render every view of the asset into the folder with the farm's own code, "
                      "then show a contact sheet (Esc cancels)")

    def _start(self, context):
        from .render_all import RenderAllJob

        s = settings_of(context)
        if _Running.job is not None:
            return self.fail("Render All Views is already running")
        if not s.asset_path or not os.path.isfile(s.asset_path):
            return self.fail("no asset: import one first (Import)")
        try:
            spec = fields.settings_to_spec(s)
        except S.SpecError as exc:
            return self.fail(f"cannot render: {exc}")
        out_dir = os.path.join(absolute_dir(s.render_folder), s.asset_uid)
        try:
            _Running.job = RenderAllJob(s.asset_path, spec, out_dir, s.asset_uid)
        except OSError as exc:
            return self.fail(f"cannot start the render process: {exc}")
        s.render_all_running, s.render_all_done, s.render_all_total = True, 0, spec.view_count
        s.render_all_progress = 0.0
        return None

    def _finish(self, context):
        from .render_all import show_contact_sheet

        job, _Running.job = _Running.job, None
        s = settings_of(context)
        s.render_all_running, s.render_all_done = False, job.done
        if job.cancelled:
            self.report({"WARNING"}, f"Render All Views cancelled after {job.done} of {job.total} views")
            return {"CANCELLED"}
        if job.error:
            return self.fail(f"Render All Views failed: {job.error}")
        show_contact_sheet(context, job.sheet)
        warnings = job.result.get("warnings") or []
        text = f"rendered {job.result['views']} views into {job.out_dir}"
        self.report({"WARNING"} if warnings else {"INFO"}, "; ".join([text, *warnings]))
        return {"FINISHED"}

    def execute(self, context):  # from a script: wait for the end
        failed = self._start(context)
        if failed:
            return failed
        _Running.job.wait()
        return self._finish(context)

    def invoke(self, context, event):  # from the panel: a modal operator that polls
        failed = self._start(context)
        if failed:
            return failed
        self._timer = context.window_manager.event_timer_add(POLL_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = _Running.job
        if event.type == "ESC" and job is not None:
            job.cancel()
        if event.type not in ("TIMER", "ESC") or job is None:
            return {"PASS_THROUGH"}
        if not job.poll():
            s = settings_of(context)
            s.render_all_done, s.render_all_progress = job.done, 100.0 * job.done / max(job.total, 1)
            redraw_sidebars()
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context)


class MVCAP_OT_render_all_cancel(MVCapOperator):
    bl_idname = "mvcap.render_all_cancel"
    bl_label = "Cancel"
    bl_description = "Stop Render All Views (the views already rendered stay in the folder)"
    bl_options = {"REGISTER"}

    def execute(self, context):
        if _Running.job is not None:
            _Running.job.cancel()
        return {"FINISHED"}


def cancel_running():
    """Stop a running Render All Views (add-on unregister)."""
    if _Running.job is not None:
        _Running.job.cancel()
        _Running.job = None


CLASSES = (MVCAP_OT_render_view, MVCAP_OT_render_all, MVCAP_OT_render_all_cancel)

register, _unregister = bpy.utils.register_classes_factory(CLASSES)


def unregister():
    cancel_running()
    _unregister()
