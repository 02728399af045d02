"""GPU pinning and the CPU plan, without a GPU.

The pinning test runs the real `farm worker --device gpu --gpus 0,2 --per-gpu 2` against a real
broker. The machine has no GPU, so an `nvidia-smi` stand-in on PATH lists four; each render child's
own environment (/proc/PID/environ) must name its slot's GPU, and only that one.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from farm.gpus import DeviceError, cpu_plan, gpu_slots, local_plan, select_gpus

from .conftest import REPO, farm_command, farm_env, free_port, spawn, stop, wait_for

FAKE_NVIDIA_SMI = """#!/bin/sh
# stands in for the driver's tool: four GPUs
printf '0, NVIDIA Test GPU A\\n1, NVIDIA Test GPU A\\n2, NVIDIA Test GPU B\\n3, NVIDIA Test GPU B\\n'
"""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def fake_gpu_env(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = farm_env()
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def status(addr: str) -> dict:
    done = subprocess.run([*farm_command(), "status", "--json", "--connect", addr], capture_output=True, text=True,
                          env=farm_env(), cwd=REPO, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else {"workers": []}


def test_each_render_child_is_pinned_to_its_own_gpu(tmp_path):
    addr = f"tcp://127.0.0.1:{free_port()}"
    broker = spawn("broker", "--bind", addr, "--state", tmp_path / "s.sqlite", "--out-root", tmp_path)
    pool = subprocess.Popen([*farm_command(), "worker", "--connect", addr, "--device", "gpu", "--gpus", "0,2",
                             "--per-gpu", "2", "--name", "pinned"], env=fake_gpu_env(tmp_path), cwd=REPO,
                            stdout=open(tmp_path / "pool.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        workers = wait_for(lambda: (lambda ws: ws if len(ws) == 4 else None)(status(addr)["workers"]),
                           timeout=120, what="four pinned workers")
        assert sorted(w["worker"] for w in workers) == ["pinned-gpu0-0", "pinned-gpu0-1", "pinned-gpu2-0",
                                                         "pinned-gpu2-1"]
        for w in workers:
            gpu = w["worker"].split("-gpu")[1].split("-")[0]
            assert "CUDA_VISIBLE_DEVICES" not in environ_of(w["pid"])  # the worker itself is not pinned
            pinned = wait_for(lambda: {environ_of(c).get("CUDA_VISIBLE_DEVICES") for c in children_of(w["pid"])}
                              - {None}, timeout=60, what=f"{w['worker']}'s render child")
            assert pinned == {gpu}, (w["worker"], pinned)
    finally:
        stop(pool)
        log = (tmp_path / "pool.log").read_text(errors="replace")
        stop(broker)
    assert pool.returncode == 0, log[-3000:]


def test_gpu_device_without_a_gpu_is_one_line(tmp_path, box_glb):
    env = farm_env()
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "nvidia-smi")))
    for args in (["worker", "--device", "gpu"], ["worker", "--device", "gpu", "--gpus", "0,1"],
                 ["render", str(box_glb), "-o", str(tmp_path / "OUT"), "--device", "gpu"]):
        done = subprocess.run([*farm_command(), *args], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=120)
        assert done.returncode == 2 and done.stderr == (
            "error: --device gpu: no NVIDIA GPU found (nvidia-smi lists none and CUDA_VISIBLE_DEVICES names "
            "none); use --device cpu\n"), (args, done.stderr)
    assert not (tmp_path / "OUT").exists()


def test_gpu_selection_and_slots():
    assert select_gpus("all", {"CUDA_VISIBLE_DEVICES": "1,3"}) == ["1", "3"]  # as Slurm sets it
    assert select_gpus("3", {"CUDA_VISIBLE_DEVICES": "1,3"}) == ["3"]
    with pytest.raises(DeviceError, match="GPU 0 not found; visible: 1, 3"):
        select_gpus("0,3", {"CUDA_VISIBLE_DEVICES": "1,3"})
    with pytest.raises(DeviceError, match="no NVIDIA GPU found"):
        select_gpus("all", {"CUDA_VISIBLE_DEVICES": ""})
    slots = gpu_slots(["1", "3"], 2)
    assert [(s.gpu, s.index) for s in slots] == [("1", 0), ("3", 0), ("1", 1), ("3", 1)]  # spread first


def test_cpu_plan_keeps_every_core_busy():
    big = 256000
    assert cpu_plan(128, 8, cores=2, memory_mb=big) == (2, 1)     # one child leaves a core idle: two
    assert cpu_plan(512, 32, cores=2, memory_mb=big) == (1, 2)    # one child fills both cores
    assert cpu_plan(512, 32, cores=64, memory_mb=big) == (1, 64)
    assert cpu_plan(256, 8, cores=16, memory_mb=big) == (2, 8)    # 6 threads keep a 256 px child busy
    assert cpu_plan(128, 8, cores=16, memory_mb=16000) == (15, 1)  # memory: ~1 GB per child
    assert cpu_plan(128, 8, cores=16, memory_mb=big, objects=4) == (4, 4)  # the cores left go to threads
    assert cpu_plan(128, 8, cores=2, memory_mb=big, objects=1) == (1, 2)
    plan = local_plan("cpu", "3", 1, 128, 8)
    assert plan.workers == 3 and plan.slot_args[0][0] == "--threads"
    with pytest.raises(DeviceError, match="--workers: 'many' must be a number or 'auto'"):
        local_plan("cpu", "many", 1, 128, 8)


def test_objects_and_card_record_the_device(tmp_path, box_glb):
    out = tmp_path / "OUT"
    done = subprocess.run([*farm_command(), "render", str(box_glb), "-o", str(out), "--views", "1", "--resolution",
                           "32", "--samples", "1", "--no-progress"], capture_output=True, text=True, env=farm_env(),
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert re.search(r"farm render: \d+ worker\(s\) x \d+ Cycles thread\(s\) on \d+ core\(s\)", done.stderr)
    (obj,) = [json.loads(line) for line in (out / "objects.jsonl").read_text().splitlines()]
    assert obj["device"] == {"backend": "CPU", "gpu": None}
    card = subprocess.run([*farm_command(), "dataset", "card", str(out)], capture_output=True, text=True,
                          env=farm_env(), cwd=REPO, timeout=120)
    assert card.returncode == 0, card.stderr
    assert "- Rendered on: `CPU` (1 objects)" in (out / "README.md").read_text()
