"""Test data in each source's real layout, built from the real test assets and real images.

- objaverse_cache: `<root>/glbs/000-000/<uid>.glb` holding the real GLBs from ../shared/assets/glb,
  with an Objaverse-LVIS JSON `{category: [uids]}` beside it;
- im3d_root: `<root>/<class>_<NN>/<mesh>.glb`;
- mvimgnet_root: `<root>/<category_id>/<sequence>/images/NNN.jpg` with MVImgNet's own
  `mvimgnet_category.txt` format; frames are JPEG photos of a textured, turning object drawn
  with Pillow, and the frames listed in BLURRED are blurred with PIL's GaussianBlur.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# file name -> (uid, LVIS category); uids are 32 hex digits like Objaverse's
GLB_UIDS = {
    "Duck.glb": ("duck", "duck"),
    "Box.glb": ("box1", "box"),
    "BoxTextured.glb": ("box2", "box"),
    "white-claw-can.glb": ("can", "can"),
    "credit-card.glb": ("card", "credit_card"),
}


def objaverse_uid(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


# MVImgNet layout: category id -> name (a slice of the real mvimgnet_category.txt, incl. a space)
MVIMGNET_CATEGORIES = "0,bag\n1,bottle\n12,remote control\n17,mug\n"
# (category id, sequence, frame count, blurred frame indices)
MVIMGNET_SEQUENCES = [
    ("17", "0a1b2c3d", 40, (0, 7, 8, 20, 39)),  # blurred targets and a blurred neighbour
    ("12", "1f2e3d4c", 34, (5, 11, 16)),
    ("12", "2b3c4d5e", 32, (3, 4, 9, 10, 15, 21, 27)),  # 25 sharp frames: fewer than 30
]


def draw_frame(i: int, n: int, seed: int, size=(320, 240)) -> Image.Image:
    """One frame of a hand-held capture: a textured box turning on a patterned table."""
    rng = np.random.default_rng(seed)
    w, h = size
    noise = rng.integers(90, 170, size=(h // 4, w // 4, 3), dtype=np.uint8)
    img = Image.fromarray(noise).resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    for y in range(h // 2, h, 12):  # table planks
        draw.line([(0, y), (w, y + 6)], fill=(120, 80, 40), width=2)
    tex = Image.new("RGB", (96, 96))
    td = ImageDraw.Draw(tex)
    for r in range(8):
        for c in range(8):
            td.rectangle([c * 12, r * 12, c * 12 + 11, r * 12 + 11],
                         fill=(220, 40, 40) if (r + c) % 2 else (245, 245, 235))
    td.text((20, 40), f"MVCap {seed % 97}", fill=(0, 0, 0))
    angle = 360.0 * i / n
    obj = tex.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    cx = int(w / 2 - obj.width / 2 + 20 * math.sin(2 * math.pi * i / n))
    img.paste(obj, (cx, int(h / 2 - obj.height / 2)), obj.convert("L").point(lambda v: 255 if v > 0 else 0))
    draw.text((6, 6), f"frame {i:03d}", fill=(255, 255, 255))
    return img


BLUR = ImageFilter.GaussianBlur(radius=1)  # a slight defocus: Laplacian variance drops about 20x


def build_mvimgnet(root: Path) -> dict[str, dict]:
    """Write the MVImgNet fixture. Returns {uid: {"frames": [sha256 per frame], "blurred": set}}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mvimgnet_category.txt").write_text(MVIMGNET_CATEGORIES)
    info = {}
    for cid, seq, n, blurred in MVIMGNET_SEQUENCES:
        images = root / cid / seq / "images"
        images.mkdir(parents=True)
        (root / cid / seq / "sparse" / "0").mkdir(parents=True)  # as in MVImgNet; not used
        hashes = []
        for i in range(n):
            frame = draw_frame(i, n, seed=int(seq, 16) % 10007 + i)
            if i in blurred:
                frame = frame.filter(BLUR)
            path = images / f"{i:03d}.jpg"
            frame.save(path, "JPEG", quality=92)
            hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
        info[f"{cid}-{seq}"] = {"frames": hashes, "blurred": set(blurred)}
    return info


# --- one OUT from three sources, as `farm render` and the captioner leave it ---------------------
RENDER_OVERRIDES = {"views": 6, "resolution": 128, "samples": 4}
RENDER_ARGS = ["--views", "6", "--resolution", "128", "--samples", "4"]
CAPTION_MODEL = "fixture-captioner"


def fixture_captions(uid: str, category: str, files: list[str], failed_view: int | None = None) -> dict:
    """captions.json as the captioner writes it: category-guided, one forced prefix, maybe a failure."""
    from blender_addon.contract.categories import readable
    from captioner.prompts import PAPER_PROMPT

    name = readable(category)
    entries = []
    for name_i, file in enumerate(files):
        view = int(file.split(".")[0])
        if view == failed_view:
            entries.append({"view": view, "file": file, "caption": None, "route": "guided",
                            "error": "image could not be decoded"})
        elif view == 1:
            entries.append({"view": view, "file": file, "caption": f"The {name} in the image is seen from above.",
                            "route": "forced_prefix", "error": None})
        else:
            entries.append({"view": view, "file": file, "caption": f"a {name} shown from viewpoint {name_i}",
                            "route": "guided", "error": None})
    return {"uid": uid, "category": category, "model": CAPTION_MODEL, "preset": "paper",
            "prompt": PAPER_PROMPT.format(category=name), "captions": entries}


def farm_render(out: Path, source: str, paths: list[Path], *args: str) -> subprocess.CompletedProcess:
    """The real `farm render` (embedded broker, one worker) for one source into `out`."""
    cmd = [sys.executable, "-m", "farm", "render", *map(str, paths), "--source", source, "-o", str(out),
           "--no-progress", "--max-attempts", "1", *args]
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=repo, env=env)


def build_mixed_out(out: Path, runs: list[tuple[str, list[Path], list[str]]]) -> list[dict]:
    """Three `farm render --source ...` runs into one OUT (one store, dense obj_ids across them),
    then captions.json per done object in the captioner's format. Returns objects.jsonl."""
    for source, paths, args in runs:
        done = farm_render(out, source, paths, *args)
        assert done.returncode in (0, 3), f"farm render --source {source}: rc {done.returncode}\n{done.stderr[-3000:]}"
    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    for n, obj in enumerate(objects):
        if obj["status"] != "done":
            continue
        folder = out / obj["out_rel"]
        files = sorted(p.name for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
        doc = fixture_captions(obj["uid"], obj["category"], files, failed_view=2 if n == 0 else None)
        (folder / "captions.json").write_text(json.dumps(doc, indent=1))
    return objects
