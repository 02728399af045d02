"""Client requests (`farm submit/status/cancel/retry`, `farm render`): one request, one reply.

A job belongs to the peer that submitted it (the gate's name for it: a CurveZMQ key's name, or
"local" for every client holding this user's token). Only that peer may cancel or retry it, or
append assets to it; so may the key named `admin` (a broker owner who wants to manage every job
authorises one: `farm keys DIR --name admin`). Jobs without a recorded submitter (submitted before
owners were recorded, or to an open `--insecure` broker) and requests from an open broker's
anonymous peers are not checked: without authentication there is no one to tell apart.
"""
from __future__ import annotations

from .. import protocol as P
from ..store import Store, StoreError
from .attempt_folders import remove_job_attempt_folder
from .streamed import StreamedFiles
from .submit_checks import check_submit
from .workers import WorkerRegistry

ADMIN_KEY = "admin"  # the key name that may manage every job


class ClientRequests:
    """SUBMIT, STATUS, CANCEL and RETRY."""

    def __init__(self, store: Store, registry: WorkerRegistry, streamed: StreamedFiles, out_roots: tuple[str, ...]):
        self.store = store
        self.out_roots = out_roots  # the folders a SUBMIT's OUT may lie in (none: every SUBMIT is refused)
        self.registry = registry
        self.streamed = streamed

    def handle(self, identity: bytes, msg: dict, out: list, peer: str | None = None) -> None:
        """`peer`: who sent it, as the gate authenticated it (None: an open broker)."""
        mtype = msg["type"]
        if mtype == "SUBMIT":
            self._submit(identity, msg, out, peer)
        elif mtype == "STATUS":
            self._status(identity, msg, out)
        elif mtype == "CANCEL":
            self._cancel(identity, self._managed_job(msg["job_id"], peer, "cancel"), out)
        elif mtype == "RETRY":
            n = self.store.retry(self._managed_job(msg["job_id"], peer, "retry"))
            self.registry.maybe_queued = True
            out.append((identity, P.encode("OK", detail=f"{n} tasks queued again")))

    def _managed_job(self, prefix: str, peer: str | None, verb: str) -> str:
        """The job id of `prefix`, when `peer` may `verb` it; else StoreError (one line, sent back)."""
        job_id = self.store.find_job(prefix)
        submitter = self.store.job(job_id).get("submitter")
        if submitter is None or peer is None or peer in (submitter, ADMIN_KEY):
            return job_id
        raise StoreError(f"job {job_id} was submitted by {submitter}; only it (or the broker's `{ADMIN_KEY}` "
                         f"key) may {verb} it")

    def _submit(self, identity: bytes, msg: dict, out: list, peer: str | None) -> None:
        job, assets = check_submit(msg["job"], msg["assets"], self.out_roots)
        append_to = msg.get("append_to")
        if append_to is not None:
            append_to = self._managed_job(append_to, peer, "add assets to")
        reply = self.store.submit(job, assets, append_to=append_to, submitter=peer)
        self.registry.maybe_queued = True
        out.append((identity, P.encode("SUBMITTED", **reply)))

    def _status(self, identity: bytes, msg: dict, out: list) -> None:
        jobs = self.store.status(msg.get("job_id"))
        inflight = self.registry.views_in_flight()
        for j in jobs:
            j["views_in_flight"] = inflight.get(j["job_id"], 0)
        out.append((identity, P.encode("STATUS_REPLY", jobs=jobs, workers=self.registry.status_rows())))

    def _cancel(self, identity: bytes, job_id: str, out: list) -> None:
        """Cancel the job and call back its running tasks."""
        leased = self.store.cancel(job_id)
        for task_id, attempt_id, name in leased:
            w = self.registry.by_name.get(name or "")
            if w is not None and w.task == (task_id, attempt_id):
                out.append((w.identity, P.encode("CANCEL_TASK", task_id=task_id, attempt_id=attempt_id)))
                self.streamed.discard(w)
                self.registry.release(w)
            else:  # its worker is gone (e.g. a broker restart): no one will remove its folder
                remove_job_attempt_folder(self.store, job_id, attempt_id)
        out.append((identity, P.encode("OK", detail=f"canceled; {len(leased)} running tasks called back")))
