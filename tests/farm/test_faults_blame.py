"""Bad assets fail alone, and the blocklist blames the right party, by evidence."""
from __future__ import annotations

import sqlite3

import pytest

from farm.store import Store

from .chaos_child import Chaos
from .conftest import copies, farm
from .fault_assets import assert_views, corrupt_ply
from .test_e2e import Farm, read_objects, submit

CHEAP = ["--preset", "mvcap", "--views", "2", "--resolution", "32", "--samples", "1"]


# --- the store's rules (fast) ------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


def make_job(store, tmp_path, n: int) -> str:
    assets = [{"uid": f"a{i}", "path": f"/assets/a{i}.glb", "category": "thing", "source": "folder",
               "out_rel": f"views/a{i}"} for i in range(n)]
    return store.submit({"name": "t", "out_root": str(tmp_path), "max_attempts": 3, "timeout_s": 60}, assets)["job_id"]


def attempt(store, worker: str, live: set[str], outcome: str, task_id: int | None = None) -> int:
    """Lease one task to `worker` and end it with `outcome` ("done" or a failure kind)."""
    with store.transaction():
        leased = store.lease("render", [worker], live=live)
        assert leased, f"{worker} got no task"
        t = leased[0][1]
        assert task_id is None or t["task_id"] == task_id
        if outcome == "done":
            store.complete(t["task_id"], t["attempt_id"], {"views": 2, "files": ["000.png"]}, blocklist_threshold=3)
        else:
            store.fail(t["task_id"], t["attempt_id"], f"{outcome} failure", kind=outcome, blocklist_threshold=3)
    return t["task_id"]


def test_a_lone_worker_whose_child_crashes_on_bad_assets_is_never_blocked(store, tmp_path):
    job_id = make_job(store, tmp_path, 6)
    live = {"only"}
    for _ in range(3):  # three assets crash every fresh child, three attempts each
        tid = attempt(store, "only", live, "worker")
        attempt(store, "only", live, "worker", tid)
        attempt(store, "only", live, "worker", tid)
    for _ in range(3):
        attempt(store, "only", live, "done")
    assert job_id not in store.blocked.get("only", set())
    assert store.status(job_id)[0]["render"] == {"failed": 3, "done": 3}


def test_an_asset_that_fails_on_two_workers_blames_neither(store, tmp_path):
    job_id = make_job(store, tmp_path, 4)
    live = {"w1", "w2"}
    for _ in range(4):
        tid = attempt(store, "w1", live, "worker")
        attempt(store, "w2", live, "worker", tid)  # the same asset crashes elsewhere too
        attempt(store, "w1", live, "done", tid)  # and then gets through: a flaky asset, not w1 or w2
    assert not store.blocked


def test_failures_that_succeed_elsewhere_block_the_worker(store, tmp_path):
    job_id = make_job(store, tmp_path, 5)
    live = {"bad", "good"}
    for n in range(3):
        tid = attempt(store, "bad", live, "worker")
        assert job_id not in store.blocked.get("bad", set())
        attempt(store, "good", live, "done", tid)
    assert job_id in store.blocked["bad"] and "good" not in store.blocked


def test_a_failure_rate_far_above_the_peers_blocks_the_worker(store, tmp_path):
    job_id = make_job(store, tmp_path, 12)
    live = {"bad", "good"}
    for _ in range(4):
        attempt(store, "good", live, "done")
    attempt(store, "bad", live, "worker")
    attempt(store, "bad", live, "timeout")
    assert job_id not in store.blocked.get("bad", set())
    attempt(store, "bad", live, "worker")  # 3 of 3 failed, the peer none of 4
    assert job_id in store.blocked["bad"]


# --- real processes ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_corrupt_plys_fail_alone_and_the_only_worker_is_not_blocklisted(box_glb, tmp_path):
    assets = copies(box_glb, tmp_path / "assets", [f"cube{i}" for i in range(10)])
    for i in range(3):
        corrupt_ply(assets / f"bad{i}.ply")  # Blender's importer aborts the process (exit -6)
    out = tmp_path / "out"
    r = farm("render", assets, "-o", out, *CHEAP, "--workers", "1", timeout=900)
    assert r.returncode == 3, r.stderr
    objs = {o["uid"]: o for o in read_objects(out)}
    done = sorted(u for u, o in objs.items() if o["status"] == "done")
    assert done == [f"cube{i}" for i in range(10)], r.stderr
    for i in range(3):
        bad = objs[f"bad{i}"]
        assert bad["status"] == "failed" and bad["attempts"] == 3
        # the importer's own last words, not "every live worker is blocklisted"
        assert "SIGABRT" in bad["error"] and "std::out_of_range" in bad["error"], bad["error"]
    for i in range(10):
        assert_views(out, f"cube{i}")
    assert "Traceback" not in r.stderr
    db = sqlite3.connect(out / ".farm" / "state.sqlite")
    assert db.execute("SELECT COUNT(*) FROM blocklist WHERE blocked = 1").fetchone()[0] == 0


@pytest.mark.slow
def test_a_worker_whose_renders_produce_no_image_is_blocklisted(box_glb, tmp_path):
    names = [f"box{i}" for i in range(5)]
    assets = copies(box_glb, tmp_path / "assets", names)
    out = tmp_path / "out"
    f = Farm(tmp_path)
    try:
        f.start_broker()
        f.start_worker("good")
        f.start_worker("broken", chaos=Chaos(no_image=True))
        job_id = submit(f, assets, out)
        job = f.wait_finished(job_id)
        assert job["render"] == {"done": 5}
        workers = {w["worker"]: w for w in f.status()["workers"]}
        assert workers["broken"]["blocked_jobs"] == [job_id]
        assert workers["good"]["blocked_jobs"] == []
    finally:
        f.close()
    for n in names:
        assert_views(out, n)
    db = sqlite3.connect(f.state)
    reasons = {r[0] for r in db.execute("SELECT error FROM attempts WHERE worker = 'broken' AND outcome = 'worker'")}
    assert reasons and all("render produced no image" in r for r in reasons), reasons
    assert job["failures"] == []  # every object got through on the healthy worker


@pytest.mark.slow
def test_an_mvimgnet_sequence_with_a_247_character_name_is_sampled(tmp_path):
    """A legal name that a staging folder beside it (`.<name>.tmp-<tag>`) would overflow."""
    from tests.dataset.dataset_fixtures import draw_frame

    root = tmp_path / "mvimgnet"
    (root / "0").mkdir(parents=True)
    (root / "mvimgnet_category.txt").write_text("0,bag\n")
    sequence = "s" * 247
    images = root / "0" / sequence / "images"
    images.mkdir(parents=True)
    for i in range(30):
        draw_frame(i, 30, seed=i, size=(64, 48)).save(images / f"{i:03d}.jpg", "JPEG", quality=90)
    out = tmp_path / "out"
    r = farm("render", root, "--source", "mvimgnet", "-o", out, "--workers", "1")
    assert r.returncode == 0, r.stderr
    folder = out / "mvimgnet" / "bag" / sequence
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:03d}.jpg" for i in range(30)] + ["frames.json"]
    assert [o["status"] for o in read_objects(out)] == ["done"]
