"""`farm render` tells the user what went wrong, on the terminal and in its exit code (real renders
of a tiny box, real captioner processes): a captioner that cannot start (exit 4, its reason
printed), a model that fails on every image (exit 3, the reason per object, no metadata record),
views the render flagged and categories taken from a folder name (counted and named), and
`--quality fail` (the flagged object fails at once, with the reason)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .failing_captioner import GENERATE_ERROR
from .helpers import REPO
from .helpers import env as _env

TINY = ("--views", "2", "--resolution", "32", "--samples", "1", "--no-progress")


@pytest.fixture
def boxes(tmp_path) -> Path:
    """examples/assets/Box.glb in a folder named `boxes`: no --categories, so its category is `boxes`.
    The box fills the frame: the render flags its views as clipped."""
    folder = tmp_path / "boxes"
    folder.mkdir()
    shutil.copyfile(REPO / "examples" / "assets" / "Box.glb", folder / "Box.glb")
    return folder


def _render(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "render", *map(str, args), *TINY], capture_output=True,
                          text=True, env=_env(), cwd=REPO, timeout=300)


def test_summary_counts_quality_flags_and_folder_categories(boxes, tmp_path):
    proc = _render("farm", boxes, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "1 of 1 objects done, 1 with quality flags, 0 failed" in proc.stderr
    assert "  quality flags: clipped in 2 view(s) of 1 object(s) (Box)" in proc.stderr
    assert "  category from the parent folder's name (no --categories entry) for 1 object(s): Box (boxes)" \
        in proc.stderr
    obj = json.loads((tmp_path / "out" / "objects.jsonl").read_text())
    assert obj["category_from"] == "folder" and obj["quality"][0]["issues"] == ["clipped"]


def test_quality_fail_fails_the_flagged_object_at_once(boxes, tmp_path):
    proc = _render("farm", boxes, "-o", tmp_path / "out", "--quality", "fail")
    assert proc.returncode == 3, proc.stderr
    assert "failed: Box (obj_id 0): quality: clipped in 2 of 2 view(s) (--quality fail)" in proc.stderr
    obj = json.loads((tmp_path / "out" / "objects.jsonl").read_text())
    assert obj["status"] == "failed" and obj["attempts"] == 1  # renders are deterministic: no retry


def test_captioner_that_cannot_start_exits_4_with_its_reason(boxes, tmp_path):
    missing = tmp_path / "no-such-model"
    proc = _render("farm", boxes, "-o", tmp_path / "out", "--caption", "--caption-model", missing)
    assert proc.returncode == 4, proc.stderr
    reason = f"model folder {str(missing)!r} does not exist"
    assert f"captioner exited with code 2: {reason}" in proc.stderr
    assert "captions: 0 objects captioned, 0 failed, 1 pending" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: captioning could not run: {reason}")
    assert json.loads((tmp_path / "out" / "objects.jsonl").read_text())["status"] == "done"  # the render is kept


@pytest.mark.slow
def test_model_that_fails_every_image_fails_the_captions(boxes, tmp_path, tiny_llava):
    out = tmp_path / "out"
    proc = _render("tests.captioner.failing_farm", boxes, "-o", out, "--caption", "--caption-model", tiny_llava,
                   "--max-attempts", "1")
    assert proc.returncode == 3, proc.stderr
    assert "captions: 0 objects captioned, 1 failed, 0 pending" in proc.stderr
    assert f"captioning failed: Box (obj_id 0): all 2 image(s) failed: captioning failed: {GENERATE_ERROR}" \
        in proc.stderr
    assert not (out / "metadata.json").exists() or json.loads((out / "metadata.json").read_text()) == []
    assert not (out / "views" / "Box" / "captions.json").exists()
