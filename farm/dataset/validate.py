"""`farm dataset validate OUT`: check a dataset against the layout contract and name every violation.

Checks:
- objects.jsonl: one JSON object a line with the schema fields; obj_ids unique and dense from 0;
  out_rel unique and where the layout puts the source; a failed object says why;
- each done object: its folder, its source's completion marker (transforms.json for a rendered
  source, frames.json for mvimgnet), its view images (as many as `views`), and captions.json
  (category equal to objects.jsonl's, files present);
- metadata.json, streamed record by record: exactly path/caption/obj_id/img_id; the path is
  `./<out_rel of obj_id>/NNN.ext`; the object is done; `img_id = obj_id * stride + view`; img_ids
  unique; the file exists (`check_files=False` skips only this); the caption names the object's
  category (`check_captions=False` skips only this);
- metadata.json is current: per object, as many records as captions.json has captions;
- every done object has captions (`allow_uncaptioned` turns this into a note); notes also count
  views with quality flags and categories taken from a folder name (farm.dataset.flags).

Memory stays flat: records are decoded one at a time, img_ids are a bitmap, and folder listings
are cached for the few most recent folders only.
"""
from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from blender_addon.contract import categories
from blender_addon.contract.layout import CAPTIONS_JSON, METADATA_JSON, OBJECTS_JSONL

from ..metadata import dataset_stride, iter_json_array
from ..sources import get_source, source_names
from .common import IMAGE_NAME, STATUSES, expected_out_rel, image_files, out_dir, read_json
from .flags import folder_category_line, quality_counts, uncaptioned_line

RECORD_KEYS = ("path", "caption", "obj_id", "img_id")


@dataclass
class ValidationReport:
    max_kept: int = 1000
    count: int = 0
    kept: list[str] = field(default_factory=list)
    by_kind: Counter = field(default_factory=Counter)
    objects: int = 0
    records: int = 0
    notes: list[str] = field(default_factory=list)  # what the user should know that is no violation

    def add(self, kind: str, where: str, message: str) -> None:
        self.count += 1
        self.by_kind[kind] += 1
        if self.max_kept <= 0 or len(self.kept) < self.max_kept:
            self.kept.append(f"{kind}: {where}: {message}")

    @property
    def ok(self) -> bool:
        return self.count == 0

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.records} records, {self.objects} objects"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items()))
        return f"{self.count} violation(s) in {self.records} records, {self.objects} objects ({kinds})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Listings:
    """Names in a folder, for the most recently used folders only."""

    def __init__(self, out: Path, size: int = 64):
        self.out, self.size, self.cache = out, size, OrderedDict()

    def __call__(self, rel: str) -> frozenset:
        names = self.cache.get(rel)
        if names is None:
            try:
                names = frozenset(e.name for e in os.scandir(self.out / rel))
            except OSError:
                names = frozenset()
            self.cache[rel] = names
            if len(self.cache) > self.size:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(rel)
        return names


def _check_objects(out: Path, report: ValidationReport) -> dict[int, dict]:
    path = out / OBJECTS_JSONL
    if not path.is_file():
        report.add("missing_file", OBJECTS_JSONL, "objects.jsonl is missing (run the farm, or farm dataset build)")
        return {}
    by_id: dict[int, dict] = {}
    by_rel: dict[str, int] = {}
    sources = source_names()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{OBJECTS_JSONL}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.add("schema", where, f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                report.add("schema", where, "not a JSON object")
                continue
            report.objects += 1
            problems = []
            if not _is_int(obj.get("obj_id")) or obj["obj_id"] < 0:
                problems.append(f"obj_id {obj.get('obj_id')!r} is not an integer >= 0")
            if not isinstance(obj.get("uid"), str) or not obj["uid"]:
                problems.append(f"uid {obj.get('uid')!r} is not a non-empty string")
            if obj.get("source") not in sources:
                problems.append(f"source {obj.get('source')!r} is not one of {', '.join(sources)}")
            if not isinstance(obj.get("out_rel"), str) or not obj["out_rel"]:
                problems.append(f"out_rel {obj.get('out_rel')!r} is not a non-empty string")
            if not _is_int(obj.get("views")) or obj["views"] < 0:
                problems.append(f"views {obj.get('views')!r} is not an integer >= 0")
            if obj.get("status") not in STATUSES:
                problems.append(f"status {obj.get('status')!r} is not one of {', '.join(STATUSES)}")
            if obj.get("status") == "done" and (not isinstance(obj.get("category"), str) or not obj["category"].strip()):
                problems.append(f"category {obj.get('category')!r} is missing for a done object")
            for problem in problems:
                report.add("schema", where, problem)
            if problems:
                continue
            if obj.get("status") == "failed" and not (isinstance(obj.get("error"), str) and obj["error"].strip()):
                report.add("schema", where, f"object {obj['uid']!r} failed without a reason in 'error'")
            expected = expected_out_rel(obj)
            if expected != obj["out_rel"]:
                report.add("layout", where, f"out_rel {obj['out_rel']!r} is not where the layout puts a "
                           f"{obj['source']} object (expected {expected!r})")
                obj["_misplaced"] = True  # its folder is not looked at (it may lie outside OUT)
            if obj["obj_id"] in by_id:
                first = by_id[obj["obj_id"]]
                report.add("duplicate_id", where, f"obj_id {obj['obj_id']} is also used by {first['out_rel']!r}")
            else:
                by_id[obj["obj_id"]] = obj
            if obj["out_rel"] in by_rel:
                report.add("duplicate_object", where, f"out_rel {obj['out_rel']!r} is also object {by_rel[obj['out_rel']]}")
            else:
                by_rel[obj["out_rel"]] = obj["obj_id"]
    missing = [i for i in range(len(by_id)) if i not in by_id]
    if missing or (by_id and max(by_id) >= len(by_id)):
        shown = ", ".join(map(str, missing[:10])) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        report.add("ids_not_dense", OBJECTS_JSONL, f"obj_ids are not 0..{len(by_id) - 1}; missing: {shown or 'none'}; "
                   f"largest: {max(by_id) if by_id else None}")
    return by_id


def _check_object_folder(out: Path, obj: dict, report: ValidationReport) -> int:
    """Checks one done object's folder. Returns how many captions its captions.json has."""
    rel = obj["out_rel"]
    folder = out / rel
    if not folder.is_dir():
        report.add("missing_file", rel, f"the folder of done object {obj['uid']!r} (obj_id {obj['obj_id']}) is missing")
        return 0
    marker = get_source(obj["source"]).marker
    if not (folder / marker).is_file():
        report.add("missing_file", f"{rel}/{marker}", f"{marker} of done object {obj['uid']!r} is missing")
    images = image_files(folder)
    if len(images) != obj["views"]:
        report.add("view_count", rel, f"{len(images)} view image(s) on disk, objects.jsonl says {obj['views']}")
    captions_path = folder / CAPTIONS_JSON
    if not captions_path.exists():
        return 0
    captions = read_json(captions_path)
    where = f"{rel}/{CAPTIONS_JSON}"
    if not isinstance(captions, dict) or not isinstance(captions.get("captions"), list):
        report.add("schema", where, "not a captions file ({uid, category, captions: [...]})")
        return 0
    if captions.get("category") != obj["category"]:
        report.add("category_mismatch", where,
                   f"category {captions.get('category')!r} differs from objects.jsonl's {obj['category']!r}")
    if captions.get("uid") not in (None, obj["uid"]):
        report.add("uid_mismatch", where, f"uid {captions.get('uid')!r} differs from objects.jsonl's {obj['uid']!r}")
    present = set(images)
    captioned = 0
    for k, entry in enumerate(captions["captions"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not _is_int(entry.get("view")):
            report.add("schema", f"{where}[{k}]", "expected {view, file, caption, ...}")
            continue
        match = IMAGE_NAME.match(entry["file"])
        if not match or int(match.group(1)) != entry["view"]:
            report.add("schema", f"{where}[{k}]", f"file {entry['file']!r} does not match view {entry['view']}")
        elif entry["file"] not in present:
            report.add("missing_file", f"{rel}/{entry['file']}", "captioned in captions.json but missing on disk")
        if entry.get("caption") is not None:
            captioned += 1
    return captioned


def validate_dataset(out_root: str | os.PathLike, *, check_files: bool = True, check_captions: bool = True,
                     max_kept: int = 1000, allow_uncaptioned: bool = False) -> ValidationReport:
    """Validate OUT. Raises DatasetError only when OUT is not a folder; all else is a violation."""
    out = out_dir(out_root)
    report = ValidationReport(max_kept=max_kept)
    objects = _check_objects(out, report)
    stride = _stride(objects, report)
    expected_counts: dict[int, int] = {}
    for obj_id in sorted(objects):
        obj = objects[obj_id]
        if obj["status"] == "done" and not obj.get("_misplaced"):
            expected_counts[obj_id] = _check_object_folder(out, obj, report)

    names_category = categories.names_category if check_captions else None
    metadata = out / METADATA_JSON
    counts: Counter = Counter()
    if not metadata.is_file():
        report.add("missing_file", METADATA_JSON, "metadata.json is missing (run farm dataset build)")
    else:
        _check_records(out, metadata, objects, stride, report, counts, check_files, names_category)
    for obj_id, expected in expected_counts.items():
        if counts[obj_id] != expected:
            report.add("stale_metadata", f"obj_id {obj_id}", f"{counts[obj_id]} record(s) in metadata.json, "
                       f"{expected} caption(s) in {objects[obj_id]['out_rel']}/{CAPTIONS_JSON} (run farm dataset build)")
    _flags(out_root, objects, expected_counts, report, allow_uncaptioned)
    return report


def _flags(out_root, objects: dict[int, dict], captions: dict[int, int], report: ValidationReport,
           allow_uncaptioned: bool) -> None:
    """Done objects without captions (a violation unless allowed), quality flags, folder categories."""
    missing = [objects[i]["out_rel"] for i, n in captions.items() if n == 0]
    uncaptioned = uncaptioned_line(len(missing), len(captions), out_root)
    if uncaptioned and not allow_uncaptioned:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        report.add("uncaptioned", shown, f"{uncaptioned} (or pass --allow-uncaptioned)")
    report.notes += [line for line in (uncaptioned if allow_uncaptioned else None,
                                       quality_counts(objects.values()).line(),
                                       folder_category_line(objects.values())) if line]


def _stride(objects: dict[int, dict], report: ValidationReport) -> int:
    """The recorded img_id stride (farm.metadata.dataset_stride); objects with more views than it
    holds, or lines that disagree on it, are violations."""
    try:
        stride = dataset_stride(list(objects.values()))
    except ValueError as exc:
        report.add("img_id", OBJECTS_JSONL, str(exc))
        stride = dataset_stride([{"views": o.get("views")} for o in objects.values()])
    for obj_id in sorted(objects):
        if (objects[obj_id].get("views") or 0) > stride:
            report.add("img_id", f"obj_id {obj_id}", f"{objects[obj_id]['views']} views do not fit the img_id "
                       f"stride {stride}")
    return stride


def _check_records(out: Path, metadata: Path, objects: dict[int, dict], stride: int, report: ValidationReport,
                   counts: Counter, check_files: bool, names_category) -> None:
    listing = _Listings(out)
    span = (max(objects) + 1 if objects else 0) * stride
    seen = bytearray((span + 7) // 8)
    seen_outside: set[int] = set()
    index = -1
    try:
        for index, rec in enumerate(iter_json_array(metadata)):
            report.records += 1
            where = f"{METADATA_JSON}[{index}]"
            if not isinstance(rec, dict):
                report.add("schema", where, "not a JSON object")
                continue
            if len(rec) != 4 or any(k not in rec for k in RECORD_KEYS):
                missing = [k for k in RECORD_KEYS if k not in rec]
                extra = sorted(k for k in rec if k not in RECORD_KEYS)
                report.add("schema", where, f"keys must be path, caption, obj_id, img_id (missing: {missing}, extra: {extra})")
                continue
            path, caption, obj_id, img = rec["path"], rec["caption"], rec["obj_id"], rec["img_id"]
            if not isinstance(path, str) or not path.startswith("./") or not _is_int(obj_id) or not _is_int(img):
                report.add("schema", where, f"path must be a './' string and obj_id, img_id integers: {rec!r}"[:300])
                continue
            if not isinstance(caption, str) or not caption.strip():
                report.add("schema", where, f"{path}: caption is empty or not a string")
            obj = objects.get(obj_id)
            if obj is None:
                report.add("unknown_obj_id", where, f"{path}: obj_id {obj_id} is not in objects.jsonl")
                continue
            counts[obj_id] += 1
            if obj["status"] != "done":
                report.add("not_done", where, f"{path}: object {obj['uid']!r} is {obj['status']}")
            folder, _, name = path[2:].rpartition("/")
            if folder != obj["out_rel"]:
                report.add("path_mismatch", where, f"{path} is not in obj_id {obj_id}'s folder {obj['out_rel']!r}")
                continue
            match = IMAGE_NAME.match(name)
            if not match:
                report.add("schema", where, f"{path}: file name is not NNN.png or NNN.jpg")
                continue
            view = int(match.group(1))
            if view >= stride or img != obj_id * stride + view:
                report.add("img_id", where, f"{path}: img_id {img} != obj_id {obj_id} * {stride} + view {view}")
            if 0 <= img < span:
                byte, bit = divmod(img, 8)
                duplicate = seen[byte] >> bit & 1
                seen[byte] |= 1 << bit
            else:
                duplicate = img in seen_outside
                seen_outside.add(img)
            if duplicate:
                report.add("duplicate_id", where, f"{path}: img_id {img} appears more than once")
            if check_files and name not in listing(folder):
                report.add("missing_file", where, f"{path} does not exist")
            if names_category is not None and isinstance(caption, str):
                if not names_category(caption, obj["category"]):
                    report.add("caption_category", where, f"{path}: caption does not name the category "
                               f"{obj['category']!r}: {caption[:80]!r}")
    except ValueError as exc:
        report.add("schema", f"{METADATA_JSON}[{index + 1}]", f"metadata.json is not a valid JSON array ({exc})")
    except OSError as exc:
        report.add("missing_file", METADATA_JSON, f"cannot be read ({exc.strerror or exc})")
