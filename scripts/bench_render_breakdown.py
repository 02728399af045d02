#!/usr/bin/env python
"""Where one view's render time goes: denoising, samples, the render call itself; and whether
rendering the views as one animation is cheaper than a still per view.

One bpy process builds the scene for one asset once (render_asset's import, normalisation, camera
and lights), then for each setting renders every view as a still (bpy.ops.render.render per view,
as render_asset does) and then all views as one animation (camera keyframes, one
render(animation=True)). The settings are --samples with denoise on, --samples without it, and
1 sample without it (the fixed part of a view). A still's time is its render call; an animation
frame's is from its render_pre handler to the next one (or to the end), so both include writing
the image. The first view of each (BVH, shaders, animation start-up) is left out and the median of
the other views counts, which a shared machine's load spikes move least. The settings run
--repeat times in turn and the best median of each counts.

    python scripts/bench_render_breakdown.py --samples 8 --write
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import median

from bench_common import REPO, run_child, run_header, write_block

sys.path.insert(0, str(REPO))

from blender_addon.rig.presets import load_preset  # noqa: E402

DEFAULT_ASSET = REPO / "examples" / "assets" / "Duck.glb"

CHILD = r"""
import json, sys, time
import bpy
sys.path.insert(0, {repo!r})
from blender_addon.rig import lighting, patterns
from blender_addon.rig.spec import spec_from_dict
from blender_addon.scene import build
from blender_addon.scene.importers import import_asset
from blender_addon.scene.normalize import normalize_objects

args = json.loads(sys.argv[1])
spec, uid, out = spec_from_dict(args["spec"]), args["uid"], args["out"]
build.reset_scene()
norm = normalize_objects(import_asset(args["asset"]), spec.normalize.mode, spec.normalize.frame)
views = patterns.sample_views(spec, uid, bounding_radius=norm.radius)
build.configure_render(spec, "cpu")
camera = build.build_camera(spec)
build.apply_lighting(*lighting.lights_for(spec, uid))
scene = bpy.context.scene
frame_starts = []
bpy.app.handlers.render_pre.append(lambda *_: frame_starts.append(time.perf_counter()))
results = []
for samples, denoise in args["settings"]:
    scene.cycles.samples, scene.cycles.use_denoising = samples, denoise
    tag = f"{{out}}/s{{samples}}-d{{int(denoise)}}"
    stills = []
    for i, view in enumerate(views):
        build.apply_view(camera, view)
        scene.render.filepath = f"{{tag}}-{{i:03d}}.png"
        t = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        stills.append(time.perf_counter() - t)
    for frame, view in enumerate(views, start=1):
        build.apply_view(camera, view)
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_start, scene.frame_end = 1, len(views)
    scene.render.filepath = f"{{tag}}-anim-"
    frame_starts.clear()
    bpy.ops.render.render(animation=True)
    frame_starts.append(time.perf_counter())
    frames = [b - a for a, b in zip(frame_starts, frame_starts[1:])]
    camera.animation_data_clear()
    results.append({{"samples": samples, "denoise": denoise, "stills_s": stills, "frames_s": frames}})
print("BENCH " + json.dumps({{"settings": results, "bpy": bpy.app.version_string}}))
"""


def measure(args) -> dict:
    spec = load_preset(args.preset).with_overrides(views=args.views, resolution=args.resolution)
    settings = [(args.samples, True), (args.samples, False), (1, False)]
    with tempfile.TemporaryDirectory(prefix="bench_breakdown_") as tmp:
        payload = {"spec": spec.to_dict(), "uid": args.asset.stem, "asset": str(args.asset), "out": tmp,
                   "settings": settings * args.repeat}
        _wall, data = run_child(CHILD.format(repo=str(REPO)), json.dumps(payload))
    runs = data["settings"]
    best = []
    for i in range(len(settings)):
        mine = runs[i::len(settings)]
        best.append({"samples": mine[0]["samples"], "denoise": mine[0]["denoise"],
                     "still": min(median(r["stills_s"][1:]) for r in mine),
                     "frame": min(median(r["frames_s"][1:]) for r in mine),
                     "frames": len(mine[0]["frames_s"])})
    return {"settings": best, "bpy": data["bpy"]}


def report(args, data: dict) -> str:
    rows = data["settings"]
    denoised, plain, one_sample = rows
    animation_ratios = " / ".join(f"{r['frame'] / r['still']:.2f}x" for r in rows)
    lines = [f"Command: {run_header()}; Cycles CPU, bpy {data['bpy']}.", "",
             f"Asset {args.asset.name}, preset `{args.preset}` at {args.resolution}x{args.resolution} px, "
             f"{args.views} views, one bpy process with the scene built once, best of {args.repeat} rounds. "
             f"Stills: a render call per view. Animation: the {args.views} views as the frames of one "
             f"render(animation=True), after the stills ({rows[0]['frames']} frames timed). Median seconds "
             f"over views 2..{args.views}.", "",
             "| samples | denoise | s per view, a still per view | s per view, one animation | animation / stills |",
             "| ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['samples']} | {'on' if r['denoise'] else 'off'} | {r['still']:.3f} | {r['frame']:.3f} | "
                     f"{r['frame'] / r['still']:.2f}x |")
    lines += ["",
              f"- Denoising is {1 - plain['still'] / denoised['still']:.0%} of a view at {args.samples} samples "
              f"({denoised['still']:.3f} s with it, {plain['still']:.3f} s without).",
              f"- At 1 sample without denoising a view takes {one_sample['still']:.3f} s: the fixed part of "
              f"a view (the render call, film, writing the image).",
              f"- One animation render instead of a still per view: {animation_ratios} the time per view "
              f"(rows in the table's order)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("asset", nargs="?", type=Path, default=DEFAULT_ASSET)
    parser.add_argument("--preset", default="mvcap")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the settings; the best counts")
    parser.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    if args.views < 2:
        parser.error("--views: at least 2 (the first view is not counted)")
    text = report(args, measure(args))
    print(text)
    if args.write:
        write_block("bench_render_breakdown", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
