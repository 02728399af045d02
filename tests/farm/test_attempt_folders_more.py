"""More of who removes attempt folders: the broker when a job is canceled under a worker it does not
know or a worker comes back without its task, the start sweep of streamed parts (OUT/.farm/incoming),
and a worker cleaning up its own folder, never through a symbolic link. And the reserved key name."""
from __future__ import annotations

import os

import pytest

from farm.broker.attempt_folders import sweep_attempt_folders
from farm.broker.clients import ClientRequests
from farm.broker.streamed import StreamedFiles
from farm.broker.workers import WorkerRegistry
from farm.store import Store
from farm.worker import Worker

from .conftest import farm
from .test_attempt_folders import key, plant
from .test_store import assets, job, lease_one


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite")
    yield s
    s.close()


def broker_parts(store) -> tuple[WorkerRegistry, ClientRequests]:
    streamed = StreamedFiles(store)
    registry = WorkerRegistry(store, streamed, heartbeat_s=1.0, liveness=3)
    return registry, ClientRequests(store, registry, streamed, ())


def farm_folders(out, attempt_id: int):
    """The attempt's folder and its streamed parts' folder, planted."""
    return [plant(out / ".farm" / kind / str(attempt_id)) for kind in ("attempts", "incoming")]


def test_a_cancel_removes_the_folders_of_leases_whose_worker_is_unknown(store, tmp_path):
    out = tmp_path / "out"
    job_id = store.submit(job(out), assets("a"))["job_id"]
    store.submit(job(out), assets("b"))
    _, gone = key(lease_one(store, "gone"))  # leased before a broker restart; its worker never came back
    _, other = key(lease_one(store, "alive"))  # another job's live lease in the same OUT
    folders, others = farm_folders(out, gone), farm_folders(out, other)
    _, requests = broker_parts(store)
    reply = []
    requests.handle(b"client", {"type": "CANCEL", "job_id": job_id}, reply)
    assert not any(f.exists() for f in folders)
    assert all((f / "keep.txt").exists() for f in others)


def ready(name: str, results=()) -> dict:
    return {"type": "READY", "worker": name, "host": "h", "pid": 1, "device": "cpu", "shared_storage": True,
            "running": None, "results": [list(r) for r in results]}


def test_a_worker_back_without_its_task_loses_that_attempts_folders(store, tmp_path):
    out = tmp_path / "out"
    store.submit(job(out), assets("a", "b", "c"))
    lost, held, foreign = (key(lease_one(store, w)) for w in ("w1", "w1", "w2"))
    lost_folders, held_folders, foreign_folders = (farm_folders(out, k[1]) for k in (lost, held, foreign))
    registry, _ = broker_parts(store)
    registry.register(b"w1", ready("w1", results=[held]), 0.0, [])  # restarted: it still holds one result
    assert not any(f.exists() for f in lost_folders)
    assert all((f / "keep.txt").exists() for f in held_folders + foreign_folders)


def test_the_start_sweep_removes_dead_attempts_streamed_parts_only(store, tmp_path):
    out = tmp_path / "out"
    store.submit(job(out), assets("a", "b"))
    (dead_task, dead), (_, live) = (key(lease_one(store, w)) for w in ("w1", "w2"))
    with store.transaction():
        store.fail(dead_task, dead, "boom", kind="worker")
    incoming = out / ".farm" / "incoming"
    plant(incoming / str(dead), ("000.png.part",))
    plant(incoming / str(live), ("000.png.part",))
    plant(incoming / "not-an-attempt")
    assert sweep_attempt_folders(store, (str(tmp_path),)) == 1
    assert sorted(p.name for p in incoming.iterdir()) == sorted([str(live), "not-an-attempt"])

    # links are not followed: one named by a dead attempt, or incoming/ itself
    target = plant(out / "views" / "a")
    (incoming / str(dead)).symlink_to(target, target_is_directory=True)
    assert sweep_attempt_folders(store, (str(tmp_path),)) == 0
    (incoming / str(dead)).unlink()
    outside = plant(tmp_path / "outside" / str(dead))
    incoming.rename(tmp_path / "was-incoming")
    incoming.symlink_to(outside.parent, target_is_directory=True)
    assert sweep_attempt_folders(store, (str(tmp_path),)) == 0
    assert (target / "keep.txt").exists() and (outside / "keep.txt").exists()


class RenderChildStandIn:
    """Takes a task and never renders (no bpy here)."""
    alive, ready, tasks, pid = True, True, 0, os.getpid()

    def begin_task(self): ...

    def send(self, msg): ...

    def rss_mb(self):
        return 0.0


@pytest.fixture
def worker(tmp_path):
    w = Worker("tcp://127.0.0.1:9", name="w", scratch=tmp_path / "scratch")
    w.child = RenderChildStandIn()
    yield w
    w.memory.close()


def task(out, attempt_id: int = 7) -> dict:
    return {"task_id": 1, "attempt_id": attempt_id, "out_root": str(out), "out_rel": "views/a", "timeout_s": 60,
            "asset": {"uid": "a"}}


def test_a_worker_never_clears_a_linked_attempt_folder(worker, tmp_path):
    out = tmp_path / "out"
    attempts = out / ".farm" / "attempts"
    for target in (plant(out / "views" / "b"), plant(tmp_path / "outside")):  # in OUT, and out of it
        attempts.mkdir(parents=True, exist_ok=True)
        (attempts / "7").symlink_to(target, target_is_directory=True)
        worker._start_task(task(out))
        assert worker.task is None and worker.outbox.pending[(1, 7)]["msg"]["ok"] is False  # the task fails
        assert (attempts / "7").is_symlink() and (target / "keep.txt").exists()
        worker.outbox.pending.clear()
        (attempts / "7").unlink()


def test_a_worker_does_not_follow_a_link_put_in_its_folders_way_after_the_render(worker, tmp_path):
    out = tmp_path / "out"
    worker._start_task(task(out))
    (out / ".farm" / "attempts" / "7" / "000.png").write_bytes(b"png")
    worker._finish(True, result={"views": 1})  # kept until the ACK
    planted = tmp_path / "planted"
    (out / ".farm").rename(planted)  # .farm swapped for a link to a tree with an attempts/7 in it
    (out / ".farm").symlink_to(planted, target_is_directory=True)
    worker.outbox.ack((1, 7))
    assert (planted / "attempts" / "7" / "000.png").exists()

    (out / ".farm").unlink()  # the next attempt renders as ever; its folder goes after the ACK
    worker._start_task(task(out, 8))
    (out / ".farm" / "attempts" / "8" / "000.png").write_bytes(b"png")
    worker._finish(True, result={"views": 1})
    worker.outbox.ack((1, 8))
    assert not (out / ".farm" / "attempts" / "8").exists()


@pytest.mark.parametrize("name", ["local", "a:b", "../x", "x" * 250])
def test_reserved_and_unsafe_key_names_are_refused(tmp_path, name):
    r = farm("keys", tmp_path / "keys", "--name", name)
    assert r.returncode == 2 and r.stderr.startswith(f"error: key name {name!r} is not allowed")
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "keys" / f"{name}.key").exists()
