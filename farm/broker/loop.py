"""The broker's life cycle and its single-threaded loop.

One turn of the loop:
  1. poll, then drain up to BATCH waiting messages (a known worker's HEARTBEAT is settled here);
  2. handle the rest inside ONE store transaction (group commit), with maintenance and leasing of
     queued tasks to idle workers in the same transaction;
  3. commit, and only then send the replies, so nothing a peer was told can be lost;
  4. write objects.jsonl / metadata.json when due (exports.py).

A transaction that fails (a full disk, a bug) is rolled back and the broker forgets its workers,
which re-register as after a restart: the broker never dies on input. Nothing in the failed
transaction was acknowledged (a worker keeps its result and sends it again); clients get an ERROR.

Who may connect, and who each message is from, is router.py and gate.py. Start-up problems (a
state file that is not one or is in use, a bad or busy bind) are one-line errors (StoreError,
BrokerStartError), also from `serve_in_thread` through `wait_ready`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import zmq

from .. import environment, protocol as P
from ..store import DEFAULT_BLOCKLIST_THRESHOLD, Store
from .attempt_folders import sweep_attempt_folders
from .captions import CaptionRequests
from .clients import ClientRequests
from .exports import OutputFiles
from .inbox import ANSWERED_ON_FAILURE, Inbox
from .router import BoundRouter
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
        insecure: bool = False,
        out_roots: tuple[str | os.PathLike, ...] | list = (),
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
        self.insecure = insecure
        self.out_roots = tuple(os.path.realpath(r) for r in out_roots)  # SUBMIT's OUT must lie under one
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.fsync = fsync
        self.blocklist_threshold = blocklist_threshold
        self.group_commit = group_commit  # messages per transaction (1 = a commit per message)
        self._own_ctx = context is None  # its own: the gate's ZAP endpoint is one per context
        self.ctx = context or zmq.Context()
        self.endpoint: str | None = None
        self.sock: zmq.Socket | None = None
        self.router: BoundRouter | None = None
        self.start_error: Exception | None = None
        self.storage_error: str | None = None  # the environment error that last failed a commit (a full disk)
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
        try:
            self.store = Store(self.state_path, fsync=self.fsync)
            # leases held by workers this broker has not met get one liveness period to be adopted
            self.store.recover(grace_s=self.heartbeat_s * self.liveness * 2)
            sweep_attempt_folders(self.store, self.out_roots)  # the leases kept above keep their folders
            self.router = BoundRouter(self.ctx, self.bind_addr, self.curve_keys, self.insecure)
        except BaseException:
            self.close()
            raise
        self._build_handlers(self.store, keyed=self.router.keyed)
        self.sock, self.endpoint = self.router.sock, self.router.endpoint
        log.info("broker listening on %s, state %s", self.endpoint, self.state_path)
        if not self.out_roots:
            log.warning("no --out-root: every SUBMIT is refused")
        self._ready.set()
        return self.endpoint

    def _build_handlers(self, store: Store, keyed: bool) -> None:
        streamed = StreamedFiles(store, fsync=self.fsync)
        self.files = OutputFiles(store)
        self.registry = WorkerRegistry(store, streamed, self.heartbeat_s, self.liveness)
        self.tasks = RenderTasks(store, self.registry, streamed, self.stats, self.blocklist_threshold)
        self.inbox = Inbox(store, self.registry, self.tasks, streamed,
                           ClientRequests(store, self.registry, streamed, self.out_roots),
                           CaptionRequests(store, self.files), keyed_names=keyed)

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout: float = 10.0) -> str:
        """The endpoint once serving; the start-up error of `serve_in_thread`, raised here."""
        if not self._ready.wait(timeout):
            raise RuntimeError("broker did not start")
        if self.start_error is not None:
            raise self.start_error
        assert self.endpoint
        return self.endpoint

    def close(self) -> None:
        if self.store is not None:
            if self.files is not None:
                self.files.write_final()
            self.store.close()
            self.store = None
        if self.router is not None:
            self.router.close()
            self.router = self.sock = None
        if self._own_ctx:
            self._own_ctx = False
            self.ctx.term()

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self._serve_keeping_start_error, name="farm-broker", daemon=True)
        t.start()
        return t

    def _serve_keeping_start_error(self) -> None:
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001 - wait_ready raises it in the caller's thread
            self.start_error = exc
            self._ready.set()
            return
        self.serve()

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

    def _receive(self, poller: zmq.Poller, next_maint: float) -> list[tuple[list[bytes], str | None]]:
        """Wait for input (100 ms at most, less when maintenance is due), then drain up to BATCH
        messages, each with the peer the gate authenticated."""
        wait_ms = max(0, min(100, int((next_maint - time.time()) * 1000)))
        events = dict(poller.poll(wait_ms))
        batch = []
        if events.get(self.sock):
            while len(batch) < BATCH:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                batch.append(([f.bytes for f in frames], self.router.peer(frames[-1])))
        return batch

    def _needing_store(self, batch: list, now: float) -> list[tuple[bytes, dict, str | None]]:
        """The checked messages that need a transaction (a known worker's HEARTBEAT does not)."""
        work = []
        for frames, peer in batch:
            parsed = self.inbox.parse(frames)
            if parsed is None:
                continue
            if parsed[1]["type"] == "HEARTBEAT":
                w = self.inbox.session(parsed[0], peer)
                if w is not None:
                    w.last_seen = now  # the common case needs no transaction
                    continue
            work.append((*parsed, peer))
        return work

    def _handle_in_transactions(self, work: list[tuple[bytes, dict, str | None]], now: float, maint: bool) -> None:
        """Group commit: `group_commit` messages per transaction; maintenance and leasing join the last."""
        step = max(1, self.group_commit)
        chunks = [work[i:i + step] for i in range(0, len(work), step)] or [[]]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            if chunk or (last and (maint or self.registry.maybe_queued)):
                self._commit(chunk, now, maintain=last and maint, dispatch=last)

    def _commit(self, chunk: list[tuple[bytes, dict, str | None]], now: float, maintain: bool, dispatch: bool) -> None:
        """One transaction; the replies go out only after it commits (an ACK only once the
        result is on disk). A failed one answers ERROR instead, and nothing else."""
        out: list[tuple[bytes, bytes]] = []
        try:
            with self.store.transaction():
                for identity, msg, peer in chunk:
                    self.inbox.handle(identity, msg, now, out, peer)
                if maintain:
                    self._maintain(now, out)
                if dispatch and self.registry.maybe_queued:
                    self.tasks.dispatch(now, out)
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: keep serving
            self._log_rollback(exc)
            self._soft_restart()
            error = P.encode("ERROR", error=f"the broker could not record this ({type(exc).__name__}: "
                                            f"{str(exc)[:200]}); send it again")
            out = [(identity, error) for identity, msg, _ in chunk if msg["type"] in ANSWERED_ON_FAILURE]
        for identity, frame in out:
            self._send(identity, frame)

    def _log_rollback(self, exc: Exception) -> None:
        """A full disk is named in one line, once until it changes (it fails every turn: no
        traceback each time); anything else gets its traceback."""
        env = environment.error_of(exc)
        if env is None:
            log.exception("transaction rolled back")
            return
        if env != self.storage_error:  # info: `farm broker` shows it, `farm render` says it in its summary
            log.info("transaction rolled back: %s", env)
        self.storage_error = env  # stays: `farm render` stops on it

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
        except Exception as exc:  # noqa: BLE001 - the store is still failing; the next turn tries again
            if environment.error_of(exc) is None:  # a full disk is logged once, by _log_rollback
                log.exception("recover after a rolled-back transaction failed")

    def _send(self, identity: bytes, frame: bytes) -> None:
        try:
            self.sock.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # a full or vanished peer: heartbeats will sort it out
            log.debug("send to %r failed: %s", identity, exc)
        w = self.registry.get(identity)
        if w is not None:
            w.last_sent = time.time()
