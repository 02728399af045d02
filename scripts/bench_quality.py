#!/usr/bin/env python
"""Speed at a known image quality: render settings against a converged reference, same run.

Every asset is imported once; then, view by view, a reference (many samples, no denoising) and
every setting are rendered with the same camera, lights and colour settings (a preset's, default
`mvcap`), the settings in an order that rotates from view to view so that a shared machine's
changing load falls on all of them. Per setting and resolution: views/s (render call only, the
denoiser included), PSNR and SSIM on premultiplied RGB against the reference, and alpha IoU
against it. Two seeds of the preset itself give the noise floor: a PSNR difference smaller than
theirs is noise. The Pareto front (views/s against PSNR) is printed per resolution.

The assets are examples/assets/*.glb plus a sixth made here: Blender's monkey, subdivided, with
a glossy metal material (glossy highlights are where a denoiser has most to do).

    python scripts/bench_quality.py --write
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO, run_header, write_block
from quality_metrics import compare, load_rgba, pareto_front, premultiplied, psnr

sys.path.insert(0, str(REPO))

from blender_addon.rig import lighting  # noqa: E402
from blender_addon.rig.presets import load_preset  # noqa: E402
from blender_addon.rig.spec import SpecError, spec_from_dict  # noqa: E402

# bpy and the add-on's scene modules load after the arguments are checked (bpy takes seconds).
bpy = build = prepare_scene = None


def load_blender() -> None:
    global bpy, build, prepare_scene
    import bpy
    from blender_addon.scene import build
    from blender_addon.scene.render import prepare_scene

# name -> (changes to the preset's render section, Cycles seed). "preset" is the preset unchanged.
SETTINGS = {
    "preset": ({}, 0),
    "preset-seed1": ({}, 1),
    "no-denoise": ({"denoise": False}, 0),
    "adaptive-0.05": ({"adaptive_threshold": 0.05}, 0),
    "16spp": ({"samples": 16}, 0),
    "16spp-no-denoise": ({"samples": 16, "denoise": False}, 0),
    "16spp-rgb-oidn-fast": ({"samples": 16, "denoise_quality": "fast", "denoise_input_passes": "rgb",
                             "denoise_prefilter": "none"}, 0),
    "8spp-oidn-fast": ({"samples": 8, "denoise_quality": "fast"}, 0),
}


def describe(name: str) -> str:
    overrides, seed = SETTINGS[name]
    parts = [f"{k}={v}" for k, v in overrides.items()] + ([f"Cycles seed {seed}"] if seed else [])
    return ", ".join(parts) or "as the preset"


def make_glossy_monkey(folder: Path) -> Path:
    """The sixth asset: Suzanne, subdivided twice, glossy metal, exported as GLB."""
    build.reset_scene()
    bpy.ops.mesh.primitive_monkey_add()
    obj = bpy.context.active_object
    obj.modifiers.new("subd", "SUBSURF").levels = 2
    bpy.ops.object.shade_smooth()
    mat = bpy.data.materials.new("glossy_metal")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.8, 0.45, 0.2, 1.0)
    bsdf.inputs["Metallic"].default_value = 0.9
    bsdf.inputs["Roughness"].default_value = 0.25
    obj.data.materials.append(mat)
    path = folder / "glossy-monkey.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_apply=True)
    return path


def setting_spec(base: dict, resolution: int, overrides: dict):
    data = json.loads(json.dumps(base))
    data["render"].update(resolution_x=resolution, resolution_y=resolution, **overrides)
    return spec_from_dict(data)


def render_one(spec, seed: int, path: Path) -> tuple[float, float]:
    """Configure, render one still to `path`; the render call's wall and CPU seconds (all threads)."""
    build.configure_render(spec, "cpu")
    scene = bpy.context.scene
    scene.cycles.seed = seed
    scene.render.filepath = str(path)
    t0, c0 = time.perf_counter(), time.process_time()
    result = bpy.ops.render.render(write_still=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if "FINISHED" not in result:
        raise SystemExit(f"error: render cancelled ({result})")
    return seconds, cpu


def reference_spec(base: dict, resolution: int, samples: int):
    return setting_spec(base, resolution, {"samples": samples, "denoise": False, "adaptive_sampling": False})


def bench_asset(asset: Path, base: dict, args, names: list[str], rows: dict, tmp: Path, counter: list[int]) -> None:
    views_needed = max(n for _, n, _ in args.res)
    spec0 = setting_spec(base, args.res[0][0], {})
    spec0.camera.num_views = views_needed
    scene = prepare_scene(asset, spec0, asset.stem, "cpu")
    for resolution, n_views, ref_samples in args.res:
        for view in scene.views[:n_views]:
            c2w = build.apply_view(scene.camera, view)
            if scene.lights_per_view:
                build.apply_lighting(*lighting.lights_for(spec0, asset.stem, view=view, c2w=c2w))
            ref_s, ref_cpu = render_one(reference_spec(base, resolution, ref_samples), 0, tmp / "ref.png")
            rows.setdefault(("reference", resolution), []).append({"s": ref_s, "cpu": ref_cpu})
            reference = load_rgba(tmp / "ref.png")
            if args.ref_check and args.ref_check < ref_samples:  # is a cheaper reference converged too?
                render_one(reference_spec(base, resolution, args.ref_check), 0, tmp / "check.png")
                rows.setdefault(("ref-check", resolution), []).append(compare(load_rgba(tmp / "check.png"), reference))
            counter[0] += 1
            order = names[counter[0] % len(names):] + names[:counter[0] % len(names)]
            images = {}
            for name in order:
                overrides, seed = SETTINGS[name]
                seconds, cpu = render_one(setting_spec(base, resolution, overrides), seed, tmp / "img.png")
                images[name] = load_rgba(tmp / "img.png")
                rows.setdefault((name, resolution), []).append({"s": seconds, "cpu": cpu,
                                                                **compare(images[name], reference)})
            if "preset" in images and "preset-seed1" in images:
                rows[("preset-seed1", resolution)][-1]["psnr_between_seeds"] = psnr(
                    premultiplied(images["preset"]), premultiplied(images["preset-seed1"]))
            print(f"{asset.name} {resolution} px view {view.index}: reference {ref_s:.1f} s", flush=True)


def summarise(rows: dict, names: list[str], resolution: int) -> list[dict]:
    out = []
    for name in names:
        views = rows[(name, resolution)]
        seconds = sum(v["s"] for v in views)
        out.append({"setting": name, "views": len(views), "views_per_s": len(views) / seconds,
                    "cpu_per_view": sum(v["cpu"] for v in views) / len(views),
                    "psnr": sum(v["psnr"] for v in views) / len(views),
                    "ssim": sum(v["ssim"] for v in views) / len(views),
                    "alpha_iou": min(v["alpha_iou"] for v in views)})
    return out


def report(rows: dict, names: list[str], args, base_name: str, assets: list[Path]) -> str:
    lines = [f"Command: {run_header()}; Cycles CPU, bpy {bpy.app.version_string}.", ""]
    made = " (glossy-monkey.glb is made by the script)" if not args.assets else ""
    lines.append(f"Preset `{base_name}`; {len(assets)} assets: {', '.join(a.name for a in assets)}{made}. "
                 "Reference per view: denoise and adaptive sampling off, samples as below. Settings are changes to "
                 "the preset's render section. views/s: render calls only (denoiser included), wall clock; CPU s: "
                 "this process's CPU time per view (all threads), steadier than wall time on a shared machine.")
    for resolution, n_views, ref_samples in args.res:
        lines += section(rows, names, resolution, n_views, ref_samples, args.ref_check)
    return "\n".join(lines)


def section(rows: dict, names: list[str], resolution: int, n_views: int, ref_samples: int, ref_check: int) -> list[str]:
    table = summarise(rows, names, resolution)
    base = next(r for r in table if r["setting"] == "preset")
    refs = rows[("reference", resolution)]
    lines = ["", f"**{resolution}x{resolution} px**, {base['views']} views ({n_views} per asset); reference "
             f"{ref_samples} spp, {sum(v['s'] for v in refs) / len(refs):.1f} s and "
             f"{sum(v['cpu'] for v in refs) / len(refs):.1f} CPU s a view", "",
             "| setting | changes | views/s | vs preset | CPU s/view | PSNR dB | ΔPSNR | SSIM | min alpha IoU |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in table:
        lines.append(f"| {r['setting']} | {describe(r['setting'])} | {r['views_per_s']:.3f} | "
                     f"{r['views_per_s'] / base['views_per_s']:.2f}x | {r['cpu_per_view']:.2f} | {r['psnr']:.2f} | "
                     f"{r['psnr'] - base['psnr']:+.2f} | {r['ssim']:.4f} | {r['alpha_iou']:.4f} |")
    lines.append("")
    seed1 = rows.get(("preset-seed1", resolution))
    if seed1:
        spread = sum(abs(a["psnr"] - b["psnr"]) for a, b in zip(rows[("preset", resolution)], seed1)) / len(seed1)
        between = sum(v["psnr_between_seeds"] for v in seed1) / len(seed1)
        lines.append(f"- Noise floor: the preset's two seeds differ by {spread:.2f} dB PSNR against the reference "
                     f"(mean over views); their images are {between:.2f} dB PSNR apart.")
    checks = rows.get(("ref-check", resolution))
    if checks:
        lines.append(f"- Reference check: a {ref_check}-spp reference is {min(c['psnr'] for c in checks):.2f} dB "
                     f"(min over views; mean {sum(c['psnr'] for c in checks) / len(checks):.2f} dB) PSNR from the "
                     f"{ref_samples}-spp one, SSIM >= {min(c['ssim'] for c in checks):.4f}.")
    lines.append("- Pareto front (views/s, PSNR), fastest first: " + "; ".join(
        f"{r['setting']} ({r['views_per_s']:.3f}/s, {r['psnr']:.2f} dB)" for r in pareto_front(table)))
    return lines


def parse_res(text: str) -> list[tuple[int, int, int]]:
    """RES:VIEWS[:REF_SPP],... -> [(resolution, views per asset, reference samples)]"""
    out = []
    for part in text.split(","):
        try:
            nums = [int(x) for x in part.split(":")]
        except ValueError:
            nums = []
        if len(nums) not in (2, 3) or nums[0] < 16 or nums[1] < 1 or (len(nums) == 3 and nums[2] < 1):
            raise argparse.ArgumentTypeError(f"{part!r}: expected RES:VIEWS[:REF_SPP], e.g. 128:2:1024 (RES >= 16)")
        out.append((nums[0], nums[1], nums[2] if len(nums) == 3 else 1024))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assets", nargs="*", type=Path, help="assets (default: examples/assets/*.glb + the monkey)")
    parser.add_argument("--preset", default="mvcap")
    parser.add_argument("--res", type=parse_res, default=parse_res("128:1:1024,512:1:256"),
                        help="RES:VIEWS[:REF_SPP] per resolution: views per asset, reference samples (1024)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    parser.add_argument("--ref-check", type=int, default=256, metavar="SPP",
                        help="also render a SPP-sample reference where the reference has more, and report how far apart")
    parser.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or "preset" not in names:
        print(f"error: --settings needs 'preset' and names from: {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    for asset in args.assets:
        if not asset.is_file():
            print(f"error: asset not found: {asset}", file=sys.stderr)
            return 2
    try:
        base = load_preset(args.preset).to_dict()
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load_blender()
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp_dir:
        tmp = Path(tmp_dir)
        assets = [a.resolve() for a in args.assets] or [*sorted((REPO / "examples" / "assets").glob("*.glb")),
                                                        make_glossy_monkey(tmp)]
        rows: dict = {}
        counter = [0]
        for asset in assets:
            bench_asset(asset, base, args, names, rows, tmp, counter)
    text = report(rows, names, args, args.preset, assets)
    print(text)
    if args.write:
        write_block("bench_quality", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
