#!/usr/bin/env python
"""Captioner throughput: images/s at batch 1, 8 and 32 on one model, and how long the model waits
for decoded images.

No weights can be downloaded here, so by default the model is a randomly initialised LLaVA of
SmolVLM-256M-like size (CLIP-style vision tower + a SmolLM-135M-shaped Llama with a 49,152-token
vocabulary, ~175M parameters), built from a config and loaded through the captioner's real
loading code. Pass --model DIR (or a hub id you have cached) to measure real weights instead.

The images are 512x512 RGBA PNGs like the farm's renders, decoded by the captioner's prefetch
threads; each timed run goes through CaptionEngine (prefetch queue, processor, generate, writing
captions.json). Every caption is exactly --max-new-tokens long (min_new_tokens = max_new_tokens),
so that batch sizes do the same work; the consistency re-caption is off for the same reason.

    python scripts/bench_captioner.py                      # a few minutes on a 2-core CPU
    python scripts/bench_captioner.py --model /models/SmolVLM-256M-Instruct --batch-sizes 1,8,32
    python scripts/bench_captioner.py --e2e examples/assets --views 8   # farm render vs --caption
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench_common import cpu_name, run_header  # noqa: E402

SMOLVLM_LIKE = dict(hidden=576, layers=30, heads=9, kv_heads=3, intermediate=1536, vision_hidden=384,
                    vision_layers=6, vision_heads=6, vision_intermediate=1536, image_size=224, patch_size=32,
                    model_vocab=49152)


def render_like_png(path: Path, seed: int, size: int) -> None:
    """An RGBA image with the statistics of a render: a shaded object on a transparent film."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.35)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    shade = np.clip(1.0 - d / r, 0, 1)[..., None]
    colour = rng.uniform(60, 230, 3)
    rgb = shade * colour + rng.normal(0, 6, (size, size, 3))
    alpha = (d < r).astype(np.float32) * 255
    rgba = np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def make_dataset(root: Path, images: int, views: int, size: int) -> list:
    from captioner.engine import CaptionTask

    cats = ["rocking_chair", "airliner", "coffee_mug", "teapot", "table_lamp"]
    tasks = []
    n_obj = (images + views - 1) // views
    for o in range(n_obj):
        rel = f"views/obj{o:04d}"
        n = min(views, images - o * views)
        for v in range(n):
            render_like_png(root / rel / f"{v:03d}.png", seed=o * 1000 + v, size=size)
        tasks.append(CaptionTask(uid=f"obj{o:04d}", category=cats[o % len(cats)], out_root=root, out_rel=rel,
                                 files=[f"{v:03d}.png" for v in range(n)], obj_id=o))
    return tasks


def build_default_model(work: Path) -> str:
    # the tests' builder of random-weight models (no download); REPO is on sys.path
    from tests.captioner.tiny_models import build_llava, count_parameters

    t0 = time.perf_counter()
    model = str(build_llava(work / "model", **SMOLVLM_LIKE))
    print(f"built a random SmolVLM-sized LLaVA ({count_parameters(model) / 1e6:.0f}M parameters) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    return model


def bench_batching(args, model: str, work: Path) -> dict:
    import torch

    from captioner.engine import CaptionEngine
    from captioner.models import GenerationSettings, describe, load_backend
    from captioner.prompts import PAPER_PROMPT

    backend = load_backend(model, device=args.device)
    backend.generation = GenerationSettings(max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
    backend.generation_config.min_new_tokens = args.max_new_tokens  # equal work at every batch size
    params = sum(p.numel() for p in backend.model.parameters())
    label = "random SmolVLM-sized LLaVA" if args.model is None else args.model
    results = {"model": describe(backend).replace(str(model), label), "parameters_m": round(params / 1e6, 1),
               "max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams,
               "resolution": args.resolution, "decode_threads": args.decode_threads,
               "torch_threads": torch.get_num_threads(), "cpu": cpu_name(), "cores": os.cpu_count(),
               "runs": []}
    warm = [Image.new("RGB", (args.resolution, args.resolution), "white")]
    load = []
    for round_no in range(args.rounds):  # interleaved rounds: a shared machine's load hits every size
        for bs in args.batch_sizes:
            n_images = max(bs * args.batches, args.min_images)
            out = work / f"out-b{bs}-r{round_no}"
            tasks = make_dataset(out, n_images, args.views, args.resolution)
            backend.generate(warm * bs, ["Describe the object."] * bs)  # warm-up at this shape
            engine = CaptionEngine(backend, prompt_template=PAPER_PROMPT, batch_size=bs, consistency=False,
                                   decode_threads=args.decode_threads, preset="bench")
            start = time.perf_counter()
            for task in tasks:
                engine.submit(task)
            engine.run_until_idle()
            wall = time.perf_counter() - start
            engine.close()
            stats = engine.stats.as_dict()
            run = {"round": round_no, "batch_size": bs, "images": stats["images"], "wall_s": round(wall, 2),
                   "images_per_s": round(stats["images"] / wall, 3), "generate_s": stats["generate_s"],
                   "decode_wait_s": stats["decode_wait_s"],
                   "decode_wait_pct": round(100 * stats["decode_wait_s"] / wall, 2),
                   "loadavg_1m": round(os.getloadavg()[0], 2)}
            results["runs"].append(run)
            load.append(run["loadavg_1m"])
            print(json.dumps(run), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    summary = []
    for bs in args.batch_sizes:
        runs = [r for r in results["runs"] if r["batch_size"] == bs]
        rates = sorted(r["images_per_s"] for r in runs)
        summary.append({"batch_size": bs, "images": sum(r["images"] for r in runs),
                        "images_per_s_median": rates[len(rates) // 2], "images_per_s_best": rates[-1],
                        "decode_wait_s": round(sum(r["decode_wait_s"] for r in runs), 3),
                        "wall_s": round(sum(r["wall_s"] for r in runs), 2)})
    results["summary"] = summary
    results["loadavg_1m_max"] = max(load) if load else None
    base = next((r for r in summary if r["batch_size"] == 1), None)
    for row in summary:
        row["speedup_median"] = round(row["images_per_s_median"] / base["images_per_s_median"], 2) if base else None
        row["speedup_best"] = round(row["images_per_s_best"] / base["images_per_s_best"], 2) if base else None
        row["decode_wait_pct"] = round(100 * row["decode_wait_s"] / row["wall_s"], 2)
    return results


def bench_e2e(args, model: str) -> dict:
    """`farm render --caption` vs `farm render` alone vs `captioner run` alone, wall time."""
    farm = shutil.which("farm")
    farm_cmd = [farm] if farm else [sys.executable, "-m", "farm"]
    common = ["--views", str(args.views), "--resolution", str(args.e2e_resolution), "--samples", "8",
              "--workers", str(args.workers), "--device", getattr(args, "render_device", "cpu")]
    model_args = ["--caption-model", model]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    out = {}
    try:
        def timed(cmd):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
            if proc.returncode not in (0, 3):
                raise SystemExit(f"e2e: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            return round(time.perf_counter() - t0, 2)

        out["render_s"] = timed(farm_cmd + ["render", *args.e2e, "-o", str(work / "r"), *common, "--no-caption"])
        cap = [sys.executable, "-m", "captioner", "run", str(work / "r")]
        out["caption_s"] = timed(cap + ["--model", model])
        out["render_caption_s"] = timed(farm_cmd + ["render", *args.e2e, "-o", str(work / "rc"), *common,
                                                    "--caption", *model_args])
        out["ratio_vs_larger"] = round(out["render_caption_s"] / max(out["render_s"], out["caption_s"]), 3)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder or hub id (default: a random SmolVLM-sized LLaVA)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,8,32", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--batches", type=int, default=2, help="batches per batch size and round")
    ap.add_argument("--min-images", type=int, default=6, help="at least this many images per batch size and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the batch sizes")
    ap.add_argument("--views", type=int, default=8, help="views per object")
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--decode-threads", type=int, default=4)
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice, one per core)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    ap.add_argument("--e2e", nargs="*", default=None, metavar="ASSET",
                    help="also time farm render --caption vs render alone vs caption alone on these assets")
    ap.add_argument("--e2e-resolution", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(run_header(), flush=True)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    work = Path(tempfile.mkdtemp(prefix="bench-captioner-"))
    try:
        model = args.model or build_default_model(work)
        results = {"batching": bench_batching(args, model, work)}
        if args.e2e:
            results["e2e"] = bench_e2e(args, model)
            print(json.dumps(results["e2e"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    b = results["batching"]
    print(f"\n{b['model']}, {b['parameters_m']}M parameters, {b['max_new_tokens']} new tokens, "
          f"{b['resolution']}px RGBA PNGs, {b['cpu']} ({b['cores']} cores, torch threads {b['torch_threads']})")
    print(f"1-minute load average up to {b['loadavg_1m_max']} during the runs")
    print("| batch | images | images/s (median of rounds) | best | vs batch 1 (median / best) |"
          " waiting for images s (% of wall) |")
    print("|---|---|---|---|---|---|")
    for r in b["summary"]:
        print(f"| {r['batch_size']} | {r['images']} | {r['images_per_s_median']} | {r['images_per_s_best']} | "
              f"{r['speedup_median']}x / {r['speedup_best']}x | {r['decode_wait_s']} ({r['decode_wait_pct']}%) |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
