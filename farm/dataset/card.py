"""`farm dataset card OUT`: OUT/README.md, a Hugging Face style dataset card with provenance.

card_stats.collect reads what OUT holds; each function here writes one section of the card from
it. What is not recorded is said to be not recorded: nothing is made up.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from importlib import metadata as _importlib_metadata
from pathlib import Path

from blender_addon.rig.fileio import atomic_write_text

from ..sources import SPEC_PROVENANCE, all_sources
from .card_stats import collect
from .common import out_dir
from .flags import ISSUE_MEANING, QUALITY_ISSUES, quality_issues

MAX_FAILURES_LISTED = 200
OUTPUT_FILES = (
    "<object folder>/captions.json      captions per view, with model, prompt and route",
    "metadata.json                      [{path, caption, obj_id, img_id}]",
    "objects.jsonl                      one line per object: source, category, status, error",
)


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


def _front_matter(stats: dict, extra_yaml: str) -> list[str]:
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
    return ["\n".join(front), ""]


def _summary(stats: dict, data_note: str) -> list[str]:
    by_source = stats["by_source"].values()
    records = stats["records"] if stats["records"] is not None else "not built yet"
    out = [f"# {stats['name']}", "",
           "A multi-view image-caption dataset in the layout of MVCap-4M (Omniview-Tuning, ECCV 2024), built with "
           "MVCap Studio: 3D assets rendered from many viewpoints and real capture sequences sampled into frames, each "
           "image captioned by a vision-language model with a category-guided prompt.", "",
           f"- Objects: {len(stats['objects'])} ({sum(c['done'] for c in by_source)} done, "
           f"{sum(c['failed'] for c in by_source)} failed, {sum(c['pending'] for c in by_source)} pending)",
           f"- Images of done objects: {sum(c['images'] for c in by_source)}; "
           f"captioned: {sum(c['captions'] for c in by_source)}",
           f"- Done objects without captions: {len(stats['uncaptioned'])}"
           + (" (not in metadata.json; `captioner run OUT` captions them)" if stats["uncaptioned"] else ""),
           f"- metadata.json records: {records}",
           f"- Categories: {len(stats['by_category'])}; taken from the asset's folder name (no --categories "
           f"entry) for {len(stats['folder_categories'])} object(s)",
           f"- Done objects with quality flags: {len(stats['quality'].flagged)} (see Quality flags)", ""]
    return out + ([data_note, ""] if data_note else [])


def _structure() -> list[str]:
    """The folders of every registered source, then the files every dataset has."""
    folders = list(dict.fromkeys(s.structure for s in all_sources() if s.structure))
    return ["## Dataset structure", "", "```", *folders, *OUTPUT_FILES, "```", "",
            "`img_id = obj_id * stride + view`, with stride 100 or the next power of ten at or above the view count. "
            "`transform_matrix` in transforms.json is camera-to-world in Blender/OpenGL camera axes (NeRF-synthetic).",
            ""]


def _source_counts(stats: dict) -> list[str]:
    rows = [[s, c["done"], c["failed"], c["pending"], c["images"], c["captions"]]
            for s, c in sorted(stats["by_source"].items())]
    header = ["source", "done", "failed", "pending", "images", "captions"]
    return ["## Counts per source", "", _table(header, rows) if rows else "No objects.", ""]


def _category_counts(stats: dict) -> list[str]:
    rows = []
    for cat, c in sorted(stats["by_category"].items()):
        sources = ", ".join(f"{k[7:]} {n}" for k, n in sorted(c.items()) if k.startswith("source:"))
        rows.append([cat, c["objects"], c["images"], c["captions"], sources])
    header = ["category", "objects", "images", "captions", "sources"]
    return ["## Counts per category", "", _table(header, rows) if rows else "No done objects.", ""]


def _folder_categories(stats: dict) -> list[str]:
    """The objects whose category is their folder's name: a guess the user may want to check."""
    fallback = stats["folder_categories"]
    if not fallback:
        return []
    rows = [[o.get("obj_id"), o.get("uid"), o.get("category"), o.get("asset")] for o in fallback[:MAX_FAILURES_LISTED]]
    return ["### Categories from folder names", "",
            f"{len(fallback)} object(s) had no `--categories` entry; their category is their asset's parent folder "
            "name (`category_from: folder` in objects.jsonl):", "",
            _table(["obj_id", "uid", "category", "asset"], rows), ""]


def _quality(stats: dict) -> list[str]:
    """Views the render's quality gate flagged, per issue, and the flagged objects."""
    counts = stats["quality"]
    out = ["## Quality flags", ""]
    if not counts.flagged:
        return out + [f"No view of a done object is flagged ({', '.join(QUALITY_ISSUES)}).", ""]
    rows = [[issue, counts.views[issue], counts.objects[issue], ISSUE_MEANING.get(issue, "")]
            for issue in sorted(counts.views)]
    flagged = [o for o in stats["objects"] if o.get("status") == "done" and quality_issues(o)]
    listed = [[o.get("obj_id"), o.get("uid"), o.get("views"),
               ", ".join(f"{k} {n}" for k, n in sorted(quality_issues(o).items()))]
              for o in flagged[:MAX_FAILURES_LISTED]]
    out += [f"{len(counts.flagged)} done object(s) have flagged views, out of {counts.total_views} views. They "
            "are in the dataset (`farm render --quality fail` fails such objects instead).", "",
            _table(["issue", "views", "objects", "meaning"], rows), "",
            _table(["obj_id", "uid", "views", "flagged views"], listed), ""]
    if len(flagged) > MAX_FAILURES_LISTED:
        out += [f"... and {len(flagged) - MAX_FAILURES_LISTED} more in objects.jsonl (`quality`).", ""]
    return out


def _view_spec(stats: dict) -> list[str]:
    """The spec lines always (saying when they are not recorded), then any other source's lines."""
    provenance = stats["provenance"]
    labels = list(SPEC_PROVENANCE) + [label for label in provenance if label not in SPEC_PROVENANCE]
    return ["## Provenance", "", "### View spec", "",
            *(f"- {label}: {_counter_text(provenance.get(label, Counter()))}" for label in labels), ""]


def _job_row(job: dict) -> list:
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
    created = job.get("created")
    when = _dt.datetime.fromtimestamp(created, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if created else ""
    options = json.dumps(job["options"], sort_keys=True) if job.get("options") else ""
    return [job.get("job_id", ""), job.get("name", ""), when, job.get("spec_hash") or "", spec.get("name", ""),
            spec.get("seed", ""), options, "yes" if job.get("caption") else "no", job.get("caption_model") or ""]


def _farm_jobs(stats: dict) -> list[str]:
    if not stats["jobs"]:
        return []
    header = ["job", "name", "created", "spec hash", "spec name", "seed", "options", "caption",
              "caption model asked for"]
    out = ["### Farm jobs (OUT/.farm/state.sqlite)", "", _table(header, [_job_row(j) for j in stats["jobs"]]), ""]
    specs = {j.get("spec_hash"): j["spec"] for j in stats["jobs"] if isinstance(j.get("spec"), dict)}
    for spec_hash, spec in specs.items():
        out += [f"<details><summary>Spec {spec_hash}</summary>", "", "```json", json.dumps(spec, indent=2), "```",
                "", "</details>", ""]
    return out


def _captions(stats: dict) -> list[str]:
    routes = ", ".join(f"{k} {n}" for k, n in stats["routes"].most_common()) or "not recorded"
    asked = {j["caption_model"] for j in stats["jobs"] if j.get("caption_model")}
    other = sum(n for model, n in stats["models"].items() if model not in asked) if asked else 0
    unasked = [f"- Captioned by a model that no farm job asked for: {other} object(s)"] if other else []
    return ["### Captions", "",
            f"- Model that captioned each object (from its captions.json): {_counter_text(stats['models'])}",
            *unasked,
            f"- Preset: {_counter_text(stats['presets'])}",
            f"- Prompt: {_counter_text(stats['prompts'])}",
            f"- Prompt source: {_counter_text(stats['prompt_sources'])}",
            f"- Consistency re-caption: {_counter_text(stats['consistency'])} (off: every caption is the model's "
            "first answer, as in the original pipeline)",
            f"- Background the renders were composited on: {_counter_text(stats['caption_backgrounds'])}",
            f"- Routes: {routes} (guided: the category-guided prompt named the category; forced_prefix: captioned "
            "again with the category as a prefix)", ""]


def _software_versions(stats: dict) -> list[str]:
    out = ["### Software versions", ""]
    if stats["versions"]:
        rows = [[k, "; ".join(f"{v} ({n})" for v, n in c.most_common())] for k, c in sorted(stats["versions"].items())]
        out += [_table(["component", "version (objects)"], rows), ""]
    else:
        out += ["Blender/bpy and transformers versions are not recorded in this OUT's files.", ""]
    return out + ["Installed where this card was written (may differ from the render and caption machines):", "",
                  _table(["package", "version"], _environment_versions()), ""]


def _failures(stats: dict) -> list[str]:
    failures = stats["failures"]
    if not failures:
        return ["## Failures", "", "No object failed.", ""]
    reasons = Counter(str(f.get("error") or "no reason recorded") for f in failures)
    rows = [[f.get("obj_id"), f.get("uid"), f.get("source"), f.get("category"), f.get("attempts", ""),
             f.get("error") or "no reason recorded"] for f in failures[:MAX_FAILURES_LISTED]]
    out = ["## Failures", "", _table(["reason", "objects"], [[r, n] for r, n in reasons.most_common()]), "",
           _table(["obj_id", "uid", "source", "category", "attempts", "error"], rows), ""]
    if len(failures) > MAX_FAILURES_LISTED:
        out += [f"... and {len(failures) - MAX_FAILURES_LISTED} more in objects.jsonl.", ""]
    return out


def _citation() -> list[str]:
    return ["## Citation", "",
            "The layout and defaults follow MVCap-4M from *Omniview-Tuning: Boosting Viewpoint Invariance of "
            "Vision-Language Pre-training Models* (ECCV 2024). Source assets keep their own licenses "
            "(Objaverse: per-object licenses; MVImgNet and IM3D: their terms of use).", "",
            f"_Card written by `farm dataset card` on {_dt.date.today().isoformat()}._", ""]


def render_card(stats: dict, *, extra_yaml: str = "", data_note: str = "") -> str:
    """The card's Markdown from `card_stats.collect(OUT)`, section by section."""
    sections = [_front_matter(stats, extra_yaml), _summary(stats, data_note), _structure(), _source_counts(stats),
                _category_counts(stats), _folder_categories(stats), _quality(stats), _view_spec(stats),
                _farm_jobs(stats), _captions(stats), _software_versions(stats), _failures(stats), _citation()]
    return "\n".join(line for section in sections for line in section)


def write_card(out_root: str | os.PathLike) -> Path:
    out = out_dir(out_root)
    return atomic_write_text(out / "README.md", render_card(collect(out)))
