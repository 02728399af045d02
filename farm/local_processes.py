"""The processes `farm render` starts beside its embedded broker: N local `farm worker`s and,
with --caption, a `captioner serve`.

Each one logs into OUT/.farm/logs/, runs in its own session, and gets SIGTERM should `farm render`
die without cleaning up (Linux PR_SET_PDEATHSIG). A worker that exits while work is left is started
again, up to a limit.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("farm.local")

STOP_WAIT_S = 15.0  # after SIGTERM, before SIGKILL


class LocalError(ValueError):
    """A problem with the run's input or environment; shown as one line, exit 2."""


def captioner_command() -> list[str]:
    """How to start `captioner serve` here, or LocalError when it is not installed."""
    exe = shutil.which("captioner")
    if exe:
        return [exe]
    # a checkout without the console script: run the package. find_spec of a top-level name only
    # looks for it; farm never imports the captioner (it may import farm, not the other way).
    if importlib.util.find_spec("captioner") is not None:
        return [sys.executable, "-m", "captioner"]
    raise LocalError("--caption: the `captioner` command is not available; install the captioner "
                     "(pip install -e '.[captioner]') or run with --no-caption")


try:
    import ctypes

    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _die_with_us() -> None:
    """preexec_fn: the child gets SIGTERM if `farm render` dies without cleaning up (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_env() -> dict:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen:
    fh = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=_child_env(), preexec_fn=_die_with_us)
    finally:
        fh.close()


class LocalProcesses:
    """The workers and the captioner of one local run."""

    def __init__(self, logs: Path, *, workers: int, device: str, worker_command: list[str],
                 worker_args: list[str], heartbeat_s: float | None, caption_model: str | None,
                 caption_args: list[str], slot_args: list[list[str]] | None = None):
        self.logs = logs
        self.n_workers = workers
        self.device = device
        self.worker_command = worker_command
        self.worker_args = worker_args
        self.slot_args = slot_args or []  # worker i also gets slot_args[i] (farm.gpus.local_plan)
        self.heartbeat_s = heartbeat_s
        self.caption_model = caption_model
        self.caption_args = caption_args
        self.endpoint = ""
        self.workers: list[subprocess.Popen] = []
        self.captioner: subprocess.Popen | None = None
        self.restarts = 0

    def start_workers(self, endpoint: str, count: int) -> None:
        self.endpoint = endpoint
        for i in range(count):
            self.workers.append(self._spawn_worker(i))

    def _spawn_worker(self, index: int) -> subprocess.Popen:
        cmd = [*self.worker_command, "--connect", self.endpoint, "--device", self.device,
               "--name", f"local-{os.getpid()}-{index}", *self.worker_args,
               *(self.slot_args[index] if index < len(self.slot_args) else [])]
        if self.heartbeat_s:
            cmd += ["--heartbeat", str(self.heartbeat_s)]
        return _spawn(cmd, self.logs / f"worker-{index}.log")

    def start_captioner(self, endpoint: str) -> None:
        cmd = captioner_command() + ["serve", "--connect", endpoint]
        if self.caption_model:
            cmd += ["--model", self.caption_model]
        cmd += self.caption_args
        self.captioner = _spawn(cmd, self.logs / "captioner.log")

    def captioner_exit_code(self) -> int | None:
        """The captioner's exit code once it has exited, else None."""
        return self.captioner.poll() if self.captioner is not None else None

    def restart_exited_workers(self, render_active: int) -> None:
        """While renders are left, a worker that exited is started again (LocalError when they
        keep exiting)."""
        for i, p in enumerate(self.workers):
            if p.poll() is not None and render_active:
                self.restarts += 1
                if self.restarts > 3 * max(1, self.n_workers) + 3:
                    raise LocalError(f"workers keep exiting (last code {p.returncode}); see {self.logs}")
                log.warning("worker %d exited with code %s; starting it again", i, p.returncode)
                self.workers[i] = self._spawn_worker(i)

    def stop(self) -> None:
        """SIGTERM everyone, then SIGKILL whoever is still there after STOP_WAIT_S."""
        procs = self.workers + ([self.captioner] if self.captioner else [])
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + STOP_WAIT_S
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill_workers(self) -> None:
        for p in self.workers:
            p.kill()
