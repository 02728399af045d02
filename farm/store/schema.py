"""The store's vocabulary: task states and their transitions, limits, the SQL schema, StoreError."""
from __future__ import annotations

QUEUED, LEASED, DONE, FAILED, CANCELED = "queued", "leased", "done", "failed", "canceled"
ACTIVE = (QUEUED, LEASED)
TRANSITIONS = {
    QUEUED: {LEASED, CANCELED},
    LEASED: {DONE, QUEUED, FAILED, CANCELED},
    DONE: set(),
    FAILED: {QUEUED},
    CANCELED: {QUEUED},
}

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BLOCKLIST_THRESHOLD = 3  # worker-caused failures in one job before the worker is blocked
LEASE_GRACE_S = 30.0  # past a render's timeout before the broker gives up on the lease
# a caption lease lives this long without CAPTION_HEARTBEAT (captioner serve sends one a second),
# so a killed captioner's tasks come back about as soon as a dead worker's
CAPTION_LEASE_S = 6.0


class StoreError(ValueError):
    """A request the store refuses (unknown job, bad submit). One line, sent back as ERROR."""


def check_transition(old: str, new: str) -> None:
    """Every state change goes through here (the SQL also guards with `WHERE state = old`)."""
    if new not in TRANSITIONS.get(old, ()):
        raise StoreError(f"task state {old} -> {new} is not allowed")


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
    created REAL NOT NULL,
    submitter TEXT
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
    render_key TEXT,
    category_from TEXT,
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
    mode TEXT NOT NULL DEFAULT 'full',
    first_view INTEGER NOT NULL DEFAULT 0,
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
    error TEXT,
    render_key TEXT
);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts (task_id);
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
CREATE TABLE IF NOT EXISTS render_keys (
    render_key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outputs (
    out_root TEXT PRIMARY KEY,
    img_id_stride INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""

# Columns added since the first version: a state file written by an older farm gets them on open
# (render_keys, outputs and meta are created by SCHEMA itself).
ADDED_COLUMNS = (
    ("objects", "render_key", "TEXT"),  # the key the views on disk were rendered with
    ("tasks", "mode", "TEXT NOT NULL DEFAULT 'full'"),  # full | add_views | rerender
    ("tasks", "first_view", "INTEGER NOT NULL DEFAULT 0"),  # add_views: views before it are kept
    ("attempts", "render_key", "TEXT"),  # the key the attempt was leased with
    ("objects", "category_from", "TEXT"),  # "folder": no --categories entry, the parent folder's name was taken
    ("jobs", "submitter", "TEXT"),  # the peer that submitted it (NULL: an older job, anyone may manage it)
)
# tasks.mode; a job's `spec_change` is "refuse" (the default), ADD_VIEWS or RERENDER
FULL, ADD_VIEWS, RERENDER = "full", "add_views", "rerender"


def add_missing_columns(db) -> list[str]:
    """ALTER an older state file's tables to today's columns; returns the columns added."""
    added = []
    for table, column, decl in ADDED_COLUMNS:
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            added.append(f"{table}.{column}")
    return added
