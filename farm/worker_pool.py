"""`farm worker --gpus all|0,2 --per-gpu N`: one worker process per GPU slot (farm/gpus.py), each
with its own connection to the broker and its own render child pinned to its GPU.

The pool forwards SIGTERM and Ctrl-C to every slot, so each gives its task back (DISCONNECT),
and waits for them; a slot dies with the pool (PR_SET_PDEATHSIG) if the pool is killed. It exits
when every slot has exited (e.g. all idle under --exit-when-idle), with the worst exit code.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys

from .gpus import Slot

log = logging.getLogger("farm.worker")


def run_slot(kwargs: dict) -> None:
    """A slot process: one Worker (spawned, so importable)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    from .worker import Worker

    sys.exit(Worker(**kwargs).run())


def slot_name(base: str, slot: Slot) -> str:
    return f"{base}-gpu{slot.gpu}-{slot.index}"


class WorkerPool:
    def __init__(self, slots: list[Slot], worker_kwargs: dict, base_name: str | None = None):
        self.slots = slots
        self.worker_kwargs = worker_kwargs
        self.base_name = base_name or f"{socket.gethostname()}-{os.getpid()}"
        self.procs: list[multiprocessing.Process] = []

    def run(self) -> int:
        ctx = multiprocessing.get_context("spawn")
        previous = {sig: signal.signal(sig, self._forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                kwargs = {**self.worker_kwargs, "gpu": slot.gpu, "name": slot_name(self.base_name, slot)}
                proc = ctx.Process(target=run_slot, args=(kwargs,), name=kwargs["name"])
                proc.start()
                self.procs.append(proc)
                log.info("worker %s on GPU %s (pid %s)", kwargs["name"], slot.gpu, proc.pid)
            for proc in self.procs:
                proc.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        codes = [p.exitcode or 0 for p in self.procs]
        return max(codes, key=abs) if codes else 0

    def _forward(self, signum, frame) -> None:
        for proc in self.procs:
            if proc.is_alive():
                try:
                    proc.terminate()  # SIGTERM: the worker's clean shutdown
                except OSError:
                    pass
