"""A captioner whose model fails is a failure where the user looks: a model that raises on every
generate call (tests/captioner/failing_captioner.py wraps the real CLI around a tiny real model)
ends `captioner run` with exit 3 and the reason, fails its broker tasks with the reason, and puts
no record in metadata.json; a model that cannot be loaded is exit 2; a job that asks for a caption
model is captioned by that model only."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .failing_captioner import GENERATE_ERROR
from .helpers import REPO, caption_attempts, caption_tasks, captioner, check_metadata, make_out, queue_rendered
from .helpers import env as _env
from .helpers import serve_args

OBJECTS = [("chair01", "rocking_chair", 3), ("plane01", "airliner", 2)]


def _failing(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.captioner.failing_captioner", *args], capture_output=True,
                          text=True, env=_env(), cwd=REPO, timeout=300)


def test_run_with_a_model_that_always_raises_fails_loudly(tiny_llava, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS)
    proc = _failing("run", str(out), "--model", str(tiny_llava), "--batch-size", "4", "--json")
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 5 of 5 image(s) failed, 2 object(s) got no caption") and GENERATE_ERROR in last
    assert "Traceback" not in proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["captioned"] == 0 and stats["failed"] == 5 and stats["failed_objects"] == 2
    assert json.loads((out / "metadata.json").read_text()) == []
    assert not list(out.glob("views/*/captions.json")), "an object without any caption gets no captions.json"
    # nothing was marked as captioned: a working model later captions everything
    proc = captioner("run", str(out), "--model", str(tiny_llava), "--max-new-tokens", "6")
    assert proc.returncode == 0, proc.stderr
    assert len(check_metadata(out)) == 5


def test_run_with_one_bad_image_exits_3_and_records_it(tiny_llava, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS)
    bad = out / "views/plane01/001.png"
    bad.write_bytes(bad.read_bytes()[:40])
    proc = captioner("run", str(out), "--model", str(tiny_llava), "--max-new-tokens", "6")
    assert proc.returncode == 3, proc.stderr
    assert "views/plane01: 1 image(s) failed, e.g. cannot read image" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 of 5 image(s) failed;")
    entry = json.loads((out / "views/plane01/captions.json").read_text())["captions"][1]
    assert entry["caption"] is None and entry["error"].startswith("cannot read image")
    assert len(check_metadata(out)) == 4


def test_model_that_cannot_load_exits_2(tmp_path):
    out = make_out(tmp_path / "out", OBJECTS[:1])
    proc = captioner("run", str(out), "--model", str(tmp_path / "no-such-model"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: model folder {str(tmp_path / 'no-such-model')!r} does not exist"]


def test_serve_with_a_model_that_always_raises_fails_the_tasks(tiny_llava, broker, tmp_path):
    """Every caption task ends failed in the broker's store with the generate error as its reason
    (after its attempts), the captioner exits 3 naming it, and metadata.json has no record."""
    out = make_out(tmp_path / "out", OBJECTS)
    (out / "objects.jsonl").unlink()  # the broker's export writes it
    state = tmp_path / "state.sqlite"
    queue_rendered(state, out, OBJECTS, max_attempts=2)
    endpoint = broker(state)
    proc = subprocess.run(serve_args(endpoint, tiny_llava, "--idle-exit", "2",
                                     module="tests.captioner.failing_captioner"),
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert GENERATE_ERROR in proc.stderr.strip().splitlines()[-1]
    assert caption_tasks(state)["states"] == {"failed": 2}
    attempts = caption_attempts(state)
    assert len(attempts) == 4 and all(outcome == "asset" and GENERATE_ERROR in error for outcome, error in attempts)
    assert not (out / "metadata.json").exists() or json.loads((out / "metadata.json").read_text()) == []
    assert not list(out.glob("views/*/captions.json"))


def test_serve_captions_only_jobs_that_ask_for_its_model(tiny_llava, broker, tmp_path):
    """`farm submit --caption-model` is honoured: a job that names another model is left queued
    for a captioner that runs it; a job that names this one (or none) is captioned, and
    captions.json names the model that captioned it."""
    mine, other = make_out(tmp_path / "mine", OBJECTS[:1]), make_out(tmp_path / "other", OBJECTS[1:])
    state = tmp_path / "state.sqlite"
    queue_rendered(state, mine, OBJECTS[:1], caption_model=str(tiny_llava))
    queue_rendered(state, other, OBJECTS[1:], caption_model="Salesforce/instructblip-flan-t5-xl")
    endpoint = broker(state)
    proc = subprocess.run(serve_args(endpoint, tiny_llava, "--idle-exit", "2"), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert caption_tasks(state)["states"] == {"done": 1, "queued": 1}
    doc = json.loads((mine / "views/chair01/captions.json").read_text())
    assert doc["model"] == str(tiny_llava.resolve())
    assert not (other / "views/plane01/captions.json").exists()


def test_offline_hint_names_the_download_command_that_exists(tmp_path):
    """The hint for missing weights names `hf download` (the installed huggingface_hub's command;
    `huggingface-cli download` is gone) and the preset model's approximate size."""
    out = make_out(tmp_path / "out", OBJECTS[:1])
    proc = captioner("run", str(out), "--preset", "paper")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    model = "Salesforce/instructblip-flan-t5-xl"
    assert f"`hf download {model} --local-dir DIR`, approximately 16 GB" in line and "--model DIR" in line
    assert "huggingface-cli" not in line
    hf = shutil.which("hf", path=str(Path(sys.executable).parent)) or shutil.which("hf")
    assert hf, "huggingface_hub's `hf` command is installed with the captioner"
    usage = subprocess.run([hf, "download", "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "--local-dir" in usage.stdout
