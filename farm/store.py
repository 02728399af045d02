"""The farm's durable job store: SQLite in WAL mode, one writer (the broker).

Tables: jobs, objects, tasks, attempts, workers, blocklist, events.

Task state machine (Flamenco-style, every transition is in `TRANSITIONS`):

    queued --lease--> leased --complete--> done
                        |----fail/lost/expire--> queued   (attempts left)
                        |----fail/lost/expire--> failed   (attempts used up)
    queued|leased --cancel--> canceled
    failed|canceled --retry--> queued                     (a fresh attempt budget)

Objects are keyed by (out_root, out_rel) and get a dense `obj_id` (0, 1, 2, ...) per output
folder at first submit; it never changes, so a resumed run keeps its ids. Each lease gets a new
`attempt_id`; only a report for the task's current attempt is accepted.

Render and caption work share the machinery: `tasks.queue` is "render" or "caption". When a render
completes and its job has captioning on, the caption task is queued in the same transaction.

The broker batches many operations into one transaction (group commit) and sends replies only
after the commit, so what a peer was told is always on disk.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from blender_addon.rig.fileio import atomic_write_text

from .layout import OBJECTS_JSONL

QUEUED, LEASED, DONE, FAILED, CANCELED = "queued", "leased", "done", "failed", "canceled"
ACTIVE = (QUEUED, LEASED)
TRANSITIONS = {
    QUEUED: {LEASED, CANCELED},
    LEASED: {DONE, QUEUED, FAILED, CANCELED},
    DONE: set(),
    FAILED: {QUEUED},
    CANCELED: {QUEUED},
}



def check_transition(old: str, new: str) -> None:
    """Every state change goes through here (the SQL also guards with `WHERE state = old`)."""
    if new not in TRANSITIONS.get(old, ()):
        raise StoreError(f"task state {old} -> {new} is not allowed")


DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BLOCKLIST_THRESHOLD = 3  # worker-caused failures in one job before the worker is blocked
LEASE_GRACE_S = 30.0  # past a render's timeout before the broker gives up on the lease
CAPTION_LEASE_S = 300.0  # a caption lease lives this long without CAPTION_HEARTBEAT

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    out_root TEXT NOT NULL,
    spec TEXT,
    spec_hash TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout_s REAL NOT NULL,
    caption INTEGER NOT NULL DEFAULT 0,
    caption_model TEXT,
    canceled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    out_root TEXT NOT NULL,
    obj_id INTEGER NOT NULL,
    uid TEXT NOT NULL,
    source TEXT NOT NULL,
    category TEXT,
    asset TEXT NOT NULL,
    out_rel TEXT NOT NULL,
    views INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    files TEXT NOT NULL DEFAULT '[]',
    missing_textures TEXT NOT NULL DEFAULT '[]',
    quality TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    updated REAL NOT NULL,
    UNIQUE (out_root, out_rel),
    UNIQUE (out_root, obj_id)
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    object_id INTEGER NOT NULL,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    attempt_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease_expires REAL,
    error TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_pick ON tasks (queue, state, priority DESC, task_id);
CREATE INDEX IF NOT EXISTS tasks_job_state ON tasks (job_id, state);
CREATE INDEX IF NOT EXISTS tasks_object ON tasks (object_id, queue, state);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    outcome TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS workers (
    worker TEXT PRIMARY KEY,
    host TEXT, pid INTEGER, device TEXT,
    first_seen REAL, last_seen REAL
);
CREATE TABLE IF NOT EXISTS blocklist (
    job_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, worker)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    job_id TEXT, task_id INTEGER, worker TEXT,
    kind TEXT NOT NULL,
    detail TEXT
);
"""


class StoreError(ValueError):
    """A request the store refuses (unknown job, bad submit). One line, sent back as ERROR."""


class Store:
    """All durable farm state. Not thread-safe: one Store per thread (the broker owns one)."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the broker); FULL also survives power loss.
        self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.executescript(SCHEMA)
        self._in_tx = False
        self._next_attempt = (self.db.execute("SELECT COALESCE(MAX(attempt_id), 0) FROM attempts").fetchone()[0]) + 1
        self._jobs: dict[str, dict] = {}
        self.blocked: dict[str, set[str]] = {}  # worker -> job ids it may not take
        for row in self.db.execute("SELECT job_id, worker FROM blocklist WHERE blocked = 1"):
            self.blocked.setdefault(row["worker"], set()).add(row["job_id"])
        # task -> workers whose attempt at it failed; a worker does not get such a task back while
        # another live worker has not tried it yet
        self.failed_by: dict[int, set[str]] = {}
        for row in self.db.execute(
            "SELECT a.task_id, a.worker FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
            " WHERE t.state = 'queued' AND a.outcome IN ('asset', 'worker', 'timeout')"
        ):
            self.failed_by.setdefault(row[0], set()).add(row[1])
        self.dirty_roots: set[str] = set()  # out_roots whose objects.jsonl is stale
        self._lines: dict[str, dict[int, str]] = {}  # out_root -> obj_id -> objects.jsonl line
        self._changed: dict[str, set[int]] = {}  # out_root -> object row ids to encode again
        self.finished_jobs: list[str] = []  # jobs that became finished in this transaction

    def close(self) -> None:
        self.db.close()

    # --- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """One write transaction; nested use joins the outer one (group commit)."""
        if self._in_tx:
            yield self
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield self
        except BaseException:
            self.db.execute("ROLLBACK")
            self._jobs.clear()
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._in_tx = False

    def _event(self, kind: str, job_id: str | None = None, task_id: int | None = None,
               worker: str | None = None, detail: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO events (ts, job_id, task_id, worker, kind, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), job_id, task_id, worker, kind, detail),
        )

    def job(self, job_id: str) -> dict:
        """A job's settings (cached; jobs never change after submit except `canceled`)."""
        cached = self._jobs.get(job_id)
        if cached is not None:
            return cached
        row = self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise StoreError(f"job {job_id!r} is unknown")
        job = dict(row)
        job["spec"] = json.loads(job["spec"]) if job["spec"] else None
        job["options"] = json.loads(job["options"] or "{}")
        self._jobs[job_id] = job
        return job

    def find_job(self, prefix: str) -> str:
        """A job id from a unique prefix (like git)."""
        rows = self.db.execute("SELECT job_id FROM jobs WHERE job_id LIKE ? LIMIT 2", (prefix + "%",)).fetchall()
        if not rows:
            raise StoreError(f"job {prefix!r} is unknown")
        if len(rows) > 1:
            raise StoreError(f"job {prefix!r} is ambiguous; give more characters")
        return rows[0][0]

    # --- submit -------------------------------------------------------------------------------
    def submit(self, job: dict, assets: list[dict], now: float | None = None, append_to: str | None = None) -> dict:
        """Create a job and its tasks (or, with `append_to`, add assets to that job: big jobs
        arrive in several SUBMITs). Done objects are skipped; an object that already has an
        active task elsewhere has that task moved into this job (so nothing runs twice)."""
        now = time.time() if now is None else now
        if append_to is not None:
            existing = self.job(self.find_job(append_to))
            if existing["out_root"] != str(job["out_root"]):
                raise StoreError(f"job {append_to}: appended assets must go to the same out_root")
            job = {**existing, "views": job.get("views"), "priority": existing["priority"]}
        out_root = str(job["out_root"])
        job_id = existing["job_id"] if append_to is not None else uuid.uuid4().hex[:12]
        views = int(job.get("views") or 0)
        priority = int(job.get("priority") or 0)
        with self.transaction():
            if append_to is None:
                self._insert_job(job_id, job, now)
            next_obj = self.db.execute(
                "SELECT COALESCE(MAX(obj_id) + 1, 0) FROM objects WHERE out_root = ?", (out_root,)
            ).fetchone()[0]
            queued = skipped = 0
            for asset in assets:
                out_rel = asset["out_rel"]
                row = self.db.execute(
                    "SELECT id, status FROM objects WHERE out_root = ? AND out_rel = ?", (out_root, out_rel)
                ).fetchone()
                if row is None:
                    cur = self.db.execute(
                        "INSERT INTO objects (out_root, obj_id, uid, source, category, asset, out_rel, views,"
                        " updated) VALUES (?,?,?,?,?,?,?,?,?)",
                        (out_root, next_obj, asset["uid"], asset.get("source") or "folder", asset.get("category"),
                         asset["path"], out_rel, views, now),
                    )
                    next_obj += 1
                    object_id = cur.lastrowid
                    self._touch(out_root, object_id)
                else:
                    object_id = row["id"]
                    self._touch(out_root, object_id)
                    # the asset may have moved or been re-categorised; the id stays
                    self.db.execute(
                        "UPDATE objects SET asset = ?, category = ?, uid = ?, updated = ? WHERE id = ?",
                        (asset["path"], asset.get("category"), asset["uid"], now, object_id),
                    )
                    if row["status"] == "done":
                        skipped += 1
                        if job.get("caption") and not self.db.execute(
                                "SELECT 1 FROM tasks WHERE object_id = ? AND queue = 'caption'"
                                " AND state IN ('queued', 'leased', 'done') LIMIT 1", (object_id,)).fetchone():
                            # rendered earlier without captions: caption it now (the captioner
                            # acknowledges at once when captions.json is already complete)
                            self.db.execute(
                                "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, updated)"
                                " VALUES (?, ?, 'caption', 'caption', 'queued', ?, ?)",
                                (job_id, object_id, priority, now))
                        continue
                active = self.db.execute(
                    "SELECT task_id FROM tasks WHERE object_id = ? AND queue = 'render'"
                    " AND state IN ('queued','leased')",
                    (object_id,),
                ).fetchone()
                if active is not None:
                    self.db.execute("UPDATE tasks SET job_id = ?, priority = ? WHERE task_id = ?",
                                    (job_id, priority, active[0]))
                    queued += 1
                    continue
                kind = "mvimgnet" if asset.get("source") == "mvimgnet" else "render"
                self.db.execute(
                    "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, updated)"
                    " VALUES (?, ?, 'render', ?, 'queued', ?, ?)",
                    (job_id, object_id, kind, priority, now),
                )
                self.db.execute(
                    "UPDATE objects SET status = 'pending', error = NULL, views = ?, updated = ? WHERE id = ?",
                    (views, now, object_id),
                )
                queued += 1
            self._event("submit", job_id, detail=f"{len(assets)} objects, {queued} queued, {skipped} already done")
            self.dirty_roots.add(out_root)
            if queued == 0:
                self._maybe_finished(job_id)
        return {"job_id": job_id, "objects": len(assets), "queued": queued, "skipped": skipped}

    def _insert_job(self, job_id: str, job: dict, now: float) -> None:
        self.db.execute(
            "INSERT INTO jobs (job_id, name, out_root, spec, spec_hash, options, priority, max_attempts,"
            " timeout_s, caption, caption_model, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id, str(job.get("name") or "job"), str(job["out_root"]),
                json.dumps(job.get("spec")) if job.get("spec") is not None else None,
                job.get("spec_hash"), json.dumps(job.get("options") or {}), int(job.get("priority") or 0),
                int(job.get("max_attempts") or DEFAULT_MAX_ATTEMPTS), float(job.get("timeout_s") or 600.0),
                1 if job.get("caption") else 0, job.get("caption_model"), now,
            ),
        )

    # --- leasing ------------------------------------------------------------------------------
    def lease(self, queue: str, workers: list[str], now: float | None = None,
              lease_s: float | None = None, live: set[str] | None = None) -> list[tuple[str, dict]]:
        """Lease up to one queued task per worker (in order). Returns [(worker, task dict)].
        `live`: every live worker; a task goes back to a worker that failed it only when every
        live worker has failed it."""
        if not workers:
            return []
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT t.task_id, t.job_id, t.kind, t.attempts, t.object_id, o.obj_id, o.uid, o.asset, o.category,"
            " o.source, o.out_rel, o.views, o.files FROM tasks t JOIN objects o ON o.id = t.object_id"
            " WHERE t.queue = ? AND t.state = 'queued' ORDER BY t.priority DESC, t.task_id LIMIT ?",
            (queue, len(workers) * 2 + 8),
        ).fetchall()
        out: list[tuple[str, dict]] = []
        pending = list(rows)
        task_updates = []
        attempt_rows = []
        for worker in workers:
            blocked = self.blocked.get(worker)
            pick = None
            for i, row in enumerate(pending):
                if blocked and row["job_id"] in blocked:
                    continue
                tried = self.failed_by.get(row["task_id"])
                if tried and worker in tried and live and not live <= tried:
                    continue
                pick = pending.pop(i)
                break
            if pick is None:
                continue
            job = self.job(pick["job_id"])
            attempt_id = self._next_attempt
            self._next_attempt += 1
            expires = now + (lease_s if lease_s is not None else job["timeout_s"] + LEASE_GRACE_S)
            task_updates.append((attempt_id, worker, expires, now, pick["task_id"]))
            attempt_rows.append((attempt_id, pick["task_id"], worker, now))
            obj = {k: pick[k] for k in ("obj_id", "uid", "asset", "category", "source", "out_rel", "views", "files")}
            out.append((worker, {"task_id": pick["task_id"], "attempt_id": attempt_id, "job_id": pick["job_id"],
                                 "kind": pick["kind"], "object_id": pick["object_id"],
                                 "timeout_s": job["timeout_s"], "obj": obj}))
        if task_updates:
            self.db.executemany(
                "UPDATE tasks SET state = 'leased', attempt_id = ?, attempts = attempts + 1, worker = ?,"
                " lease_expires = ?, updated = ? WHERE task_id = ?",
                task_updates,
            )
            self.db.executemany("INSERT INTO attempts (attempt_id, task_id, worker, started) VALUES (?,?,?,?)",
                                attempt_rows)
        return out

    def object_row(self, object_id: int) -> dict:
        return dict(self.db.execute("SELECT * FROM objects WHERE id = ?", (object_id,)).fetchone())

    def task_message(self, task: dict) -> dict:
        """The TASK message fields for a leased task."""
        job = self.job(task["job_id"])
        obj = task.get("obj") or self.object_row(task["object_id"])
        asset = {"uid": obj["uid"], "path": obj["asset"], "category": obj["category"], "source": obj["source"],
                 "out_rel": obj["out_rel"]}
        return {"task_id": task["task_id"], "attempt_id": task["attempt_id"], "job_id": task["job_id"],
                "kind": task["kind"], "asset": asset, "spec": job["spec"], "options": job["options"],
                "out_root": job["out_root"], "out_rel": obj["out_rel"], "obj_id": obj["obj_id"],
                "timeout_s": job["timeout_s"]}

    @staticmethod
    def _may_move(row: sqlite3.Row | None, new_state: str) -> bool:
        """False for a stale attempt (no live lease); raises for a transition the machine lacks."""
        if row is None:
            return False
        check_transition(row["state"], new_state)
        return True

    def current(self, task_id: int, attempt_id: int) -> sqlite3.Row | None:
        """The task row when `attempt_id` is its live lease, else None (a stale report)."""
        row = self.db.execute(
            "SELECT * FROM tasks WHERE task_id = ? AND attempt_id = ? AND state = 'leased'", (task_id, attempt_id)
        ).fetchone()
        return row

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

    # --- outcomes -----------------------------------------------------------------------------
    def complete(self, task_id: int, attempt_id: int, result: dict | None = None,
                 now: float | None = None, row: sqlite3.Row | None = None) -> bool:
        """Mark the current attempt done. False (and nothing changes) for a stale attempt.
        `row`: the task's row from `current()` when the caller already has it."""
        now = time.time() if now is None else now
        if row is None or row["attempt_id"] != attempt_id or row["task_id"] != task_id:
            row = self.current(task_id, attempt_id)
        if not self._may_move(row, DONE):
            return False
        self.db.execute("UPDATE tasks SET state = 'done', error = NULL, lease_expires = NULL, updated = ?"
                        " WHERE task_id = ?", (now, task_id))
        self.failed_by.pop(task_id, None)
        self.db.execute("UPDATE attempts SET ended = ?, outcome = 'done' WHERE attempt_id = ?", (now, attempt_id))
        job = self.job(row["job_id"])
        if row["queue"] == "render":
            result = result or {}
            files = [os.path.basename(str(f)) for f in result.get("files") or []]
            images = [f for f in files if not f.endswith(".json")]
            views = int(result.get("views") or len(images) or 0)
            if isinstance(result.get("views"), list):
                views = len(result["views"])
            self.db.execute(
                "UPDATE objects SET status = 'done', error = NULL, attempts = ?, views = ?, files = ?,"
                " missing_textures = ?, quality = ?, result = ?, updated = ? WHERE id = ?",
                (row["attempts"], views, json.dumps(images), json.dumps(result.get("missing_textures") or []),
                 json.dumps(result.get("quality") or []), json.dumps(result), now, row["object_id"]),
            )
            if job["caption"]:
                self.db.execute(
                    "INSERT INTO tasks (job_id, object_id, queue, kind, state, priority, updated)"
                    " VALUES (?, ?, 'caption', 'caption', 'queued', ?, ?)",
                    (row["job_id"], row["object_id"], row["priority"], now),
                )
            self._touch(job["out_root"], row["object_id"])
        self._maybe_finished(row["job_id"])
        return True

    def fail(self, task_id: int, attempt_id: int, error: str, kind: str = "asset", now: float | None = None,
             blocklist_threshold: int = DEFAULT_BLOCKLIST_THRESHOLD) -> str | None:
        """The current attempt failed. Requeue while attempts are left, else fail the task.
        kind: "asset" (the asset's fault), "timeout" (the render hung), "worker" (crash or error
        outside the asset: counts toward the worker's blocklist for this job), "lost" (worker
        vanished or its lease ran out).
        Returns the new state, or None for a stale attempt."""
        now = time.time() if now is None else now
        row = self.current(task_id, attempt_id)
        if row is None:
            return None
        job = self.job(row["job_id"])
        error = (error or "unknown error").strip().splitlines()[0][:500] if (error or "").strip() else "unknown error"
        new_state = QUEUED if row["attempts"] < job["max_attempts"] else FAILED
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
            if new_state == QUEUED and kind in ("asset", "worker", "timeout"):
                self.failed_by.setdefault(task_id, set()).add(worker)
            if kind == "worker":
                self._count_worker_failure(row["job_id"], worker, blocklist_threshold)
        if new_state == FAILED:
            if row["queue"] == "render":
                self.db.execute(
                    "UPDATE objects SET status = 'failed', error = ?, attempts = ?, updated = ? WHERE id = ?",
                    (error, row["attempts"], now, row["object_id"]),
                )
                self._touch(job["out_root"], row["object_id"])
            self._maybe_finished(row["job_id"])
        return new_state

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
        count = 0
        for job_id in common or ():
            rows = self.db.execute("SELECT task_id, object_id, queue FROM tasks WHERE job_id = ? AND state = 'queued'"
                                   " AND queue = 'render'", (job_id,)).fetchall()
            for row in rows:
                error = "every live worker is blocklisted for this job"
                self.db.execute("UPDATE tasks SET state = 'failed', error = ?, updated = ? WHERE task_id = ?",
                                (error, now, row["task_id"]))
                self.db.execute("UPDATE objects SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                                (error, now, row["object_id"]))
                count += 1
            if rows:
                self._event("fail", job_id, detail=f"{len(rows)} tasks: every live worker is blocklisted")
                self._invalidate(self.job(job_id)["out_root"])
                self._maybe_finished(job_id)
        return count

    def expired(self, now: float | None = None) -> list[sqlite3.Row]:
        """Leased tasks whose lease ran out."""
        now = time.time() if now is None else now
        return self.db.execute(
            "SELECT task_id, attempt_id, worker, queue FROM tasks WHERE state = 'leased' AND lease_expires < ?", (now,)
        ).fetchall()

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

    def extend(self, attempt_ids: list[int], seconds: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.executemany("UPDATE tasks SET lease_expires = ? WHERE attempt_id = ? AND state = 'leased'",
                            [(now + seconds, a) for a in attempt_ids])

    # --- jobs ---------------------------------------------------------------------------------
    def _maybe_finished(self, job_id: str) -> None:
        if not self.db.execute("SELECT 1 FROM tasks WHERE job_id = ? AND state IN ('queued','leased') LIMIT 1",
                               (job_id,)).fetchone():
            self.finished_jobs.append(job_id)
            self._event("finished", job_id)

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
            self._invalidate(self.job(job_id)["out_root"])
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
            self.db.execute("DELETE FROM blocklist WHERE job_id = ?", (job_id,))
            for jobs in self.blocked.values():
                jobs.discard(job_id)
            self._jobs.pop(job_id, None)
            self._event("retry", job_id, detail=f"{cur.rowcount} tasks queued again")
            self._invalidate(self.job(job_id)["out_root"])
        return cur.rowcount

    def status(self, job_id: str | None = None, limit: int = 50) -> list[dict]:
        """Per job: counts of render and caption tasks by state, views done, recent failures."""
        if job_id:
            ids = [self.find_job(job_id)]
        else:
            ids = [r[0] for r in self.db.execute("SELECT job_id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]
        out = []
        for jid in ids:
            job = dict(self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (jid,)).fetchone())
            counts: dict[str, dict[str, int]] = {"render": {}, "caption": {}}
            for r in self.db.execute("SELECT queue, state, COUNT(*) FROM tasks WHERE job_id = ? GROUP BY queue, state",
                                     (jid,)):
                counts[r[0]][r[1]] = r[2]
            views_done = self.db.execute(
                "SELECT COALESCE(SUM(o.views), 0) FROM tasks t JOIN objects o ON o.id = t.object_id"
                " WHERE t.job_id = ? AND t.queue = 'render' AND t.state = 'done'", (jid,)).fetchone()[0]
            failures = [
                {"uid": r["uid"], "obj_id": r["obj_id"], "error": r["error"]}
                for r in self.db.execute(
                    "SELECT o.uid, o.obj_id, t.error FROM tasks t JOIN objects o ON o.id = t.object_id"
                    " WHERE t.job_id = ? AND t.state = 'failed' ORDER BY o.obj_id LIMIT 20", (jid,))
            ]
            active = sum(counts["render"].get(s, 0) + counts["caption"].get(s, 0) for s in ACTIVE)
            if job["canceled"]:
                state = "canceled"
            elif active:
                state = "running" if (counts["render"].get(LEASED) or counts["caption"].get(LEASED)) else "queued"
            else:
                state = "finished"
            out.append({
                "job_id": jid, "name": job["name"], "out_root": job["out_root"], "state": state,
                "priority": job["priority"], "caption": bool(job["caption"]), "created": job["created"],
                "render": counts["render"], "caption_tasks": counts["caption"], "views_done": int(views_done),
                "failures": failures,
            })
        return out

    def upsert_worker(self, worker: str, host: str, pid: int, device: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.execute(
            "INSERT INTO workers (worker, host, pid, device, first_seen, last_seen) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT (worker) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            " device = excluded.device, last_seen = excluded.last_seen",
            (worker, host, pid, device, now, now),
        )

    # --- caption queue ------------------------------------------------------------------------
    def caption_payload(self, task: dict) -> dict:
        job = self.job(task["job_id"])
        obj = task.get("obj") or self.object_row(task["object_id"])
        return {"task_id": task["task_id"], "attempt_id": task["attempt_id"], "obj_id": obj["obj_id"],
                "uid": obj["uid"], "category": obj["category"], "out_root": job["out_root"],
                "out_rel": obj["out_rel"], "files": json.loads(obj["files"] or "[]"),
                "caption_model": job["caption_model"]}

    def task_row(self, task_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()

    # --- objects.jsonl ------------------------------------------------------------------------
    @staticmethod
    def _object_record(r: sqlite3.Row) -> dict:
        return {
            "obj_id": r["obj_id"], "uid": r["uid"], "source": r["source"], "category": r["category"],
            "asset": r["asset"], "out_rel": r["out_rel"], "views": r["views"], "status": r["status"],
            "error": r["error"], "attempts": r["attempts"],
            "missing_textures": json.loads(r["missing_textures"] or "[]"),
            "quality": json.loads(r["quality"] or "[]"),
        }

    def objects(self, out_root: str) -> list[dict]:
        return [self._object_record(r) for r in
                self.db.execute("SELECT * FROM objects WHERE out_root = ? ORDER BY obj_id", (out_root,))]

    def _touch(self, out_root: str, object_id: int) -> None:
        self.dirty_roots.add(out_root)
        if out_root in self._lines:
            self._changed.setdefault(out_root, set()).add(object_id)

    def _invalidate(self, out_root: str) -> None:
        """Many objects changed: the next export reads them all."""
        self.dirty_roots.add(out_root)
        self._lines.pop(out_root, None)
        self._changed.pop(out_root, None)

    def export_objects(self, out_root: str) -> Path:
        """Rewrite OUT/objects.jsonl atomically from the store. Lines are cached per object and
        only objects changed since the last export are encoded again."""
        cache = self._lines.get(out_root)
        if cache is None:
            cache = {}
            rows = self.db.execute("SELECT * FROM objects WHERE out_root = ?", (out_root,)).fetchall()
        else:
            ids = sorted(self._changed.pop(out_root, set()))
            rows = []
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                rows += self.db.execute(f"SELECT * FROM objects WHERE id IN ({','.join('?' * len(part))})",
                                        part).fetchall()
        for r in rows:
            cache[r["obj_id"]] = json.dumps(self._object_record(r), ensure_ascii=False) + "\n"
        self._lines[out_root] = cache
        self._changed.pop(out_root, None)
        text = "".join(cache[k] for k in sorted(cache))
        return atomic_write_text(Path(out_root) / OBJECTS_JSONL, text)

    def flush_exports(self) -> None:
        roots, self.dirty_roots = self.dirty_roots, set()
        for root in roots:
            try:
                self.export_objects(root)
            except OSError:
                self.dirty_roots.add(root)
                raise
