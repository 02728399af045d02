"""Submit to a farm and watch the job: a bpy.app.timers poll that never blocks the UI, with
progress per view (the broker's STATUS counts views of finished objects and, from the workers'
PROGRESS messages, views of objects still rendering)."""
import os
import time

import bpy

from ..rig import spec as S
from ..rig.errors import one_line
from . import farm_link, fields
from .ops import MVCapOperator, redraw_sidebars, settings_of
from .ops_render import absolute_dir

POLL_INTERVAL_S = 0.5


class Watched:
    """The one job being watched: its poller and the scene whose panel shows it."""

    poller = None
    scene_name = ""


def _watched_settings():
    scene = bpy.data.scenes.get(Watched.scene_name)
    return scene.mvcap if scene is not None else None


def apply_job_status(s, job):
    """Copy a STATUS_REPLY job record into the panel's properties; True once the job has ended."""
    state, done, failed, total = farm_link.job_progress(job)
    s.job_state, s.job_done, s.job_failed, s.job_total = state, done, failed, total
    final = state.startswith("done") or state == "canceled"
    views = int(job.get("views_done", 0)) + int(job.get("views_in_flight", 0))
    per_object = s.job_views_total / total if total and s.job_views_total else 0
    s.job_views_done = min(views, s.job_views_total)
    if final and state.startswith("done"):
        s.job_progress = 100.0
    elif per_object:  # a failed object's views will never come: count them as settled
        s.job_progress = min(100.0, 100.0 * (views + failed * per_object) / s.job_views_total)
    else:
        s.job_progress = 100.0 * (done + failed) / total if total else 0.0
    return final


def poll_farm():
    """bpy.app.timers callback: one non-blocking poll; returns the next interval or None to stop."""
    s = _watched_settings()
    if Watched.poller is None or s is None:
        stop_watching()
        return None
    try:
        job = Watched.poller.poll(time.monotonic())
    except Exception as exc:
        s.job_message = one_line(exc)
        stop_watching()
        redraw_sidebars()
        return None
    if job is not None:
        final = apply_job_status(s, job)
        s.job_message = ""
        redraw_sidebars()
        if final:
            stop_watching()
            return None
    return POLL_INTERVAL_S


def start_watching(scene, auth, job_id):
    stop_watching()
    Watched.poller = farm_link.StatusPoller(auth, job_id)
    Watched.scene_name = scene.name
    bpy.app.timers.register(poll_farm, first_interval=0.05)


def stop_watching():
    if bpy.app.timers.is_registered(poll_farm):
        bpy.app.timers.unregister(poll_farm)
    if Watched.poller is not None:
        Watched.poller.close()
        Watched.poller = None


def is_watching():
    return bpy.app.timers.is_registered(poll_farm)


def _submit_paths(s):
    """The files or folder to submit; raises ValueError with the reason."""
    if s.farm_source == "ASSET":
        if not s.asset_path:
            raise ValueError("no asset to submit: import one first, or submit a folder")
        return [bpy.path.abspath(s.asset_path)]
    folder = bpy.path.abspath(s.farm_folder)
    if not folder or not os.path.isdir(folder):
        raise ValueError(f"folder {s.farm_folder!r} does not exist")
    return [folder]


class MVCAP_OT_submit(MVCapOperator):
    bl_idname = "mvcap.submit"
    bl_label = "Submit to Farm"
    bl_description = "Send the current asset or a folder with these settings to the farm and watch the job"

    def execute(self, context):
        s = settings_of(context)
        try:
            spec = fields.settings_to_spec(s)
            paths = _submit_paths(s)
        except (S.SpecError, ValueError) as exc:
            return self.fail(exc)
        try:
            auth = farm_link.peer(s.farm_address, bpy.path.abspath(s.farm_keys) if s.farm_keys else "", s.farm_key_name)
            reply = farm_link.submit(auth, spec.to_dict(), paths, absolute_dir(s.farm_output),
                                     name=spec.name, caption=s.farm_caption)
            start_watching(context.scene, auth, reply["job_id"])
        except farm_link.FarmError as exc:
            return self.fail(exc)
        s.job_id, s.job_state, s.job_message = reply["job_id"], "queued", ""
        s.job_done = s.job_failed = s.job_views_done = 0
        s.job_total, s.job_progress = int(reply.get("objects", 0)), 0.0
        s.job_views_total = int(reply.get("queued", reply.get("objects", 0))) * spec.view_count
        self.report({"INFO"}, f"submitted job {reply['job_id']}: {reply.get('objects', 0)} objects")
        return {"FINISHED"}


class MVCAP_OT_stop_watching(MVCapOperator):
    bl_idname = "mvcap.stop_watching"
    bl_label = "Stop Watching"
    bl_description = "Stop polling the farm for this job's progress (the job keeps running)"
    bl_options = {"REGISTER"}

    def execute(self, context):
        stop_watching()
        return {"FINISHED"}


CLASSES = (MVCAP_OT_submit, MVCAP_OT_stop_watching)

register, _unregister = bpy.utils.register_classes_factory(CLASSES)


def unregister():
    stop_watching()
    farm_link.shutdown()
    _unregister()
