"""Which GPUs and cores a machine's render children get: GPU discovery, one slot per render child
pinned to its GPU, and the CPU plan for `farm render --workers auto`.

Pinning: a render child sees only its own GPU (`CUDA_VISIBLE_DEVICES=<id>` in its environment),
so Cycles' device selection (OptiX first, then CUDA: blender_addon/scene/build.py) uses that one
GPU. `--gpus all` means the GPUs this process may use: CUDA_VISIBLE_DEVICES when set (as Slurm
sets it for an allocation), else every GPU nvidia-smi lists. Explicit ids are used as given.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

THREADS_ENV = "MVCAP_CYCLES_THREADS"  # the worker tells its render child how many CPU threads to use
# Pixel-samples per view that one Cycles CPU thread keeps busy through a view's serial parts (scene
# sync, denoise, PNG write): on 2 cores (bpy 5.0.1) one child kept about 1.45 cores busy at 128 px
# x 8 samples and filled both at 512 px x 32 samples (issue 12's measurements). Our own runs on a
# shared machine (BENCHMARKS.md, "CPU workers") were too noisy to refine it.
PIXEL_SAMPLES_PER_THREAD = 128 * 128 * 8 / 1.45
CHILD_MEMORY_MB = 1024  # what one render child may take (bpy, scene, BVH), for the auto plan


class DeviceError(ValueError):
    """No GPU, a GPU id that is not there, or a bad worker count. One line, shown without traceback."""


@dataclass(frozen=True)
class Slot:
    gpu: str    # the CUDA_VISIBLE_DEVICES value of this slot's render child
    index: int  # which of the GPU's `per_gpu` slots


@lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[tuple[str, str], ...]:
    """(index, model name) of every GPU nvidia-smi lists; empty without a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        done = subprocess.run([exe, "--query-gpu=index,name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if done.returncode != 0:
        return ()
    rows = [line.split(",", 1) for line in done.stdout.splitlines() if "," in line]
    return tuple((index.strip(), name.strip()) for index, name in rows)


def visible_gpus(environ=os.environ) -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES's entries when set, else nvidia-smi's."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and not g.strip().startswith("-")]
    return [index for index, _ in nvidia_gpus()]


def select_gpus(which: str, environ=os.environ) -> list[str]:
    """`--gpus all` or `--gpus 0,2,3`: the GPU ids, each one a render child's CUDA_VISIBLE_DEVICES.
    DeviceError when there is no GPU, or an id is not among the visible ones."""
    visible = visible_gpus(environ)
    if not visible:
        raise DeviceError("--device gpu: no NVIDIA GPU found (nvidia-smi lists none and CUDA_VISIBLE_DEVICES "
                       "names none); use --device cpu")
    if which.strip().lower() == "all":
        return visible
    wanted = [g.strip() for g in which.split(",") if g.strip()]
    if not wanted or len(set(wanted)) != len(wanted):
        raise DeviceError(f"--gpus: {which!r} must be 'all' or distinct GPU ids like 0,2,3")
    missing = [g for g in wanted if g not in visible]
    if missing:
        raise DeviceError(f"--gpus: GPU {', '.join(missing)} not found; visible: {', '.join(visible)}")
    return wanted


def gpu_slots(gpus: list[str], per_gpu: int) -> list[Slot]:
    """`per_gpu` slots on each GPU, GPUs taken in turn (a short job spreads over every GPU)."""
    if per_gpu < 1:
        raise DeviceError(f"--per-gpu: {per_gpu} is out of range; must be >= 1")
    return [Slot(gpu, k) for k in range(per_gpu) for gpu in gpus]


def child_env(gpu: str | None = None, threads: int | None = None) -> dict[str, str]:
    """The environment a render child gets on top of its worker's: its GPU and its CPU threads."""
    env = {}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if threads:
        env[THREADS_ENV] = str(int(threads))
    return env


def gpu_model(gpu: str | None) -> str | None:
    """The model name of a GPU id (as nvidia-smi numbers them), or None when unknown."""
    return dict(nvidia_gpus()).get(str(gpu)) if gpu is not None else None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_plan(resolution_px: int, samples: int, cores: int | None = None, memory_mb: float | None = None,
             objects: int | None = None) -> tuple[int, int]:
    """(render children, Cycles threads each) that keep every core busy: each child gets the threads
    a view of this size keeps busy (PIXEL_SAMPLES_PER_THREAD), and more children render other
    objects beside it. Capped by memory (CHILD_MEMORY_MB each) and by the objects to render (a
    child without an object would leave its cores idle); the cores left go to threads."""
    cores = cores or usable_cores()
    per_child = round(resolution_px * resolution_px * samples / PIXEL_SAMPLES_PER_THREAD)
    children = max(1, cores // max(1, min(cores, per_child)))
    memory_mb = available_memory_mb() if memory_mb is None else memory_mb
    if memory_mb:
        children = min(children, int(memory_mb // CHILD_MEMORY_MB))
    if objects:
        children = min(children, objects)
    children = max(1, children)
    return children, max(1, cores // children)


@dataclass(frozen=True)
class LocalPlan:
    """How `farm render` runs its workers: how many, the arguments of each, and why."""
    workers: int
    slot_args: list[list[str]]  # worker i gets slot_args[i]: its GPU or its Cycles threads
    note: str


def local_plan(device: str, workers: str, per_gpu: int, resolution_px: int, samples: int,
               objects: int | None = None) -> LocalPlan:
    """`farm render --workers auto|N --device cpu|gpu [--per-gpu K]` for `objects` assets.
    DeviceError without a GPU."""
    count = None if str(workers).strip().lower() == "auto" else _worker_count(workers)
    if device == "gpu":
        slots = gpu_slots(select_gpus("all"), per_gpu)
        slots = slots if count is None else [slots[i % len(slots)] for i in range(count)]
        gpus = sorted({s.gpu for s in slots})
        return LocalPlan(len(slots), [["--gpu", s.gpu] for s in slots],
                         f"{len(slots)} worker(s) on GPU {', '.join(gpus)}")
    cores = usable_cores()
    if count is None:
        count, threads = cpu_plan(resolution_px, samples, cores, objects=objects)
    else:
        threads = max(1, cores // count)
    return LocalPlan(count, [["--threads", str(threads)]] * count,
                     f"{count} worker(s) x {threads} Cycles thread(s) on {cores} core(s)")


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise DeviceError(f"--workers: {text!r} must be a number or 'auto'") from None
    if not 1 <= count <= 256:
        raise DeviceError(f"--workers: {count} is out of range; must be >= 1 and <= 256")
    return count
