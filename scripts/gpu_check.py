#!/usr/bin/env python3
"""The steps of scripts/gpu_check.sh (which installs what they need first): the GPU figures of
issue 12, measured on one NVIDIA GPU, written as a markdown table to stdout and to --out.

Steps, in order; the first that fails stops the run with `gpu_check: FAILED at <step>: <why>`
(exit 1), after writing the table of the steps before it:
  environment  the GPU, driver, torch and bpy in use
  cycles       Cycles views/s at the mvcap spec (512², 32 samples, denoise) on OptiX, CUDA and CPU
  per_gpu      `farm render --device gpu --per-gpu 1|2|4`, views/s end to end
  eevee        EEVEE views/s, headless through EGL (DISPLAY and WAYLAND_DISPLAY unset)
  captioner    images/s of InstructBLIP-FlanT5-XL's architecture (random weights, its published
               sizes), bf16, 5 beams, 32 new tokens, at batch 1, 16 and 64, and the seconds the
               model waited for decoded images
  e2e          `farm render --caption` against `farm render` and `captioner run` alone, same assets

--cpu-smoke runs every step at toy sizes on the CPU (OptiX and CUDA rows render on the CPU, the
model is tiny), so CI keeps this script working without a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from bench_common import REPO, RESULT_PREFIX, run_child, run_header

sys.path.insert(0, str(REPO))

ASSETS = sorted((REPO / "examples" / "assets").glob("*.glb"))
SIZES = {
    "gpu": dict(resolution=None, samples=None, views=16, cpu_views=4, objects=10, per_gpu_views=8,
                eevee_views=8, batch_sizes=[1, 16, 64], beams=5, tokens=32, caption_views=8, e2e_views=4,
                devices=[("OptiX", "optix", "OPTIX"), ("CUDA", "cuda", "CUDA"), ("CPU", "cpu", "CPU")]),
    "smoke": dict(resolution=32, samples=1, views=2, cpu_views=2, objects=2, per_gpu_views=2, eevee_views=1,
                  batch_sizes=[1, 2, 4], beams=2, tokens=4, caption_views=2, e2e_views=1,
                  devices=[("OptiX (smoke: CPU)", "cpu", "CPU"), ("CUDA (smoke: CPU)", "cpu", "CPU"),
                           ("CPU", "cpu", "CPU")]),
}
# Salesforce/instructblip-flan-t5-xl's config.json, typed in (no hub access here): EVA ViT-g/14,
# a 12-layer Q-Former with 32 query tokens, Flan-T5-XL.
PAPER_VISION = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                    image_size=224, patch_size=14, layer_norm_eps=1e-6, qkv_bias=True)
PAPER_QFORMER = dict(vocab_size=30523, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, encoder_hidden_size=1408, cross_attention_frequency=2,
                     max_position_embeddings=512)
PAPER_T5 = dict(vocab_size=32128, d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_decoder_layers=24,
                num_heads=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                relative_attention_num_buckets=32, relative_attention_max_distance=128)
PAPER_QUERY_TOKENS = 32


class StepFailed(Exception):
    """A step that could not measure what it should. One line."""


RENDER = r"""
import json, sys
from blender_addon.rig.presets import load_preset
from blender_addon.scene.render import render_asset
args = json.loads(sys.argv[1])
spec = load_preset("mvcap").with_overrides(views=args["views"], resolution=args["resolution"],
                                           samples=args["samples"], engine=args["engine"])
rows = []
for label, device, expected in args["devices"]:
    r = render_asset(args["asset"], spec, f"{args['out']}/{device}-{len(rows)}", "check", device=device)
    t = r.timings
    rows.append({"label": label, "backend": r.device, "expected": expected, "views": r.views,
                 "seconds": t["render_s"] + t["write_s"], "import_s": t["import_s"]})
print("BENCH " + json.dumps({"rows": rows, "res": spec.render.resolution_x, "samples": spec.render.samples,
                             "denoise": bool(spec.render.denoise)}))
"""


def render_views(ctx: Namespace, engine: str, views: int, devices: list, env: dict | None = None) -> dict:
    args = {"asset": str(ASSETS[0]), "views": views, "resolution": ctx.size["resolution"],
            "samples": ctx.size["samples"], "engine": engine, "devices": devices, "out": str(ctx.work / engine)}
    proc = subprocess.run([sys.executable, "-c", RENDER, json.dumps(args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise StepFailed(f"{engine} render failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def step_environment(ctx: Namespace) -> list[list]:
    _, info = run_child("import json, bpy, torch\nprint('BENCH ' + json.dumps({'bpy': bpy.app.version_string, "
                        "'torch': torch.__version__, 'cuda': torch.cuda.is_available(), 'gpu': "
                        "torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))")
    smi = shutil.which("nvidia-smi")
    driver = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip() if smi else "no nvidia-smi"
    if not ctx.smoke and not info["cuda"]:
        raise StepFailed(f"torch {info['torch']} sees no CUDA GPU (nvidia-smi: {driver}); a CUDA build of torch "
                         "and an NVIDIA driver are needed")
    return [["environment", "GPU (nvidia-smi)", driver or "none", ""],
            ["environment", "bpy / torch", f"{info['bpy']} / {info['torch']}", f"torch sees CUDA: {info['cuda']}"]]


def step_cycles(ctx: Namespace) -> list[list]:
    s = ctx.size
    devices = [[label, dev, exp] for label, dev, exp in s["devices"]]
    result = render_views(ctx, "cycles", s["views"], devices[:2])
    result["rows"] += render_views(ctx, "cycles", s["cpu_views"], devices[2:])["rows"]
    rows = []
    for r in result["rows"]:
        if r["backend"] != r["expected"]:
            raise StepFailed(f"{r['label']}: Cycles rendered on {r['backend']}, not {r['expected']}")
        rows.append(["cycles", f"{r['label']}, {result['res']}², {result['samples']} samples, "
                     f"denoise {'on' if result['denoise'] else 'off'}", f"{r['views'] / r['seconds']:.2f} views/s",
                     f"{r['views']} views in {r['seconds']:.1f} s (import {r['import_s']:.1f} s not counted)"])
    return rows


def farm_render(ctx: Namespace, out: Path, assets: Path, views: int, *extra: str) -> float:
    s = ctx.size
    size = ["--resolution", str(s["resolution"]), "--samples", str(s["samples"])] if s["resolution"] else []
    cmd = [sys.executable, "-m", "farm", "render", str(assets), "-o", str(out), "--views", str(views), *size,
           "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise StepFailed(f"{' '.join(cmd[2:])}: exit {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return time.perf_counter() - t0


def object_copies(ctx: Namespace, count: int) -> Path:
    folder = ctx.work / "objects"
    if not folder.is_dir():
        folder.mkdir()
        for i in range(count):
            shutil.copyfile(ASSETS[i % len(ASSETS)], folder / f"obj{i:02d}.glb")
    return folder


def step_per_gpu(ctx: Namespace) -> list[list]:
    s = ctx.size
    assets, rows = object_copies(ctx, s["objects"]), []
    for k in (1, 2, 4):
        device = ["--device", "cpu", "--workers", str(k)] if ctx.smoke else ["--device", "gpu", "--per-gpu", str(k)]
        wall = farm_render(ctx, ctx.work / f"per-gpu-{k}", assets, s["per_gpu_views"], *device)
        views = s["objects"] * s["per_gpu_views"]
        what = f"--workers {k} (smoke: CPU)" if ctx.smoke else f"--per-gpu {k}"
        rows.append(["per_gpu", f"farm render {what}", f"{views / wall:.2f} views/s",
                     f"{s['objects']} objects x {s['per_gpu_views']} views in {wall:.1f} s, start-up included"])
    return rows


def step_eevee(ctx: Namespace) -> list[list]:
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}  # no X server, no Wayland: EGL or nothing
    r = render_views(ctx, "eevee", ctx.size["eevee_views"], [["EEVEE", "gpu", "GPU"]], env)["rows"][0]
    return [["eevee", "EEVEE headless (EGL, no X server)", f"{r['views'] / r['seconds']:.2f} views/s",
             f"{r['views']} views in {r['seconds']:.1f} s"]]


def build_paper_model(folder: Path) -> str:
    """InstructBLIP-FlanT5-XL's architecture at its published sizes, random bf16 weights, built on the GPU."""
    import torch
    from transformers import (BlipImageProcessor, InstructBlipConfig, InstructBlipForConditionalGeneration,
                              InstructBlipProcessor, T5Config)

    from tests.captioner.tiny_models import build_tokenizer

    tok, qtok = build_tokenizer(512), build_tokenizer(512)
    text = T5Config(**PAPER_T5, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                    decoder_start_token_id=tok.pad_token_id)
    config = InstructBlipConfig(vision_config=PAPER_VISION, qformer_config=PAPER_QFORMER, text_config=text.to_dict(),
                                num_query_tokens=PAPER_QUERY_TOKENS,
                                image_token_index=tok.convert_tokens_to_ids("<image>"))
    with torch.device("cuda"):
        model = InstructBlipForConditionalGeneration(config).to(torch.bfloat16).eval()
    model.save_pretrained(folder)
    InstructBlipProcessor(image_processor=BlipImageProcessor(size={"height": 224, "width": 224}), tokenizer=tok,
                          qformer_tokenizer=qtok, num_query_tokens=PAPER_QUERY_TOKENS).save_pretrained(folder)
    return str(folder)


def caption_model(ctx: Namespace) -> str:
    if ctx.model is None:
        if ctx.smoke:
            from tests.captioner.tiny_models import build_instructblip

            ctx.model = str(build_instructblip(ctx.work / "model"))
        else:
            ctx.model = build_paper_model(ctx.work / "model")
    return ctx.model


def step_captioner(ctx: Namespace) -> list[list]:
    from bench_captioner import bench_batching

    s = ctx.size
    args = Namespace(device="cpu" if ctx.smoke else "cuda", max_new_tokens=s["tokens"], num_beams=s["beams"],
                     model=None, resolution=64 if ctx.smoke else 512, decode_threads=4, rounds=1, batches=2,
                     min_images=s["caption_views"], views=s["caption_views"], batch_sizes=s["batch_sizes"])
    result = bench_batching(args, caption_model(ctx), ctx.work)
    label = "tiny InstructBLIP (smoke)" if ctx.smoke else "InstructBLIP-FlanT5-XL sizes, random weights, bf16"
    return [["captioner", f"{label}, {s['beams']} beams, {s['tokens']} tokens, batch {r['batch_size']}",
             f"{r['images_per_s_best']:.2f} images/s",
             f"{r['images']} images; waited {r['decode_wait_s']:.2f} s for images ({r['decode_wait_pct']:.1f}% of wall)"]
            for r in result["summary"]]


def step_e2e(ctx: Namespace) -> list[list]:
    from bench_captioner import bench_e2e

    s = ctx.size
    args = Namespace(e2e=[str(object_copies(ctx, s["objects"]))], views=s["e2e_views"],
                     e2e_resolution=s["resolution"] or 512, workers="auto", render_device="cpu" if ctx.smoke else "gpu")
    r = bench_e2e(args, caption_model(ctx))
    note = f"{s['objects']} objects x {s['e2e_views']} views"
    return [["e2e", "farm render (no caption)", f"{r['render_s']:.1f} s", note],
            ["e2e", "captioner run (caption alone)", f"{r['caption_s']:.1f} s", note],
            ["e2e", "farm render --caption", f"{r['render_caption_s']:.1f} s",
             f"x{r['ratio_vs_larger']:.2f} of the slower stage alone"]]


STEPS = [("environment", step_environment), ("cycles", step_cycles), ("per_gpu", step_per_gpu),
         ("eevee", step_eevee), ("captioner", step_captioner), ("e2e", step_e2e)]


def table(header: str, rows: list[list], failed: str | None) -> str:
    lines = ["# GPU check", "", header, "", "| step | what | result | notes |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    if failed:
        lines += ["", f"**FAILED** at {failed}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="every step at toy sizes on the CPU")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.md"), help="where the table goes too")
    ap.add_argument("--only", default=None, help="comma-separated steps to run (default: all)")
    opts = ap.parse_args()
    ctx = Namespace(smoke=opts.cpu_smoke, size=SIZES["smoke" if opts.cpu_smoke else "gpu"], model=None,
                    work=Path(tempfile.mkdtemp(prefix="gpu_check-")))
    header = run_header() + (" (--cpu-smoke: toy sizes on the CPU)" if opts.cpu_smoke else "")
    rows, failed = [], None
    wanted = set(opts.only.split(",")) if opts.only else {name for name, _ in STEPS}
    try:
        for name, step in STEPS:
            if name not in wanted:
                continue
            t0 = time.perf_counter()
            print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
            try:
                rows += step(ctx)
            except (StepFailed, SystemExit) as exc:  # SystemExit: a benchmark helper's own one-line error
                failed = f"{name}: {exc}"
                break
            print(f"gpu_check: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)
        text = table(header, rows, failed)
        print(text)
        opts.out.write_text(text, encoding="utf-8")
    if failed:
        print(f"gpu_check: FAILED at {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
