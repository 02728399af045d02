"""`captioner serve`: lease caption tasks from the broker's durable queue, caption, acknowledge.

Threads: the main thread owns the ZeroMQ DEALER socket (leases, heartbeats, acknowledgements);
an engine thread runs the model; a pool of decode threads feeds it. Messages are the JSON frames
of docs/internals.md ("Caption hand-off"), encoded and checked by farm.protocol; nothing from the
network is ever unpickled.

Order per object: captions.json is written atomically, then CAPTION_DONE is sent. A captioner
killed in between makes the broker re-lease the task when the lease expires; the new lease finds a
complete captions.json newer than the images and is acknowledged without captioning again. An
object whose images all failed gets CAPTION_FAILED with the reason (the broker retries it while
attempts are left); one with some failed images is done, its failures recorded in captions.json.

It leases with its model (protocol.caption_model_key), so a job that asks for another caption model
is left to a captioner that runs it; a task that still names another model is refused.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import zmq

from blender_addon.contract.peer_auth import PeerAuth
from farm import protocol

from .engine import CaptionEngine, CaptionTask, ObjectResult
from .runner import MAX_FAILURES_LISTED, captions_complete

HEARTBEAT_S = 1.0  # CAPTION_HEARTBEAT period while holding leases (the broker's lease: 6 s without one)
REPLY_TIMEOUT_S = 10.0  # no CAPTION_TASKS for this long: reconnect (Lazy Pirate)
EMPTY_BACKOFF_S = 1.0  # after an empty CAPTION_TASKS, ask again this much later


class DaemonError(RuntimeError):
    pass


def task_from_payload(payload: dict) -> CaptionTask:
    """A CAPTION_TASKS entry as a CaptionTask (KeyError/TypeError/ValueError for a malformed one)."""
    files = payload["files"]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError("files must be a list of file names")
    return CaptionTask(uid=str(payload["uid"]), category=str(payload.get("category") or ""),
                       out_root=Path(payload["out_root"]), out_rel=str(payload["out_rel"]), files=list(files),
                       obj_id=payload.get("obj_id"), task_id=int(payload["task_id"]),
                       attempt_id=int(payload["attempt_id"]),
                       model=protocol.caption_model_key(payload.get("caption_model")))


@dataclass
class _Leases:
    """Where the lease conversation with the broker stands (socket thread only)."""

    active: dict[int, CaptionTask] = field(default_factory=dict)  # attempt_id -> task being captioned
    leased_total: int = 0
    awaiting_since: float | None = None  # a CAPTION_LEASE sent, its CAPTION_TASKS not yet here
    next_lease_at: float = 0.0
    last_heartbeat: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)


class _EngineThread:
    """The model's thread: captions the tasks put in `inbox` until stopped; an error it dies of is
    raised again in the socket thread by `check()`."""

    def __init__(self, engine: CaptionEngine, inbox: "queue.Queue[CaptionTask]"):
        self.engine = engine
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(inbox,), name="captioner-engine", daemon=True)
        self.thread.start()

    def _main(self, inbox: "queue.Queue[CaptionTask]") -> None:
        try:
            self.engine.serve_queue(inbox, self.stop)
        except BaseException as exc:  # surfaced by the socket thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise DaemonError(f"captioning stopped: {self.error}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.engine.close()


class CaptionDaemon:
    def __init__(self, connect: str, make_engine: Callable[..., CaptionEngine], *, batch_size: int,
                 model: str, auth: PeerAuth | None = None, max_tasks: int | None = None, idle_exit_s: float | None = None,
                 heartbeat_s: float = HEARTBEAT_S, reply_timeout_s: float = REPLY_TIMEOUT_S,
                 log: Callable[[str], None] = lambda s: None):
        self.connect = connect
        self.model = model  # its caption_model_key: the broker leases it the jobs that ask for it (or none)
        self.make_engine = make_engine
        self.batch_size = batch_size
        self.auth = auth  # CURVE keys or the local token, read again for each new socket
        self.max_tasks = max_tasks
        self.idle_exit_s = idle_exit_s
        self.heartbeat_s = heartbeat_s
        self.reply_timeout_s = reply_timeout_s
        self.log = log
        self.stop = threading.Event()
        self.acked = 0
        self.failed = 0
        self.failures: list[str] = []  # "<where>: <reason>" of the first MAX_FAILURES_LISTED failed tasks
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket | None = None
        self.poller = zmq.Poller()
        self.leases = _Leases()
        self.done_q: "queue.Queue[ObjectResult]" = queue.Queue()  # finished objects, from the engine
        self.inbox: "queue.Queue[CaptionTask]" = queue.Queue()  # tasks for the engine

    # --- socket ----------------------------------------------------------------------------
    def _open(self) -> None:
        if self.sock is not None:
            self.poller.unregister(self.sock)
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        protocol.configure_socket(self.sock, self.auth.socket_options() if self.auth else None)
        self.sock.connect(self.connect)
        self.poller.register(self.sock, zmq.POLLIN)

    def _send(self, mtype: str, **fields) -> None:
        assert self.sock is not None
        self.sock.send(protocol.encode(mtype, **fields))

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> dict:
        engine_thread = _EngineThread(self.make_engine(on_object_done=self.done_q.put), self.inbox)
        self.leases = _Leases()
        try:
            self._open()
            while not self.stop.is_set():
                engine_thread.check()
                now = time.monotonic()
                self._ack_finished()
                self._lease_more(now)
                self._heartbeat(now)
                self._handle_reply()
                self._reconnect_if_silent()
                if self._done():
                    break
        finally:
            engine_thread.close()
            self._close()
        stats = engine_thread.engine.stats.as_dict()
        stats.update(acked=self.acked, reported_failed=self.failed, failures=self.failures)
        return stats

    def _ack_finished(self) -> None:
        """Report finished objects (captions.json is already on disk)."""
        while True:
            try:
                result = self.done_q.get_nowait()
            except queue.Empty:
                return
            self._report(result)
            self.leases.active.pop(result.task.attempt_id, None)

    def _lease_more(self, now: float) -> None:
        """Ask for more tasks when the engine's backlog runs low."""
        leases = self.leases
        in_flight = sum(len(t.files) for t in leases.active.values())
        wanted = self.max_tasks is None or leases.leased_total < self.max_tasks
        if not wanted or leases.awaiting_since is not None or now < leases.next_lease_at \
                or in_flight >= 2 * self.batch_size:
            return
        max_n = max(1, min(16, 2 * self.batch_size // max(1, self._views_hint(leases.active))))
        if self.max_tasks is not None:
            max_n = min(max_n, self.max_tasks - leases.leased_total)
        self._send("CAPTION_LEASE", max=max_n, model=self.model)
        leases.awaiting_since = now

    def _heartbeat(self, now: float) -> None:
        """Keep the leases in hand alive."""
        if self.leases.active and now - self.leases.last_heartbeat >= self.heartbeat_s:
            self._send("CAPTION_HEARTBEAT", attempt_ids=sorted(self.leases.active))
            self.leases.last_heartbeat = now

    def _handle_reply(self) -> None:
        """Wait up to 100 ms for one broker message and act on it."""
        if self.sock not in dict(self.poller.poll(100)):
            return
        try:
            msg = protocol.decode(self.sock.recv(zmq.NOBLOCK))
        except protocol.ProtocolError as exc:
            self.log(f"dropped a malformed message from the broker: {exc}")
            return
        except zmq.Again:
            return
        if msg["type"] == "CAPTION_TASKS":
            self.leases.awaiting_since = None
            if not msg["tasks"]:
                self.leases.next_lease_at = time.monotonic() + EMPTY_BACKOFF_S
            for payload in msg["tasks"]:
                self.leases.leased_total += 1
                self._take(payload)
        elif msg["type"] == "ERROR":
            self.log(f"broker: {msg['error']}")
            self.leases.awaiting_since = None
            self.leases.next_lease_at = time.monotonic() + EMPTY_BACKOFF_S

    def _take(self, payload: dict) -> None:
        """A leased task goes to the engine, or straight to the report when it is already done."""
        task = self._accept(payload)
        if task is None:
            return
        self.leases.active[task.attempt_id] = task
        if captions_complete(task.captions_path, task.files, images_dir=task.folder):
            # captioned by an earlier attempt whose CAPTION_DONE never arrived
            self.log(f"{task.out_rel}: captions.json already complete; acknowledging")
            self.done_q.put(ObjectResult(task, task.captions_path))
        else:
            self.inbox.put(task)

    def _reconnect_if_silent(self) -> None:
        """A broker that does not answer a lease: reconnect and ask again (Lazy Pirate). The leases
        survive in the broker's store; heartbeats carry attempt ids, not the connection."""
        since = self.leases.awaiting_since
        if since is not None and time.monotonic() - since > self.reply_timeout_s:
            self.log(f"no reply from {self.connect} in {self.reply_timeout_s:.0f} s; reconnecting")
            self._open()
            self.leases.awaiting_since = None

    def _done(self) -> bool:
        """--max-tasks reached, or idle for --idle-exit (a broker that never answers counts as idle)."""
        leases = self.leases
        if leases.active:
            leases.idle_since = time.monotonic()
            return False
        if self.max_tasks is not None and leases.leased_total >= self.max_tasks:
            return True
        return self.idle_exit_s is not None and time.monotonic() - leases.idle_since > self.idle_exit_s

    def _close(self) -> None:
        """Report the objects finished by the last batch, then close the socket."""
        if self.sock is None:
            return
        while True:
            try:
                self._report(self.done_q.get_nowait())
            except (queue.Empty, zmq.ZMQError):
                break
        self.poller.unregister(self.sock)
        self.sock.close(linger=500)
        self.sock = None

    @staticmethod
    def _views_hint(active: dict[int, CaptionTask]) -> int:
        if not active:
            return 8
        return max(1, sum(len(t.files) for t in active.values()) // len(active))

    def _accept(self, payload: dict) -> CaptionTask | None:
        """Check a leased task; answer CAPTION_FAILED at once for one that cannot be done here."""
        try:
            task = task_from_payload(payload)
        except (KeyError, TypeError, ValueError) as exc:
            tid, aid = payload.get("task_id"), payload.get("attempt_id")
            self.log(f"malformed caption task {payload!r:.120}: {exc}")
            if isinstance(tid, int) and isinstance(aid, int):
                self._fail(tid, aid, f"task {tid}", f"malformed caption task: {exc}")
            return None
        if not task.out_root.is_dir():
            self._fail(task.task_id, task.attempt_id, task.out_rel,
                       f"output folder {task.out_root} is not reachable from this captioner")
            return None
        try:
            task.folder
        except ValueError as exc:
            self._fail(task.task_id, task.attempt_id, task.out_rel, str(exc))
            return None
        if task.model and task.model != self.model:
            # a broker that does not match leases to models; never caption with another model
            self._fail(task.task_id, task.attempt_id, task.out_rel,
                       f"the job asks for caption model {task.model!r}; this captioner runs {self.model!r}")
            return None
        return task

    def _fail(self, task_id: int, attempt_id: int, where: str, error: str) -> None:
        self._send("CAPTION_FAILED", task_id=task_id, attempt_id=attempt_id, error=error)
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append(f"{where}: {error}")
        self.log(f"{where}: failed: {error}")

    def _report(self, result: ObjectResult) -> None:
        task = result.task
        if result.path is not None and result.error is None:
            self._send("CAPTION_DONE", task_id=task.task_id, attempt_id=task.attempt_id)
            self.acked += 1
            self.log(f"{task.out_rel}: {result.captioned} captioned, {result.failed} failed, "
                     f"{result.forced} forced prefix")
        else:
            self._fail(task.task_id, task.attempt_id, task.out_rel, result.error or "captioning failed")


def install_signal_handlers(daemon: CaptionDaemon) -> None:
    def handler(signum, frame):  # noqa: ARG001
        daemon.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)

