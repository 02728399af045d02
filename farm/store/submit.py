"""Submit: a job and its assets become objects and queued tasks.

Objects are keyed by (out_root, out_rel) and get a dense `obj_id` per output folder at first
submit; it never changes, so a resumed run keeps its ids. The first submit to an output folder
also fixes its img_id stride. A done object rendered under the job's render key is skipped (and
queued for captions when the job captions and it has none); one rendered under another key is
refused, or re-rendered or extended as the job's `spec_change` says (submit_plan.py decides before
anything is written). An object that already has an active render task elsewhere has that task
moved into this job, so nothing runs twice.
"""
from __future__ import annotations

import json
import time
import uuid

from ..sources import task_kind_of
from .render_keys import check_spec_change, key_body, key_of
from .schema import DEFAULT_MAX_ATTEMPTS, FULL, StoreError
from .submit_plan import NEW, SKIP, plan_submit


class JobSubmission:
    """Store part: `submit` and its steps (upsert the object, queue its render or its caption)."""

    def submit(self, job: dict, assets: list[dict], now: float | None = None, append_to: str | None = None,
               submitter: str | None = None) -> dict:
        """Create a job and its tasks (or, with `append_to`, add assets to that job: big jobs
        arrive in several SUBMITs). `submitter`: the peer the job is recorded as submitted by.
        StoreError (nothing written) for objects rendered under another render key without a
        `spec_change`, or an asset beyond the img_id stride."""
        now = time.time() if now is None else now
        job, job_id = self._submitted_job(job, append_to)
        job = {**job, "job_id": job_id, "spec_change": check_spec_change(job.get("spec_change"))}
        out_root = str(job["out_root"])
        views = int(job.get("views") or 0)
        priority = int(job.get("priority") or 0)
        with self.transaction():
            plan = plan_submit(self.db, job, assets, lambda source: self.render_key(job, source))
            if append_to is None:
                self._insert_job(job_id, job, now, submitter)
            if plan.new_stride:
                self.db.execute("INSERT INTO outputs (out_root, img_id_stride) VALUES (?, ?)",
                                (out_root, plan.stride))
            bodies = dict(self.render_key(job, source) for source in {a.get("source") for a in assets})
            self.db.executemany("INSERT OR IGNORE INTO render_keys (render_key, body) VALUES (?, ?)",
                                [(key, json.dumps(body)) for key, body in bodies.items()])
            next_obj = self.db.execute(
                "SELECT COALESCE(MAX(obj_id) + 1, 0) FROM objects WHERE out_root = ?", (out_root,)
            ).fetchone()[0]
            queued = skipped = 0
            for asset, step in zip(assets, plan.steps):
                object_id = self._upsert_object(out_root, asset, step.object_id, next_obj, views, now)
                if step.action == NEW:
                    next_obj += 1
                if step.action == SKIP:
                    skipped += 1
                    if job.get("caption"):
                        self._queue_caption(job_id, object_id, priority, now)
                    continue
                self._queue_render(job_id, object_id, asset, views, priority, now, step)
                queued += 1
            self._event("submit", job_id, detail=f"{len(assets)} objects, {queued} queued, {skipped} already done")
            self.exports.dirty_roots.add(out_root)
            if queued == 0:
                self._maybe_finished(job_id)
        return {"job_id": job_id, "objects": len(assets), "queued": queued, "skipped": skipped}

    def render_key(self, job: dict, source: str | None) -> tuple[str, dict]:
        """(key, body) of what an object of `source` gets its files from in `job`; cached for a
        stored job (leases ask once per task)."""
        cache = self.__dict__.setdefault("_render_key_cache", {})
        ident = (job.get("job_id"), source)
        found = cache.get(ident) if ident[0] else None
        if found is None:
            body = key_body(job, source)
            found = (key_of(body), body)
            if ident[0]:
                if len(cache) > 1000:
                    cache.clear()
                cache[ident] = found
        return found

    def _submitted_job(self, job: dict, append_to: str | None) -> tuple[dict, str]:
        """(settings, job id): a new job, or with `append_to` the existing job the assets join."""
        if append_to is None:
            return job, uuid.uuid4().hex[:12]
        existing = self.job(self.find_job(append_to))
        if existing["out_root"] != str(job["out_root"]):
            raise StoreError(f"job {append_to}: appended assets must go to the same out_root")
        return ({**existing, "views": job.get("views"), "priority": existing["priority"],
                 "spec_change": job.get("spec_change")}, existing["job_id"])

    def _insert_job(self, job_id: str, job: dict, now: float, submitter: str | None) -> None:
        self.db.execute(
            "INSERT INTO jobs (job_id, name, out_root, spec, spec_hash, options, priority, max_attempts,"
            " timeout_s, caption, caption_model, created, submitter) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id, str(job.get("name") or "job"), str(job["out_root"]),
                json.dumps(job.get("spec")) if job.get("spec") is not None else None,
                job.get("spec_hash"), json.dumps(job.get("options") or {}), int(job.get("priority") or 0),
                int(job.get("max_attempts") or DEFAULT_MAX_ATTEMPTS), float(job.get("timeout_s") or 600.0),
                1 if job.get("caption") else 0, job.get("caption_model"), now, submitter,
            ),
        )

    def _upsert_object(self, out_root: str, asset: dict, object_id: int | None, new_obj_id: int, views: int,
                       now: float) -> int:
        """The object's row id: a new object (given `new_obj_id`) when `object_id` is None."""
        if object_id is None:
            cur = self.db.execute(
                "INSERT INTO objects (out_root, obj_id, uid, source, category, asset, out_rel, views,"
                " category_from, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (out_root, new_obj_id, asset["uid"], asset.get("source") or "folder", asset.get("category"),
                 asset["path"], asset["out_rel"], views, asset.get("category_from"), now),
            )
            self.exports.touch(out_root, cur.lastrowid)
            return cur.lastrowid
        self.exports.touch(out_root, object_id)
        # the asset may have moved or been re-categorised; the id stays
        self.db.execute(
            "UPDATE objects SET asset = ?, category = ?, category_from = ?, uid = ?, updated = ? WHERE id = ?",
            (asset["path"], asset.get("category"), asset.get("category_from"), asset["uid"], now, object_id),
        )
        return object_id

    def _queue_render(self, job_id: str, object_id: int, asset: dict, views: int, priority: int,
                      now: float, step) -> None:
        """A render task for the object in this job (`step`: full, add_views from a view, or
        rerender): its active task moved here, or a new one."""
        mode = step.action if step.action != NEW else FULL
        active = self.db.execute(
            "SELECT task_id FROM tasks WHERE object_id = ? AND queue = 'render'"
            " AND state IN ('queued','leased')",
            (object_id,),
        ).fetchone()
        if active is not None:
            self.db.execute("UPDATE tasks SET job_id = ?, priority = ?, mode = ?, first_view = ? WHERE task_id = ?",
                            (job_id, priority, mode, step.first_view, active[0]))
            return
        kind = task_kind_of(asset.get("source"))
        self.db.execute(
            "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, mode, first_view, updated)"
            " VALUES (?, ?, 'render', ?, 'queued', ?, ?, ?, ?)",
            (job_id, object_id, kind, priority, mode, step.first_view, now),
        )
        self.db.execute(
            "UPDATE objects SET status = 'pending', error = NULL, views = ?, updated = ? WHERE id = ?",
            (views, now, object_id),
        )

    def _queue_caption(self, job_id: str, object_id: int, priority: int, now: float) -> None:
        """A done object rendered earlier without captions gets captioned now (the captioner
        acknowledges at once when captions.json is already complete)."""
        if self.db.execute(
                "SELECT 1 FROM tasks WHERE object_id = ? AND queue = 'caption'"
                " AND state IN ('queued', 'leased', 'done') LIMIT 1", (object_id,)).fetchone():
            return
        self.db.execute(
            "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, updated)"
            " VALUES (?, ?, 'caption', 'caption', 'queued', ?, ?)",
            (job_id, object_id, priority, now))
