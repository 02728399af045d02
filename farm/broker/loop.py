"""The broker's life cycle and its single-threaded loop.

One turn of the loop:
  1. poll, then drain up to BATCH waiting messages (a known worker's HEARTBEAT is settled here);
  2. handle the rest inside ONE store transaction (group commit), with maintenance and leasing of
     queued tasks to idle workers in the same transaction;
  3. commit, and only then send the replies, so nothing a peer was told can be lost;
  4. write objects.jsonl / metadata.json when due (exports.py).

A transaction that fails (a full disk, a bug) is rolled back and the broker forgets its workers,
which re-register as after a restart: the broker never dies on input.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import zmq

from .. import protocol as P
from ..store import DEFAULT_BLOCKLIST_THRESHOLD, Store
from .captions import CaptionRequests
from .clients import ClientRequests
from .exports import OutputFiles
from .inbox import Inbox
from .router import bind_router
from .streamed import StreamedFiles
from .tasks import RenderTasks
from .workers import WorkerRegistry

log = logging.getLogger("farm.broker")

BATCH = 4096
MAINTENANCE_S = 0.25


class Broker:
    """The broker: `open()` (or `serve()`, which opens), then `serve()` until `stop()`."""

    def __init__(
        self,
        state: str | os.PathLike,
        bind: str = "tcp://127.0.0.1:5555",
        *,
        curve_keys: str | os.PathLike | None = None,
        heartbeat_s: float = P.HEARTBEAT_S,
        liveness: int = P.LIVENESS,
        fsync: bool = False,
        blocklist_threshold: int = DEFAULT_BLOCKLIST_THRESHOLD,
        group_commit: int = BATCH,
        context: zmq.Context | None = None,
    ):
        self.state_path = Path(state)
        self.bind_addr = bind
        self.curve_keys = curve_keys
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.fsync = fsync
        self.blocklist_threshold = blocklist_threshold
        self.group_commit = group_commit  # messages per transaction (1 = a commit per message)
        self.ctx = context or zmq.Context.instance()
        self.endpoint: str | None = None
        self.sock: zmq.Socket | None = None
        self.auth = None
        self.stats = {"messages": 0, "batches": 0, "leased": 0, "completed": 0, "failed": 0}
        self._ready = threading.Event()
        self._stop = threading.Event()
        # made by open(), in the thread that serves (SQLite connections stay in their thread)
        self.store: Store | None = None
        self.registry: WorkerRegistry | None = None
        self.tasks: RenderTasks | None = None
        self.inbox: Inbox | None = None
        self.files: OutputFiles | None = None

    @property
    def dropped(self) -> int:
        """Malformed or refused messages dropped so far."""
        return self.inbox.dropped if self.inbox is not None else 0

    # --- life cycle ---------------------------------------------------------------------------
    def open(self) -> str:
        """Open the store and bind. Returns the bound endpoint (resolves tcp://...:* ports)."""
        self.store = Store(self.state_path, fsync=self.fsync)
        # leases held by workers this broker has not met get one liveness period to be adopted
        self.store.recover(grace_s=self.heartbeat_s * self.liveness * 2)
        self._build_handlers(self.store)
        self.sock, self.auth, self.endpoint = bind_router(self.ctx, self.bind_addr, self.curve_keys)
        log.info("broker listening on %s, state %s", self.endpoint, self.state_path)
        self._ready.set()
        return self.endpoint

    def _build_handlers(self, store: Store) -> None:
        streamed = StreamedFiles(store)
        self.files = OutputFiles(store)
        self.registry = WorkerRegistry(store, streamed, self.heartbeat_s, self.liveness)
        self.tasks = RenderTasks(store, self.registry, streamed, self.stats, self.blocklist_threshold)
        self.inbox = Inbox(store, self.registry, self.tasks, streamed,
                           ClientRequests(store, self.registry, streamed),
                           CaptionRequests(store, self.files))

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout: float = 10.0) -> str:
        if not self._ready.wait(timeout):
            raise RuntimeError("broker did not start")
        assert self.endpoint
        return self.endpoint

    def close(self) -> None:
        if self.store is not None:
            self.files.write_final()
            self.store.close()
            self.store = None
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve, name="farm-broker", daemon=True)
        t.start()
        return t

    # --- the loop -----------------------------------------------------------------------------
    def serve(self) -> None:
        """Run until stop(). Opens the broker if it is not open yet."""
        if self.sock is None:
            self.open()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        next_maint = 0.0
        try:
            while not self._stop.is_set():
                batch = self._receive(poller, next_maint)
                now = time.time()
                work = self._needing_store(batch, now)
                maint = now >= next_maint
                if maint:
                    next_maint = now + MAINTENANCE_S
                self._handle_in_transactions(work, now, maint)
                if batch:
                    self.stats["batches"] += 1
                    self.stats["messages"] += len(batch)
                self.files.after_turn(busy=bool(batch), now=now)
                self.store.finished_jobs.clear()
        finally:
            self.close()

    def _receive(self, poller: zmq.Poller, next_maint: float) -> list[list[bytes]]:
        """Wait for input (100 ms at most, less when maintenance is due), then drain up to BATCH."""
        wait_ms = max(0, min(100, int((next_maint - time.time()) * 1000)))
        events = dict(poller.poll(wait_ms))
        batch = []
        if events.get(self.sock):
            while len(batch) < BATCH:
                try:
                    batch.append(self.sock.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
        return batch

    def _needing_store(self, batch: list[list[bytes]], now: float) -> list[tuple[bytes, dict]]:
        """The checked messages that need a transaction (a known worker's HEARTBEAT does not)."""
        work = []
        for frames in batch:
            parsed = self.inbox.parse(frames)
            if parsed is None:
                continue
            w = self.registry.get(parsed[0])
            if parsed[1]["type"] == "HEARTBEAT" and w is not None:
                w.last_seen = now  # the common case needs no transaction
                continue
            work.append(parsed)
        return work

    def _handle_in_transactions(self, work: list[tuple[bytes, dict]], now: float, maint: bool) -> None:
        """Group commit: `group_commit` messages per transaction; maintenance and leasing join the last."""
        step = max(1, self.group_commit)
        chunks = [work[i:i + step] for i in range(0, len(work), step)] or [[]]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            if chunk or (last and (maint or self.registry.maybe_queued)):
                self._commit(chunk, now, maintain=last and maint, dispatch=last)

    def _commit(self, chunk: list[tuple[bytes, dict]], now: float, maintain: bool, dispatch: bool) -> None:
        """One transaction; the replies go out only after it commits."""
        out: list[tuple[bytes, bytes]] = []
        try:
            with self.store.transaction():
                for identity, msg in chunk:
                    self.inbox.handle(identity, msg, now, out)
                if maintain:
                    self._maintain(now, out)
                if dispatch and self.registry.maybe_queued:
                    self.tasks.dispatch(now, out)
        except Exception:  # noqa: BLE001 - e.g. a full disk: keep serving
            log.exception("transaction rolled back")
            self._soft_restart()
            return
        for identity, frame in out:
            self._send(identity, frame)

    def _maintain(self, now: float, out: list) -> None:
        """Heartbeats out, dead workers forgotten, expired leases failed, unservable jobs failed."""
        self.registry.check_liveness(now, out)
        self.tasks.expire_leases(now, out)
        if self.store.blocked and self.registry.by_identity:
            self.store.fail_unservable([w.name for w in self.registry.sessions()], now)

    def _soft_restart(self) -> None:
        """After a rolled-back transaction the in-memory view may be ahead of the store: forget
        every worker. Their next message gets RECONNECT, and their READY (with the task they run
        and the results they hold) rebuilds the view from the store, as after a broker restart."""
        self.registry.clear()
        self.store.exports.dirty_roots.clear()
        self.store.finished_jobs.clear()
        try:
            self.store.recover(grace_s=self.heartbeat_s * self.liveness * 2)
        except Exception:  # noqa: BLE001 - the store is still failing; the next turn tries again
            log.exception("recover after a rolled-back transaction failed")

    def _send(self, identity: bytes, frame: bytes) -> None:
        try:
            self.sock.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # a full or vanished peer: heartbeats will sort it out
            log.debug("send to %r failed: %s", identity, exc)
        w = self.registry.get(identity)
        if w is not None:
            w.last_sent = time.time()
