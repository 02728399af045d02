"""What a user must be told about an OUT beyond its counts, in one wording everywhere: views the
render flagged (quality), categories taken from a parent folder's name, and done objects that have
no captions yet. `farm render`'s summary, `farm dataset build/validate/export`, the dataset card and
the gallery all say it with these functions.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from blender_addon.contract.layout import METADATA_JSON

from ..metadata import iter_json_array

QUALITY_ISSUES = ("clipped", "out_of_frame", "blank")  # blender_addon.scene.render's quality gate
ISSUE_MEANING = {"clipped": "the object touches the image border",
                 "out_of_frame": "over half the object's bounding box is outside the image (or behind the camera)",
                 "blank": "no pixel shows the object"}
CATEGORY_FROM_FOLDER = "folder"  # objects.jsonl `category_from`: no --categories entry, the parent folder's name
NAMES_SHOWN = 5


def _names(names: list[str], limit: int = NAMES_SHOWN) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass
class QualityCounts:
    """Flagged views in a set of objects: per issue, how many views and how many objects."""

    views: Counter = field(default_factory=Counter)
    objects: Counter = field(default_factory=Counter)
    flagged: list[str] = field(default_factory=list)  # uids of objects with any flagged view
    total_views: int = 0

    def add(self, obj: dict) -> None:
        self.total_views += int(obj.get("views") or 0)
        issues = quality_issues(obj)
        if issues:
            self.flagged.append(str(obj.get("uid")))
            self.views.update(issues)
            self.objects.update(issues.keys())

    def line(self) -> str | None:
        """'quality flags: clipped in 32 views of 2 objects (Box, BoxTextured); ...', or None."""
        if not self.flagged:
            return None
        per_issue = "; ".join(f"{issue} in {self.views[issue]} view(s) of {self.objects[issue]} object(s)"
                              for issue in sorted(self.views))
        return f"quality flags: {per_issue} ({_names(self.flagged)})"


def quality_counts(objects: Iterable[dict]) -> QualityCounts:
    """The flagged views of the done objects among `objects` (objects.jsonl records)."""
    counts = QualityCounts()
    for obj in objects:
        if obj.get("status") == "done":
            counts.add(obj)
    return counts


def quality_issues(obj: dict) -> Counter:
    """issue -> number of the object's views flagged with it."""
    return Counter(str(i) for e in obj.get("quality") or [] if isinstance(e, dict) for i in e.get("issues") or [])


QUALITY_POLICIES = ("warn", "fail")  # farm render/submit --quality; a job's options["quality"]


def quality_refusal(job_options: dict, result: dict) -> str | None:
    """Why a finished render fails its object under `--quality fail` (the broker asks when the
    result arrives), or None: the job warns (the default), or no view was flagged."""
    if (job_options or {}).get("quality") != "fail":
        return None
    issues = quality_issues(result)
    if not issues:
        return None
    views = result.get("views")
    total = len(views) if isinstance(views, list) else views
    of = f" of {total}" if isinstance(total, int) and total else ""
    found = ", ".join(f"{issue} in {n}{of} view(s)" for issue, n in sorted(issues.items()))
    return f"quality: {found} (--quality fail)"


def folder_categories(objects: Iterable[dict]) -> list[dict]:
    """The objects whose category is their asset's parent folder name (no --categories entry)."""
    return [o for o in objects if o.get("category_from") == CATEGORY_FROM_FOLDER]


def folder_category_line(objects: Iterable[dict]) -> str | None:
    """'category from the parent folder (no --categories entry) for 2 object(s): Box (a), ...', or None."""
    fallback = folder_categories(objects)
    if not fallback:
        return None
    named = [f"{o.get('uid')} ({o.get('category')})" for o in fallback]
    return (f"category from the parent folder's name (no --categories entry) for {len(fallback)} object(s): "
            f"{_names(named)}")


def uncaptioned_line(uncaptioned: int, done: int, out: str | Path) -> str | None:
    """'N of M done objects have no captions yet: run captioner run OUT', or None when all have."""
    if not uncaptioned:
        return None
    return f"{uncaptioned} of {done} done objects have no captions yet: run `captioner run {out}`"


def metadata_obj_ids(out: Path) -> set[int]:
    """The obj_ids that have a record in OUT/metadata.json (streamed; empty when it is missing)."""
    try:
        return {r.get("obj_id") for r in iter_json_array(out / METADATA_JSON) if isinstance(r, dict)}
    except (OSError, ValueError):
        return set()


def uncaptioned_in_metadata(objects: Iterable[dict], captioned_ids: set[int]) -> tuple[int, int]:
    """(done objects without a record in metadata.json, done objects)."""
    done = [o for o in objects if o.get("status") == "done"]
    return sum(o.get("obj_id") not in captioned_ids for o in done), len(done)


__all__ = ["QUALITY_ISSUES", "QUALITY_POLICIES", "quality_refusal", "ISSUE_MEANING", "CATEGORY_FROM_FOLDER",
           "QualityCounts", "quality_counts",
           "quality_issues", "folder_categories", "folder_category_line", "uncaptioned_line",
           "metadata_obj_ids", "uncaptioned_in_metadata"]
