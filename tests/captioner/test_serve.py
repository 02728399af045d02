"""`captioner serve` against the real farm broker (farm.broker.Broker, SQLite store): leases from
the durable caption queue, heartbeats, captions.json then CAPTION_DONE, catch-up, kill -9."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from farm import broker as broker_mod
from farm.keys import create_keys

from .helpers import REPO, caption_attempts, caption_tasks, check_metadata, make_out, queue_rendered
from .helpers import env as _env
from .helpers import serve_args as _serve


def _wait_metadata(out: Path, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(json.loads((out / "metadata.json").read_text())) == count:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"metadata.json never had {count} records")


OBJECTS = [("chair01", "rocking_chair", 3), ("plane01", "airliner", 3), ("mug01", "mug", 2), ("zc01", "zebra_crossing", 3)]


def test_serve_catches_up_with_the_durable_queue(tiny_llava, broker, tmp_path):
    """Renders finished before any captioner ran: a captioner started later takes every queued
    caption task, writes captions.json, acknowledges, and the broker writes metadata.json."""
    out = make_out(tmp_path / "out", OBJECTS)
    (out / "objects.jsonl").unlink()  # the broker's export writes it
    state = tmp_path / "state.sqlite"
    queue_rendered(state, out, OBJECTS)
    endpoint = broker(state)
    proc = subprocess.run(_serve(endpoint, tiny_llava, "--batch-size", "4", "--idle-exit", "2"),
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "4 object(s) acknowledged" in proc.stderr
    for uid, category, views in OBJECTS:
        doc = json.loads((out / f"views/{uid}/captions.json").read_text())
        assert doc["uid"] == uid and doc["category"] == category and len(doc["captions"]) == views
        assert all(e["caption"] and e["route"] in ("guided", "forced_prefix") for e in doc["captions"])
    assert caption_tasks(state) == {"states": {"done": 4}, "done_twice": 0}
    _wait_metadata(out, 11)
    check_metadata(out)


def _slow_captioner_midway(tmp_path, broker, model, objects, captioned: int):
    """A queue of rendered `objects` and a deliberately slow `captioner serve` that has written
    at least `captioned` captions.json files. Returns (out, state, endpoint, process)."""
    out = make_out(tmp_path / "out", objects, size=32)
    (out / "objects.jsonl").unlink()
    state = tmp_path / "state.sqlite"
    queue_rendered(state, out, objects)
    endpoint = broker(state)
    proc = subprocess.Popen(_serve(endpoint, model, "--batch-size", "1", "--num-beams", "2", "--max-new-tokens", "24"),
                            env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("views/*/captions.json"))) < captioned:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    return out, state, endpoint, proc


@pytest.mark.slow
def test_serve_kill_9_and_restart(tiny_llava, broker, tmp_path):
    """kill -9 mid-run; a new captioner finishes the queue once the dead one's leases expire:
    0 duplicate and 0 missing captions, every caption task done exactly once."""
    objects = [(f"obj{i:02d}", ["rocking_chair", "airliner", "mug"][i % 3], 3) for i in range(20)]
    out, state, endpoint, first = _slow_captioner_midway(tmp_path, broker, tiny_llava, objects, 3)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    survivors = {p: p.stat().st_mtime_ns for p in out.glob("views/*/captions.json")}
    assert 3 <= len(survivors) < 20
    assert caption_tasks(state)["states"].get("leased", 0) >= 1, "the dead captioner held leases"
    second = subprocess.run(_serve(endpoint, tiny_llava, "--batch-size", "4", "--idle-exit", "8"),
                            env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in survivors} == survivors  # nothing captioned twice
    assert caption_tasks(state) == {"states": {"done": 20}, "done_twice": 0}
    _wait_metadata(out, 60)
    records = check_metadata(out)
    assert {(r["obj_id"], r["img_id"]) for r in records} == {(i, i * 100 + v) for i in range(20) for v in range(3)}
    assert not list(out.rglob("*.tmp"))


def test_serve_reports_unreachable_output_as_failed(tiny_llava, broker, tmp_path):
    out = make_out(tmp_path / "out", OBJECTS[:1])
    state = tmp_path / "state.sqlite"
    queue_rendered(state, out, OBJECTS[:1])
    db = sqlite3.connect(state)
    db.execute("UPDATE jobs SET out_root = ?", (str(tmp_path / "elsewhere"),))
    db.commit()
    db.close()
    endpoint = broker(state)
    proc = subprocess.run(_serve(endpoint, tiny_llava, "--idle-exit", "2"), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr  # it reported failures
    assert proc.stderr.splitlines()[-1].startswith("error: ") and "is not reachable" in proc.stderr.splitlines()[-1]
    tasks = caption_tasks(state)["states"]
    assert tasks.get("done", 0) == 0 and tasks.get("leased", 0) == 0  # failed, or queued again for a retry
    attempts = caption_attempts(state)
    assert attempts, "the captioner never leased the caption task"
    assert all(outcome == "asset" and "is not reachable from this captioner" in error
               for outcome, error in attempts), attempts
    assert not (out / "views/chair01/captions.json").exists()


def test_serve_with_curve_keys(tiny_llava, tmp_path):
    """CurveZMQ: with the farm's keys the captioner is served; without them it is refused."""
    keydir = tmp_path / "keys"
    create_keys(keydir)
    out = make_out(tmp_path / "out", OBJECTS[:2])
    state = tmp_path / "state.sqlite"
    queue_rendered(state, out, OBJECTS[:2])
    b = broker_mod.Broker(state, bind="tcp://127.0.0.1:*", curve_keys=str(keydir))
    thread = b.serve_in_thread()
    try:
        endpoint = b.wait_ready()
        refused = subprocess.run(_serve(endpoint, tiny_llava, "--idle-exit", "3"), env=_env(), cwd=REPO,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 0 and "0 object(s) acknowledged" in refused.stderr
        assert caption_tasks(state)["states"] == {"queued": 2}
        served = subprocess.run(_serve(endpoint, tiny_llava, "--idle-exit", "2", "--curve-keys", str(keydir)),
                                env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert served.returncode == 0, served.stderr
        assert caption_tasks(state)["states"] == {"done": 2}
    finally:
        b.stop()
        thread.join(timeout=10)


def test_serve_sigterm_acknowledges_what_it_wrote(tiny_llava, broker, tmp_path):
    """SIGTERM stops the captioner after the batch in hand; every captions.json it wrote is
    acknowledged (done in the store), and the rest stays queued or leased for later."""
    objects = [(f"obj{i:02d}", "mug", 3) for i in range(12)]
    out, state, _, proc = _slow_captioner_midway(tmp_path, broker, tiny_llava, objects, 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    written = len(list(out.glob("views/*/captions.json")))
    assert 2 <= written < 12
    time.sleep(0.5)  # the broker commits the last CAPTION_DONE
    assert caption_tasks(state)["states"].get("done", 0) == written
