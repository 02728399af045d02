#!/usr/bin/env python
"""What each extra output costs: views/s with RGBA alone and with each pass, in one run.

One bpy process renders the same asset with `render_asset` once per output set (`rgba`, then
`rgba` plus one of depth, normal, albedo, mask, then all four, then the pose files), the sets
taking turns --repeat times. Two figures per set, each its best run: views/s of wall time in
rendering and writing (render_s + write_s, so not the import), and the process's CPU seconds per
view (user + system, all threads, the whole render_asset call). On a shared, loaded machine the
wall time swings with the load; the CPU time is the steadier measure of the work a pass adds.

    python scripts/bench_passes.py --write
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from bench_common import REPO, run_child, run_header, write_block

OUTPUT_SETS = [["rgba"], ["rgba", "depth"], ["rgba", "normal"], ["rgba", "albedo"], ["rgba", "mask"],
               ["rgba", "depth", "normal", "albedo", "mask"], ["rgba", "npy_poses", "syncdreamer_meta"]]

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from blender_addon.rig.spec import spec_from_dict
from blender_addon.scene.render import render_asset

args = json.loads(sys.argv[1])
best, cpu = {{}}, {{}}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


for attempt in range(args["repeat"]):
    for n, outputs in enumerate(args["sets"]):
        spec = spec_from_dict({{"camera": {{"num_views": args["views"]}},
                               "render": {{"resolution_x": args["size"], "resolution_y": args["size"],
                                          "samples": args["samples"], "outputs": outputs}}}})
        start = cpu_seconds()
        result = render_asset(args["asset"], spec, Path(args["out"]) / f"{{attempt}}-{{n}}", uid="bench")
        used = cpu_seconds() - start
        seconds = result.timings["render_s"] + result.timings["write_s"]
        key = "+".join(outputs)
        best[key] = min(best.get(key, seconds), seconds)
        cpu[key] = min(cpu.get(key, used), used)
print("BENCH " + json.dumps({{"wall": best, "cpu": cpu}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asset", default=str(REPO / "examples" / "assets" / "Duck.glb"))
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--size", type=int, default=128, help="resolution in pixels (square)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="rewrite this benchmark's block of BENCHMARKS.md")
    args = parser.parse_args()
    header = run_header()
    with tempfile.TemporaryDirectory() as tmp:
        import json

        payload = {"asset": args.asset, "views": args.views, "size": args.size, "samples": args.samples,
                   "repeat": args.repeat, "sets": OUTPUT_SETS, "out": tmp}
        _, measured = run_child(CHILD.format(repo=str(REPO)), json.dumps(payload))
    wall, cpu = measured["wall"], measured["cpu"]
    rows = ["| outputs | views/s (wall) | CPU ms per view | CPU vs rgba |", "| --- | ---: | ---: | ---: |"]
    for outputs in OUTPUT_SETS:
        key = "+".join(outputs)
        rows.append(f"| {', '.join(outputs)} | {args.views / wall[key]:.1f} | {1000 * cpu[key] / args.views:.0f} | "
                    f"{cpu[key] / cpu['rgba']:.2f}x |")
    text = (f"### Extra outputs (`scripts/bench_passes.py`)\n\n{header}\n\n"
            f"{args.views} views of {args.asset.rsplit('/', 1)[-1]}, {args.size} px, {args.samples} samples, Cycles "
            f"on the CPU, best of {args.repeat}; views/s counts rendering and writing, not the import; CPU ms is the "
            f"whole render_asset call (import included, the same for every set) over the views.\n\n"
            + "\n".join(rows))
    print(text)
    if args.write:
        write_block("bench-passes", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
