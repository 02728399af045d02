"""`farm slurm` against a real Slurm (slurmctld + slurmd + munge, one node, tests/farm/slurm_cluster.py):
the sbatch array of workers renders a broker's job, says which Slurm task it is, exits when the
work is done (squeue ends empty), and a requeued task gives its lease back."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import pytest

from .conftest import copies, farm, farm_command, farm_env, free_port, spawn, stop, wait_for
from .slurm_cluster import SlurmCluster, why_not_available

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def farm_with_keys(tmp_path, box_glb):
    """A broker with CurveZMQ keys on 127.0.0.1 and a job of `n` objects at 32 px submitted to it."""
    keys = tmp_path / "keys"
    assert farm("keys", keys).returncode == 0
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    broker = spawn("broker", "--bind", endpoint, "--state", tmp_path / "state.sqlite", "--curve-keys", keys,
                   "--out-root", tmp_path,
                   log=tmp_path / "broker.log")
    out = tmp_path / "OUT"

    def submit(n: int) -> None:
        assets = copies(box_glb, tmp_path / "assets", [f"obj{i}" for i in range(n)])
        done = farm("submit", assets, "-o", out, "--views", "2", "--resolution", "32", "--samples", "1",
                    "--connect", endpoint, "--curve-keys", keys, "--reply-timeout", "30")
        assert done.returncode == 0, done.stderr

    yield endpoint, keys, out, submit
    stop(broker)


def status(endpoint, keys) -> dict:
    done = farm("status", "--json", "--connect", endpoint, "--curve-keys", keys, "--reply-timeout", "30")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def farm_slurm(cluster, endpoint, keys, tmp_path, *args) -> tuple[str, str]:
    done = subprocess.run([*farm_command(), "slurm", "--connect", endpoint, "--nodes", "1", "--curve-keys", str(keys),
                           "--exit-when-idle", "4", "--time", "10", "--log-dir", str(tmp_path / "logs"),
                           "--script", str(tmp_path / "job.sbatch"), *args],
                          capture_output=True, text=True, env=cluster.env(farm_env()), timeout=120)
    assert done.returncode == 0, done.stderr
    job_id = re.search(r"submitted Slurm job (\d+)", done.stdout).group(1)
    return job_id, (tmp_path / "job.sbatch").read_text()


def job_done(endpoint, keys) -> bool:
    jobs = status(endpoint, keys)["jobs"]
    return bool(jobs) and all(j["state"] == "finished" for j in jobs)


def test_slurm_array_renders_the_job_and_releases_the_allocation(cluster, farm_with_keys, tmp_path):
    endpoint, keys, out, submit = farm_with_keys
    submit(2)
    job_id, script = farm_slurm(cluster, endpoint, keys, tmp_path)
    for secret in keys.glob("*.key_secret"):  # keys travel over the shared file system only
        key_lines = [ln for ln in secret.read_text().splitlines() if "key" in ln and "=" in ln]
        assert key_lines and not any(ln.split("=", 1)[1].strip().strip('"') in script for ln in key_lines)
    assert f"--curve-keys {keys}" in script and "#SBATCH --array=0-0" in script

    worker = wait_for(lambda: next((w for w in status(endpoint, keys)["workers"] if w.get("slurm")), None),
                      timeout=180, what="a worker from the Slurm job")
    assert worker["slurm"]["job_id"] == job_id and worker["slurm"]["task_id"] == "0"
    table = farm("status", "--connect", endpoint, "--curve-keys", keys).stdout
    assert f"(slurm {job_id}_0)" in table

    wait_for(lambda: job_done(endpoint, keys), timeout=300, what="the job to finish")
    wait_for(lambda: not cluster.queue(), timeout=120, what="squeue to be empty (the worker exits when idle)")
    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["status"] for o in objects] == ["done", "done"]
    log = next((tmp_path / "logs").glob(f"*-{job_id}_0.log")).read_text()
    assert "exits" in log, log[-2000:]


def test_a_requeued_task_gives_its_lease_back(cluster, farm_with_keys, tmp_path):
    endpoint, keys, out, submit = farm_with_keys
    submit(3)
    job_id, _ = farm_slurm(cluster, endpoint, keys, tmp_path)
    busy = wait_for(lambda: next((w for w in status(endpoint, keys)["workers"] if w.get("task_id")), None),
                    timeout=180, what="the Slurm worker to hold a lease")
    requeued = cluster.run("scontrol", "requeue", f"{job_id}_0")
    assert requeued.returncode == 0, requeued.stderr
    wait_for(lambda: cluster.run("scontrol", "update", f"JobId={job_id}_0", "StartTime=now").returncode == 0
             and any("PENDING" in line or "RUNNING" in line for line in cluster.queue()), timeout=60,
             what="the requeued task to be pending again")
    wait_for(lambda: job_done(endpoint, keys), timeout=400, what="the job to finish after the requeue")
    wait_for(lambda: not cluster.queue(), timeout=120, what="squeue to be empty")
    objects = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert [o["status"] for o in objects] == ["done"] * 3
    with sqlite3.connect(tmp_path / "state.sqlite") as db:  # the interrupted task was leased again
        leases = db.execute("SELECT COUNT(*) FROM attempts WHERE task_id = ?", (busy["task_id"],)).fetchone()[0]
    assert leases >= 2


def test_dry_run_prints_the_script_and_bad_options_are_one_line(tmp_path):
    done = farm("slurm", "--connect", "tcp://10.1.2.3:5555", "--nodes", "4", "--gpus-per-node", "2", "--per-gpu", "3",
                "--partition", "gpu", "--time", "90", "--account", "proj1", "--extra", "--mem=32G", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for expected in ("#SBATCH --array=0-3", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu", "#SBATCH --time=90",
                     "#SBATCH --account=proj1", "#SBATCH --mem=32G", "#SBATCH --requeue"):
        assert expected in lines, expected
    assert lines[-1].startswith("exec ") and "--gpus all --per-gpu 3" in lines[-1]
    assert "--connect tcp://10.1.2.3:5555" in lines[-1]
    for args, message in ((["--nodes", "0"], "--nodes: 0 is out of range"),
                          (["--extra", "mem=1G"], "--extra: 'mem=1G' is not an sbatch option"),
                          (["--time", "soon"], "--time: 'soon' is not a Slurm time"),
                          (["--partition", "a b"], "--partition: 'a b' is not a Slurm name"),
                          (["--curve-keys", str(tmp_path)], "is not a key folder"),
                          (["--connect", "ipc:///tmp/x"], "--connect: 'ipc:///tmp/x' must be tcp://HOST:PORT")):
        bad = farm("slurm", "--connect", "tcp://10.1.2.3:5555", "--dry-run", *args)
        assert bad.returncode == 2 and bad.stderr.startswith("error: ") and message in bad.stderr, (args, bad.stderr)


