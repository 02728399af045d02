"""`farm dataset card OUT`: OUT/README.md, a Hugging Face style dataset card with provenance.

Everything is read from what OUT holds, and every piece may be missing:
- objects.jsonl: counts per source, status and category, and the failures with their reasons;
- transforms.json (views/, im3d/): spec hash, spec name and seed of each object;
- frames.json (mvimgnet/): the frame-sampling options;
- captions.json: model, preset, prompt (as a template), caption routes;
- OUT/.farm/state.sqlite (read-only): the jobs, with their specs, options and caption models;
- version keys (`blender_version`, `bpy_version`, `transformers_version`, `versions`) in any of the
  files above, when their writers record them.
What is not recorded is said to be not recorded: nothing is made up.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from collections import Counter, defaultdict
from importlib import metadata as _importlib_metadata
from pathlib import Path

from blender_addon.rig.fileio import atomic_write_text

from ..layout import CAPTIONS_JSON, FARM_DIR, METADATA_JSON, TRANSFORMS_JSON
from ..metadata import iter_json_array
from ..sources.mvimgnet import FRAMES_JSON
from .common import load_objects, out_dir, read_json

VERSION_KEYS = ("blender_version", "bpy_version", "transformers_version", "torch_version", "mvcap_version")
MAX_FAILURES_LISTED = 200


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


def collect(out_root: str | os.PathLike) -> dict:
    """Everything the card reports, gathered in one pass over OUT."""
    from captioner.prompts import readable  # pure Python

    out = out_dir(out_root)
    objects = load_objects(out)
    by_source: dict[str, Counter] = defaultdict(Counter)
    by_category: dict[str, Counter] = defaultdict(Counter)
    spec_hashes: Counter = Counter()
    spec_names: Counter = Counter()
    seeds: Counter = Counter()
    versions: dict[str, Counter] = defaultdict(Counter)
    models: Counter = Counter()
    presets: Counter = Counter()
    prompts: Counter = Counter()
    routes: Counter = Counter()
    sampling: Counter = Counter()
    failures = []
    for obj in sorted(objects, key=lambda o: (o.get("obj_id") is None, o.get("obj_id") or 0)):
        source, status, category = str(obj.get("source")), str(obj.get("status")), str(obj.get("category"))
        by_source[source][status] += 1
        if status == "failed":
            failures.append(obj)
        if status != "done":
            continue
        views = int(obj.get("views") or 0)
        by_source[source]["images"] += views
        by_category[category]["objects"] += 1
        by_category[category]["images"] += views
        by_category[category][f"source:{source}"] += 1
        folder = out / str(obj.get("out_rel"))
        marker = read_json(folder / (FRAMES_JSON if source == "mvimgnet" else TRANSFORMS_JSON))
        if isinstance(marker, dict):
            for key, value in _versions_in(marker).items():
                versions[key][value] += 1
            if source == "mvimgnet":
                opts = marker.get("options") or {}
                sampling[json.dumps({k: opts.get(k) for k in ("frames", "min_views", "blur_ratio", "blur_threshold")})] += 1
            else:
                spec_hashes[str(marker.get("spec_hash") or "not recorded")] += 1
                spec_names[str(marker.get("spec_name") or "not recorded")] += 1
                seeds[str(marker.get("seed", "not recorded"))] += 1
        captions = read_json(folder / CAPTIONS_JSON)
        if isinstance(captions, dict):
            models[str(captions.get("model") or "not recorded")] += 1
            presets[str(captions.get("preset") or "not recorded")] += 1
            prompt = str(captions.get("prompt") or "not recorded")
            if category and readable(category) and readable(category) in prompt:
                prompt = prompt.replace(readable(category), "{category}")
            prompts[prompt] += 1
            for key, value in _versions_in(captions).items():
                versions[key][value] += 1
            for entry in captions.get("captions") or []:
                if isinstance(entry, dict):
                    routes[str(entry.get("route") or ("error" if entry.get("error") else "unknown"))] += 1
                    if entry.get("caption") is not None:
                        by_source[source]["captions"] += 1
                        by_category[category]["captions"] += 1
    records = None
    if (out / METADATA_JSON).is_file():
        try:
            records = sum(1 for _ in iter_json_array(out / METADATA_JSON))
        except (OSError, ValueError):
            records = None
    return {
        "name": out.resolve().name, "objects": objects, "by_source": by_source, "by_category": by_category,
        "spec_hashes": spec_hashes, "spec_names": spec_names, "seeds": seeds, "versions": versions,
        "models": models, "presets": presets, "prompts": prompts, "routes": routes, "sampling": sampling,
        "failures": failures, "records": records, "jobs": read_jobs(out),
    }


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    return next((label for bound, label in bounds if n < bound), "n>100M")


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _counter_text(counter: Counter) -> str:
    if not counter:
        return "not recorded"
    return "; ".join(f"`{k}` ({n} objects)" for k, n in counter.most_common())


def _environment_versions() -> list[list[str]]:
    rows = []
    for package in ("bpy", "transformers", "torch", "mvcap-studio", "numpy", "Pillow"):
        try:
            rows.append([package, _importlib_metadata.version(package)])
        except _importlib_metadata.PackageNotFoundError:
            rows.append([package, "not installed"])
    return rows


def render_card(stats: dict, *, extra_yaml: str = "", data_note: str = "") -> str:
    images = sum(c["images"] for c in stats["by_source"].values())
    captions = sum(c["captions"] for c in stats["by_source"].values())
    n_records = stats["records"] if stats["records"] is not None else captions
    front = [
        "---",
        f"pretty_name: {json.dumps(stats['name'])}",
        "language:\n- en",
        "license: other",
        "task_categories:\n- image-to-text\n- text-to-image",
        "tags:\n- multi-view\n- 3d\n- image-captioning\n- mvcap",
        f"size_categories:\n- {size_category(n_records)}",
    ]
    if extra_yaml:
        front.append(extra_yaml.rstrip("\n"))
    front.append("---")
    out = ["\n".join(front), "", f"# {stats['name']}", ""]
    out.append(
        "A multi-view image-caption dataset in the layout of MVCap-4M (Omniview-Tuning, ECCV 2024), built with "
        "MVCap Studio: 3D assets rendered from many viewpoints and real capture sequences sampled into frames, each "
        "image captioned by a vision-language model with a category-guided prompt."
    )
    out += ["", f"- Objects: {len(stats['objects'])} ({sum(c['done'] for c in stats['by_source'].values())} done, "
            f"{sum(c['failed'] for c in stats['by_source'].values())} failed, "
            f"{sum(c['pending'] for c in stats['by_source'].values())} pending)",
            f"- Images of done objects: {images}; captioned: {captions}",
            f"- metadata.json records: {stats['records'] if stats['records'] is not None else 'not built yet'}",
            f"- Categories: {len(stats['by_category'])}", ""]
    if data_note:
        out += [data_note, ""]
    out += ["## Dataset structure", "", "```",
            "views/<uid>/000.png ...            Objaverse and other 3D assets, with transforms.json",
            "im3d/<class>_<NN>/000.png ...      IM3D objects, with transforms.json",
            "mvimgnet/<category>/<sequence>/000.jpg ...  sampled MVImgNet frames, with frames.json",
            "<object folder>/captions.json      captions per view, with model, prompt and route",
            "metadata.json                      [{path, caption, obj_id, img_id}]",
            "objects.jsonl                      one line per object: source, category, status, error",
            "```", "",
            "`img_id = obj_id * stride + view`, with stride 100 or the next power of ten at or above the view count. "
            "`transform_matrix` in transforms.json is camera-to-world in Blender/OpenGL camera axes (NeRF-synthetic).",
            ""]
    out += ["## Counts per source", ""]
    rows = [[s, c["done"], c["failed"], c["pending"], c["images"], c["captions"]]
            for s, c in sorted(stats["by_source"].items())]
    out += [_table(["source", "done", "failed", "pending", "images", "captions"], rows) if rows else "No objects.", ""]
    out += ["## Counts per category", ""]
    rows = []
    for cat, c in sorted(stats["by_category"].items()):
        sources = ", ".join(f"{k[7:]} {n}" for k, n in sorted(c.items()) if k.startswith("source:"))
        rows.append([cat, c["objects"], c["images"], c["captions"], sources])
    out += [_table(["category", "objects", "images", "captions", "sources"], rows) if rows else "No done objects.", ""]

    out += ["## Provenance", "", "### View spec", ""]
    out.append(f"- Spec hash (from transforms.json): {_counter_text(stats['spec_hashes'])}")
    out.append(f"- Spec name: {_counter_text(stats['spec_names'])}")
    out.append(f"- Seed: {_counter_text(stats['seeds'])}")
    if stats["sampling"]:
        out.append(f"- MVImgNet frame sampling (from frames.json): {_counter_text(stats['sampling'])}")
    out.append("")
    if stats["jobs"]:
        out += ["### Farm jobs (OUT/.farm/state.sqlite)", ""]
        rows = []
        for job in stats["jobs"]:
            spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
            created = job.get("created")
            when = _dt.datetime.fromtimestamp(created, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if created else ""
            options = json.dumps(job["options"], sort_keys=True) if job.get("options") else ""
            rows.append([job.get("job_id", ""), job.get("name", ""), when, job.get("spec_hash") or "",
                         spec.get("name", ""), spec.get("seed", ""), options,
                         "yes" if job.get("caption") else "no", job.get("caption_model") or ""])
        out += [_table(["job", "name", "created", "spec hash", "spec name", "seed", "options", "caption",
                        "caption model"], rows), ""]
        specs = {j.get("spec_hash"): j["spec"] for j in stats["jobs"] if isinstance(j.get("spec"), dict)}
        for spec_hash, spec in specs.items():
            out += [f"<details><summary>Spec {spec_hash}</summary>", "", "```json", json.dumps(spec, indent=2), "```",
                    "", "</details>", ""]
    out += ["### Captions", ""]
    out.append(f"- Model: {_counter_text(stats['models'])}")
    out.append(f"- Preset: {_counter_text(stats['presets'])}")
    out.append(f"- Prompt: {_counter_text(stats['prompts'])}")
    out.append("- Routes: " + (", ".join(f"{k} {n}" for k, n in stats["routes"].most_common()) or "not recorded")
               + " (guided: the category-guided prompt named the category; forced_prefix: captioned again with "
                 "the category as a prefix)")
    out.append("")
    out += ["### Software versions", ""]
    if stats["versions"]:
        out += [_table(["component", "version (objects)"],
                       [[k, "; ".join(f"{v} ({n})" for v, n in c.most_common())] for k, c in sorted(stats["versions"].items())]), ""]
    else:
        out += ["Blender/bpy and transformers versions are not recorded in this OUT's files.", ""]
    out += ["Installed where this card was written (may differ from the render and caption machines):", "",
            _table(["package", "version"], _environment_versions()), ""]

    out += ["## Failures", ""]
    failures = stats["failures"]
    if failures:
        reasons = Counter(str(f.get("error") or "no reason recorded") for f in failures)
        out += [_table(["reason", "objects"], [[r, n] for r, n in reasons.most_common()]), ""]
        rows = [[f.get("obj_id"), f.get("uid"), f.get("source"), f.get("category"), f.get("attempts", ""),
                 f.get("error") or "no reason recorded"] for f in failures[:MAX_FAILURES_LISTED]]
        out += [_table(["obj_id", "uid", "source", "category", "attempts", "error"], rows), ""]
        if len(failures) > MAX_FAILURES_LISTED:
            out += [f"... and {len(failures) - MAX_FAILURES_LISTED} more in objects.jsonl.", ""]
    else:
        out += ["No object failed.", ""]
    out += ["## Citation", "",
            "The layout and defaults follow MVCap-4M from *Omniview-Tuning: Boosting Viewpoint Invariance of "
            "Vision-Language Pre-training Models* (ECCV 2024). Source assets keep their own licenses "
            "(Objaverse: per-object licenses; MVImgNet and IM3D: their terms of use).", "",
            f"_Card written by `farm dataset card` on {_dt.date.today().isoformat()}._", ""]
    return "\n".join(out)


def write_card(out_root: str | os.PathLike) -> Path:
    out = out_dir(out_root)
    return atomic_write_text(out / "README.md", render_card(collect(out)))
