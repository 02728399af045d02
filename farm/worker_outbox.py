"""A worker's outbox: task results waiting for the broker's ACK.

A result is sent again after every reconnect until the broker acknowledges it (the broker counts
only the current attempt's report, so a repeat is harmless). Without shared storage the result's
files go first, in FILE_CHUNK messages. The attempt's folder (its staging folder under OUT/.farm,
or its scratch folder) goes once the ACK arrives, whether the broker took the files or not; a link
in its place is not followed (farm/attempt_paths.py).
"""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Callable, Iterator

import zmq

from . import protocol as P
from .attempt_paths import remove_real_folder

log = logging.getLogger("farm.worker")


def success_delivery(key: tuple[int, int], result: dict | None, out_dir: Path, own_folder: tuple[str, str],
                     stream: bool) -> dict:
    """The RESULT of a finished attempt, listing the files in `out_dir` (the broker moves them into
    the object's folder); with `stream` (no shared storage) the files go along in FILE_CHUNKs.
    `own_folder`, the attempt's own folder as (root, path below it), is removed once the broker
    has acknowledged."""
    files = finished_files(out_dir)
    msg = {"task_id": key[0], "attempt_id": key[1], "ok": True, "result": result,
           "files": [{"name": name, "size": size} for name, size in files]}
    delivery: dict = {"key": key, "msg": msg, "own_folder": own_folder}
    if stream:
        delivery["stream"] = [(name, str(out_dir / name)) for name, _ in files]
    return delivery


def finished_files(out_dir: Path) -> list[tuple[str, int]]:
    """(name, size) of the attempt's files. The broker removes the folder of an attempt whose lease
    it gave up on, maybe while this lists it: then there is nothing to deliver (the broker ignores
    a late finisher anyway)."""
    files = []
    try:
        for entry in sorted(out_dir.iterdir()):
            if entry.is_file() and not entry.name.startswith("."):
                files.append((entry.name, entry.stat().st_size))
    except FileNotFoundError:
        return []
    return files


def failure_delivery(key: tuple[int, int], error: str | None, kind: str) -> dict:
    msg = {"task_id": key[0], "attempt_id": key[1], "ok": False, "error": error, "error_kind": kind}
    return {"key": key, "msg": msg}


def file_chunks(path: str) -> Iterator[tuple[int, bytes]]:
    """(offset, data) pieces of a file, FILE_CHUNK_BYTES each; an empty file is one empty piece."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            data = fh.read(P.FILE_CHUNK_BYTES)
            if not data and offset > 0:
                return
            yield offset, data
            offset += len(data)
            if not data:
                return


class Outbox:
    """Deliveries by (task_id, attempt_id). `send` drops a message when the queue is full;
    `send_blocking` raises zmq.Again instead (after the socket's send timeout)."""

    def __init__(self, send: Callable[..., None], send_blocking: Callable[..., None]):
        self.send = send
        self.send_blocking = send_blocking
        self.pending: dict[tuple[int, int], dict] = {}

    def keys(self) -> list[list[int]]:
        """The results not yet acknowledged, for READY."""
        return [list(k) for k in self.pending]

    def add(self, delivery: dict) -> None:
        self.pending[delivery["key"]] = delivery
        self.deliver(delivery)

    def deliver_all(self) -> None:
        for delivery in list(self.pending.values()):
            self.deliver(delivery)

    def ack(self, key: tuple[int, int]) -> None:
        delivery = self.pending.pop(key, None)
        if delivery and delivery.get("own_folder"):
            remove_real_folder(*delivery["own_folder"])

    def deliver(self, delivery: dict) -> None:
        """Send a result (streamed files first). Safe to repeat: the broker dedups by attempt.
        When the broker stops taking data, the rest waits in the outbox for the reconnect."""
        key = delivery["key"]
        try:
            for name, path in delivery.get("stream", []):
                for offset, data in file_chunks(path):
                    self.send_blocking("FILE_CHUNK", task_id=key[0], attempt_id=key[1], name=name, offset=offset,
                                       data=base64.b64encode(data).decode("ascii"))
            self.send("RESULT", **delivery["msg"])
        except zmq.Again:
            log.warning("broker not taking data; result %s waits for the reconnect", key)
