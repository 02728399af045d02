"""`captioner serve` against the real farm broker (farm.broker.Broker, SQLite store): leases from
the durable caption queue, heartbeats, captions.json then CAPTION_DONE, catch-up, kill -9."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farm import broker as broker_mod
from farm.broker import captions as broker_captions
from farm.keys import create_keys
from farm.store import Store

from .helpers import REPO, check_metadata, make_out
from .helpers import env as _env


def queue_rendered(state: Path, out: Path, objects: list[tuple[str, str, int]]) -> None:
    """Put `objects` (already on disk under OUT) into the store as a captioned job whose renders
    are complete, so that their caption tasks wait in the durable queue."""
    store = Store(state)
    try:
        store.submit({"out_root": str(out), "name": "t", "caption": True, "views": 3, "timeout_s": 60},
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


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A real broker on an ephemeral port, its state in tmp. Caption leases last 4 s here (300 s by
    default) so that a killed captioner's leases come back within the test."""
    monkeypatch.setattr(broker_captions, "CAPTION_LEASE_S", 4.0)
    made = []

    def start(state: Path):
        b = broker_mod.Broker(state, bind="tcp://127.0.0.1:*")
        thread = b.serve_in_thread()
        made.append((b, thread))
        return b.wait_ready()

    yield start
    for b, thread in made:
        b.stop()
        thread.join(timeout=10)


def _serve(endpoint: str, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "captioner", "serve", "--connect", endpoint, "--model", str(model),
            "--max-new-tokens", "6", "--heartbeat", "0.5", *extra]


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
    assert proc.returncode == 0, proc.stderr
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
