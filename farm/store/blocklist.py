"""Who is to blame for a failure, by evidence, and the per-job blocklist that follows.

A failure is either the asset's own verdict (`asset`: the importer said why) or a suspect one
(`worker`: a crash, a render fault, an error outside the asset; `timeout`; `env`) whose cause is
not known yet. A suspect failure blames no one when it happens: a child that aborts on a corrupt
file looks just like a broken machine. The evidence comes later (Flamenco's blocklist is the
model):
- the same task fails again, in another worker or a fresh child: the asset's fault, no one else's;
- the task then succeeds on another worker: the one failure was that worker's (`confirmed`);
- a worker's failure rate on a job is far above its peers' (RATE_FACTOR times, at least half its
  attempts, `threshold` failed tasks, and the peers with `threshold` attempts of their own).
A worker with `threshold` confirmed failures in a job, or the rate, is blocked from that job. When
every live worker is blocked from a job, its queued tasks can never run and fail.
`farm retry` starts a job's blame over: attempts made before the job's last retry count no more.
"""
from __future__ import annotations

import sqlite3
import time

SUSPECT = ("worker", "timeout", "env")  # failures that blame no one until the evidence is in
COUNTED = ("done", "asset") + SUSPECT  # attempts that count toward a worker's failure rate
RATE_FACTOR = 4.0  # "far above its peers'": this many times their failure rate
RATE_MIN = 0.5  # ... and at least this share of its own attempts failed
# when the job (the first `?`) was last retried: attempts started before then are forgiven
RETRIED_AT = "(SELECT COALESCE(MAX(ts), 0) FROM events WHERE job_id = ? AND kind = 'retry')"


def load_blocked(db: sqlite3.Connection) -> dict[str, set[str]]:
    """worker -> the job ids it may not take."""
    blocked: dict[str, set[str]] = {}
    for row in db.execute("SELECT job_id, worker FROM blocklist WHERE blocked = 1"):
        blocked.setdefault(row["worker"], set()).add(row["job_id"])
    return blocked


def load_failed_by(db: sqlite3.Connection) -> dict[int, set[str]]:
    """queued task -> the workers whose attempt at it failed (since its job's last retry)."""
    retried = dict(db.execute("SELECT job_id, MAX(ts) FROM events WHERE kind = 'retry' GROUP BY job_id").fetchall())
    failed_by: dict[int, set[str]] = {}
    for row in db.execute(
        "SELECT a.task_id, a.worker, t.job_id, a.started FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
        " WHERE t.state = 'queued' AND a.outcome IN ('asset', 'worker', 'timeout', 'env')"
    ):
        if row[3] >= retried.get(row[2], 0):
            failed_by.setdefault(row[0], set()).add(row[1])
    return failed_by


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


class WorkerBlocklist:
    """Store part: blame by evidence, the per-job failure tallies, and failing what no live worker
    may run. `tallies`: job -> worker -> [attempts, suspect failures], loaded from `attempts` the
    first time a job needs it and kept up to date after."""

    def _tally(self, job_id: str) -> dict[str, list[int]]:
        tally = self.tallies.get(job_id)
        if tally is None:
            tally = {r[0]: [r[1], r[2]] for r in self.db.execute(
                f"SELECT a.worker, COUNT(*), SUM(a.outcome IN {_in(SUSPECT)}) FROM attempts a"
                f" JOIN tasks t ON t.task_id = a.task_id WHERE t.job_id = ? AND t.queue = 'render'"
                f" AND a.outcome IN {_in(COUNTED)} AND a.started >= {RETRIED_AT} GROUP BY a.worker",
                (job_id, job_id))}
            self.tallies[job_id] = tally
        return tally

    def _count_attempt(self, job_id: str, worker: str, outcome: str, threshold: int) -> None:
        """A render attempt ended (tally loaded before its outcome was written); a suspect failure
        may show a worker failing far more than its peers."""
        if outcome not in COUNTED:
            return
        mine = self._tally(job_id).setdefault(worker, [0, 0])
        mine[0] += 1
        if outcome in SUSPECT:
            mine[1] += 1
            if self._rate_far_above_peers(job_id, worker, threshold):
                self._block(job_id, worker, f"{mine[1]} of its {mine[0]} attempts failed, far more than its peers'")

    def _rate_far_above_peers(self, job_id: str, worker: str, threshold: int) -> bool:
        tally = self._tally(job_id)
        attempts, bad = tally[worker]
        peer_attempts = sum(n for w, (n, _) in tally.items() if w != worker)
        peer_bad = sum(b for w, (_, b) in tally.items() if w != worker)
        if bad < threshold or bad < RATE_MIN * attempts or peer_attempts < threshold:
            return False
        return bad / attempts >= RATE_FACTOR * (peer_bad / peer_attempts)

    def _blame_on_success(self, task_id: int, job_id: str, winner: str, threshold: int) -> None:
        """The task succeeded on `winner`: a single suspect failure of it elsewhere was that
        worker's. Two or more failures (other workers or children) make it a flaky asset."""
        failed = self.db.execute(
            f"SELECT worker, outcome FROM attempts WHERE task_id = ? AND outcome IN {_in(('asset',) + SUSPECT)}"
            f" AND started >= {RETRIED_AT}", (task_id, job_id)).fetchall()
        if len(failed) != 1 or failed[0]["outcome"] not in SUSPECT or failed[0]["worker"] == winner:
            return
        worker = failed[0]["worker"]
        self.db.execute(
            "INSERT INTO blocklist (job_id, worker, failures) VALUES (?, ?, 1)"
            " ON CONFLICT (job_id, worker) DO UPDATE SET failures = failures + 1", (job_id, worker))
        confirmed = self.db.execute("SELECT failures FROM blocklist WHERE job_id = ? AND worker = ?",
                                    (job_id, worker)).fetchone()[0]
        self._event("blame", job_id, task_id, worker, f"its failure succeeded on {winner}")
        if confirmed >= threshold:
            self._block(job_id, worker, f"{confirmed} of its failures on this job succeeded on other workers")

    def _block(self, job_id: str, worker: str, why: str) -> None:
        if job_id in self.blocked.get(worker, set()):
            return
        self.db.execute("INSERT INTO blocklist (job_id, worker, blocked) VALUES (?, ?, 1)"
                        " ON CONFLICT (job_id, worker) DO UPDATE SET blocked = 1", (job_id, worker))
        self.blocked.setdefault(worker, set()).add(job_id)
        self._event("blocklist", job_id, None, worker, why)

    def forget_blame(self, job_id: str) -> None:
        """`farm retry`: the user fixed the cause, so the job's blame starts over: no worker is
        blocked from it, and failures before the retry count no more (RETRIED_AT, once the
        caller has logged the retry)."""
        self.db.execute("DELETE FROM blocklist WHERE job_id = ?", (job_id,))
        for jobs in self.blocked.values():
            jobs.discard(job_id)
        self.tallies.pop(job_id, None)
        for (task_id,) in self.db.execute("SELECT task_id FROM tasks WHERE job_id = ?", (job_id,)).fetchall():
            self.failed_by.pop(task_id, None)

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
