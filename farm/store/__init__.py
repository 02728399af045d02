"""The farm's durable job store: SQLite in WAL mode, one writer (the broker).

Tables: jobs, objects, tasks, attempts, workers, blocklist, events, render_keys, outputs, meta.

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

Each object records the render key its views were made with (render_keys.py): a submit with
another key is refused unless the job says `rerender` or `add_views` (submit_plan.py). The img_id
stride of each output folder is fixed at its first submit (table `outputs`). Output folders that
hold the state file follow it when it is moved (upgrade.py, which also upgrades older files).

Parts: schema.py (states, transitions, SQL), core.py (connection, transactions, lookups),
upgrade.py, submit.py (with submit_plan.py and render_keys.py), leasing.py, outcomes.py,
blocklist.py, jobs.py (cancel, retry, status) and export.py (the objects.jsonl cache). `Store`
joins them.
"""
from __future__ import annotations

from .blocklist import WorkerBlocklist
from .core import StoreCore
from .jobs import JobControl
from .leasing import TaskLeasing
from .outcomes import TaskOutcomes
from .schema import (
    ACTIVE, CANCELED, CAPTION_LEASE_S, DEFAULT_BLOCKLIST_THRESHOLD, DEFAULT_MAX_ATTEMPTS, DONE, FAILED,
    LEASE_GRACE_S, LEASED, QUEUED, TRANSITIONS, StoreError, check_transition,
)
from .submit import JobSubmission

__all__ = [
    "ACTIVE", "CANCELED", "CAPTION_LEASE_S", "DEFAULT_BLOCKLIST_THRESHOLD", "DEFAULT_MAX_ATTEMPTS", "DONE",
    "FAILED", "LEASE_GRACE_S", "LEASED", "QUEUED", "TRANSITIONS", "Store", "StoreError", "check_transition",
]


class Store(JobSubmission, TaskLeasing, TaskOutcomes, WorkerBlocklist, JobControl, StoreCore):
    """All durable farm state. Not thread-safe: one Store per thread (the broker owns one)."""
