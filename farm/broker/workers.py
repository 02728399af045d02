"""Worker sessions (Paranoid Pirate): the workers the broker knows, and what each one runs.

A worker registers with READY (again after a silence, a RECONNECT or a broker restart), then
heartbeats. It is forgotten after DISCONNECT or `liveness` silent heartbeat periods, and its lease
goes back to the queue. READY names the task the worker still runs and the results it still holds:
the running task is adopted, any other render lease under that worker name is lost.

The store holds the leases; a session holds what the broker needs between messages (the task,
its progress, the streamed parts) and when it last heard from and wrote to the worker.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import protocol as P
from blender_addon.contract.layout import check_identifier
from ..store import Store
from .attempt_folders import remove_job_attempt_folder
from .streamed import StreamedFiles

log = logging.getLogger("farm.broker")


@dataclass
class WorkerSession:
    """One connected worker, as the broker sees it."""

    identity: bytes
    name: str
    host: str = ""
    pid: int = 0
    device: str = "cpu"
    shared_storage: bool = True
    last_seen: float = 0.0
    last_sent: float = 0.0
    task: tuple[int, int] | None = None  # (task_id, attempt_id)
    job_id: str | None = None
    out_root: str | None = None
    out_rel: str | None = None
    progress: tuple[int, int] = (0, 0)
    started: float = 0.0
    streamed: set = field(default_factory=set)
    slurm: dict | None = None  # the Slurm job and array task the worker runs in


class WorkerRegistry:
    """The sessions by ZeroMQ identity and by worker name, and the dispatch hint `maybe_queued`:
    set whenever a worker turns idle or the queue may have grown, cleared by a dispatch round that
    leaves idle workers without work."""

    def __init__(self, store: Store, streamed: StreamedFiles, heartbeat_s: float, liveness: int):
        self.store = store
        self.streamed = streamed
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.by_identity: dict[bytes, WorkerSession] = {}
        self.by_name: dict[str, WorkerSession] = {}
        self.maybe_queued = True

    def get(self, identity: bytes) -> WorkerSession | None:
        return self.by_identity.get(identity)

    def sessions(self) -> list[WorkerSession]:
        return list(self.by_identity.values())

    def idle(self) -> list[WorkerSession]:
        return [w for w in self.by_identity.values() if w.task is None]

    def clear(self) -> None:
        """Forget every session (they re-register on their next message)."""
        self.by_identity.clear()
        self.by_name.clear()
        self.maybe_queued = True

    # --- READY --------------------------------------------------------------------------------
    def register(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        name = msg["worker"]
        check_identifier(name, "worker name")
        old = self.by_name.get(name)
        if old is not None and old.identity != identity:
            self.by_identity.pop(old.identity, None)
        w = WorkerSession(identity=identity, name=name, host=msg["host"], pid=msg["pid"], device=msg["device"],
                          shared_storage=msg["shared_storage"], last_seen=now, last_sent=now,
                          slurm=msg.get("slurm"))
        self.by_identity[identity] = w
        self.by_name[name] = w
        self.store.upsert_worker(name, msg["host"], msg["pid"], msg["device"], now)
        keep = self._adopt_running(w, msg.get("running") or None, now, out)
        holding = {keep} | {tuple(r) for r in msg.get("results") or [] if len(r) == 2}
        # anything else leased to this worker name is lost: the worker says it does not hold it
        for task_id, attempt_id in self.store.render_leases_of(name):
            if (task_id, attempt_id) not in holding:
                self.store.fail(task_id, attempt_id, f"worker {name} restarted during the task", kind="lost", now=now)
                remove_job_attempt_folder(self.store, self.store.task_row(task_id)["job_id"], attempt_id)
                self.maybe_queued = True
        self.maybe_queued = True
        log.info("worker %s ready (%s, %s, pid %s)", name, msg["host"], msg["device"], msg["pid"])

    def _adopt_running(self, w: WorkerSession, running: dict | None, now: float, out: list) -> tuple[int, int] | None:
        """The task a reconnecting worker still runs, when its lease is still live; else call it back."""
        if not (running and isinstance(running.get("task_id"), int) and isinstance(running.get("attempt_id"), int)):
            return None
        task = self.store.adopt(running["task_id"], running["attempt_id"], w.name, now)
        if task is None:
            if self.store.task_row(running["task_id"]) is None:  # e.g. a broker started on a new state
                log.warning("worker %s runs task %s, which this state file does not know; calling it back",
                            w.name, running["task_id"])
            out.append((w.identity, P.encode("CANCEL_TASK", task_id=running["task_id"],
                                             attempt_id=running["attempt_id"])))
            return None
        keep = (task["task_id"], task["attempt_id"])
        self.assign(w, task, now)
        log.info("worker %s re-adopted task %s attempt %s", w.name, *keep)
        return keep

    # --- what a session runs ------------------------------------------------------------------
    def assign(self, w: WorkerSession, task: dict, now: float) -> None:
        job = self.store.job(task["job_id"])
        obj = task.get("obj") or self.store.object_row(task["object_id"])
        w.task = (task["task_id"], task["attempt_id"])
        w.job_id = task["job_id"]
        w.out_root = job["out_root"]
        w.out_rel = obj["out_rel"]
        w.progress = (0, int(obj["views"] or 0))
        w.started = now
        w.streamed = set()

    def release(self, w: WorkerSession) -> None:
        """The session's task is over (reported, called back or expired): the worker is idle."""
        w.task = None
        w.job_id = w.out_root = w.out_rel = None
        w.progress = (0, 0)
        w.streamed = set()
        self.maybe_queued = True

    def progress(self, w: WorkerSession, msg: dict) -> None:
        if w.task == (msg["task_id"], msg["attempt_id"]):
            w.progress = (msg["done"], msg["total"])

    # --- going away ---------------------------------------------------------------------------
    def disconnect(self, w: WorkerSession, now: float) -> None:
        """DISCONNECT: a clean shutdown gives the task back without spending an attempt."""
        if w.task is not None:
            self.store.release(*w.task, reason=f"worker {w.name} shut down", now=now)
            self.streamed.discard(w)
            w.task = None
        self.forget(w, now, "worker disconnected")

    def forget(self, w: WorkerSession, now: float, reason: str) -> None:
        self.by_identity.pop(w.identity, None)
        if self.by_name.get(w.name) is w:
            self.by_name.pop(w.name, None)
        if w.task is not None:
            self.store.fail(*w.task, error=reason, kind="lost", now=now)
            self.streamed.discard(w)
        self.maybe_queued = True
        log.info("worker %s gone: %s", w.name, reason)

    def check_liveness(self, now: float, out: list) -> None:
        """Forget workers silent for `liveness` heartbeats; heartbeat the others when due."""
        dead_after = self.heartbeat_s * self.liveness
        for w in self.sessions():
            if now - w.last_seen > dead_after:
                self.forget(w, now, f"worker {w.name} stopped answering (no heartbeat for {now - w.last_seen:.0f}s)")
            elif now - w.last_sent >= self.heartbeat_s:
                out.append((w.identity, P.encode("HEARTBEAT")))
                w.last_sent = now

    # --- STATUS -------------------------------------------------------------------------------
    def views_in_flight(self) -> dict[str, int]:
        """job id -> views rendered so far by tasks still running."""
        inflight: dict[str, int] = {}
        for w in self.by_identity.values():
            if w.job_id:
                inflight[w.job_id] = inflight.get(w.job_id, 0) + w.progress[0]
        return inflight

    def status_rows(self) -> list[dict]:
        return [
            {"worker": w.name, "host": w.host, "pid": w.pid, "device": w.device, "job_id": w.job_id,
             "task_id": w.task[0] if w.task else None, "progress": list(w.progress),
             "blocked_jobs": sorted(self.store.blocked.get(w.name, ())), "slurm": w.slurm}
            for w in self.by_identity.values()
        ]
