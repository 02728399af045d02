"""The memory ceiling during a task: a thread that watches the render child's resident memory and
kills it before it crosses `--max-rss-mb`.

Polling, not RLIMIT_AS: Cycles and its threads reserve far more address space than they use, so
an address-space limit breaks good renders. A runaway import (a 468-byte glTF whose buffer claims
10 GB) grows by about 2.5 GB/s, so the watch polls every POLL_S and kills when the next two
polls at the last growth rate would cross the ceiling: the child's peak stays under it.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

from .render_child import read_rss_mb

log = logging.getLogger("farm.worker")

POLL_S = 0.01


class MemoryWatch:
    """`arm(pid)` while a task runs, `disarm()` after; `tripped` holds the kill's report."""

    def __init__(self, ceiling_mb: float, poll_s: float = POLL_S):
        self.ceiling_mb = ceiling_mb
        self.poll_s = poll_s
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.tripped: dict | None = None  # {"pid", "rss_mb", "peak_mb"} of the last kill
        self._thread = threading.Thread(target=self._main, name="farm-memory-watch", daemon=True)
        self._thread.start()

    def arm(self, pid: int) -> None:
        with self._lock:
            self._pid = pid
            self.tripped = None
        self._wake.set()

    def disarm(self) -> None:
        with self._lock:
            self._pid = None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(1)

    def _main(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            pid = self._pid
            if pid is None:
                self._wake.wait(0.5)
                self._wake.clear()
                last = 0.0
                continue
            rss = read_rss_mb(pid)
            growth = max(0.0, rss - last) if last else 0.0
            last = rss
            if rss and rss + 2 * growth > self.ceiling_mb:
                self._kill(pid, rss)
                last = 0.0
            self._stop.wait(self.poll_s)

    def _kill(self, pid: int, rss: float) -> None:
        with self._lock:
            if self._pid != pid:  # the task ended meanwhile
                return
            peak = read_rss_mb(pid, "VmHWM")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self._pid = None
            self.tripped = {"pid": pid, "rss_mb": rss, "peak_mb": peak}
        log.warning("render child %s killed at %.0f MB resident (peak %.0f MB): the ceiling is %.0f MB",
                    pid, rss, peak, self.ceiling_mb)
