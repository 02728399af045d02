"""A job belongs to the peer that submitted it: another authorised key cannot cancel, retry or add
to it (the key `admin` can); local-token clients are one peer; an older state's jobs stay
manageable by anyone. Real `farm broker` processes, no workers (the jobs stay queued)."""
from __future__ import annotations

import sqlite3

import pytest

from farm.client import Client, Refused
from farm.keys import create_keys
from farm.store import Store

from .conftest import farm, stop
from .test_door import SPEC, BrokerProcess, asset


def refused_line(job_id: str, owner: str, verb: str) -> str:
    return f"error: job {job_id} was submitted by {owner}; only it (or the broker's `admin` key) may {verb} it\n"


def job_row(b: BrokerProcess, job_id: str) -> dict:
    return next(j for j in b.answers()["jobs"] if j["job_id"] == job_id)


def as_key(b: BrokerProcess, keys, name: str) -> Client:
    return Client(b.addr, timeout_s=10, curve_keys=keys, key_name=name)


def cli(b: BrokerProcess, keys, name: str, *args: str):
    return farm(*args, "--connect", b.addr, "--curve-keys", keys, "--key-name", name, timeout=60)


def test_another_key_cannot_manage_a_job(tmp_path):
    keys = tmp_path / "keys"
    for name in ("alice", "bob", "admin"):
        create_keys(keys, name)
    b = BrokerProcess(tmp_path, "--curve-keys", keys, client={"curve_keys": keys, "key_name": "alice"})
    try:
        job_id = b.submit({}, [asset("a")])["job_id"]
        before = job_row(b, job_id)
        assert before["submitter"] == "alice" and before["state"] == "queued"
        for verb in ("cancel", "retry"):
            r = cli(b, keys, "bob", verb, job_id[:6])  # a prefix names the same job
            assert r.returncode == 1 and r.stderr == refused_line(job_id, "alice", verb), r.stderr
        with as_key(b, keys, "bob") as bob, pytest.raises(Refused, match="may add assets to it"):
            bob.request("SUBMIT", job={"name": "t", "out_root": str(b.out), "spec": SPEC}, assets=[asset("b")],
                        append_to=job_id)
        after = job_row(b, job_id)
        assert (after["state"], after["render"]) == ("queued", {"queued": 1}), after
        # the submitter may; so may the key named admin
        r = cli(b, keys, "alice", "cancel", job_id)
        assert r.returncode == 0 and job_row(b, job_id)["state"] == "canceled", r.stderr
        with as_key(b, keys, "admin") as admin:
            admin.retry(job_id)
        assert job_row(b, job_id)["state"] == "queued"
        with as_key(b, keys, "alice") as alice:
            alice.cancel(job_id)
            alice.retry(job_id)
        assert job_row(b, job_id)["render"] == {"queued": 1}
    finally:
        stop(b.proc)


def test_local_token_clients_of_one_user_are_one_peer(tmp_path):
    b = BrokerProcess(tmp_path)
    try:
        job_id = b.submit({}, [asset("a")])["job_id"]
        assert job_row(b, job_id)["submitter"] == "local"
        r = farm("cancel", job_id, "--connect", b.addr, timeout=60)
        assert r.returncode == 0 and job_row(b, job_id)["state"] == "canceled", r.stderr
        r = farm("retry", job_id, "--connect", b.addr, timeout=60)
        assert r.returncode == 0 and job_row(b, job_id)["state"] == "queued", r.stderr
    finally:
        stop(b.proc)


def test_an_older_state_upgrades_and_its_jobs_stay_manageable(tmp_path):
    """A state written before submitters were recorded (the column and the attempts index dropped
    again) opens; its jobs have no submitter, so any authorised key may manage them."""
    path = tmp_path / "old.sqlite"
    store = Store(path)
    job_id = store.submit({"name": "t", "out_root": str(tmp_path / "out"), "spec": SPEC, "views": 2,
                           "timeout_s": 60}, [asset("a")], submitter="alice")["job_id"]
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX IF EXISTS attempts_task")
    db.execute("ALTER TABLE jobs DROP COLUMN submitter")
    db.commit()
    db.close()
    keys = tmp_path / "keys"
    create_keys(keys, "bob")
    b = BrokerProcess(tmp_path, "--curve-keys", keys, state=path, client={"curve_keys": keys, "key_name": "bob"})
    try:
        assert job_row(b, job_id)["submitter"] is None
        with as_key(b, keys, "bob") as bob:
            bob.cancel(job_id)
            assert job_row(b, job_id)["state"] == "canceled"
            bob.retry(job_id)
        assert job_row(b, job_id)["state"] == "queued"
    finally:
        stop(b.proc)
    db = sqlite3.connect(path)
    plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN SELECT * FROM attempts WHERE task_id = 1"))
    db.close()
    assert "attempts_task" in plan, plan
