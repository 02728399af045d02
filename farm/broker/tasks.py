"""Render tasks between the store and the workers: TASK out to idle workers, RESULT back, and
leases that run out.

Only the current attempt of a live lease held by the reporting worker counts; any other RESULT is
acknowledged (the worker may forget it) and ignored.
"""
from __future__ import annotations

import json
import logging

from .. import protocol as P
from ..store import Store
from .streamed import StreamedFiles
from .workers import WorkerRegistry, WorkerSession

log = logging.getLogger("farm.broker")

SPEC_CACHE_JOBS = 1000  # encoded specs kept (one per job)


class RenderTasks:
    """Dispatch, results and lease expiry for the render queue."""

    def __init__(self, store: Store, registry: WorkerRegistry, streamed: StreamedFiles, stats: dict,
                 blocklist_threshold: int):
        self.store = store
        self.registry = registry
        self.streamed = streamed
        self.stats = stats
        self.blocklist_threshold = blocklist_threshold
        self._spec_cache: dict[str, bytes] = {}

    # --- TASK ---------------------------------------------------------------------------------
    def dispatch(self, now: float, out: list) -> None:
        """Lease queued tasks to idle workers, one each."""
        idle = self.registry.idle()
        if not idle:
            return
        live = set(self.registry.by_name) if self.store.failed_by else None
        leases = self.store.lease("render", [w.name for w in idle], now, live=live)
        if len(leases) < len(idle):
            self.registry.maybe_queued = False
        for name, task in leases:
            w = self.registry.by_name[name]
            self.registry.assign(w, task, now)
            msg = self.store.task_message(task)
            spec = msg.pop("spec")
            out.append((w.identity, P.encode_with("TASK", {"spec": self._spec_json(task["job_id"], spec)}, **msg)))
            self.stats["leased"] += 1

    def _spec_json(self, job_id: str, spec: dict | None) -> bytes:
        """A job's spec as JSON text, encoded once per job (it goes out in every TASK)."""
        text = self._spec_cache.get(job_id)
        if text is None:
            if spec is not None and not isinstance(spec, dict):
                raise P.ProtocolError("spec must be an object")
            text = json.dumps(spec, separators=(",", ":")).encode("utf-8")
            if len(self._spec_cache) > SPEC_CACHE_JOBS:
                self._spec_cache.clear()
            self._spec_cache[job_id] = text
        return text

    # --- RESULT -------------------------------------------------------------------------------
    def on_result(self, w: WorkerSession, msg: dict, now: float, out: list) -> None:
        key = (msg["task_id"], msg["attempt_id"])
        out.append((w.identity, P.encode("ACK", task_id=key[0], attempt_id=key[1])))
        row = self.store.render_lease(*key, w.name)
        if row is None:
            # a stale report: an old attempt, or a lease that already went back to the queue
            log.info("ignored a stale result for task %s attempt %s from %s", key[0], key[1], w.name)
            if w.task == key:
                self.registry.release(w)
            return
        ok = msg["ok"]
        error = msg.get("error") or ""
        kind = msg.get("error_kind") or "asset"
        if ok and msg.get("files") is not None and not w.shared_storage:
            try:
                self.streamed.install(*self.store.out_paths(row), key[1], msg["files"])
            except (OSError, ValueError) as exc:
                ok, error, kind = False, f"streamed files could not be installed: {exc}", "worker"
                self.streamed.discard(w)
        if ok:
            if self.store.complete(*key, result=msg.get("result") or {}, now=now, row=row):
                self.stats["completed"] += 1
        else:
            if kind not in ("asset", "worker", "timeout"):
                kind = "worker"
            self.store.fail(*key, error=error, kind=kind, now=now, blocklist_threshold=self.blocklist_threshold)
            self.stats["failed"] += 1
        if w.task == key:
            self.registry.release(w)

    # --- expiry -------------------------------------------------------------------------------
    def expire_leases(self, now: float, out: list) -> None:
        """Leases past their expiry: a worker still on it is called back (a `worker` failure, it
        ran past the timeout); otherwise the lease's holder is gone (`lost`)."""
        for row in self.store.expired(now):
            key = (row["task_id"], row["attempt_id"])
            w = self.registry.by_name.get(row["worker"] or "")
            if row["queue"] == "render" and w is not None and w.task == key:
                out.append((w.identity, P.encode("CANCEL_TASK", task_id=key[0], attempt_id=key[1])))
                self.store.fail(*key, error=f"lease expired: worker {w.name} ran past the task timeout",
                                kind="worker", now=now, blocklist_threshold=self.blocklist_threshold)
                self.streamed.discard(w)
                self.registry.release(w)
            else:
                reason = "caption lease expired" if row["queue"] == "caption" else \
                    f"lease expired: worker {row['worker']} did not come back"
                self.store.fail(*key, error=reason, kind="lost", now=now)
            self.registry.maybe_queued = True
