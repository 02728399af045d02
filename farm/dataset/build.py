"""`farm dataset build OUT`: one objects.jsonl and one metadata.json over every source in OUT.

- objects.jsonl (the farm store's snapshot) is the authority; its obj_ids are kept when they are
  dense and unique (they stay stable across resumes);
- finished object folders on disk that it does not list (rendered or sampled by other runs, or
  copied in) are added after them with the next ids, in out_rel order;
- ids that are not dense and unique are renumbered in their order, and the report says so;
- objects.jsonl and metadata.json are written by farm.metadata (the one code path the broker and
  the captioner use too): metadata.json is streamed to a temporary file and renamed into place.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from blender_addon.contract.layout import OBJECTS_JSONL
from blender_addon.rig.errors import one_line

from ..metadata import write_metadata, write_objects
from .common import DatasetError, discover_objects, load_objects, out_dir


@dataclass
class BuildReport:
    objects: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    discovered: int = 0
    renumbered: bool = False
    records: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items()))
        sources = ", ".join(f"{s} {n}" for s, n in sorted(self.by_source.items()))
        extra = f"; {self.discovered} found on disk and added" if self.discovered else ""
        extra += "; obj_ids were not dense and unique and were renumbered" if self.renumbered else ""
        return (f"built {self.records} records from {self.objects} objects ({statuses}; {sources}){extra} "
                f"in {self.seconds:.1f} s")


def assign_ids(listed: list[dict], discovered: list[dict]) -> tuple[list[dict], bool]:
    """Dense obj_ids: listed objects keep theirs when already 0..n-1 and unique; new ones follow."""
    ids = [o.get("obj_id") for o in listed]
    valid = all(isinstance(i, int) and not isinstance(i, bool) for i in ids) and sorted(ids) == list(range(len(ids)))
    renumbered = False
    if not valid:
        renumbered = True
        order = sorted(range(len(listed)), key=lambda k: (_sort_id(listed[k].get("obj_id")), k))
        listed = [{**listed[k], "obj_id": n} for n, k in enumerate(order)]
    else:
        listed = sorted(listed, key=lambda o: o["obj_id"])
    start = len(listed)
    added = [{"obj_id": start + n, **obj} for n, obj in enumerate(discovered)]
    return listed + added, renumbered


def _sort_id(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("inf")


def build_dataset(out_root: str | os.PathLike) -> BuildReport:
    t0 = time.perf_counter()
    out = out_dir(out_root)
    listed = load_objects(out)
    seen: dict[str, int] = {}
    for n, obj in enumerate(listed):
        rel = obj.get("out_rel")
        if not isinstance(rel, str) or not rel:
            raise DatasetError(f"{OBJECTS_JSONL}: object {n + 1} has no out_rel")
        if rel in seen:
            raise DatasetError(f"{OBJECTS_JSONL}: out_rel {rel!r} is listed twice (objects {seen[rel] + 1} and {n + 1})")
        seen[rel] = n
    discovered = discover_objects(out, known=set(seen))
    objects, renumbered = assign_ids(listed, discovered)
    if discovered or renumbered or not (out / OBJECTS_JSONL).exists():
        write_objects(out, objects)
    try:
        records = write_metadata(out, objects)
    except (OSError, ValueError) as exc:
        raise DatasetError(one_line(exc)) from None
    report = BuildReport(objects=len(objects), discovered=len(discovered), renumbered=renumbered, records=records)
    for obj in objects:
        report.by_status[str(obj.get("status"))] = report.by_status.get(str(obj.get("status")), 0) + 1
        report.by_source[str(obj.get("source"))] = report.by_source.get(str(obj.get("source")), 0) + 1
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["BuildReport", "assign_ids", "build_dataset"]
