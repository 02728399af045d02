#!/usr/bin/env python3
"""`farm render --workers auto` against 1 and 2 workers, at a small and a large image size, in one run.

Each configuration is a real `farm render` of the bundled examples/assets into a fresh OUT (the
embedded broker, its workers and their render children: start-up included), timed end to end.
--workers N gives each render child cores/N Cycles threads; auto picks children and threads from
the image size, samples and object count (farm/gpus.py cpu_plan). The configurations run
interleaved, --repeat times in a rotating order, and the best wall time counts, since the CPU is
shared; the 1-minute load average is recorded before each run.

Usage: python scripts/bench_workers.py [--small 128:8:8] [--large 512:32:2] [--repeat 1] [--update BENCHMARKS.md]
       (SIZE:SAMPLES:VIEWS per asset)
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO, run_header, write_block

ASSETS = REPO / "examples" / "assets"
CONFIGS = ("auto", "1", "2")


def render(out: Path, size: int, samples: int, views: int, workers: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "farm", "render", str(ASSETS), "-o", str(out), "--views", str(views),
           "--resolution", str(size), "--samples", str(samples), "--workers", workers, "--no-progress",
           "--categories", str(REPO / "examples" / "categories.csv")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    plan = re.search(r"farm render: (.*)", done.stderr)
    rendered = sum(1 for _ in out.glob("views/*/[0-9][0-9][0-9].png"))
    return {"wall": wall, "views": rendered, "plan": plan.group(1) if plan else "?", "load": load}


def parse_size(text: str) -> tuple[int, int, int]:
    size, samples, views = (int(x) for x in text.split(":"))
    return size, samples, views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="128:8:8", help="SIZE:SAMPLES:VIEWS per asset")
    ap.add_argument("--large", default="512:32:2", help="SIZE:SAMPLES:VIEWS per asset")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--update", default=None, metavar="BENCHMARKS.md")
    args = ap.parse_args()
    header = run_header()
    work = Path(tempfile.mkdtemp(prefix="bench_workers-"))
    rows = ["| image | samples | views | --workers | plan | best wall s | views/s | vs 1 worker | load at start |",
            "|---|---|---|---|---|---|---|---|---|"]
    try:
        for label in ("small", "large"):
            size, samples, views = parse_size(getattr(args, label))
            best: dict[str, dict] = {}
            for round_no in range(args.repeat):
                for workers in CONFIGS[round_no % 3:] + CONFIGS[:round_no % 3]:  # no config always first
                    r = render(work / "OUT", size, samples, views, workers)
                    print(f"  {size}px {samples}spp --workers {workers}: {r['wall']:.1f} s ({r['plan']}, "
                          f"load {r['load']:.1f})", file=sys.stderr)
                    if workers not in best or r["wall"] < best[workers]["wall"]:
                        best[workers] = r
            for workers in CONFIGS:
                r = best[workers]
                rows.append(f"| {size}² | {samples} | {r['views']} | {workers} | {r['plan']} | {r['wall']:.1f} | "
                            f"{r['views'] / r['wall']:.2f} | x{best['1']['wall'] / r['wall']:.2f} | {r['load']:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = "\n".join([
        "## CPU workers: --workers auto", "", header, "",
        f"`farm render` of the {len(list(ASSETS.glob('*.glb')))} bundled example assets, end to end (broker, "
        "worker and render-child start-up included), best of the runs. The CPU is shared with other jobs: "
        "the load column is the 1-minute load average when each run started.", "", *rows, ""])
    print(section)
    if args.update:
        write_block("bench_workers", section, Path(args.update))


if __name__ == "__main__":
    main()
