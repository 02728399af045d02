"""Client requests (`farm submit/status/cancel/retry`, `farm render`): one request, one reply."""
from __future__ import annotations

from .. import protocol as P
from ..store import Store
from .streamed import StreamedFiles
from .submit_checks import check_submit
from .workers import WorkerRegistry


class ClientRequests:
    """SUBMIT, STATUS, CANCEL and RETRY."""

    def __init__(self, store: Store, registry: WorkerRegistry, streamed: StreamedFiles, out_roots: tuple[str, ...]):
        self.store = store
        self.out_roots = out_roots  # the folders a SUBMIT's OUT may lie in (none: every SUBMIT is refused)
        self.registry = registry
        self.streamed = streamed

    def handle(self, identity: bytes, msg: dict, out: list) -> None:
        mtype = msg["type"]
        if mtype == "SUBMIT":
            self._submit(identity, msg, out)
        elif mtype == "STATUS":
            self._status(identity, msg, out)
        elif mtype == "CANCEL":
            self._cancel(identity, msg, out)
        elif mtype == "RETRY":
            n = self.store.retry(msg["job_id"])
            self.registry.maybe_queued = True
            out.append((identity, P.encode("OK", detail=f"{n} tasks queued again")))

    def _submit(self, identity: bytes, msg: dict, out: list) -> None:
        job, assets = check_submit(msg["job"], msg["assets"], self.out_roots)
        reply = self.store.submit(job, assets, append_to=msg.get("append_to"))
        self.registry.maybe_queued = True
        out.append((identity, P.encode("SUBMITTED", **reply)))

    def _status(self, identity: bytes, msg: dict, out: list) -> None:
        jobs = self.store.status(msg.get("job_id"))
        inflight = self.registry.views_in_flight()
        for j in jobs:
            j["views_in_flight"] = inflight.get(j["job_id"], 0)
        out.append((identity, P.encode("STATUS_REPLY", jobs=jobs, workers=self.registry.status_rows())))

    def _cancel(self, identity: bytes, msg: dict, out: list) -> None:
        """Cancel the job and call back its running tasks."""
        leased = self.store.cancel(msg["job_id"])
        for task_id, attempt_id, name in leased:
            w = self.registry.by_name.get(name or "")
            if w is not None and w.task == (task_id, attempt_id):
                out.append((w.identity, P.encode("CANCEL_TASK", task_id=task_id, attempt_id=attempt_id)))
                self.streamed.discard(w)
                self.registry.release(w)
        out.append((identity, P.encode("OK", detail=f"canceled; {len(leased)} running tasks called back")))
