"""Outcomes of a lease: done, failed (requeued while attempts are left), or given back.

Only the task's current attempt may report; a stale attempt changes nothing. A finished render of
a captioning job queues its caption task in the same transaction.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time

from blender_addon.rig.errors import one_line

from .schema import ADD_VIEWS, DEFAULT_BLOCKLIST_THRESHOLD, DONE, FAILED, QUEUED, check_transition


class TaskOutcomes:
    """Store part: complete, fail, release, and noticing that a job has finished."""

    @staticmethod
    def _may_move(row: sqlite3.Row | None, new_state: str) -> bool:
        """False for a stale attempt (no live lease); raises for a transition the machine lacks."""
        if row is None:
            return False
        check_transition(row["state"], new_state)
        return True

    def complete(self, task_id: int, attempt_id: int, result: dict | None = None,
                 now: float | None = None, row: sqlite3.Row | None = None,
                 blocklist_threshold: int = DEFAULT_BLOCKLIST_THRESHOLD) -> bool:
        """Mark the current attempt done. False (and nothing changes) for a stale attempt.
        `row`: the task's row from `current()` when the caller already has it. A render that
        succeeds after a failure elsewhere is evidence against that worker (blocklist.py)."""
        now = time.time() if now is None else now
        if row is None or row["attempt_id"] != attempt_id or row["task_id"] != task_id:
            row = self.current(task_id, attempt_id)
        if not self._may_move(row, DONE):
            return False
        render = row["queue"] == "render"
        if render:
            self._tally(row["job_id"])  # loaded before this attempt's outcome is written
        self.db.execute("UPDATE tasks SET state = 'done', error = NULL, lease_expires = NULL, updated = ?"
                        " WHERE task_id = ?", (now, task_id))
        tried = self.failed_by.pop(task_id, None)
        self.db.execute("UPDATE attempts SET ended = ?, outcome = 'done' WHERE attempt_id = ?", (now, attempt_id))
        if render:
            self._count_attempt(row["job_id"], row["worker"], "done", blocklist_threshold)
            if tried:
                self._blame_on_success(task_id, row["job_id"], row["worker"], blocklist_threshold)
            self._record_render(row, result or {}, now)
        self._maybe_finished(row["job_id"])
        return True

    def _record_render(self, row: sqlite3.Row, result: dict, now: float) -> None:
        """A finished render: the object's files and views, and its caption task when the job captions."""
        job = self.job(row["job_id"])
        files = [os.path.basename(str(f)) for f in result.get("files") or []]
        images = [f for f in files if not f.endswith(".json")]
        views = int(result.get("views") or len(images) or 0)
        if isinstance(result.get("views"), list):
            views = len(result["views"])
        key = self.db.execute("SELECT render_key FROM attempts WHERE attempt_id = ?", (row["attempt_id"],)).fetchone()
        quality = result.get("quality") or []
        if row["mode"] == ADD_VIEWS:  # the views before first_view were kept, and so is their quality
            kept = json.loads(self.object_row(row["object_id"])["quality"] or "[]")
            quality = [q for q in kept if q.get("view", 0) < row["first_view"]] + quality
        self.db.execute(
            "UPDATE objects SET status = 'done', error = NULL, attempts = ?, views = ?, files = ?,"
            " missing_textures = ?, quality = ?, result = ?, render_key = ?, updated = ? WHERE id = ?",
            (row["attempts"], views, json.dumps(images), json.dumps(result.get("missing_textures") or []),
             json.dumps(quality), json.dumps(result), key[0] if key else None, now,
             row["object_id"]),
        )
        if job["caption"]:
            self.db.execute(
                "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, updated)"
                " VALUES (?, ?, 'caption', 'caption', 'queued', ?, ?)",
                (row["job_id"], row["object_id"], row["priority"], now),
            )
        self.exports.touch(job["out_root"], row["object_id"])

    def fail(self, task_id: int, attempt_id: int, error: str, kind: str = "asset", now: float | None = None,
             blocklist_threshold: int = DEFAULT_BLOCKLIST_THRESHOLD) -> str | None:
        """The current attempt failed. Requeue while attempts are left, else fail the task.
        kind: "asset" (the asset's own verdict), "timeout" (the render hung), "worker" (a crash, a
        render fault or an error outside the asset), "env" (a full disk, too many open files...),
        "lost" (worker vanished or its lease ran out), "quality" (a view flagged under --quality
        fail: renders are deterministic, so it fails at once, with no retry). Timeout, worker and
        env failures blame no one until the evidence is in (blocklist.py).
        Returns the new state, or None for a stale attempt."""
        now = time.time() if now is None else now
        row = self.current(task_id, attempt_id)
        if row is None:
            return None
        job = self.job(row["job_id"])
        if row["queue"] == "render":
            self._tally(row["job_id"])  # loaded before this attempt's outcome is written
        error = one_line(error or "", 500) or "unknown error"
        new_state = QUEUED if row["attempts"] < job["max_attempts"] and kind != "quality" else FAILED
        check_transition(row["state"], new_state)
        self.db.execute(
            "UPDATE tasks SET state = ?, error = ?, worker = NULL, lease_expires = NULL, updated = ? WHERE task_id = ?",
            (new_state, error, now, task_id),
        )
        self.db.execute("UPDATE attempts SET ended = ?, outcome = ?, error = ? WHERE attempt_id = ?",
                        (now, kind, error, attempt_id))
        worker = row["worker"]
        self._event("fail" if new_state == FAILED else "requeue", row["job_id"], task_id, worker,
                    f"attempt {row['attempts']}/{job['max_attempts']} ({kind}): {error}")
        if worker:
            if new_state == QUEUED and kind in ("asset", "worker", "timeout", "env"):
                self.failed_by.setdefault(task_id, set()).add(worker)
            if row["queue"] == "render":
                self._count_attempt(row["job_id"], worker, kind, blocklist_threshold)
        if new_state == FAILED:
            self._record_failure(row, job, error, now)
        return new_state

    def _record_failure(self, row: sqlite3.Row, job: dict, error: str, now: float) -> None:
        """A task out of attempts: a render's object is marked failed; the job may be finished."""
        if row["queue"] == "render":
            self.db.execute(
                "UPDATE objects SET status = 'failed', error = ?, attempts = ?, updated = ? WHERE id = ?",
                (error, row["attempts"], now, row["object_id"]),
            )
            self.exports.touch(job["out_root"], row["object_id"])
        self._maybe_finished(row["job_id"])

    def release(self, task_id: int, attempt_id: int, reason: str, now: float | None = None) -> bool:
        """Give a lease back without spending an attempt (a worker shutting down cleanly)."""
        now = time.time() if now is None else now
        row = self.current(task_id, attempt_id)
        if not self._may_move(row, QUEUED):
            return False
        self.db.execute("UPDATE tasks SET state = 'queued', attempts = MAX(attempts - 1, 0), worker = NULL,"
                        " lease_expires = NULL, updated = ? WHERE task_id = ?", (now, task_id))
        self.db.execute("UPDATE attempts SET ended = ?, outcome = 'released', error = ? WHERE attempt_id = ?",
                        (now, reason, attempt_id))
        self._event("release", row["job_id"], task_id, row["worker"], reason)
        return True

    def _maybe_finished(self, job_id: str) -> None:
        if not self.db.execute("SELECT 1 FROM tasks WHERE job_id = ? AND state IN ('queued','leased') LIMIT 1",
                               (job_id,)).fetchone():
            self.finished_jobs.append(job_id)
            self._event("finished", job_id)
