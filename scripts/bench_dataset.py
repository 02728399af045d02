#!/usr/bin/env python3
"""Scale benchmark for `farm dataset build` and `farm dataset validate`.

Builds a synthetic OUT of N objects x V views (default 10,000 x 100 = 1,000,000 records), mixed over
the three sources, in the real layout:
- objects.jsonl, and per object captions.json (V captions naming the category) and its marker
  (transforms.json or frames.json, minimal);
- V image files per object. They are real files but EMPTY (0 bytes): validate checks that each
  path exists (one directory listing per object folder), not what is inside, so empty files
  exercise exactly the code that runs on a real dataset. `--no-files` skips creating them and
  validates with --skip-files instead.

Then it runs each phase in a fresh Python process and reports wall time and peak RSS
(resource.getrusage ru_maxrss of that process; the interpreter and imports are included):
- build      farm.dataset.build_dataset (streams metadata.json, one captions.json at a time)
- validate   farm.dataset.validate_dataset (streams metadata.json; img_ids in a bitmap)
- baseline   the same work done the plain way, for a ratio in the same run:
             build = list(iter_metadata_records) + json.dump (farm.metadata before streaming);
             validate = json.load(metadata.json) + sets + os.path.exists per record.

Usage: python scripts/bench_dataset.py [--objects 10000] [--views 100] [--update BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_common import RESULT_PREFIX, command_line, machine, run_child, write_block

REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ["rocking_chair", "airliner", "teapot", "mug", "remote control", "duck", "can", "box"]
SOURCES = ["objaverse", "im3d", "mvimgnet"]


def make_out(out: Path, objects: int, views: int, files: bool) -> dict:
    """The synthetic OUT. Returns what was made."""
    sys.path.insert(0, str(REPO))
    from farm.sources.mvimgnet import category_folder

    t0 = time.perf_counter()
    lines = []
    for obj_id in range(objects):
        source = SOURCES[obj_id % 3]
        category = CATEGORIES[obj_id % len(CATEGORIES)]
        if source == "objaverse":
            uid = f"{obj_id:032x}"
            out_rel, ext, marker = f"views/{uid}", "png", "transforms.json"
        elif source == "im3d":
            uid = f"{category_folder(category)}_{obj_id:05d}"
            out_rel, ext, marker = f"im3d/{uid}", "png", "transforms.json"
        else:
            seq = f"{obj_id:08x}"
            uid = f"{obj_id % 97}-{seq}"
            out_rel, ext, marker = f"mvimgnet/{category_folder(category)}/{seq}", "jpg", "frames.json"
        folder = out / out_rel
        folder.mkdir(parents=True)
        names = [f"{v:03d}.{ext}" for v in range(views)]
        if files:
            for name in names:
                open(folder / name, "wb").close()
        (folder / marker).write_text(json.dumps({"uid": uid, "category": category, "spec_hash": "bench",
                                                 "frames": [{"file_path": n} for n in names]}))
        readable = category.replace("_", " ")
        captions = [{"view": v, "file": n, "caption": f"a {readable} seen from viewpoint {v}, on a plain background",
                     "route": "guided", "error": None} for v, n in enumerate(names)]
        (folder / "captions.json").write_text(json.dumps({"uid": uid, "category": category, "model": "bench",
                                                          "preset": "paper", "prompt": "p", "captions": captions}))
        lines.append(json.dumps({"obj_id": obj_id, "uid": uid, "source": source, "category": category,
                                 "asset": f"/data/{uid}", "out_rel": out_rel, "views": views, "status": "done",
                                 "error": None, "attempts": 1, "missing_textures": [], "quality": []}))
    (out / "objects.jsonl").write_text("\n".join(lines) + "\n")
    return {"seconds": time.perf_counter() - t0, "records": objects * views}


PHASES = {
    "build": """
from farm.dataset import build_dataset
r = build_dataset(OUT)
result = {"records": r.records}
""",
    "validate": """
from farm.dataset import validate_dataset
r = validate_dataset(OUT, check_files=CHECK_FILES)
assert r.ok, r.kept[:5]
result = {"records": r.records, "violations": r.count}
""",
    "baseline_build": """
import json
from pathlib import Path
from blender_addon.rig.fileio import atomic_write_json
from farm.metadata import iter_metadata_records
records = list(iter_metadata_records(OUT))
atomic_write_json(Path(OUT) / "metadata.baseline.json", records, indent=None)
result = {"records": len(records)}
""",
    "baseline_validate": """
import json, os
from pathlib import Path
out = Path(OUT)
objects = {o["obj_id"]: o for o in map(json.loads, (out / "objects.jsonl").read_text().splitlines())}
records = json.loads((out / "metadata.json").read_text())
seen, bad = set(), 0
for r in records:
    if set(r) != {"path", "caption", "obj_id", "img_id"}: bad += 1
    view = int(r["path"].rsplit("/", 1)[1].split(".")[0])
    if r["img_id"] != r["obj_id"] * 100 + view or r["img_id"] in seen: bad += 1
    seen.add(r["img_id"])
    if r["path"][2:].rsplit("/", 1)[0] != objects[r["obj_id"]]["out_rel"]: bad += 1
    if CHECK_FILES and not os.path.exists(out / r["path"]): bad += 1
assert bad == 0
result = {"records": len(records), "violations": bad}
""",
}

RUNNER = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
OUT, CHECK_FILES = {out!r}, {check_files!r}
t0 = time.perf_counter()
{body}
result["seconds"] = time.perf_counter() - t0
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({prefix!r} + json.dumps(result))
"""

BARE = """
import json, resource, sys
sys.path.insert(0, {repo!r})
import farm.dataset, farm.dataset.validate, blender_addon.contract.categories, farm.metadata, blender_addon.rig.fileio
print({prefix!r} + json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_phase(code: str) -> dict:
    return run_child(code)[1]


def markdown(args, made, results, bare) -> str:
    rows = [
        "| phase | records | wall s | peak RSS MB | ours / baseline |",
        "|---|---|---|---|---|",
    ]
    for name in ("build", "validate"):
        r, b = results[name], results[f"baseline_{name}"]
        rows.append(f"| {name} (streaming) | {r['records']:,} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                    f"time x{r['seconds'] / b['seconds']:.2f}, memory x{r['peak_rss_mb'] / b['peak_rss_mb']:.2f} |")
        rows.append(f"| {name} (baseline: load all) | {b['records']:,} | {b['seconds']:.1f} | {b['peak_rss_mb']:.0f} | 1 |")
    files = "empty image files, existence checked" if not args.no_files else "no image files (--skip-files)"
    return "\n".join([
        "## Dataset",
        "",
        f"`{command_line()}`: a synthetic OUT of "
        f"{args.objects:,} objects x {args.views} views = {made['records']:,} records over the three sources "
        f"({files}; captions.json and a marker per object; made in {made['seconds']:.0f} s, not timed). "
        "Each phase runs in a fresh process; peak RSS includes the interpreter and imports "
        f"({bare['peak_rss_mb']:.0f} MB for the imports alone). Target: 1M records in < 60 s and < 2 GB.",
        "",
        *rows,
        "",
        f"Machine: {machine()} (at the end). The baseline is the plain way in the same run: build = "
        "`list(iter_metadata_records)` + `json.dump`; validate = `json.load` + sets + `os.path.exists` per record. "
        "The streaming validate checks more than that baseline (every captions.json, each caption against its "
        "category, view counts on disk), in about the same time.",
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--no-files", action="store_true", help="make no image files; validate with --skip-files")
    ap.add_argument("--workdir", default=None, help="where to make the synthetic OUT (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic OUT")
    ap.add_argument("--update", default=None, metavar="BENCHMARKS.md", help="write the Dataset section there")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_dataset-"))
    out = work / "OUT"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        print(f"making {args.objects:,} x {args.views} in {out} ...", file=sys.stderr)
        made = make_out(out, args.objects, args.views, not args.no_files)
        print(f"  made in {made['seconds']:.1f} s", file=sys.stderr)
        bare = run_phase(BARE.format(repo=str(REPO), prefix=RESULT_PREFIX))
        results = {}
        for name in ("build", "validate", "baseline_build", "baseline_validate"):
            code = RUNNER.format(repo=str(REPO), out=str(out), check_files=not args.no_files, body=PHASES[name],
                                 prefix=RESULT_PREFIX)
            results[name] = run_phase(code)
            r = results[name]
            print(f"  {name:18s} {r['records']:>10,} records  {r['seconds']:6.1f} s  {r['peak_rss_mb']:7.0f} MB",
                  file=sys.stderr)
        section = markdown(args, made, results, bare)
        print(section)
        if args.update:
            write_block("bench_dataset", section, Path(args.update))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
