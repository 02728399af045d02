"""A synthetic OUT of any size, fast, in the farm's real layout: for export tests and benchmarks
(scripts/bench_export.py puts the repo root on sys.path and imports it).

Objects alternate between rendered ones (`views/<uid>/NNN.png` with a real transforms.json from
blender_addon.rig.transforms.build_transforms for the mvcap preset) and, every `mvimgnet_every`-th,
sampled frames (`mvimgnet/<category>/<seq>/NNN.jpg` with frames.json and no camera). Each image
is a tiny picture whose colour encodes its img_id; or, with `image_kb`, that many random bytes
(export throughput: the exporters copy image bytes, never decode them), 0 making empty files
(metadata-scale runs). captions.json per object; then metadata.json from farm.metadata, the
farm's own assembly.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

from PIL import Image

CATEGORIES = ["rocking_chair", "airliner", "teapot", "mug", "remote control", "duck"]


def tiny_image(value: int, fmt: str, px: int = 8) -> bytes:
    colour = (value & 255, (value >> 8) & 255, (value >> 16) & 255)
    img = Image.new("RGBA" if fmt == "PNG" else "RGB", (px, px), colour)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 80}))
    return buf.getvalue()


def _rendered(folder: Path, uid: str, views: int, spec) -> list[str]:
    from blender_addon.rig.patterns import sample_views
    from blender_addon.rig.transforms import build_transforms, write_transforms

    names = [f"{v:03d}.png" for v in range(views)]
    doc = build_transforms(spec, uid, sample_views(spec, uid), {"scale": 1.0, "offset": [0.0, 0.0, 0.0]}, names)
    write_transforms(folder / "transforms.json", doc)
    return names


def _sampled(folder: Path, uid: str, views: int) -> list[str]:
    names = [f"{v:03d}.jpg" for v in range(views)]
    (folder / "frames.json").write_text(json.dumps({"uid": uid, "frames": [
        {"file_path": n, "source_frame": f"{v:03d}.jpg", "sharpness": 1.0} for v, n in enumerate(names)]}))
    return names


def make_synthetic_out(out: Path, objects: int, views: int, *, image_kb: float | None = None,
                       mvimgnet_every: int = 5) -> list[dict]:
    """Write the OUT and return its objects.jsonl records."""
    from blender_addon.rig.presets import load_preset
    from farm.metadata import write_metadata, write_objects

    spec = load_preset("mvcap").with_overrides(views=views, resolution=64)
    records = []
    for obj_id in range(objects):
        category = CATEGORIES[obj_id % len(CATEGORIES)]
        sampled = mvimgnet_every and obj_id % mvimgnet_every == mvimgnet_every - 1
        if sampled:
            uid, source = f"{obj_id % 97}-{obj_id:08x}", "mvimgnet"
            out_rel = f"mvimgnet/{category.replace(' ', '_')}/{obj_id:08x}"
        else:
            uid, source, out_rel = f"{obj_id:032x}", "objaverse", f"views/{obj_id:032x}"
        folder = out / out_rel
        folder.mkdir(parents=True)
        names = _sampled(folder, uid, views) if sampled else _rendered(folder, uid, views, spec)
        for v, name in enumerate(names):
            if image_kb is None:
                data = tiny_image(obj_id * 100 + v, "JPEG" if sampled else "PNG")
            else:
                data = os.urandom(int(image_kb * 1000))
            (folder / name).write_bytes(data)
        readable = category.replace("_", " ")
        captions = [{"view": v, "file": n, "caption": f"a {readable} seen from viewpoint {v}",
                     "route": "guided", "error": None} for v, n in enumerate(names)]
        (folder / "captions.json").write_text(json.dumps({"uid": uid, "category": category, "model": "synthetic",
                                                          "preset": "paper", "prompt": "p", "captions": captions}))
        records.append({"obj_id": obj_id, "uid": uid, "source": source, "category": category,
                        "asset": f"/data/{uid}", "out_rel": out_rel, "views": views, "status": "done",
                        "error": None, "attempts": 1, "missing_textures": [], "quality": []})
    write_objects(out, records)
    write_metadata(out, records)
    return records
