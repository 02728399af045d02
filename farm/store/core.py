"""The store's base: the SQLite connection, transactions, the event log and plain lookups.

Every other part of `Store` (submit, leasing, outcomes, blocklist, job control) builds on these.

One process at a time: a Store holds an exclusive lock (`<state>.lock`, with the holder's pid), so
a second broker on the same state refuses to start. A file that is not a farm state, or a damaged
one, is a StoreError (one line). A new state file is readable by its owner only (it lists paths).
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .blocklist import load_blocked, load_failed_by
from .export import ObjectsExport, object_record
from .schema import SCHEMA, StoreError
from .upgrade import follow_moves, upgrade


def lock_state(path: Path) -> int:
    """An exclusive lock on the state file (a file descriptor, released by closing it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"state file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreError(f"state file {path} is in use by another broker (pid {holder}); "
                         f"one broker per state file") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class StoreCore:
    """The connection and the in-memory state kept beside it. Not thread-safe: one per thread."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self._lock = lock_state(self.path)
        self.db: sqlite3.Connection | None = None
        try:
            self._open(fsync)
        except sqlite3.DatabaseError as exc:
            if self.db is not None:
                self.db.close()
            os.close(self._lock)
            raise StoreError(f"state file {self.path}: {exc} (not a farm state file, or a damaged one)") from None

    def _open(self, fsync: bool) -> None:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite's -wal/-shm copy its mode
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the broker); FULL also survives power loss.
        self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.executescript(SCHEMA)
        self._in_tx = False
        self._jobs: dict[str, dict] = {}
        with self.transaction():  # an older state file's columns; output roots that moved with it
            upgrade(self.db)
            follow_moves(self.db, self.path)
        self._next_attempt = (self.db.execute("SELECT COALESCE(MAX(attempt_id), 0) FROM attempts").fetchone()[0]) + 1
        self.blocked: dict[str, set[str]] = load_blocked(self.db)  # worker -> job ids it may not take
        # task -> workers whose attempt at it failed; a worker does not get such a task back while
        # another live worker has not tried it yet
        self.failed_by: dict[int, set[str]] = load_failed_by(self.db)
        self.tallies: dict[str, dict[str, list[int]]] = {}  # job -> worker -> [attempts, suspect failures]
        self.exports = ObjectsExport(self.db)
        self.finished_jobs: list[str] = []  # jobs that became finished in this transaction

    def close(self) -> None:
        self.db.close()
        os.close(self._lock)

    @contextmanager
    def transaction(self) -> Iterator["StoreCore"]:
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

    # --- lookups ------------------------------------------------------------------------------
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

    def object_row(self, object_id: int) -> dict:
        return dict(self.db.execute("SELECT * FROM objects WHERE id = ?", (object_id,)).fetchone())

    def task_row(self, task_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()

    def current(self, task_id: int, attempt_id: int) -> sqlite3.Row | None:
        """The task row when `attempt_id` is its live lease, else None (a stale report)."""
        row = self.db.execute(
            "SELECT * FROM tasks WHERE task_id = ? AND attempt_id = ? AND state = 'leased'", (task_id, attempt_id)
        ).fetchone()
        return row

    def objects(self, out_root: str) -> list[dict]:
        return [object_record(r) for r in
                self.db.execute("SELECT * FROM objects WHERE out_root = ? ORDER BY obj_id", (out_root,))]

    def upsert_worker(self, worker: str, host: str, pid: int, device: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.execute(
            "INSERT INTO workers (worker, host, pid, device, first_seen, last_seen) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT (worker) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            " device = excluded.device, last_seen = excluded.last_seen",
            (worker, host, pid, device, now, now),
        )

    # --- objects.jsonl ------------------------------------------------------------------------
    def export_objects(self, out_root: str) -> Path:
        """Rewrite OUT/objects.jsonl from the store now."""
        return self.exports.write(out_root)

    def flush_exports(self) -> None:
        """Rewrite every objects.jsonl that is stale."""
        self.exports.flush()
