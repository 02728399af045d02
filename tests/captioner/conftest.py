"""Fixtures for the captioner tests: tiny random models of real architectures (built once per
session from configs, saved with save_pretrained) and output folders with real RGBA PNGs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from farm.layout import OBJECTS_JSONL, view_filename, views_rel  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    from captioner.testing import build_llava

    return build_llava(tmp_path_factory.mktemp("tiny-llava"), init_range=0.2)


@pytest.fixture(scope="session")
def tiny_instructblip(tmp_path_factory) -> Path:
    from captioner.testing import build_instructblip

    return build_instructblip(tmp_path_factory.mktemp("tiny-instructblip"), init_factor=8.0)


def write_view_png(path: Path, seed: int, size: int = 48) -> None:
    """An RGBA render-like PNG: a coloured blob on a transparent film, different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.15, 0.35) * size
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8) // 2 + rng.integers(0, 128, 3, dtype=np.uint8)
    rgba[..., 3] = np.where(mask, 255, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def make_out(root: Path, objects: list[tuple[str, str, int]], *, statuses: dict[str, str] | None = None,
             size: int = 48) -> Path:
    """OUT with views/<uid>/NNN.png and objects.jsonl in the farm's schema, for (uid, category, views)."""
    statuses = statuses or {}
    lines = []
    for obj_id, (uid, category, views) in enumerate(objects):
        rel = views_rel(uid)
        status = statuses.get(uid, "done")
        if status == "done":
            for v in range(views):
                path = root / rel / view_filename(v)
                if not path.exists():  # an object rendered earlier keeps its files
                    write_view_png(path, seed=obj_id * 1000 + v, size=size)
        lines.append({"obj_id": obj_id, "uid": uid, "source": "folder", "category": category,
                      "asset": f"/assets/{uid}.glb", "out_rel": rel, "views": views, "status": status,
                      "error": None if status == "done" else "import failed", "attempts": 1,
                      "missing_textures": [], "quality": []})
    root.mkdir(parents=True, exist_ok=True)
    (root / OBJECTS_JSONL).write_text("".join(json.dumps(o) + "\n" for o in lines), encoding="utf-8")
    return root


@pytest.fixture
def out_factory(tmp_path):
    def factory(objects, name="out", **kwargs):
        return make_out(tmp_path / name, objects, **kwargs)

    return factory
