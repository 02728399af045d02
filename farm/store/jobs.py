"""Job control and reporting: cancel, retry, and the per-job status the CLI shows."""
from __future__ import annotations

import time

from .schema import ACTIVE, LEASED


class JobControl:
    """Store part: `cancel`, `retry` and `status` of whole jobs."""

    def cancel(self, job_id: str) -> list[tuple[int, int, str]]:
        """Cancel a job. Returns the leases [(task_id, attempt_id, worker)] to call back."""
        job_id = self.find_job(job_id)
        now = time.time()
        with self.transaction():
            leased = [(r["task_id"], r["attempt_id"], r["worker"]) for r in self.db.execute(
                "SELECT task_id, attempt_id, worker FROM tasks WHERE job_id = ? AND state = 'leased'", (job_id,))]
            self.db.execute("UPDATE attempts SET ended = ?, outcome = 'canceled' WHERE attempt_id IN"
                            " (SELECT attempt_id FROM tasks WHERE job_id = ? AND state = 'leased')", (now, job_id))
            self.db.execute("UPDATE objects SET status = 'failed', error = 'canceled', updated = ? WHERE id IN"
                            " (SELECT object_id FROM tasks WHERE job_id = ? AND queue = 'render'"
                            " AND state IN ('queued','leased'))", (now, job_id))
            self.db.execute("UPDATE tasks SET state = 'canceled', error = 'canceled', worker = NULL,"
                            " lease_expires = NULL, updated = ? WHERE job_id = ? AND state IN ('queued','leased')",
                            (now, job_id))
            self.db.execute("UPDATE jobs SET canceled = 1 WHERE job_id = ?", (job_id,))
            self._jobs.pop(job_id, None)
            self._event("cancel", job_id, detail=f"{len(leased)} running tasks called back")
            self.exports.invalidate(self.job(job_id)["out_root"])
            self.finished_jobs.append(job_id)
        return leased

    def retry(self, job_id: str) -> int:
        """Queue a job's failed and canceled tasks again with a fresh attempt budget."""
        job_id = self.find_job(job_id)
        now = time.time()
        with self.transaction():
            self.db.execute("UPDATE objects SET status = 'pending', error = NULL, updated = ? WHERE id IN"
                            " (SELECT object_id FROM tasks WHERE job_id = ? AND queue = 'render'"
                            " AND state IN ('failed','canceled'))", (now, job_id))
            cur = self.db.execute("UPDATE tasks SET state = 'queued', attempts = 0, error = NULL, updated = ?"
                                  " WHERE job_id = ? AND state IN ('failed','canceled')", (now, job_id))
            self.db.execute("UPDATE jobs SET canceled = 0 WHERE job_id = ?", (job_id,))
            self.forget_blame(job_id)
            self._jobs.pop(job_id, None)
            self._event("retry", job_id, detail=f"{cur.rowcount} tasks queued again")
            self.exports.invalidate(self.job(job_id)["out_root"])
        return cur.rowcount

    def status(self, job_id: str | None = None, limit: int = 50) -> list[dict]:
        """Per job: counts of render and caption tasks by state, views done, recent failures."""
        if job_id:
            ids = [self.find_job(job_id)]
        else:
            ids = [r[0] for r in self.db.execute("SELECT job_id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]
        return [self._job_status(jid) for jid in ids]

    def _job_status(self, jid: str) -> dict:
        job = dict(self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (jid,)).fetchone())
        counts: dict[str, dict[str, int]] = {"render": {}, "caption": {}}
        for r in self.db.execute("SELECT queue, state, COUNT(*) FROM tasks WHERE job_id = ? GROUP BY queue, state",
                                 (jid,)):
            counts[r[0]][r[1]] = r[2]
        views_done = self.db.execute(
            # an add_views task rendered only its new views (RenderResult.rendered_views)
            "SELECT COALESCE(SUM(COALESCE(json_extract(o.result, '$.rendered_views'), o.views)), 0)"
            " FROM tasks t JOIN objects o ON o.id = t.object_id"
            " WHERE t.job_id = ? AND t.queue = 'render' AND t.state = 'done'", (jid,)).fetchone()[0]
        failures = [
            {"uid": r["uid"], "obj_id": r["obj_id"], "error": r["error"], "queue": r["queue"]}
            for r in self.db.execute(
                "SELECT o.uid, o.obj_id, t.error, t.queue FROM tasks t JOIN objects o ON o.id = t.object_id"
                " WHERE t.job_id = ? AND t.state = 'failed' ORDER BY o.obj_id LIMIT 20", (jid,))
        ]
        return {
            "job_id": jid, "name": job["name"], "out_root": job["out_root"], "state": _job_state(job, counts),
            "priority": job["priority"], "caption": bool(job["caption"]), "created": job["created"],
            "render": counts["render"], "caption_tasks": counts["caption"], "views_done": int(views_done),
            "failures": failures, "submitter": job["submitter"],
        }


def _job_state(job: dict, counts: dict[str, dict[str, int]]) -> str:
    """canceled, running (something leased), queued (something waiting) or finished."""
    if job["canceled"]:
        return "canceled"
    active = sum(counts["render"].get(s, 0) + counts["caption"].get(s, 0) for s in ACTIVE)
    if active:
        return "running" if (counts["render"].get(LEASED) or counts["caption"].get(LEASED)) else "queued"
    return "finished"
