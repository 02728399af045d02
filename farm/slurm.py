"""`farm slurm`: an sbatch array of `farm worker` tasks that connect to a running broker.

One array task per node. Each runs `farm worker` (with `--gpus all --per-gpu K` on GPU nodes:
one render child per GPU slot, farm/gpus.py) and `--exit-when-idle`, so a task ends, and its
allocation is released, once the broker has had no work for it that long. `#SBATCH --requeue`
and `exec` (the worker gets Slurm's SIGTERM itself): a preempted or requeued task's worker
gives its task back (DISCONNECT) before it goes; one killed outright loses its lease when its
heartbeats stop. Either way the object is rendered again elsewhere.

CurveZMQ keys are never written into the script: it names the key folder (`--curve-keys DIR`,
on a file system the nodes share), and each worker reads the keys from there.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from blender_addon.contract.peer_auth import local_endpoint_key


class SlurmError(ValueError):
    """A bad `farm slurm` option or a refused submission. One line, shown without traceback."""


@dataclass
class SlurmJob:
    connect: str
    nodes: int = 1
    gpus_per_node: int = 0
    per_gpu: int = 1
    partition: str | None = None
    time_limit: str | None = None
    account: str | None = None
    extra: list[str] = field(default_factory=list)
    curve_keys: str | None = None
    key_name: str = "client"
    exit_when_idle: float = 120.0
    job_name: str = "mvcap-farm"
    log_dir: str = "slurm-logs"
    worker_args: list[str] = field(default_factory=list)


def slurm_identity(environ=os.environ) -> dict | None:
    """The Slurm job and array task a process runs in (for the worker's READY), or None."""
    job = environ.get("SLURM_ARRAY_JOB_ID") or environ.get("SLURM_JOB_ID")
    if not job:
        return None
    return {"job_id": job, "task_id": environ.get("SLURM_ARRAY_TASK_ID"), "node": environ.get("SLURMD_NODENAME")}


def slurm_label(slurm: dict | None) -> str:
    """`slurm 1234_5` (array job 1234, task 5), as `farm status` shows it; "" without Slurm."""
    if not slurm:
        return ""
    task = f"_{slurm['task_id']}" if slurm.get("task_id") not in (None, "") else ""
    return f"slurm {slurm.get('job_id')}{task}"


def _sbatch_line(text: str) -> str:
    line = text.strip()
    if line.startswith("#SBATCH"):
        line = line[len("#SBATCH"):].strip()
    if not line.startswith("-") or "\n" in text or "\r" in text:
        raise SlurmError(f"--extra: {text!r} is not an sbatch option (like --mem=16G or --qos=high)")
    return f"#SBATCH {line}"


def worker_command(job: SlurmJob) -> list[str]:
    """The `farm worker` command line each array task runs (the same Python as this one)."""
    cmd = [sys.executable, "-m", "farm", "worker", "--connect", job.connect,
           "--exit-when-idle", f"{job.exit_when_idle:g}"]
    if job.gpus_per_node:
        cmd += ["--device", "gpu", "--gpus", "all", "--per-gpu", str(job.per_gpu)]
    if job.curve_keys:
        cmd += ["--curve-keys", os.path.abspath(job.curve_keys), "--key-name", job.key_name]
    return cmd + list(job.worker_args)


def sbatch_script(job: SlurmJob) -> str:
    """The sbatch script: one array task per node, each `exec`ing a worker."""
    if not re.fullmatch(r"tcp://\S+:\d+", job.connect):
        raise SlurmError(f"--connect: {job.connect!r} must be tcp://HOST:PORT, an address the compute nodes reach")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", job.job_name):
        raise SlurmError(f"--job-name: {job.job_name!r} may hold letters, digits, '_', '.' and '-' only")
    log_dir = os.path.abspath(job.log_dir)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job.job_name}", f"#SBATCH --array=0-{job.nodes - 1}",
             "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --requeue",
             f"#SBATCH --output={log_dir}/%x-%A_%a.log"]
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{job.gpus_per_node}")
    for flag, value in (("partition", job.partition), ("account", job.account)):
        if value:
            if not re.fullmatch(r"[A-Za-z0-9_.,-]+", value):
                raise SlurmError(f"--{flag}: {value!r} is not a Slurm name")
            lines.append(f"#SBATCH --{flag}={value}")
    if job.time_limit:
        if not re.fullmatch(r"\d+(-\d+)?(:\d+){0,2}", job.time_limit):
            raise SlurmError(f"--time: {job.time_limit!r} is not a Slurm time (MIN, HH:MM:SS or D-HH)")
        lines.append(f"#SBATCH --time={job.time_limit}")
    lines += [_sbatch_line(text) for text in job.extra]
    env = {k: os.environ[k] for k in ("PYTHONPATH",) if os.environ.get(k)}
    lines += ["", "# Written by `farm slurm`. The workers exit when the broker has had no work for them for",
              f"# {job.exit_when_idle:g} s; CurveZMQ keys, if any, are read from the shared folder named below.",
              "set -eu", f"cd {shlex.quote(os.getcwd())}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append("exec " + shlex.join(worker_command(job)))
    return "\n".join(lines) + "\n"


def loopback_warning(job: SlurmJob, script: str) -> str | None:
    """Why workers may not reach a loopback broker: tasks that can land on other nodes. A warning,
    not a refusal: on a one-node cluster every task runs beside the broker."""
    if not (local_endpoint_key(job.connect) and may_span_nodes(script)):
        return None
    return (f"--connect {job.connect} is a loopback address: workers on other nodes cannot reach it; unless "
            "this cluster has one node, give the broker's address on the cluster network "
            "(farm broker --bind tcp://0.0.0.0:5555 --curve-keys DIR)")


def may_span_nodes(script: str) -> bool:
    """Whether the script's workers can run on more than one node: its array (the last --array,
    --extra's included) has more than one task and no --nodelist/-w pins them to one host. Each
    task's worker runs on its allocation's first node only (`exec`, no srun)."""
    array, pinned = "0", None
    for option in re.findall(r"^#SBATCH\s+(.*?)\s*$", script, re.M):
        if found := re.fullmatch(r"(?:--array[= ]\s*|-a\s*)(\S+)", option):
            array = found.group(1)
        if found := re.fullmatch(r"(?:--nodelist[= ]\s*|-w\s*)(\S+)", option):
            pinned = found.group(1)
    one_host = pinned is not None and re.fullmatch(r"[A-Za-z0-9_.-]+", pinned) is not None
    return not one_host and array_tasks(array) != 1


def array_tasks(spec: str) -> int | None:
    """How many tasks an sbatch --array spec (0-3, 1,5,7, 0-15:4, 0-9%2) names; None if unreadable."""
    count = 0
    for part in spec.split("%")[0].split(","):
        found = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not found:
            return None
        first, last, step = found.group(1), found.group(2) or found.group(1), found.group(3) or "1"
        count += len(range(int(first), int(last) + 1, max(int(step), 1)))
    return count


def submit(script: str, script_path: Path) -> str:
    """Write the script and submit it with sbatch. Returns the Slurm job id."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SlurmError("sbatch: not found on PATH (is this a Slurm login node?); --dry-run prints the script")
    log_dir = re.search(r"^#SBATCH --output=(.*)/[^/]*$", script, re.M)
    if log_dir:
        Path(log_dir.group(1)).mkdir(parents=True, exist_ok=True)
    script_path.parent.mkdir(parents=True, exist_ok=True)
    script_path.write_text(script, encoding="utf-8")
    done = subprocess.run([sbatch, "--parsable", str(script_path)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise SlurmError(f"sbatch refused {script_path}: {reason[-1]}")
    return done.stdout.strip().split(";")[0]
