"""Workers that keep failing a job: the per-job blocklist, and the memory of who failed which task.

A worker with worker-caused failures on `threshold` distinct tasks of a job is blocked from that
job. When every live worker is blocked from a job, its queued tasks can never run and fail.
"""
from __future__ import annotations

import sqlite3
import time


def load_blocked(db: sqlite3.Connection) -> dict[str, set[str]]:
    """worker -> the job ids it may not take."""
    blocked: dict[str, set[str]] = {}
    for row in db.execute("SELECT job_id, worker FROM blocklist WHERE blocked = 1"):
        blocked.setdefault(row["worker"], set()).add(row["job_id"])
    return blocked


def load_failed_by(db: sqlite3.Connection) -> dict[int, set[str]]:
    """queued task -> the workers whose attempt at it failed."""
    failed_by: dict[int, set[str]] = {}
    for row in db.execute(
        "SELECT a.task_id, a.worker FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
        " WHERE t.state = 'queued' AND a.outcome IN ('asset', 'worker', 'timeout')"
    ):
        failed_by.setdefault(row[0], set()).add(row[1])
    return failed_by


class WorkerBlocklist:
    """Store part: counting worker failures per job, and failing what no live worker may run."""

    def _count_worker_failure(self, job_id: str, worker: str, threshold: int) -> None:
        """Blocklist a worker after worker-caused failures on `threshold` distinct tasks of a job
        (one asset failing again and again on it says more about the asset)."""
        failures = self.db.execute(
            "SELECT COUNT(DISTINCT a.task_id) FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
            " WHERE a.worker = ? AND a.outcome = 'worker' AND t.job_id = ?", (worker, job_id)).fetchone()[0]
        self.db.execute(
            "INSERT INTO blocklist (job_id, worker, failures) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id, worker) DO UPDATE SET failures = excluded.failures",
            (job_id, worker, failures),
        )
        if failures >= threshold and job_id not in self.blocked.get(worker, set()):
            self.db.execute("UPDATE blocklist SET blocked = 1 WHERE job_id = ? AND worker = ?", (job_id, worker))
            self.blocked.setdefault(worker, set()).add(job_id)
            self._event("blocklist", job_id, None, worker, f"{failures} failures on this job")

    def fail_unservable(self, live_workers: list[str], now: float | None = None) -> int:
        """Queued render tasks of a job that every live worker is blocked from can never run: fail them."""
        if not live_workers:
            return 0
        common = None
        for w in live_workers:
            jobs = self.blocked.get(w, set())
            common = set(jobs) if common is None else common & jobs
            if not common:
                return 0
        now = time.time() if now is None else now
        return sum(self._fail_queued_renders(job_id, now) for job_id in common or ())

    def _fail_queued_renders(self, job_id: str, now: float) -> int:
        rows = self.db.execute("SELECT task_id, object_id, queue FROM tasks WHERE job_id = ? AND state = 'queued'"
                               " AND queue = 'render'", (job_id,)).fetchall()
        error = "every live worker is blocklisted for this job"
        for row in rows:
            self.db.execute("UPDATE tasks SET state = 'failed', error = ?, updated = ? WHERE task_id = ?",
                            (error, now, row["task_id"]))
            self.db.execute("UPDATE objects SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                            (error, now, row["object_id"]))
        if rows:
            self._event("fail", job_id, detail=f"{len(rows)} tasks: every live worker is blocklisted")
            self.exports.invalidate(self.job(job_id)["out_root"])
            self._maybe_finished(job_id)
        return len(rows)
