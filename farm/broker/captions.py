"""The caption queue's side of the broker (docs/internals.md "Caption hand-off").

The captioner is a DEALER client: it leases caption tasks (CAPTION_LEASE), keeps the leases alive
(CAPTION_HEARTBEAT, each lease lives CAPTION_LEASE_S without one) and reports each object. A done
caption marks its output folder's metadata.json for rewriting; a failed one (CAPTION_FAILED, with
the captioner's reason) spends an attempt like a failed render, and ends failed when none is left.

A job that names a caption model (`farm submit --caption-model`) is captioned by that model only:
a CAPTION_LEASE gets the tasks of jobs that name its `model` (protocol.caption_model_key) or none.
"""
from __future__ import annotations

from .. import protocol as P
from ..store import CAPTION_LEASE_S, Store
from .exports import OutputFiles

MAX_LEASE = 1024  # caption tasks per CAPTION_LEASE
MAX_HEARTBEAT_IDS = 4096  # attempt ids extended per CAPTION_HEARTBEAT


class CaptionRequests:
    """CAPTION_LEASE, CAPTION_HEARTBEAT, CAPTION_DONE and CAPTION_FAILED."""

    def __init__(self, store: Store, files: OutputFiles):
        self.store = store
        self.files = files

    def handle(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        mtype = msg["type"]
        if mtype == "CAPTION_LEASE":
            label = "captioner-" + identity.hex()[:16]
            n = max(0, min(int(msg["max"]), MAX_LEASE))
            leases = self.store.lease("caption", [label] * n, now, lease_s=CAPTION_LEASE_S,
                                      caption_model=msg.get("model") or "")
            tasks = [self.store.caption_payload(t) for _, t in leases]
            out.append((identity, P.encode("CAPTION_TASKS", tasks=tasks)))
        elif mtype == "CAPTION_HEARTBEAT":
            self.store.extend(msg["attempt_ids"][:MAX_HEARTBEAT_IDS], CAPTION_LEASE_S, now)
        elif mtype == "CAPTION_DONE":
            row = self._caption_lease(msg)
            if row is not None and self.store.complete(msg["task_id"], msg["attempt_id"], now=now):
                self.files.mark_metadata(self.store.job(row["job_id"])["out_root"])
        elif mtype == "CAPTION_FAILED":
            if self._caption_lease(msg) is not None:
                self.store.fail(msg["task_id"], msg["attempt_id"], error=msg["error"], kind="asset", now=now)

    def _caption_lease(self, msg: dict):
        """The task row when the message names a live caption lease, else None."""
        row = self.store.current(msg["task_id"], msg["attempt_id"])
        return row if row is not None and row["queue"] == "caption" else None
