"""`farm dataset build OUT`: one metadata.json over every source in OUT.

- objects.jsonl (the farm store's snapshot) is the authority, and the store the only one that
  gives obj_ids: build never assigns or rewrites one, and never writes objects.jsonl;
- finished object folders on disk that it does not list (rendered by other runs, or copied in)
  are reported and left out: they have no obj_id (submit them through the farm);
- obj_ids given twice are refused (their img_ids would collide); img_ids use the stride
  objects.jsonl records (farm.metadata.dataset_stride);
- metadata.json is written by farm.metadata (the one code path the broker and the captioner use
  too): streamed to a temporary file and renamed into place;
- the report's notes say how many done objects have no captions yet, and the quality flags and
  folder-name categories (farm.dataset.flags).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from blender_addon.contract.layout import METADATA_JSON, OBJECTS_JSONL
from blender_addon.rig.errors import one_line

from ..metadata import iter_metadata_records, write_metadata_records
from .common import DatasetError, discover_objects, load_objects, out_dir
from .flags import folder_category_line, quality_counts, uncaptioned_in_metadata, uncaptioned_line

SHOWN_UNLISTED = 5  # unlisted folders named in the summary


@dataclass
class BuildReport:
    objects: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)  # finished folders objects.jsonl lacks (out_rel)
    records: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # uncaptioned objects, quality flags, folder categories

    def summary(self) -> str:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items()))
        sources = ", ".join(f"{s} {n}" for s, n in sorted(self.by_source.items()))
        extra = ""
        if self.unlisted:
            shown = ", ".join(self.unlisted[:SHOWN_UNLISTED]) + (", ..." if len(self.unlisted) > SHOWN_UNLISTED else "")
            extra = (f"; {len(self.unlisted)} finished folder(s) on disk are not in {OBJECTS_JSONL} and were left "
                     f"out (only the farm gives obj_ids): {shown}")
        return (f"built {self.records} records from {self.objects} objects ({statuses}; {sources}){extra} "
                f"in {self.seconds:.1f} s")


def check_listing(listed: list[dict]) -> None:
    """DatasetError for an objects.jsonl that cannot be built: no out_rel, an out_rel or an obj_id twice."""
    rels: dict[str, int] = {}
    ids: dict[object, str] = {}
    for n, obj in enumerate(listed):
        rel = obj.get("out_rel")
        if not isinstance(rel, str) or not rel:
            raise DatasetError(f"{OBJECTS_JSONL}: object {n + 1} has no out_rel")
        if rel in rels:
            raise DatasetError(f"{OBJECTS_JSONL}: out_rel {rel!r} is listed twice (objects {rels[rel] + 1} and {n + 1})")
        rels[rel] = n
        obj_id = obj.get("obj_id")
        if not isinstance(obj_id, int) or isinstance(obj_id, bool) or obj_id < 0:
            raise DatasetError(f"{OBJECTS_JSONL}: object {n + 1} ({rel}) has no obj_id; only the farm gives them")
        if obj_id in ids:
            raise DatasetError(f"{OBJECTS_JSONL}: obj_id {obj_id} is given to both {ids[obj_id]!r} and {rel!r}; "
                               f"only the farm's store gives obj_ids (farm dataset validate lists every problem)")
        ids[obj_id] = rel


def build_dataset(out_root: str | os.PathLike) -> BuildReport:
    t0 = time.perf_counter()
    out = out_dir(out_root)
    if not (out / OBJECTS_JSONL).is_file():
        found = discover_objects(out)
        raise DatasetError(f"{out}: no {OBJECTS_JSONL}, so no obj_ids: they come from the farm (farm render or "
                           f"farm submit); {len(found)} finished object folder(s) found")
    listed = load_objects(out)
    check_listing(listed)
    unlisted = discover_objects(out, known={o["out_rel"] for o in listed})
    captioned: set[int] = set()
    try:  # farm.metadata.write_metadata, noting which objects got records
        records = write_metadata_records(out / METADATA_JSON, _noting(iter_metadata_records(out, listed), captioned))
    except (OSError, ValueError) as exc:
        raise DatasetError(one_line(exc)) from None
    report = BuildReport(objects=len(listed), unlisted=[o["out_rel"] for o in unlisted], records=records)
    report.notes = [line for line in (uncaptioned_line(*uncaptioned_in_metadata(listed, captioned), out),
                                      quality_counts(listed).line(), folder_category_line(listed)) if line]
    for obj in listed:
        report.by_status[str(obj.get("status"))] = report.by_status.get(str(obj.get("status")), 0) + 1
        report.by_source[str(obj.get("source"))] = report.by_source.get(str(obj.get("source")), 0) + 1
    report.seconds = time.perf_counter() - t0
    return report


def _noting(records, obj_ids: set[int]):
    for record in records:
        obj_ids.add(record["obj_id"])
        yield record


__all__ = ["BuildReport", "build_dataset", "check_listing"]
