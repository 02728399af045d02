"""The `farm` command line: help, and one-line errors with exit 2 for bad input (no rendering)."""
from __future__ import annotations

import json

import pytest

from farm.cli_jobs import format_status

from .conftest import farm

COMMANDS = ["render", "broker", "worker", "submit", "status", "cancel", "retry", "keys"]


def test_help():
    r = farm("--help")
    assert r.returncode == 0
    for cmd in COMMANDS:
        assert cmd in r.stdout
        assert farm(cmd, "--help").returncode == 0


@pytest.fixture
def one_asset(tmp_path, glb_dir):
    d = tmp_path / "assets"
    d.mkdir()
    (d / "Box.glb").write_bytes((glb_dir / "Box.glb").read_bytes())
    return d


def bad_cases(tmp_path, one_asset):
    bad_spec = tmp_path / "bad_spec.json"
    bad_spec.write_text(json.dumps({"camera": {"num_views": "many"}}))
    not_json = tmp_path / "not.json"
    not_json.write_text("{oops")
    escaping = tmp_path / "escaping"
    escaping.mkdir()
    (escaping / "a..b.glb").write_bytes(b"glTF")
    out = str(tmp_path / "out")
    return {
        "bad spec": (["render", one_asset, "-o", out, "--spec", bad_spec], "camera.num_views"),
        "spec not JSON": (["render", one_asset, "-o", out, "--spec", not_json], "not valid JSON"),
        "missing spec": (["render", one_asset, "-o", out, "--spec", tmp_path / "nope.json"], "cannot be read"),
        "unknown preset": (["render", one_asset, "-o", out, "--preset", "nope"], "preset"),
        "categories": (["render", one_asset, "-o", out, "--categories", tmp_path / "nope.csv"], "--categories"),
        "views": (["render", one_asset, "-o", out, "--views", "0"], "--views"),
        "resolution": (["render", one_asset, "-o", out, "--resolution", "2"], "--resolution"),
        "samples": (["render", one_asset, "-o", out, "--samples", "-1"], "--samples"),
        "workers": (["render", one_asset, "-o", out, "--workers", "0"], "--workers"),
        "timeout": (["render", one_asset, "-o", out, "--timeout", "0"], "--timeout"),
        "not a number": (["render", one_asset, "-o", out, "--views", "ten"], "--views"),
        "engine": (["render", one_asset, "-o", out, "--engine", "povray"], "--engine"),
        "both": (["render", one_asset, "-o", out, "--preset", "mvcap", "--spec", bad_spec], "--preset"),
        "no input": (["render", tmp_path / "missing", "-o", out], "no such file"),
        "uid escapes": (["render", escaping, "-o", out], "a..b"),
        "submit bad spec": (["submit", one_asset, "-o", out, "--spec", bad_spec], "camera.num_views"),
        "worker name": (["worker", "--name", "../x"], "--name"),
    }


def test_bad_input_is_one_line_exit_2(tmp_path, one_asset):
    for label, (args, needle) in bad_cases(tmp_path, one_asset).items():
        r = farm(*args, timeout=60)
        assert r.returncode == 2, (label, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, r.stderr)
        assert needle in lines[0], (label, lines[0])
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # nothing was started


def test_keys(tmp_path):
    r = farm("keys", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    for name in ("broker.key", "broker.key_secret", "client.key", "client.key_secret", "authorized/client.key"):
        assert (tmp_path / "k" / name).is_file()
    r = farm("keys", tmp_path / "k", "--name", "host2")
    assert (tmp_path / "k" / "authorized" / "host2.key").is_file()
    assert (tmp_path / "k" / "broker.key_secret").stat().st_mode & 0o077 == 0


def test_status_table():
    jobs = [{"job_id": "abc123", "name": "t", "out_root": "/out", "state": "running", "priority": 0,
             "caption": True, "created": 0, "render": {"queued": 3, "leased": 1, "done": 5, "failed": 1},
             "caption_tasks": {"done": 2, "queued": 3}, "views_done": 40, "views_in_flight": 2,
             "failures": [{"uid": "x", "obj_id": 4, "error": "empty file"}]}]
    workers = [{"worker": "w1", "device": "cpu", "task_id": 9, "progress": [2, 8], "blocked_jobs": []},
               {"worker": "w2", "device": "gpu", "task_id": None, "progress": [0, 0], "blocked_jobs": ["abc123"]}]
    text = format_status(jobs, workers, detail=True)
    assert "abc123" in text and "running" in text and "2/5" in text and "42" in text
    assert "failed x (obj_id 4): empty file" in text
    assert "task 9 (2/8 views)" in text and "blocked from abc123" in text


def test_caption_without_captioner_is_a_clear_error(monkeypatch):
    import importlib.util
    import shutil

    from farm import local_processes

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(local_processes.LocalError, match="captioner.*not available.*--no-caption"):
        local_processes.captioner_command()


def test_submit_status_cancel_retry_against_a_broker(tmp_path, one_asset):
    from farm.client import Client, ClientError

    from .conftest import free_port, spawn, stop, wait_for

    addr = f"tcp://127.0.0.1:{free_port()}"
    broker = spawn("broker", "--bind", addr, "--state", tmp_path / "s.sqlite", "--out-root", tmp_path)

    def answers():
        try:
            with Client(addr, timeout_s=1) as c:
                return c.status()
        except ClientError:
            return None

    try:
        wait_for(answers, 30, what="the broker")
        r = farm("submit", one_asset, "-o", tmp_path / "out", "--views", "2", "--connect", addr, "--json")
        assert r.returncode == 0, r.stderr
        job_id = json.loads(r.stdout)["job_id"]
        r = farm("status", "--connect", addr)
        assert r.returncode == 0 and job_id in r.stdout and "queued" in r.stdout and "0 worker(s)" in r.stdout
        assert farm("cancel", job_id[:6], "--connect", addr).returncode == 0
        st = json.loads(farm("status", job_id, "--connect", addr, "--json").stdout)
        assert st["jobs"][0]["state"] == "canceled" and st["jobs"][0]["render"] == {"canceled": 1}
        r = farm("retry", job_id, "--connect", addr)
        assert r.returncode == 0 and "1 tasks queued again" in r.stdout
        st = json.loads(farm("status", job_id, "--connect", addr, "--json").stdout)
        assert st["jobs"][0]["render"] == {"queued": 1}
        r = farm("cancel", "nosuchjob", "--connect", addr)
        assert r.returncode == 1 and r.stderr.startswith("error: job 'nosuchjob' is unknown")
    finally:
        stop(broker)
