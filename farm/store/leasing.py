"""Leasing: queued tasks handed to workers, each lease a fresh `attempt_id` with an expiry.

Render leases expire `LEASE_GRACE_S` after the job's timeout; caption leases live `lease_s` and are
extended by the captioner's heartbeats. A restarted broker gives leases of workers it has not met
yet a grace period in which their worker may reconnect and adopt them.
"""
from __future__ import annotations

import json
import sqlite3
import time

from .schema import FULL, LEASE_GRACE_S

_LEASED_FIELDS = ("obj_id", "uid", "asset", "category", "source", "out_rel", "views", "files")


def staged_fields(task: dict) -> dict:
    """TASK's `mode` and `first_view` for a task that keeps or replaces views on disk (none for a full render)."""
    mode = task.get("mode") or FULL
    return {} if mode == FULL else {"mode": mode, "first_view": int(task.get("first_view") or 0)}


class TaskLeasing:
    """Store part: lease, adopt, extend and expire leases; the TASK and CAPTION_TASKS payloads."""

    def lease(self, queue: str, workers: list[str], now: float | None = None,
              lease_s: float | None = None, live: set[str] | None = None,
              caption_model: str | None = None) -> list[tuple[str, dict]]:
        """Lease up to one queued task per worker (in order). Returns [(worker, task dict)].
        `live`: every live worker; a task goes back to a worker that failed it only when every
        live worker has failed it. `caption_model` (a caption lease): only tasks of jobs that name
        no caption model or this one ("" matches the jobs that name none)."""
        if not workers:
            return []
        now = time.time() if now is None else now
        by_model = "" if caption_model is None else \
            " AND t.job_id IN (SELECT job_id FROM jobs WHERE COALESCE(caption_model, '') IN ('', ?))"
        pending = self.db.execute(
            "SELECT t.task_id, t.job_id, t.kind, t.attempts, t.object_id, t.mode, t.first_view, o.obj_id, o.uid,"
            " o.asset, o.category,"
            " o.source, o.out_rel, o.views, o.files FROM tasks t JOIN objects o ON o.id = t.object_id"
            f" WHERE t.queue = ? AND t.state = 'queued'{by_model} ORDER BY t.priority DESC, t.task_id LIMIT ?",
            (queue, *(() if caption_model is None else (caption_model,)), len(workers) * 2 + 8),
        ).fetchall()
        out: list[tuple[str, dict]] = []
        task_updates = []
        attempt_rows = []
        for worker in workers:
            pick = self._pick(pending, worker, live)
            if pick is None:
                continue
            job = self.job(pick["job_id"])
            attempt_id = self._next_attempt
            self._next_attempt += 1
            expires = now + (lease_s if lease_s is not None else job["timeout_s"] + LEASE_GRACE_S)
            task_updates.append((attempt_id, worker, expires, now, pick["task_id"]))
            # the render key the worker is given: the object's files are recorded under it when done
            key = self.render_key(job, pick["source"])[0] if queue == "render" else None
            attempt_rows.append((attempt_id, pick["task_id"], worker, now, key))
            out.append((worker, {"task_id": pick["task_id"], "attempt_id": attempt_id, "job_id": pick["job_id"],
                                 "kind": pick["kind"], "object_id": pick["object_id"], "mode": pick["mode"],
                                 "first_view": pick["first_view"],
                                 "timeout_s": job["timeout_s"], "obj": {k: pick[k] for k in _LEASED_FIELDS}}))
        if task_updates:
            self.db.executemany(
                "UPDATE tasks SET state = 'leased', attempt_id = ?, attempts = attempts + 1, worker = ?,"
                " lease_expires = ?, updated = ? WHERE task_id = ?",
                task_updates,
            )
            self.db.executemany("INSERT INTO attempts (attempt_id, task_id, worker, started, render_key)"
                                " VALUES (?,?,?,?,?)",
                                attempt_rows)
        return out

    def _pick(self, pending: list[sqlite3.Row], worker: str, live: set[str] | None) -> sqlite3.Row | None:
        """Take the first of `pending` that `worker` may run (not blocked, not failed by it while
        another live worker has not tried it)."""
        blocked = self.blocked.get(worker)
        for i, row in enumerate(pending):
            if blocked and row["job_id"] in blocked:
                continue
            tried = self.failed_by.get(row["task_id"])
            if tried and worker in tried and live and not live <= tried:
                continue
            return pending.pop(i)
        return None

    def task_message(self, task: dict) -> dict:
        """The TASK message fields for a leased task."""
        job = self.job(task["job_id"])
        obj = task.get("obj") or self.object_row(task["object_id"])
        asset = {"uid": obj["uid"], "path": obj["asset"], "category": obj["category"], "source": obj["source"],
                 "out_rel": obj["out_rel"]}
        return {"task_id": task["task_id"], "attempt_id": task["attempt_id"], "job_id": task["job_id"],
                "kind": task["kind"], "asset": asset, "spec": job["spec"], "options": job["options"],
                "out_root": job["out_root"], "out_rel": obj["out_rel"], "obj_id": obj["obj_id"],
                "timeout_s": job["timeout_s"], **staged_fields(task)}

    def caption_payload(self, task: dict) -> dict:
        """One task of a CAPTION_TASKS reply, for a leased caption task."""
        job = self.job(task["job_id"])
        obj = task.get("obj") or self.object_row(task["object_id"])
        return {"task_id": task["task_id"], "attempt_id": task["attempt_id"], "obj_id": obj["obj_id"],
                "uid": obj["uid"], "category": obj["category"], "out_root": job["out_root"],
                "out_rel": obj["out_rel"], "files": json.loads(obj["files"] or "[]"),
                "caption_model": job["caption_model"]}

    def render_lease(self, task_id: int, attempt_id: int, worker: str) -> sqlite3.Row | None:
        """The task row when this attempt is a live render lease held by `worker`, else None."""
        row = self.current(task_id, attempt_id)
        if row is None or row["queue"] != "render" or row["worker"] != worker:
            return None
        return row

    def render_leases_of(self, worker: str) -> list[tuple[int, int]]:
        """(task_id, attempt_id) of every live render lease held under this worker name."""
        return [(r["task_id"], r["attempt_id"]) for r in self.db.execute(
            "SELECT task_id, attempt_id FROM tasks WHERE worker = ? AND state = 'leased' AND queue = 'render'",
            (worker,),
        ).fetchall()]

    def out_paths(self, row: sqlite3.Row) -> tuple[str, str]:
        """(out_root, out_rel) of a task row's object."""
        return self.job(row["job_id"])["out_root"], self.object_row(row["object_id"])["out_rel"]

    def adopt(self, task_id: int, attempt_id: int, worker: str, now: float | None = None) -> dict | None:
        """A worker reconnected (e.g. after a broker restart) while still running this attempt."""
        now = time.time() if now is None else now
        row = self.current(task_id, attempt_id)
        if row is None:
            return None
        job = self.job(row["job_id"])
        started = self.db.execute("SELECT started FROM attempts WHERE attempt_id = ?", (attempt_id,)).fetchone()
        expires = (started[0] if started else now) + job["timeout_s"] + LEASE_GRACE_S
        self.db.execute("UPDATE tasks SET worker = ?, lease_expires = ? WHERE task_id = ?", (worker, expires, task_id))
        return {"task_id": task_id, "attempt_id": attempt_id, "job_id": row["job_id"], "kind": row["kind"],
                "object_id": row["object_id"], "timeout_s": job["timeout_s"]}

    def extend(self, attempt_ids: list[int], seconds: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.executemany("UPDATE tasks SET lease_expires = ? WHERE attempt_id = ? AND state = 'leased'",
                            [(now + seconds, a) for a in attempt_ids])

    def expired(self, now: float | None = None) -> list[sqlite3.Row]:
        """Leased tasks whose lease ran out."""
        now = time.time() if now is None else now
        return self.db.execute(
            "SELECT task_id, attempt_id, worker, queue, job_id FROM tasks WHERE state = 'leased' AND lease_expires < ?",
            (now,),
        ).fetchall()

    def job_out_roots(self) -> list[str]:
        """Every OUT a job of this store writes in."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT out_root FROM jobs ORDER BY out_root")]

    def dead_attempts(self, out_root: str, attempt_ids: list[int]) -> set[int]:
        """Those of `attempt_ids` that are attempts of a job in `out_root` and no live lease."""
        dead: set[int] = set()
        for i in range(0, len(attempt_ids), 500):  # SQLite's bound-parameter limit
            chunk = attempt_ids[i:i + 500]
            dead.update(r[0] for r in self.db.execute(
                "SELECT a.attempt_id FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
                " JOIN jobs j ON j.job_id = t.job_id WHERE j.out_root = ?"
                f" AND a.attempt_id IN ({','.join('?' * len(chunk))})"
                " AND NOT (t.state = 'leased' AND t.attempt_id = a.attempt_id)", (out_root, *chunk)))
        return dead

    def recover(self, grace_s: float, now: float | None = None) -> int:
        """At broker start: leases held by workers the new broker has not met yet expire soon,
        unless their worker reconnects and adopts them."""
        now = time.time() if now is None else now
        with self.transaction():
            cur = self.db.execute(
                "UPDATE tasks SET lease_expires = MIN(COALESCE(lease_expires, ?), ?) WHERE state = 'leased'"
                " AND queue = 'render'",
                (now + grace_s, now + grace_s),
            )
            if cur.rowcount:
                self._event("recover", detail=f"{cur.rowcount} leased tasks wait {grace_s:.0f}s for their workers")
        return cur.rowcount
