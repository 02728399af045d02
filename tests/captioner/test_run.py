"""`captioner run OUT`: batching across objects, the consistency route, failures, metadata.json,
kill -9 and restart, catching up. Real PNGs, tiny real models, the real CLI in subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import transformers

import pytest

from blender_addon.contract.categories import names_category
from captioner.engine import CaptionEngine
from captioner.models import GenerationSettings, load_backend
from captioner.prompts import PAPER_PROMPT, forced_prefix
from captioner.runner import run_out

from .helpers import REPO, check_metadata, make_out, write_view_png
from .helpers import captioner as _captioner
from .helpers import env as _env

OBJECTS = [("chair01", "rocking_chair", 4), ("plane01", "airliner", 3), ("mug01", "coffee_mug", 2),
           ("zc01", "zebra_crossing", 3), ("harm01", "harmonica", 2)]


def _captions(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("views/*/captions.json"))}


def _engine_factory(model: Path, batch_size: int, generation: GenerationSettings, **kwargs):
    backend = load_backend(str(model))
    backend.generation = generation
    return partial(CaptionEngine, backend, prompt_template=PAPER_PROMPT, batch_size=batch_size, preset="test",
                   decode_threads=2, **kwargs)


@pytest.mark.parametrize("model", ["tiny_llava", "tiny_instructblip"])
def test_batch_of_8_across_objects_equals_one_by_one(model, request, tmp_path):
    """Greedy captions from dynamic batches of 8 (across objects, left padding for LLaVA) are
    exactly those from batches of 1."""
    folder = request.getfixturevalue(model)
    gen = GenerationSettings(max_new_tokens=10)
    out8 = make_out(tmp_path / "b8", OBJECTS)
    out1 = tmp_path / "b1"
    shutil.copytree(out8, out1)
    stats8 = run_out(out8, _engine_factory(folder, 8, gen))
    stats1 = run_out(out1, _engine_factory(folder, 1, gen))
    assert stats8["batches"] == 2 and stats1["batches"] == 14  # 14 images: 8 + 6, or 14 x 1
    c8, c1 = _captions(out8), _captions(out1)
    assert set(c8) == {uid for uid, _, _ in OBJECTS}
    for uid in c8:
        assert c8[uid]["captions"] == c1[uid]["captions"], uid
    assert len({e["caption"] for d in c8.values() for e in d["captions"]}) > 3


@pytest.mark.parametrize("model", ["tiny_llava", "tiny_instructblip"])
def test_consistency_route_forces_the_category(model, request, tmp_path):
    """A random model does not name the category, so the forced-prefix route fires; afterwards
    every caption names its object's category, and the route is recorded per caption."""
    out = make_out(tmp_path / "out", OBJECTS)
    stats = run_out(out, _engine_factory(request.getfixturevalue(model), 4, GenerationSettings(max_new_tokens=8)))
    caps = _captions(out)
    forced = 0
    for uid, category, views in OBJECTS:
        doc = caps[uid]
        assert doc["category"] == category and len(doc["captions"]) == views
        for entry in doc["captions"]:
            assert entry["error"] is None
            assert names_category(entry["caption"], category), entry
            assert entry["route"] in ("guided", "forced_prefix")
            if entry["route"] == "forced_prefix":
                forced += 1
                assert entry["caption"].startswith(forced_prefix(category))
        if category in ("zebra_crossing", "harmonica"):  # words the tiny model never saw
            assert {e["route"] for e in doc["captions"]} == {"forced_prefix"}
    assert forced >= 5 and stats["forced"] == forced


def test_consistency_off_records_guided(tiny_llava, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS[3:4])
    run_out(out, _engine_factory(tiny_llava, 4, GenerationSettings(max_new_tokens=6), consistency=False))
    entries = _captions(out)["zc01"]["captions"]
    assert {e["route"] for e in entries} == {"guided"}


def test_run_cli_end_to_end(tiny_llava, tmp_path):
    """captioner run: only done objects, captions.json per object, metadata.json in MVCap's schema."""
    objects = OBJECTS + [("broken01", "teapot", 3), ("queued01", "dog", 3)]
    out = make_out(tmp_path / "out", objects, statuses={"broken01": "failed", "queued01": "pending"})
    proc = _captioner("run", str(out), "--model", str(tiny_llava), "--batch-size", "4", "--max-new-tokens", "8",
                      "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["captioned"] == 14 and stats["failed"] == 0 and stats["objects"] == 5
    caps = _captions(out)
    assert set(caps) == {uid for uid, _, _ in OBJECTS}
    doc = caps["chair01"]
    assert set(doc) == {"uid", "category", "model", "preset", "prompt", "captions",
                        "transformers_version", "torch_version", "background", "consistency", "prompt_source"}
    assert doc["consistency"] is True and doc["background"] == "#ffffff"
    assert doc["transformers_version"] == transformers.__version__
    assert doc["preset"] == "fast" and doc["model"] == str(tiny_llava)
    assert "rocking chair" in doc["prompt"]
    assert [e["file"] for e in doc["captions"]] == ["000.png", "001.png", "002.png", "003.png"]
    assert all(set(e) == {"view", "file", "caption", "route", "error"} for e in doc["captions"])
    records = check_metadata(out)
    assert len(records) == 14
    assert {r["obj_id"] for r in records} == set(range(5))  # dense: the done objects are 0..4
    # a second run has nothing to do and leaves the captions alone
    before = {p: p.stat().st_mtime_ns for p in out.glob("views/*/captions.json")}
    proc = _captioner("run", str(out), "--model", str(tiny_llava))
    assert proc.returncode == 0 and "nothing to caption" in proc.stderr
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("views/*/captions.json")}


def test_truncated_png_fails_alone(tiny_llava, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS[:3])
    bad = out / "views/chair01/002.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    stats = run_out(out, _engine_factory(tiny_llava, 4, GenerationSettings(max_new_tokens=6)))
    assert stats["failed"] == 1 and stats["captioned"] == 8
    entries = {e["file"]: e for e in _captions(out)["chair01"]["captions"]}
    assert entries["002.png"]["caption"] is None and entries["002.png"]["error"].startswith("cannot read image")
    assert all(entries[f]["caption"] for f in ("000.png", "001.png", "003.png"))
    records = check_metadata(out)
    assert len(records) == 8 and "./views/chair01/002.png" not in {r["path"] for r in records}
    # --retry-failed captions it again once the file is good
    write_view_png(bad, seed=2)
    stats = run_out(out, _engine_factory(tiny_llava, 4, GenerationSettings(max_new_tokens=6)), retry_failed=True)
    assert stats["objects"] == 1 and stats["failed"] == 0
    assert len(check_metadata(out)) == 9


def test_catches_up_with_new_renders_and_rerenders(tiny_llava, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS[:2], statuses={})
    factory = _engine_factory(tiny_llava, 4, GenerationSettings(max_new_tokens=6))
    run_out(out, factory)
    first = {p: p.stat().st_mtime_ns for p in out.glob("views/*/captions.json")}
    assert len(first) == 2 and len(check_metadata(out)) == 7
    # the farm finished two more objects since
    make_out(out, OBJECTS[:4])
    time.sleep(0.05)
    stats = run_out(out, factory)
    assert stats["objects"] == 2
    assert {p: p.stat().st_mtime_ns for p in first} == first  # nothing captioned twice
    assert len(check_metadata(out)) == 12
    # an object re-rendered after it was captioned is captioned again
    time.sleep(0.05)
    write_view_png(out / "views/mug01/000.png", seed=7)
    stats = run_out(out, factory)
    assert stats["objects"] == 1 and stats["images"] == 2


@pytest.mark.slow
def test_kill_9_mid_run_then_restart(tiny_llava, tmp_path):
    """kill -9 the captioner mid-run and start it again: no object is captioned twice, none is
    missing, and no temporary file is left behind."""
    objects = [(f"obj{i:02d}", ["rocking_chair", "airliner", "mug"][i % 3], 3) for i in range(30)]
    out = make_out(tmp_path / "out", objects, size=32)
    args = [sys.executable, "-m", "captioner", "run", str(out), "--model", str(tiny_llava), "--batch-size", "1",
            "--max-new-tokens", "24", "--num-beams", "2"]
    proc = subprocess.Popen(args, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("views/*/captions.json"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survivors = {p: p.stat().st_mtime_ns for p in out.glob("views/*/captions.json")}
    assert 3 <= len(survivors) < 30, "killed mid-run"
    for path in survivors:  # what is there is whole
        assert len(json.loads(path.read_text())["captions"]) == 3
    done = _captioner("run", str(out), "--model", str(tiny_llava), "--batch-size", "4", "--max-new-tokens", "8",
                      "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["objects"] == 30 - len(survivors)
    assert {p: p.stat().st_mtime_ns for p in survivors} == survivors  # 0 duplicates
    records = check_metadata(out)
    assert len(records) == 90  # 0 missing
    assert {(r["obj_id"], r["img_id"]) for r in records} == {(i, i * 100 + v) for i in range(30) for v in range(3)}
    assert not list(out.rglob("*.tmp"))


def test_run_bad_out_is_one_line(tmp_path):
    proc = _captioner("run", str(tmp_path / "nope"))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    proc = _captioner("run", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "objects.jsonl" in proc.stderr and "Traceback" not in proc.stderr


def test_help():
    proc = _captioner("--help")
    assert proc.returncode == 0 and "serve" in proc.stdout and "run" in proc.stdout
    script = shutil.which("captioner", path=str(Path(sys.executable).parent))
    if script:  # the installed console script (pip install -e .) is the same command
        proc = subprocess.run([script, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
        assert proc.returncode == 0 and "serve" in proc.stdout
    for sub in ("run", "serve"):
        proc = _captioner(sub, "--help")
        assert proc.returncode == 0 and "--model" in proc.stdout and "--preset" in proc.stdout
