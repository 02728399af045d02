"""What a submit will do with each asset, decided before anything is written.

Per asset: a new object, a done object to skip (resume), or a render task: `full`, `add_views`
(only the views past those on disk) or `rerender` (a whole new set, swapped in when complete).
Objects whose views on disk were rendered under another render key (render_keys.py) are refused
unless the job's `spec_change` says how to go on, and so is an asset with more views than the
output folder's img_id stride. A refused submit raises StoreError (one line) and changes nothing.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from blender_addon.contract.layout import img_id_stride

from ..sources import source_of
from .render_keys import ADD_VIEWS, REFUSE, RERENDER, add_views_problem, changed_fields, describe, view_count
from .schema import FULL, StoreError

NEW, SKIP = "new", "skip"


@dataclass
class Step:
    object_id: int | None  # the existing object's row id; None for a new object
    status: str | None  # its status before this submit
    action: str  # NEW, SKIP, FULL, ADD_VIEWS or RERENDER
    first_view: int = 0  # ADD_VIEWS: the views before it are on disk already


@dataclass
class Plan:
    steps: list[Step]
    stride: int  # the output folder's img_id stride
    new_stride: bool  # fixed by this submit (its first)


class _Conflicts:
    """Objects whose views were rendered under another key; one line names the first's fields."""

    def __init__(self):
        self.count = 0
        self.first: dict | None = None
        self.problem: str | None = None

    def add(self, changed: dict, problem: str | None = None) -> None:
        self.count += 1
        if self.first is None:
            self.first, self.problem = changed, problem

    def error(self, out_root: str, spec_change: str) -> StoreError:
        fields = describe(self.first)
        if spec_change == ADD_VIEWS:
            return StoreError(f"{out_root}: --add-views cannot extend {self.count} object(s) ({fields}): "
                              f"{self.problem}; use --rerender (replace their views) or a new OUT")
        ways = "a new OUT, or --rerender (replace their views)"
        if self.problem is None:
            ways = "a new OUT, --rerender (replace their views), or --add-views (render only the new views)"
        return StoreError(f"{out_root}: {self.count} object(s) were rendered with another spec ({fields}); "
                          f"nothing was changed. To go on: {ways}")


def plan_submit(db: sqlite3.Connection, job: dict, assets: list[dict], keys) -> Plan:
    """The steps of a submit, or StoreError. `keys(source) -> (key, body)` for this job."""
    out_root = str(job["out_root"])
    spec_change = job.get("spec_change") or REFUSE
    conflicts = _Conflicts()
    changes: dict[tuple[str, str], tuple] = {}  # (old key, new key) -> what changes between them
    steps = []
    for asset in assets:
        row = db.execute("SELECT id, status, render_key FROM objects WHERE out_root = ? AND out_rel = ?",
                         (out_root, asset["out_rel"])).fetchone()
        step = _step(db, row, keys(asset.get("source")), spec_change, conflicts, changes)
        steps.append(step)
    if conflicts.count:
        raise conflicts.error(out_root, spec_change)
    stride, new_stride = _stride(db, job, assets)
    return Plan(steps, stride, new_stride)


def _step(db: sqlite3.Connection, row, key: tuple[str, dict], spec_change: str, conflicts: _Conflicts,
          changes: dict) -> Step:
    if row is None:
        return Step(None, None, NEW)
    object_id, status, old_key = row
    if old_key is None or old_key == key[0]:
        return Step(object_id, status, SKIP if status == "done" else FULL)
    if spec_change == RERENDER:
        return Step(object_id, status, RERENDER)
    change = changes.get((old_key, key[0]))
    if change is None:
        old = json.loads(db.execute("SELECT body FROM render_keys WHERE render_key = ?", (old_key,)).fetchone()[0])
        change = changes[(old_key, key[0])] = (add_views_problem(old, key[1]), view_count(old),
                                               changed_fields(old, key[1]))
    problem, old_views, changed = change
    if spec_change == ADD_VIEWS and problem is None:
        return Step(object_id, status, ADD_VIEWS, first_view=old_views)
    conflicts.add(changed, problem)
    return Step(object_id, status, SKIP)


def _stride(db: sqlite3.Connection, job: dict, assets: list[dict]) -> tuple[int, bool]:
    """(the output folder's img_id stride, whether this submit fixes it); StoreError for an asset
    with more views than the stride holds (its img_ids would run into the next object's)."""
    out_root = str(job["out_root"])
    needs = {}
    for asset in assets:
        source = asset.get("source")
        if source not in needs:
            needs[source] = source_of(source).views_per_object(int(job.get("views") or 0),
                                                                (job.get("options") or {}).get("frames"))
    row = db.execute("SELECT img_id_stride FROM outputs WHERE out_root = ?", (out_root,)).fetchone()
    if row is not None:
        stride, new = row[0], False
    else:  # first submit; or an output folder of an older farm: its ids used the largest view count
        existing = db.execute("SELECT COUNT(*), MAX(views) FROM objects WHERE out_root = ?", (out_root,)).fetchone()
        views = (existing[1] or 0) if existing[0] else max(needs.values(), default=0)
        stride, new = img_id_stride(views), True
    for asset in assets:
        need = needs[asset.get("source")]
        if need > stride:
            raise StoreError(
                f"{asset['uid']}: {need} views need an img_id stride of {img_id_stride(need)}, but {out_root} "
                f"numbers its images obj_id * {stride} + view (fixed at its first submit, so that img_ids never "
                f"change); render it into a new OUT")
    return stride, new
