"""The whole path on real renders: `farm render --caption` renders the example assets with bpy,
the broker queues caption tasks, `captioner serve` (a tiny random LLaVA) captions them, and
metadata.json comes out in MVCap's schema with every caption naming its object's category."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from blender_addon.contract.categories import names_category

from .helpers import REPO, check_metadata
from .helpers import env as _env


@pytest.mark.slow
def test_farm_render_caption_real_renders(tiny_llava, tmp_path):
    assets = REPO / "examples" / "assets"
    categories = REPO / "examples" / "categories.csv"
    if not assets.is_dir():
        pytest.skip("examples/assets is missing")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "farm", "render", str(assets), "-o", str(out), "--views", "3",
                           "--resolution", "64", "--samples", "4", "--categories", str(categories), "--caption",
                           "--caption-model", str(tiny_llava)],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cats = {row["uid"]: row["category"] for row in csv.DictReader(categories.open())}
    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert objects and all(o["status"] == "done" for o in objects)
    for obj in objects:
        doc = json.loads((out / obj["out_rel"] / "captions.json").read_text())
        assert doc["category"] == cats[obj["uid"]] and len(doc["captions"]) == 3
        for entry in doc["captions"]:
            assert (out / obj["out_rel"] / entry["file"]).is_file()
            assert entry["error"] is None and names_category(entry["caption"], doc["category"])
    records = check_metadata(out)
    assert len(records) == 3 * len(objects)
    assert {r["obj_id"] for r in records} == set(range(len(objects)))
