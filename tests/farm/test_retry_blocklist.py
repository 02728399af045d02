"""`farm retry` starts a job's blame over: a worker blocked from the job, or kept off a task it
failed, gets the retried tasks again, and the failures before the retry no longer count against
it, not even after the broker restarts (the store is reopened)."""
from __future__ import annotations

import pytest

from farm.store import Store

from .test_faults_blame import attempt
from .test_store import lease_one as lease


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state.sqlite"


def make_job(store, tmp_path, n: int, max_attempts: int) -> str:
    assets = [{"uid": f"a{i}", "path": f"/assets/a{i}.glb", "category": "thing", "source": "folder",
               "out_rel": f"views/a{i}"} for i in range(n)]
    spec = {"name": "t", "out_root": str(tmp_path), "max_attempts": max_attempts, "timeout_s": 60}
    return store.submit(spec, assets)["job_id"]


def test_a_blocked_worker_gets_the_retried_tasks_and_its_old_failures_are_forgiven(state, tmp_path):
    store = Store(state)
    job_id = make_job(store, tmp_path, 8, max_attempts=1)
    live = {"bad", "good"}
    for _ in range(4):
        attempt(store, "good", live, "done")
    failed = {attempt(store, "bad", live, "worker") for _ in range(3)}  # 3 of 3 failed, the peer none of 4
    assert job_id in store.blocked["bad"]
    assert lease(store, "bad", live) is None
    assert store.retry(job_id) == 3
    t = lease(store, "bad", live)
    assert t and t["task_id"] in failed
    with store.transaction():  # one failure after the retry: 1 of 1, not 4 of 4 against the peer's 0 of 4
        store.fail(t["task_id"], t["attempt_id"], "worker failure", kind="worker", blocklist_threshold=3)
    assert job_id not in store.blocked.get("bad", set())
    store.close()

    store = Store(state)  # the broker restarts: the tallies are loaded from the attempts again
    try:
        assert job_id not in store.blocked.get("bad", set())
        attempt(store, "bad", live, "worker")
        assert job_id not in store.blocked.get("bad", set())
        assert lease(store, "bad", live)["task_id"] in failed
    finally:
        store.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_a_retried_task_goes_back_to_the_worker_that_failed_it(state, tmp_path, reopen):
    store = Store(state)
    make_job(store, tmp_path, 1, max_attempts=2)
    tid = attempt(store, "w1", {"w1"}, "worker")  # w1 alone: it gets its failed task back
    assert attempt(store, "w1", {"w1"}, "worker") == tid
    assert store.status()[0]["render"] == {"failed": 1}
    assert store.retry(store.status()[0]["job_id"]) == 1
    if reopen:
        store.close()
        store = Store(state)
    try:  # w2 has joined and never tried the task; w1's failures were before the retry all the same
        t = lease(store, "w1", {"w1", "w2"})
        assert t and t["task_id"] == tid
    finally:
        store.close()
