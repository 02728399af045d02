"""The durable store: state machine, dense stable obj_ids, attempts, blocklist, caption queue."""
from __future__ import annotations

import json

import pytest

from farm.store import Store, StoreError


def assets(*uids):
    return [{"uid": u, "path": f"/assets/{u}.glb", "category": "thing", "source": "folder", "out_rel": f"views/{u}"}
            for u in uids]


def job(out, **kw):
    return {"name": "t", "out_root": str(out), "views": 2, "max_attempts": 3, "timeout_s": 60, **kw}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


def lease_one(store, worker="w1", live=None):
    with store.transaction():
        got = store.lease("render", [worker], live=live)
    return got[0][1] if got else None


def test_submit_lease_complete_and_export(store, tmp_path):
    out = tmp_path / "out"
    reply = store.submit(job(out), assets("a", "b"))
    assert reply["queued"] == 2 and reply["skipped"] == 0
    t = lease_one(store)
    assert t["attempt_id"] >= 1
    msg = store.task_message(t)
    assert msg["obj_id"] == 0 and msg["out_rel"] == "views/a"
    with store.transaction():
        assert store.complete(t["task_id"], t["attempt_id"], {"views": 2, "files": ["000.png", "001.png"]})
    store.flush_exports()
    lines = [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]
    assert [(o["obj_id"], o["uid"], o["status"]) for o in lines] == [(0, "a", "done"), (1, "b", "pending")]
    assert set(lines[0]) >= {"obj_id", "uid", "source", "category", "asset", "out_rel", "views", "status", "error",
                             "attempts", "missing_textures", "quality"}


def test_stale_attempt_is_ignored(store, tmp_path):
    store.submit(job(tmp_path), assets("a"))
    t = lease_one(store)
    with store.transaction():
        assert store.fail(t["task_id"], t["attempt_id"], "boom", kind="worker") == "queued"
    t2 = lease_one(store, "w2")
    assert t2["task_id"] == t["task_id"] and t2["attempt_id"] != t["attempt_id"]
    with store.transaction():
        assert store.complete(t["task_id"], t["attempt_id"]) is False  # the old attempt
        assert store.fail(t["task_id"], t["attempt_id"], "late") is None
        assert store.complete(t2["task_id"], t2["attempt_id"]) is True
        assert store.complete(t2["task_id"], t2["attempt_id"]) is False  # twice


def test_attempts_used_up_then_failed_with_reason(store, tmp_path):
    store.submit(job(tmp_path, max_attempts=2), assets("a"))
    for i in range(2):
        t = lease_one(store, f"w{i}")
        with store.transaction():
            state = store.fail(t["task_id"], t["attempt_id"], f"bad asset {i}", kind="asset")
    assert state == "failed"
    assert lease_one(store) is None
    store.flush_exports()
    obj = json.loads((tmp_path / "objects.jsonl").read_text())
    assert obj["status"] == "failed" and obj["error"] == "bad asset 1" and obj["attempts"] == 2


def test_obj_ids_dense_and_stable_across_resubmit(store, tmp_path):
    store.submit(job(tmp_path), assets("a", "b"))
    t = lease_one(store)
    with store.transaction():
        store.complete(t["task_id"], t["attempt_id"], {"views": 2})
    reply = store.submit(job(tmp_path), assets("c", "b", "a"))
    assert reply == {**reply, "objects": 3, "skipped": 1, "queued": 2}
    ids = {o["uid"]: o["obj_id"] for o in store.objects(str(tmp_path))}
    assert ids == {"a": 0, "b": 1, "c": 2}
    # b's queued task moved into the new job instead of being duplicated
    rows = store.db.execute("SELECT COUNT(*) FROM tasks t JOIN objects o ON o.id = t.object_id WHERE o.uid = 'b'")
    assert rows.fetchone()[0] == 1
    # another output folder numbers from 0 again
    store.submit(job(tmp_path / "other"), assets("z"))
    assert store.objects(str(tmp_path / "other"))[0]["obj_id"] == 0


def test_caption_task_queued_with_the_render(store, tmp_path):
    store.submit(job(tmp_path, caption=True), assets("a"))
    t = lease_one(store)
    with store.transaction():
        store.complete(t["task_id"], t["attempt_id"], {"views": 2, "files": ["000.png", "001.png"]})
        caps = store.lease("caption", ["cap", "cap"], lease_s=60)
    assert len(caps) == 1
    payload = store.caption_payload(caps[0][1])
    assert payload["files"] == ["000.png", "001.png"] and payload["uid"] == "a" and payload["obj_id"] == 0
    with store.transaction():
        assert store.complete(payload["task_id"], payload["attempt_id"])
    assert store.status()[0]["state"] == "finished"


def test_blocklist_after_failures_that_succeed_elsewhere(store, tmp_path):
    reply = store.submit(job(tmp_path), assets("a", "b", "c", "d"))
    live = {"bad", "good"}
    for n in range(3):
        t = lease_one(store, "bad", live=live)
        with store.transaction():
            store.fail(t["task_id"], t["attempt_id"], "broken machine", kind="worker", blocklist_threshold=3)
        assert "bad" not in store.blocked  # a failure alone blames no one
        t = lease_one(store, "good", live=live)  # the task "bad" failed: it succeeds here
        with store.transaction():
            store.complete(t["task_id"], t["attempt_id"], blocklist_threshold=3)
    assert reply["job_id"] in store.blocked["bad"]
    assert lease_one(store, "bad", live=live) is None  # blocked from the job
    assert lease_one(store, "good", live=live) is not None


def test_worker_does_not_get_back_a_task_it_failed_while_others_can(store, tmp_path):
    store.submit(job(tmp_path), assets("a", "b"))
    t = lease_one(store, "w1", live={"w1", "w2"})
    with store.transaction():
        store.fail(t["task_id"], t["attempt_id"], "x", kind="asset")
    t2 = lease_one(store, "w1", live={"w1", "w2"})
    assert t2["task_id"] != t["task_id"]
    # alone, it does get it back
    with store.transaction():
        store.complete(t2["task_id"], t2["attempt_id"])
    assert lease_one(store, "w1", live={"w1"})["task_id"] == t["task_id"]


def test_cancel_and_retry(store, tmp_path):
    jid = store.submit(job(tmp_path), assets("a", "b"))["job_id"]
    t = lease_one(store)
    called_back = store.cancel(jid[:6])
    assert called_back == [(t["task_id"], t["attempt_id"], "w1")]
    assert store.status(jid)[0]["state"] == "canceled"
    assert lease_one(store) is None
    assert store.retry(jid) == 2
    assert lease_one(store) is not None
    with pytest.raises(StoreError):
        store.cancel("nope")


def test_release_spends_no_attempt(store, tmp_path):
    store.submit(job(tmp_path, max_attempts=1), assets("a"))
    t = lease_one(store)
    with store.transaction():
        assert store.release(t["task_id"], t["attempt_id"], "shutdown")
    t2 = lease_one(store)
    with store.transaction():
        assert store.complete(t2["task_id"], t2["attempt_id"])


def test_state_survives_reopen_and_leases_expire(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    s.submit(job(tmp_path), assets("a"))
    t = lease_one(s)
    s.close()
    s = Store(tmp_path / "s.sqlite")
    s.recover(grace_s=-1)  # the restarted broker waited in vain for the worker
    expired = s.expired()
    assert [(r["task_id"], r["attempt_id"]) for r in expired] == [(t["task_id"], t["attempt_id"])]
    with s.transaction():
        s.fail(t["task_id"], t["attempt_id"], "lost", kind="lost")
    t2 = lease_one(s)
    assert t2["attempt_id"] > t["attempt_id"]  # attempt ids never repeat across restarts
    s.close()


def test_transitions_are_explicit():
    from farm.store import TRANSITIONS, check_transition

    check_transition("queued", "leased")
    check_transition("failed", "queued")
    for bad in (("done", "queued"), ("queued", "done"), ("canceled", "leased")):
        with pytest.raises(StoreError):
            check_transition(*bad)
    assert set(TRANSITIONS) == {"queued", "leased", "done", "failed", "canceled"}


def test_submit_in_parts_appends_to_one_job(store, tmp_path):
    first = store.submit(job(tmp_path), assets("a", "b"))
    more = store.submit(job(tmp_path), assets("c"), append_to=first["job_id"])
    assert more["job_id"] == first["job_id"] and more["queued"] == 1
    assert [o["obj_id"] for o in store.objects(str(tmp_path))] == [0, 1, 2]
    assert store.status(first["job_id"])[0]["render"] == {"queued": 3}
    with pytest.raises(StoreError):
        store.submit(job(tmp_path / "elsewhere"), assets("d"), append_to=first["job_id"])


def test_render_warnings_reach_objects_jsonl(store, tmp_path):
    out = tmp_path / "out"
    store.submit(job(out), assets("a", "b"))
    warning = "render.denoiser 'oidn': this Blender's Cycles offers no denoiser; rendering without denoising"
    t = lease_one(store)
    with store.transaction():
        store.complete(t["task_id"], t["attempt_id"], {"views": 2, "files": ["000.png", "001.png"],
                                                       "warnings": [warning]})
    store.flush_exports()
    lines = [json.loads(x) for x in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["warnings"] for o in lines] == [[warning], []]
