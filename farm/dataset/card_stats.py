"""What `farm dataset card` reports, gathered in one pass over OUT (card.py writes it out).

Everything is read from what OUT holds, and every piece may be missing:
- objects.jsonl: counts per source, status and category, the failures with their reasons, and
  the device (backend and GPU model) each object was rendered on;
- each done object's completion marker, read by its source (farm/sources): the spec hash, spec
  name and seed from transforms.json, MVImgNet's frame-sampling options from frames.json;
- captions.json: model, preset, prompt (as a template), caption routes; done objects without any
  caption;
- objects.jsonl's quality flags and folder-name categories (farm.dataset.flags);
- OUT/.farm/state.sqlite (read-only): the jobs, with their specs, options and caption models;
- version keys (`blender_version`, `bpy_version`, `transformers_version`, `versions`) in any of the
  files above, when their writers record them.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

from blender_addon.contract.categories import readable
from blender_addon.contract.layout import CAPTIONS_JSON, FARM_DIR, METADATA_JSON

from ..metadata import iter_json_array
from ..sources import source_of
from .common import load_objects, out_dir, read_json
from .flags import folder_categories, quality_counts

VERSION_KEYS = ("blender_version", "bpy_version", "transformers_version", "torch_version", "mvcap_version")


def _versions_in(doc: dict) -> dict[str, str]:
    found = {k: str(doc[k]) for k in VERSION_KEYS if doc.get(k)}
    if isinstance(doc.get("versions"), dict):
        found.update({f"{k}": str(v) for k, v in doc["versions"].items() if v})
    return found


def read_jobs(out: Path) -> list[dict]:
    """Jobs from OUT/.farm/state.sqlite, read-only; [] when there is none or it cannot be read."""
    path = out / FARM_DIR / "state.sqlite"
    if not path.is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM jobs ORDER BY created")]
        finally:
            con.close()
    except sqlite3.Error:
        return []
    for row in rows:
        for key in ("spec", "options"):
            try:
                row[key] = json.loads(row[key]) if isinstance(row.get(key), str) else row.get(key)
            except json.JSONDecodeError:
                pass
    return rows


def _count_records(out: Path) -> int | None:
    if not (out / METADATA_JSON).is_file():
        return None
    try:
        return sum(1 for _ in iter_json_array(out / METADATA_JSON))
    except (OSError, ValueError):
        return None


def collect(out_root: str | os.PathLike) -> dict:
    """Everything the card reports. `provenance` maps a card line's label to a Counter of values."""
    out = out_dir(out_root)
    stats = {
        "name": out.resolve().name, "objects": load_objects(out), "by_source": defaultdict(Counter),
        "by_category": defaultdict(Counter), "provenance": defaultdict(Counter), "versions": defaultdict(Counter),
        "models": Counter(), "presets": Counter(), "prompts": Counter(), "routes": Counter(),
        "consistency": Counter(), "caption_backgrounds": Counter(), "prompt_sources": Counter(), "failures": [],
        "records": _count_records(out), "jobs": read_jobs(out), "uncaptioned": [],
    }
    stats["quality"] = quality_counts(stats["objects"])
    stats["folder_categories"] = folder_categories(stats["objects"])
    for obj in sorted(stats["objects"], key=lambda o: (o.get("obj_id") is None, o.get("obj_id") or 0)):
        _add_object(out, obj, stats)
    return stats


def _add_object(out: Path, obj: dict, stats: dict) -> None:
    source, status, category = str(obj.get("source")), str(obj.get("status")), str(obj.get("category"))
    stats["by_source"][source][status] += 1
    if status == "failed":
        stats["failures"].append(obj)
    if status != "done":
        return
    device = obj.get("device")  # objects.jsonl's record of what rendered it (farm/worker_child.py)
    if isinstance(device, dict) and device.get("backend"):
        gpu = f" ({device['gpu']})" if device.get("gpu") else ""
        stats["provenance"]["Rendered on"][f"{device['backend']}{gpu}"] += 1
    views = int(obj.get("views") or 0)
    stats["by_source"][source]["images"] += views
    by_category = stats["by_category"][category]
    by_category["objects"] += 1
    by_category["images"] += views
    by_category[f"source:{source}"] += 1
    folder = out / str(obj.get("out_rel"))
    src = source_of(source)
    marker = read_json(folder / src.marker)
    if isinstance(marker, dict):
        for key, value in _versions_in(marker).items():
            stats["versions"][key][value] += 1
        for label, value in src.provenance(marker).items():
            stats["provenance"][label][value] += 1
    captions = read_json(folder / CAPTIONS_JSON)
    before = stats["by_source"][source]["captions"]
    if isinstance(captions, dict):
        _add_captions(captions, source, category, stats)
    if stats["by_source"][source]["captions"] == before:
        stats["uncaptioned"].append(obj)


def _add_captions(captions: dict, source: str, category: str, stats: dict) -> None:
    stats["models"][str(captions.get("model") or "not recorded")] += 1
    stats["presets"][str(captions.get("preset") or "not recorded")] += 1
    prompt = str(captions.get("prompt") or "not recorded")
    if category and readable(category) and readable(category) in prompt:
        prompt = prompt.replace(readable(category), "{category}")
    stats["prompts"][prompt] += 1
    consistency = captions.get("consistency")
    stats["consistency"]["not recorded" if consistency is None else "on" if consistency else "off"] += 1
    stats["caption_backgrounds"][str(captions.get("background") or "not recorded")] += 1
    stats["prompt_sources"][str(captions.get("prompt_source") or "not recorded")] += 1
    for key, value in _versions_in(captions).items():
        stats["versions"][key][value] += 1
    for entry in captions.get("captions") or []:
        if isinstance(entry, dict):
            stats["routes"][str(entry.get("route") or ("error" if entry.get("error") else "unknown"))] += 1
            if entry.get("caption") is not None:
                stats["by_source"][source]["captions"] += 1
                stats["by_category"][category]["captions"] += 1
