#!/usr/bin/env python3
"""Benchmark for `farm dataset export --format webdataset`.

Two parts, each phase in a fresh Python process (wall time, peak RSS from ru_maxrss, which
includes the interpreter and imports):
- throughput: a synthetic OUT (tests/dataset/synthetic_out.py) of --objects x --views records
  whose images are --image-kb random bytes each (the exporter copies image bytes and never
  decodes them), exported with the default 1 GB shards, against a plain `tarfile` loop over
  the same records (json.load of metadata.json, TarFile.add of each image, its caption and its
  ids as .txt/.json members, one tar per 1 GB). images/s and MB/s (shard bytes written / wall).
- memory: --memory-records records (default 1M) with EMPTY image files (metadata-scale: the
  exporter's memory does not depend on image bytes, which it streams one at a time), exported
  in order and with --shuffle-seed, and the plain loop, for peak RSS.

Usage: python scripts/bench_export.py [--objects 100] [--views 100] [--image-kb 150]
                                      [--memory-records 1000000] [--update BENCHMARKS.md]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_common import RESULT_PREFIX, REPO, machine, run_child, run_header, write_block

RUNNER = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
OUT, DEST = {out!r}, {dest!r}
{setup}
t0 = time.perf_counter()
{body}
result["seconds"] = time.perf_counter() - t0
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({prefix!r} + json.dumps(result))
"""

SETUP = "import io, tarfile\nfrom pathlib import Path\nfrom farm.dataset.export import export_dataset"  # not timed

OURS = """
folder, count = export_dataset(OUT, "webdataset", DEST, shuffle_seed={seed!r})
result = {{"records": count, "bytes": sum(p.stat().st_size for p in Path(DEST).glob("shard-*.tar"))}}
"""

# The plain way: everything in memory from json.load, tarfile does the headers.
BASELINE = """
records = json.load(open(Path(OUT) / "metadata.json"))
Path(DEST).mkdir(parents=True)
written, shard, tar = 0, 0, None
def add(name, data):
    info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
for r in records:
    if tar is None or tar.fileobj.tell() > 1_000_000_000:
        if tar is not None: tar.close()
        tar = tarfile.open(Path(DEST) / f"shard-{shard:06d}.tar", "w"); shard += 1
    key = f"{r['img_id']:012d}"
    tar.add(Path(OUT) / r["path"], arcname=key + Path(r["path"]).suffix)
    add(key + ".txt", r["caption"].encode())
    add(key + ".json", json.dumps({"obj_id": r["obj_id"], "img_id": r["img_id"], "path": r["path"]}).encode())
tar.close()
result = {"records": len(records), "bytes": sum(p.stat().st_size for p in Path(DEST).glob("shard-*.tar"))}
"""


def make(out: Path, objects: int, views: int, image_kb: float) -> float:
    sys.path.insert(0, str(REPO))
    from tests.dataset.synthetic_out import make_synthetic_out

    t0 = time.perf_counter()
    make_synthetic_out(out, objects, views, image_kb=image_kb)
    return time.perf_counter() - t0


def phase(out: Path, dest: Path, body: str) -> dict:
    shutil.rmtree(dest, ignore_errors=True)
    code = RUNNER.format(repo=str(REPO), out=str(out), dest=str(dest), setup=SETUP, body=body,
                         prefix=RESULT_PREFIX)
    result = run_child(code)[1]
    shutil.rmtree(dest, ignore_errors=True)
    print(f"  {result['records']:>9,} records {result['seconds']:7.1f} s {result['peak_rss_mb']:6.0f} MB",
          file=sys.stderr)
    return result


def row(name: str, r: dict, rates: bool) -> str:
    per_s = f"{r['records'] / r['seconds']:,.0f} | {r['bytes'] / 1e6 / r['seconds']:,.0f}" if rates else "- | -"
    return f"| {name} | {r['records']:,} | {r['seconds']:.1f} | {per_s} | {r['peak_rss_mb']:.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100)
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--image-kb", type=float, default=150.0, help="bytes per image in the throughput part, in kB")
    ap.add_argument("--memory-records", type=int, default=1_000_000, help="records in the memory part (0: skip)")
    ap.add_argument("--workdir", default=None, help="where to make the synthetic OUTs (default: a temp dir)")
    ap.add_argument("--update", default=None, metavar="BENCHMARKS.md", help="write the Export section there")
    args = ap.parse_args()
    header = run_header()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_export-"))
    rows = ["| phase | records | wall s | images/s | MB/s | peak RSS MB |", "|---|---|---|---|---|---|"]
    try:
        out = work / "throughput"
        print(f"making {args.objects} x {args.views} records of {args.image_kb:g} kB ...", file=sys.stderr)
        made = make(out, args.objects, args.views, args.image_kb)
        rows.append(row("webdataset export (ours)", phase(out, work / "ours", OURS.format(seed=None)), True))
        rows.append(row("plain tarfile loop", phase(out, work / "plain", BASELINE), True))
        shutil.rmtree(out)
        if args.memory_records:
            out = work / "memory"
            objects = max(1, args.memory_records // 100)
            print(f"making {objects} x 100 records with empty images ...", file=sys.stderr)
            made_memory = make(out, objects, 100, 0)
            rows.append(row("metadata scale: ours, in order", phase(out, work / "ours", OURS.format(seed=None)), False))
            rows.append(row("metadata scale: ours, --shuffle-seed 1", phase(out, work / "ours", OURS.format(seed=1)), False))
            rows.append(row("metadata scale: plain tarfile loop", phase(out, work / "plain", BASELINE), False))
            shutil.rmtree(out)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    memory_note = (f" The metadata-scale rows use {objects * 100:,} records with EMPTY image files (made in "
                   f"{made_memory:.0f} s): they measure memory, not throughput." if args.memory_records else "")
    section = "\n".join([
        "## WebDataset export", "", header, "",
        f"Throughput rows: a synthetic OUT of {args.objects * args.views:,} records (tests/dataset/synthetic_out.py; "
        f"each image {args.image_kb:g} kB of random bytes, 1 in 5 objects MVImgNet-style JPEGs without a camera; "
        f"made in {made:.0f} s, not timed), default 1 GB shards. MB/s is shard bytes written per second. "
        "Ours also joins each record with objects.jsonl and transforms.json (pose and intrinsics), hashes every "
        "shard (sha256), fsyncs it and records it for resume; the plain loop writes ids only." + memory_note
        + " Peak RSS includes the interpreter and imports; each phase runs in a fresh process.",
        "", *rows, "", f"At the end: {machine()}.", ""])
    print(section)
    if args.update:
        write_block("bench_export", section, Path(args.update))


if __name__ == "__main__":
    main()
