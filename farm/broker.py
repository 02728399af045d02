"""The farm broker: one ZeroMQ ROUTER socket in front of the durable store.

zguide patterns: Paranoid Pirate (heartbeats both ways, workers re-register after silence) and
Titanic (all state in SQLite; a restarted broker carries on from the same file).

One loop, single-threaded:
  1. poll, then drain up to BATCH waiting messages;
  2. handle them all inside ONE store transaction (group commit), and lease queued tasks to idle
     workers in the same transaction;
  3. commit, and only then send the replies, so nothing a peer was told can be lost;
  4. now and then: heartbeats out, dead workers' leases back to the queue, expired leases,
     objects.jsonl / metadata.json exports.

A malformed message (not JSON, wrong types, unknown version or type, too big) is logged and
dropped. The broker never dies on input.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from . import protocol as P
from .layout import FARM_DIR, LayoutError, check_identifier, confined_path
from .store import CAPTION_LEASE_S, DEFAULT_BLOCKLIST_THRESHOLD, Store, StoreError

log = logging.getLogger("farm.broker")

BATCH = 4096
MAX_STREAM_BYTES = 4 * 1024**3  # per streamed file
MAINTENANCE_S = 0.25
EXPORT_EVERY_S = 1.0


@dataclass
class Worker:
    identity: bytes
    name: str
    host: str = ""
    pid: int = 0
    device: str = "cpu"
    shared_storage: bool = True
    last_seen: float = 0.0
    last_sent: float = 0.0
    task: tuple[int, int] | None = None  # (task_id, attempt_id)
    job_id: str | None = None
    out_root: str | None = None
    out_rel: str | None = None
    progress: tuple[int, int] = (0, 0)
    started: float = 0.0
    streamed: set = field(default_factory=set)


class Broker:
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
        self.store: Store | None = None
        self.sock: zmq.Socket | None = None
        self.auth = None
        self.workers: dict[bytes, Worker] = {}
        self.by_name: dict[str, Worker] = {}
        self.maybe_queued = True
        self.metadata_dirty: set[str] = set()
        self._spec_cache: dict[str, bytes] = {}
        self.dropped = 0
        self._drop_log_budget = 50
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.stats = {"messages": 0, "batches": 0, "leased": 0, "completed": 0, "failed": 0}

    # --- life cycle ---------------------------------------------------------------------------
    def open(self) -> str:
        """Open the store and bind. Returns the bound endpoint (resolves tcp://...:* ports)."""
        self.store = Store(self.state_path, fsync=self.fsync)
        # leases held by workers this broker has not met get one liveness period to be adopted
        self.store.recover(grace_s=self.heartbeat_s * self.liveness * 2)
        sock = self.ctx.socket(zmq.ROUTER)
        curve = None
        if self.curve_keys:
            from .keys import server_options, start_authenticator

            curve = server_options(self.curve_keys)
            self.auth = start_authenticator(self.ctx, self.curve_keys)
        P.configure_socket(sock, curve)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        sock.bind(self.bind_addr)
        self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.sock = sock
        log.info("broker listening on %s, state %s", self.endpoint, self.state_path)
        self._ready.set()
        return self.endpoint

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout: float = 10.0) -> str:
        if not self._ready.wait(timeout):
            raise RuntimeError("broker did not start")
        assert self.endpoint
        return self.endpoint

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.flush_exports()
                self._write_metadata()
            except OSError as exc:  # pragma: no cover
                log.warning("final export failed: %s", exc)
            self.store.close()
            self.store = None
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

    def serve(self) -> None:
        """Run until stop(). Opens the broker if it is not open yet."""
        if self.sock is None:
            self.open()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        next_maint = 0.0
        last_export = 0.0
        try:
            while not self._stop.is_set():
                wait_ms = max(0, min(100, int((next_maint - time.time()) * 1000)))
                events = dict(poller.poll(wait_ms))
                batch = []
                if events.get(self.sock):
                    while len(batch) < BATCH:
                        try:
                            batch.append(self.sock.recv_multipart(zmq.NOBLOCK))
                        except zmq.Again:
                            break
                now = time.time()
                work = []
                for frames in batch:
                    parsed = self._parse(frames)
                    if parsed is None:
                        continue
                    w = self.workers.get(parsed[0])
                    if parsed[1]["type"] == "HEARTBEAT" and w is not None:
                        w.last_seen = now  # the common case needs no transaction
                        continue
                    work.append(parsed)
                maint = now >= next_maint
                if maint:
                    next_maint = now + MAINTENANCE_S
                # group commit: many messages per transaction; replies only after the commit
                step = max(1, self.group_commit)
                chunks = [work[i:i + step] for i in range(0, len(work), step)] or [[]]
                for n, chunk in enumerate(chunks):
                    last = n == len(chunks) - 1
                    if not (chunk or (last and (maint or self.maybe_queued))):
                        continue
                    out: list[tuple[bytes, bytes]] = []
                    try:
                        with self.store.transaction():
                            for identity, msg in chunk:
                                self._handle_one(identity, msg, now, out)
                            if last and maint:
                                self._maintain(now, out)
                            if last and self.maybe_queued:
                                self._dispatch(now, out)
                    except Exception:  # noqa: BLE001 - e.g. a full disk: keep serving
                        log.exception("transaction rolled back")
                        self._soft_restart()
                        continue
                    for identity, frame in out:
                        self._send(identity, frame)
                if batch:
                    self.stats["batches"] += 1
                    self.stats["messages"] += len(batch)
                # objects.jsonl after each finished object when the farm is calm; under load at
                # most once a second (and always when a job finishes)
                if (self.store.dirty_roots or self.metadata_dirty) and (
                    self.store.finished_jobs or not batch or now - last_export >= EXPORT_EVERY_S
                ):
                    self._export()
                    last_export = now
                self.store.finished_jobs.clear()
        finally:
            self.close()

    def _soft_restart(self) -> None:
        """After a rolled-back transaction the in-memory view may be ahead of the store: forget
        every worker. Their next message gets RECONNECT, and their READY (with the task they run
        and the results they hold) rebuilds the view from the store, as after a broker restart."""
        self.workers.clear()
        self.by_name.clear()
        self.store.dirty_roots.clear()
        self.store.finished_jobs.clear()
        self.maybe_queued = True
        try:
            self.store.recover(grace_s=self.heartbeat_s * self.liveness * 2)
        except Exception:  # noqa: BLE001 - the store is still failing; the next turn tries again
            log.exception("recover after a rolled-back transaction failed")

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve, name="farm-broker", daemon=True)
        t.start()
        return t

    # --- sending ------------------------------------------------------------------------------
    def _send(self, identity: bytes, frame: bytes) -> None:
        try:
            self.sock.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # a full or vanished peer: heartbeats will sort it out
            log.debug("send to %r failed: %s", identity, exc)
        w = self.workers.get(identity)
        if w is not None:
            w.last_sent = time.time()

    def _export(self) -> None:
        try:
            self.store.flush_exports()
        except OSError as exc:
            log.warning("objects.jsonl export failed: %s", exc)
        self._write_metadata()

    def _write_metadata(self) -> None:
        if not self.metadata_dirty:
            return
        from .metadata import write_metadata

        roots, self.metadata_dirty = self.metadata_dirty, set()
        for root in roots:
            try:
                write_metadata(root)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("metadata.json for %s failed: %s", root, exc)

    # --- input --------------------------------------------------------------------------------
    def _drop(self, identity: bytes | None, reason: str) -> None:
        self.dropped += 1
        if self._drop_log_budget > 0:
            self._drop_log_budget -= 1
            log.warning("dropped a message from %r: %s", identity, reason)
        elif self._drop_log_budget == 0:
            self._drop_log_budget -= 1
            log.warning("dropping more malformed messages without logging each one")

    def _parse(self, frames: list[bytes]) -> tuple[bytes, dict] | None:
        """(identity, checked message), or None for a malformed one (logged and dropped)."""
        if len(frames) != 2:
            self._drop(frames[0] if frames else None, f"{len(frames)} frames, expected [identity, json]")
            return None
        identity, payload = frames
        try:
            return identity, P.decode(payload, P.INBOUND_TYPES)
        except P.ProtocolError as exc:
            self._drop(identity, str(exc))
            return None

    def _handle_one(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        """One message inside the open transaction; its own savepoint keeps a failure contained."""
        self.store.db.execute("SAVEPOINT msg")
        try:
            self._handle(identity, msg, now, out)
        except StoreError as exc:
            self.store.db.execute("ROLLBACK TO msg")
            out.append((identity, P.encode("ERROR", error=str(exc))))
        except (LayoutError, ValueError, KeyError, TypeError) as exc:
            self.store.db.execute("ROLLBACK TO msg")
            self._drop(identity, f"{msg.get('type')}: {type(exc).__name__}: {exc}")
            if msg["type"] in P.CLIENT_TYPES:
                out.append((identity, P.encode("ERROR", error=f"{type(exc).__name__}: {exc}")))
        except Exception:  # a bug must not take the broker down
            self.store.db.execute("ROLLBACK TO msg")
            log.exception("error handling %s from %r", msg.get("type"), identity)
            if msg["type"] in P.CLIENT_TYPES:
                out.append((identity, P.encode("ERROR", error="internal broker error; see the broker log")))
        finally:
            self.store.db.execute("RELEASE msg")

    def _handle(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        mtype = msg["type"]
        if mtype in P.WORKER_TYPES:
            if mtype == "READY":
                self._on_ready(identity, msg, now, out)
                return
            w = self.workers.get(identity)
            if w is None:
                # Paranoid Pirate: a worker we do not know (we restarted, or it was declared dead)
                # (a RESULT is not acknowledged: the worker resends it after READY)
                out.append((identity, P.encode("RECONNECT")))
                return
            w.last_seen = now
            if mtype == "HEARTBEAT":
                return
            if mtype == "PROGRESS":
                if w.task == (msg["task_id"], msg["attempt_id"]):
                    w.progress = (msg["done"], msg["total"])
            elif mtype == "FILE_CHUNK":
                self._on_chunk(w, msg)
            elif mtype == "RESULT":
                self._on_result(w, identity, msg, now, out)
            elif mtype == "DISCONNECT":
                if w.task is not None:  # a clean shutdown gives the task back without spending an attempt
                    self.store.release(*w.task, reason=f"worker {w.name} shut down", now=now)
                    self._discard_incoming(w)
                    w.task = None
                self._forget(w, now, "worker disconnected")
            return
        if mtype in P.CLIENT_TYPES:
            self._on_client(identity, msg, out)
            return
        self._on_caption(identity, msg, now, out)

    # --- workers ------------------------------------------------------------------------------
    def _on_ready(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        name = msg["worker"]
        check_identifier(name, "worker name")
        old = self.by_name.get(name)
        if old is not None and old.identity != identity:
            self.workers.pop(old.identity, None)
        w = Worker(identity=identity, name=name, host=msg["host"], pid=msg["pid"], device=msg["device"],
                   shared_storage=msg["shared_storage"], last_seen=now, last_sent=now)
        self.workers[identity] = w
        self.by_name[name] = w
        self.store.upsert_worker(name, msg["host"], msg["pid"], msg["device"], now)
        running = msg.get("running") or None
        keep = None
        if running and isinstance(running.get("task_id"), int) and isinstance(running.get("attempt_id"), int):
            task = self.store.adopt(running["task_id"], running["attempt_id"], name, now)
            if task is not None:
                keep = (task["task_id"], task["attempt_id"])
                self._assign(w, task, now)
                log.info("worker %s re-adopted task %s attempt %s", name, *keep)
            else:
                out.append((identity, P.encode("CANCEL_TASK", task_id=running["task_id"],
                                               attempt_id=running["attempt_id"])))
        holding = {keep} | {tuple(r) for r in msg.get("results") or [] if len(r) == 2}
        # anything else leased to this worker name is lost: the worker says it does not hold it
        for row in self.store.db.execute(
            "SELECT task_id, attempt_id FROM tasks WHERE worker = ? AND state = 'leased' AND queue = 'render'",
            (name,),
        ).fetchall():
            if (row["task_id"], row["attempt_id"]) not in holding:
                self.store.fail(row["task_id"], row["attempt_id"], f"worker {name} restarted during the task",
                                kind="lost", now=now)
                self.maybe_queued = True
        self.maybe_queued = True
        log.info("worker %s ready (%s, %s, pid %s)", name, msg["host"], msg["device"], msg["pid"])

    def _assign(self, w: Worker, task: dict, now: float) -> None:
        job = self.store.job(task["job_id"])
        obj = task.get("obj") or self.store.object_row(task["object_id"])
        w.task = (task["task_id"], task["attempt_id"])
        w.job_id = task["job_id"]
        w.out_root = job["out_root"]
        w.out_rel = obj["out_rel"]
        w.progress = (0, int(obj["views"] or 0))
        w.started = now
        w.streamed = set()

    def _release(self, w: Worker) -> None:
        w.task = None
        w.job_id = w.out_root = w.out_rel = None
        w.progress = (0, 0)
        w.streamed = set()
        self.maybe_queued = True

    def _forget(self, w: Worker, now: float, reason: str) -> None:
        self.workers.pop(w.identity, None)
        if self.by_name.get(w.name) is w:
            self.by_name.pop(w.name, None)
        if w.task is not None:
            self.store.fail(*w.task, error=reason, kind="lost", now=now)
            self._discard_incoming(w)
        self.maybe_queued = True
        log.info("worker %s gone: %s", w.name, reason)

    def _dispatch(self, now: float, out: list) -> None:
        idle = [w for w in self.workers.values() if w.task is None]
        if not idle:
            return
        live = set(self.by_name) if self.store.failed_by else None
        leases = self.store.lease("render", [w.name for w in idle], now, live=live)
        if len(leases) < len(idle):
            self.maybe_queued = False
        for name, task in leases:
            w = self.by_name[name]
            self._assign(w, task, now)
            msg = self.store.task_message(task)
            spec = msg.pop("spec")
            out.append((w.identity, P.encode_with("TASK", {"spec": self._spec_json(task["job_id"], spec)}, **msg)))
            self.stats["leased"] += 1

    def _lease_row(self, key: tuple[int, int], worker: str):
        """The task row when `key` is a live render lease held by `worker`, else None."""
        row = self.store.current(*key)
        if row is None or row["queue"] != "render" or row["worker"] != worker:
            return None
        return row

    def _lease_info(self, key: tuple[int, int], worker: str) -> tuple[str, str] | None:
        """(out_root, out_rel) when `key` is a live render lease held by `worker`, else None."""
        row = self._lease_row(key, worker)
        if row is None:
            return None
        return self.store.job(row["job_id"])["out_root"], self.store.object_row(row["object_id"])["out_rel"]

    def _spec_json(self, job_id: str, spec: dict | None) -> bytes:
        """A job's spec as JSON text, encoded once per job (it goes out in every TASK)."""
        text = self._spec_cache.get(job_id)
        if text is None:
            if spec is not None and not isinstance(spec, dict):
                raise P.ProtocolError("spec must be an object")
            text = json.dumps(spec, separators=(",", ":")).encode("utf-8")
            if len(self._spec_cache) > 1000:
                self._spec_cache.clear()
            self._spec_cache[job_id] = text
        return text

    @staticmethod
    def _incoming_dir(out_root: str, attempt_id: int) -> Path:
        return confined_path(out_root, f"{FARM_DIR}/incoming/{attempt_id}")

    def _discard_incoming(self, w: Worker) -> None:
        if w.out_root and w.task and w.streamed:
            d = self._incoming_dir(w.out_root, w.task[1])
            for name in list(w.streamed):
                try:
                    os.unlink(d / f"{name}.part")
                except OSError:
                    pass
            try:
                d.rmdir()
            except OSError:
                pass

    def _on_chunk(self, w: Worker, msg: dict) -> None:
        key = (msg["task_id"], msg["attempt_id"])
        info = None if w.shared_storage else self._lease_info(key, w.name)
        if info is None:
            self._drop(w.identity, "FILE_CHUNK for a task this worker does not hold")
            return
        name = check_identifier(msg["name"], "file name")
        data = base64.b64decode(msg["data"], validate=True)
        offset = msg["offset"]
        if offset < 0 or offset + len(data) > MAX_STREAM_BYTES:
            raise ValueError(f"chunk offset {offset} is out of range")
        d = self._incoming_dir(info[0], key[1])
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{name}.part", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        if w.task == key:
            w.streamed.add(name)

    def _install_streamed(self, out_root: str, out_rel: str, attempt_id: int, files: list[dict]) -> None:
        """Move streamed files into OUT/<out_rel>/ (atomic renames, the completion marker last)."""
        d = self._incoming_dir(out_root, attempt_id)
        root = Path(out_root).resolve()
        plan = []
        for f in files:
            name = check_identifier(str(f.get("name")), "file name")
            size = f.get("size")
            part = d / f"{name}.part"
            final = confined_path(root, f"{out_rel}/{name}")
            if final.parent == root or final.relative_to(root).parts[0] == FARM_DIR:
                raise LayoutError(f"streamed file {name!r} would land outside an object folder")
            if part.exists():
                if part.stat().st_size != size:
                    raise ValueError(f"streamed file {name} is {part.stat().st_size} bytes, expected {size}")
            elif not (final.exists() and final.stat().st_size == size):  # installed before a broker crash
                raise ValueError(f"streamed file {name} never arrived")
            plan.append((name in ("transforms.json", "frames.json"), part, final))
        for _, part, final in sorted(plan, key=lambda p: p[0]):
            if part.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, final)
        try:
            d.rmdir()
        except OSError:
            pass

    def _on_result(self, w: Worker, identity: bytes, msg: dict, now: float, out: list) -> None:
        key = (msg["task_id"], msg["attempt_id"])
        out.append((identity, P.encode("ACK", task_id=key[0], attempt_id=key[1])))
        row = self._lease_row(key, w.name)
        if row is None:
            # a stale report: an old attempt, or a lease that already went back to the queue
            log.info("ignored a stale result for task %s attempt %s from %s", key[0], key[1], w.name)
            if w.task == key:
                self._release(w)
            return
        ok = msg["ok"]
        error = msg.get("error") or ""
        kind = msg.get("error_kind") or "asset"
        if ok and msg.get("files") is not None and not w.shared_storage:
            try:
                out_root = self.store.job(row["job_id"])["out_root"]
                out_rel = self.store.object_row(row["object_id"])["out_rel"]
                self._install_streamed(out_root, out_rel, key[1], msg["files"])
            except (OSError, ValueError) as exc:
                ok, error, kind = False, f"streamed files could not be installed: {exc}", "worker"
                self._discard_incoming(w)
        if ok:
            if self.store.complete(*key, result=msg.get("result") or {}, now=now, row=row):
                self.stats["completed"] += 1
        else:
            if kind not in ("asset", "worker", "timeout"):
                kind = "worker"
            self.store.fail(*key, error=error, kind=kind, now=now, blocklist_threshold=self.blocklist_threshold)
            self.stats["failed"] += 1
        if w.task == key:
            self._release(w)

    # --- clients ------------------------------------------------------------------------------
    def _on_client(self, identity: bytes, msg: dict, out: list) -> None:
        mtype = msg["type"]
        if mtype == "SUBMIT":
            job, assets = check_submit(msg["job"], msg["assets"])
            reply = self.store.submit(job, assets, append_to=msg.get("append_to"))
            self.maybe_queued = True
            out.append((identity, P.encode("SUBMITTED", **reply)))
        elif mtype == "STATUS":
            jobs = self.store.status(msg.get("job_id"))
            inflight: dict[str, int] = {}
            for w in self.workers.values():
                if w.job_id:
                    inflight[w.job_id] = inflight.get(w.job_id, 0) + w.progress[0]
            for j in jobs:
                j["views_in_flight"] = inflight.get(j["job_id"], 0)
            workers = [
                {"worker": w.name, "host": w.host, "pid": w.pid, "device": w.device, "job_id": w.job_id,
                 "task_id": w.task[0] if w.task else None, "progress": list(w.progress),
                 "blocked_jobs": sorted(self.store.blocked.get(w.name, ()))}
                for w in self.workers.values()
            ]
            out.append((identity, P.encode("STATUS_REPLY", jobs=jobs, workers=workers)))
        elif mtype == "CANCEL":
            leased = self.store.cancel(msg["job_id"])
            for task_id, attempt_id, name in leased:
                w = self.by_name.get(name or "")
                if w is not None and w.task == (task_id, attempt_id):
                    out.append((w.identity, P.encode("CANCEL_TASK", task_id=task_id, attempt_id=attempt_id)))
                    self._discard_incoming(w)
                    self._release(w)
            out.append((identity, P.encode("OK", detail=f"canceled; {len(leased)} running tasks called back")))
        elif mtype == "RETRY":
            n = self.store.retry(msg["job_id"])
            self.maybe_queued = True
            out.append((identity, P.encode("OK", detail=f"{n} tasks queued again")))

    # --- captioner ----------------------------------------------------------------------------
    def _on_caption(self, identity: bytes, msg: dict, now: float, out: list) -> None:
        mtype = msg["type"]
        label = "captioner-" + identity.hex()[:16]
        if mtype == "CAPTION_LEASE":
            n = max(0, min(int(msg["max"]), 1024))
            leases = self.store.lease("caption", [label] * n, now, lease_s=CAPTION_LEASE_S)
            tasks = [self.store.caption_payload(t) for _, t in leases]
            out.append((identity, P.encode("CAPTION_TASKS", tasks=tasks)))
        elif mtype == "CAPTION_HEARTBEAT":
            self.store.extend(msg["attempt_ids"][:4096], CAPTION_LEASE_S, now)
        elif mtype == "CAPTION_DONE":
            row = self.store.current(msg["task_id"], msg["attempt_id"])
            if row is not None and row["queue"] == "caption" and self.store.complete(
                    msg["task_id"], msg["attempt_id"], now=now):
                self.metadata_dirty.add(self.store.job(row["job_id"])["out_root"])
        elif mtype == "CAPTION_FAILED":
            row = self.store.current(msg["task_id"], msg["attempt_id"])
            if row is not None and row["queue"] == "caption":
                self.store.fail(msg["task_id"], msg["attempt_id"], error=msg["error"], kind="asset", now=now)

    # --- housekeeping -------------------------------------------------------------------------
    def _maintain(self, now: float, out: list) -> None:
        dead_after = self.heartbeat_s * self.liveness
        for w in list(self.workers.values()):
            if now - w.last_seen > dead_after:
                self._forget(w, now, f"worker {w.name} stopped answering (no heartbeat for {now - w.last_seen:.0f}s)")
            elif now - w.last_sent >= self.heartbeat_s:
                out.append((w.identity, P.encode("HEARTBEAT")))
                w.last_sent = now
        for row in self.store.expired(now):
            key = (row["task_id"], row["attempt_id"])
            w = self.by_name.get(row["worker"] or "")
            if row["queue"] == "render" and w is not None and w.task == key:
                out.append((w.identity, P.encode("CANCEL_TASK", task_id=key[0], attempt_id=key[1])))
                self.store.fail(*key, error=f"lease expired: worker {w.name} ran past the task timeout",
                                kind="worker", now=now, blocklist_threshold=self.blocklist_threshold)
                self._discard_incoming(w)
                self._release(w)
            else:
                reason = "caption lease expired" if row["queue"] == "caption" else \
                    f"lease expired: worker {row['worker']} did not come back"
                self.store.fail(*key, error=reason, kind="lost", now=now)
            self.maybe_queued = True
        if self.store.blocked and self.workers:
            if self.store.fail_unservable([w.name for w in self.workers.values()], now):
                pass


# --- submit checking -----------------------------------------------------------------------------
def check_submit(job: dict, assets: list[dict]) -> tuple[dict, list[dict]]:
    """Validate a SUBMIT payload from the network: types, confinement, the spec."""
    out_root = job.get("out_root")
    if not isinstance(out_root, str) or not os.path.isabs(out_root):
        raise StoreError("job.out_root: expected an absolute path")
    for key, tp in (("name", str), ("priority", int), ("max_attempts", int), ("timeout_s", (int, float)),
                    ("caption", bool), ("caption_model", str), ("views", int), ("options", dict),
                    ("spec", dict), ("spec_hash", str)):
        if job.get(key) is not None and (not isinstance(job[key], tp) or isinstance(job[key], bool) != (tp is bool)):
            raise StoreError(f"job.{key}: wrong type {type(job[key]).__name__}")
    if job.get("max_attempts") is not None and not 1 <= job["max_attempts"] <= 100:
        raise StoreError("job.max_attempts: must be 1..100")
    if job.get("timeout_s") is not None and not 0 < job["timeout_s"] <= 7 * 86400:
        raise StoreError("job.timeout_s: must be > 0 and at most a week")
    if job.get("spec") is not None:
        from blender_addon.rig.spec import SpecError, spec_from_dict

        try:
            spec = spec_from_dict(job["spec"])
        except SpecError as exc:
            raise StoreError(f"spec: {exc}") from None
        job = {**job, "spec": spec.to_dict(), "views": spec.view_count, "spec_hash": spec.spec_hash()}
        if job.get("timeout_s") is None:
            job["timeout_s"] = spec.render.timeout_s
    seen = set()
    clean = []
    for i, a in enumerate(assets):
        for key in ("uid", "path", "out_rel"):
            if not isinstance(a.get(key), str) or not a[key]:
                raise StoreError(f"assets[{i}].{key}: expected a string")
        for key in ("category", "source"):
            if a.get(key) is not None and not isinstance(a[key], str):
                raise StoreError(f"assets[{i}].{key}: expected a string")
        for part in a["out_rel"].split("/"):
            try:
                check_identifier(part, f"assets[{i}].out_rel part")
            except LayoutError as exc:
                raise StoreError(str(exc)) from None
        # every part is a plain name (checked above), so OUT/out_rel stays under OUT; workers and the
        # broker resolve it again with confined_path before writing
        if a["out_rel"].split("/")[0] == FARM_DIR:
            raise StoreError(f"assets[{i}].out_rel {a['out_rel']!r} is not an object folder")
        if a["out_rel"] in seen:
            raise StoreError(f"assets[{i}]: {a['out_rel']!r} appears twice")
        seen.add(a["out_rel"])
        clean.append({k: a.get(k) for k in ("uid", "path", "category", "source", "out_rel")})
    return job, clean
