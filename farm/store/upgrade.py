"""Opening a state file: bring an older one up to today's schema, and follow a moved OUT.

- Upgrade: columns added since (schema.ADDED_COLUMNS), and the render key of every done object
  of an older state, taken from the job whose render task finished it. Jobs of an older state
  have no submitter (NULL): any authenticated peer may still cancel or retry them.
- Moved or copied OUT: output folders that hold the state file (`farm render` keeps it in
  OUT/.farm/state.sqlite) are recorded relative to it. The state remembers the folder it was last
  opened in (meta `state_dir`); opened somewhere else, such output roots are rewritten to the same
  place relative to the state file, so a moved OUT resumes instead of starting over. Output roots
  that do not hold the state file (a `farm broker --state` elsewhere) stay absolute.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from .render_keys import key_body, key_of
from .schema import add_missing_columns

ROOT_TABLES = ("jobs", "objects", "outputs")  # every table with an out_root column


def upgrade(db: sqlite3.Connection) -> None:
    """Today's columns, and render keys for the done objects of an older state."""
    if not add_missing_columns(db):
        return
    jobs: dict[str, dict] = {}
    rows = db.execute(
        "SELECT o.id, o.source, t.job_id FROM objects o JOIN tasks t ON t.object_id = o.id"
        " WHERE o.status = 'done' AND o.render_key IS NULL AND t.queue = 'render' AND t.state = 'done'"
        " ORDER BY t.updated").fetchall()
    for object_id, source, job_id in rows:  # the latest finished task wins
        job = jobs.get(job_id)
        if job is None:
            spec, options = db.execute("SELECT spec, options FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            job = jobs[job_id] = {"spec": json.loads(spec) if spec else None, "options": json.loads(options or "{}")}
        body = key_body(job, source)
        key = key_of(body)
        db.execute("INSERT OR IGNORE INTO render_keys (render_key, body) VALUES (?, ?)", (key, json.dumps(body)))
        db.execute("UPDATE objects SET render_key = ? WHERE id = ?", (key, object_id))


def follow_moves(db: sqlite3.Connection, state_path: Path) -> int:
    """Rewrite the output roots that held the state file when it lay elsewhere; returns how many."""
    here = str(state_path.resolve().parent)
    row = db.execute("SELECT value FROM meta WHERE key = 'state_dir'").fetchone()
    if row is not None and row[0] == here:
        return 0
    moved = 0
    if row is not None:
        for old_root in _roots(db):
            new_root = _moved_root(old_root, row[0], here)
            if new_root is not None and new_root != old_root:
                for table in ROOT_TABLES:
                    db.execute(f"UPDATE {table} SET out_root = ? WHERE out_root = ?", (new_root, old_root))
                moved += 1
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('state_dir', ?)", (here,))
    return moved


def _roots(db: sqlite3.Connection) -> set[str]:
    return {r[0] for table in ROOT_TABLES for r in db.execute(f"SELECT DISTINCT out_root FROM {table}")}


def _moved_root(root: str, old_dir: str, new_dir: str) -> str | None:
    """Where `root` is now, when it held the state file's old folder; else None."""
    rel = os.path.relpath(old_dir, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None  # the state file was not inside this output root
    parts = [] if rel == os.curdir else Path(rel).parts
    new = Path(new_dir)
    if parts and new.parts[-len(parts):] != tuple(parts):
        return None  # moved to a place that does not keep the same inner layout
    return str(new.parents[len(parts) - 1]) if parts else str(new)
