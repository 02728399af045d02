"""Render tasks between the store and the workers: TASK out to idle workers, RESULT back, and
leases that run out.

Only the current attempt of a live lease held by the reporting worker counts; any other RESULT is
acknowledged (the worker may forget it) and ignored. An accepted success's files are moved into
the object's folder here, in the turn that marks it done: the broker alone writes object folders.
A success refused for its quality flags never reaches the object's folder: its files are set aside
in OUT/.farm/refused/<attempt_id>/.
"""
from __future__ import annotations

import json
import logging

from .. import environment, protocol as P
from ..dataset.flags import quality_refusal
from ..store import Store
from .attempt_folders import remove_job_attempt_folder
from .streamed import StreamedFiles
from .workers import WorkerRegistry, WorkerSession

log = logging.getLogger("farm.broker")

SPEC_CACHE_JOBS = 1000  # encoded specs kept (one per job)
# RESULT.error_kind: the asset's verdict, a render fault or crash (blamed by evidence), a hang, a
# refused quality, or the environment (a full disk...); anything else counts as `worker`
FAILURE_KINDS = ("asset", "worker", "timeout", "quality", "env")


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
        # --quality fail: a flagged view fails the object at once, decided before anything is
        # installed: the object's folder (a rerender's previous set) stays as it was
        refusal = ok and quality_refusal(self.store.job(row["job_id"])["options"], msg.get("result") or {})
        if refusal:
            ok, error, kind = False, f"{refusal}; {self._set_aside(w, row, key, msg.get('files'))}", "quality"
        elif ok:
            ok, error, kind = self._install(w, row, key, msg.get("files"))
        if ok:
            if self.store.complete(*key, result=msg.get("result") or {}, now=now, row=row,
                                   blocklist_threshold=self.blocklist_threshold):
                self.stats["completed"] += 1
        else:
            if kind not in FAILURE_KINDS:
                kind = "worker"
            self.store.fail(*key, error=error, kind=kind, now=now, blocklist_threshold=self.blocklist_threshold)
            self.stats["failed"] += 1
        if w.task == key:
            self.registry.release(w)

    def _install(self, w: WorkerSession, row, key: tuple[int, int], files: list[dict] | None) -> tuple[bool, str, str]:
        """Move an accepted attempt's files into the object's folder: (ok, error, kind). A success
        that lists no image is not done: the render produced nothing, whatever the child said."""
        if not files or all(str(f.get("name", "")).endswith(".json") for f in files):
            return False, "the worker reported success but its attempt produced no image", "worker"
        try:
            self.streamed.install(*self.store.out_paths(row), key[1], files, mode=row["mode"],
                                  streamed=not w.shared_storage)
        except (OSError, ValueError) as exc:
            if not w.shared_storage:
                self.streamed.discard(w)
            env = environment.error_of(exc)
            return False, env or f"the attempt's files could not be installed: {exc}", "env" if env else "worker"
        return True, "", ""

    def _set_aside(self, w: WorkerSession, row, key: tuple[int, int], files: list[dict] | None) -> str:
        """Keep a refused attempt's files for a look (OUT/.farm/refused/<attempt_id>/): where they are."""
        try:
            folder = self.streamed.set_aside(self.store.out_paths(row)[0], key[1], files or [],
                                             streamed=not w.shared_storage)
        except (OSError, ValueError) as exc:
            if not w.shared_storage:
                self.streamed.discard(w)
            return f"its files could not be kept: {exc}"
        return f"its files are in {folder}"

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
                if row["queue"] == "render":  # its worker may have left a folder on shared storage
                    remove_job_attempt_folder(self.store, row["job_id"], key[1])
            self.registry.maybe_queued = True
