"""Helpers for the captioner tests: output folders with real RGBA PNGs and objects.jsonl,
the metadata.json schema check, running the real CLI in a subprocess, and a broker's caption
queue filled and read back."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from blender_addon.contract.layout import OBJECTS_JSONL, img_id_stride, view_filename
from farm.metadata import read_objects
from farm.sources.folder import views_rel
from farm.store import Store

REPO = Path(__file__).resolve().parents[2]


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


def env() -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    out.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    return out


def captioner(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "captioner", *args], capture_output=True, text=True,
                          env=env(), cwd=REPO, timeout=timeout)


def check_metadata(out: Path) -> list[dict]:
    """metadata.json follows MVCap's schema: paths exist, ids right, keys exact, no duplicates."""
    records = json.loads((out / "metadata.json").read_text())
    objects = {o["obj_id"]: o for o in read_objects(out)}
    assert sorted(objects) == list(range(len(objects))), "obj_ids in objects.jsonl are dense"
    stride = img_id_stride(max(o["views"] for o in objects.values()))
    seen = set()
    for rec in records:
        assert set(rec) == {"path", "caption", "obj_id", "img_id"}
        assert rec["path"].startswith("./") and (out / rec["path"][2:]).is_file()
        view = int(Path(rec["path"]).stem)
        assert rec["img_id"] == rec["obj_id"] * stride + view
        assert rec["path"] == f"./{objects[rec['obj_id']]['out_rel']}/{view:03d}.png"
        assert isinstance(rec["caption"], str) and rec["caption"]
        assert rec["img_id"] not in seen, "duplicate record"
        seen.add(rec["img_id"])
    return records


def assert_forced_prefix_route(backend, images, prompts, categories) -> None:
    """The forced-prefix route: every caption starts with "The <category> in the image", the model
    continues after it, the caption names its category, and the batch equals one-by-one output."""
    from captioner.models import GenerationSettings
    from blender_addon.contract.categories import names_category
    from captioner.prompts import forced_prefix

    backend.generation = GenerationSettings(max_new_tokens=6)
    prefixes = [forced_prefix(c) for c in categories]
    captions = backend.generate(images, prompts, prefixes)
    for cap, pre, cat in zip(captions, prefixes, categories):
        assert cap.startswith(pre)
        assert len(cap) > len(pre), "the model continued after the prefix"
        assert names_category(cap, cat)
    # batched forced route == one by one, with prefixes of different lengths in one batch
    single = [backend.generate([im], [p], [pre])[0] for im, p, pre in zip(images, prompts, prefixes)]
    assert captions == single


def queue_rendered(state: Path, out: Path, objects: list[tuple[str, str, int]], **job) -> str:
    """Put `objects` (already on disk under OUT) into the store as a captioned job whose renders
    are complete, so that their caption tasks wait in the durable queue. `job`: more job settings
    (caption_model, max_attempts). Returns the job id."""
    store = Store(state)
    try:
        reply = store.submit({"out_root": str(out), "name": "t", "caption": True, "views": 3, "timeout_s": 60, **job},
                             [{"uid": u, "path": f"/assets/{u}.glb", "category": c, "source": "folder",
                               "out_rel": f"views/{u}"} for u, c, _ in objects])
        with store.transaction():
            leases = store.lease("render", ["test-worker"] * len(objects), lease_s=60)
            assert len(leases) == len(objects)
            views = {f"views/{u}": n for u, _, n in objects}
            for _, task in leases:
                rel = store.object_row(task["object_id"])["out_rel"]
                files = [f"{v:03d}.png" for v in range(views[rel])] + ["transforms.json"]
                assert store.complete(task["task_id"], task["attempt_id"], result={"files": files, "views": views[rel]})
        store.export_objects(str(out))
        return reply["job_id"]
    finally:
        store.close()


def caption_tasks(state: Path) -> dict:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        states = dict(db.execute("SELECT state, COUNT(*) FROM tasks WHERE queue='caption' GROUP BY state").fetchall())
        done_twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT a.task_id FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
            " WHERE t.queue = 'caption' AND a.outcome = 'done' GROUP BY a.task_id HAVING COUNT(*) > 1)").fetchone()[0]
        return {"states": states, "done_twice": done_twice}
    finally:
        db.close()


def caption_attempts(state: Path) -> list[tuple[str | None, str | None]]:
    """(outcome, error) of every caption attempt, in order."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return db.execute("SELECT a.outcome, a.error FROM attempts a JOIN tasks t ON t.task_id = a.task_id"
                          " WHERE t.queue = 'caption' ORDER BY a.attempt_id").fetchall()
    finally:
        db.close()


def serve_args(endpoint: str, model: Path, *extra: str, module: str = "captioner") -> list[str]:
    """`captioner serve` (or a test launcher of it, `module`) against `endpoint` with a tiny model."""
    return [sys.executable, "-m", module, "serve", "--connect", endpoint, "--model", str(model),
            "--max-new-tokens", "6", "--heartbeat", "0.5", *extra]
