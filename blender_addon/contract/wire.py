"""The farm's wire protocol, as every peer speaks it: the broker and workers (farm.protocol, which
adds a schema per message type), the `farm` CLI, the captioner and the add-on (ui/farm_link.py).

Every message is one frame: a UTF-8 JSON object `{"v": VERSION, "type": "...", ...}`. Nothing on
the wire is ever unpickled. See docs/internals.md ("Farm wire protocol") for each message.
"""
from __future__ import annotations

import json
from typing import Any, Callable

VERSION = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # zmq MAXMSGSIZE on every farm socket
SUBMIT_CHUNK = 5000  # assets per SUBMIT: a longer list goes in several, the later ones with append_to

# Message types, by who sends them to the broker.
WORKER_TYPES = frozenset({"READY", "HEARTBEAT", "PROGRESS", "FILE_CHUNK", "RESULT", "DISCONNECT"})
CLIENT_TYPES = frozenset({"SUBMIT", "STATUS", "CANCEL", "RETRY"})  # `farm` CLI and the add-on
CAPTION_TYPES = frozenset({"CAPTION_LEASE", "CAPTION_HEARTBEAT", "CAPTION_DONE", "CAPTION_FAILED"})
INBOUND_TYPES = WORKER_TYPES | CLIENT_TYPES | CAPTION_TYPES
# ... and what the broker sends back.
TO_WORKER_TYPES = frozenset({"TASK", "ACK", "CANCEL_TASK", "RECONNECT"})
TO_CLIENT_TYPES = frozenset({"SUBMITTED", "STATUS_REPLY", "OK", "ERROR"})
TO_CAPTIONER_TYPES = frozenset({"CAPTION_TASKS"})
MESSAGE_TYPES = INBOUND_TYPES | TO_WORKER_TYPES | TO_CLIENT_TYPES | TO_CAPTIONER_TYPES


class ProtocolError(ValueError):
    """A message that does not follow the protocol (one-line reason)."""


def message(mtype: str, **fields: Any) -> dict:
    """A message as a dict: version and type first."""
    return {"v": VERSION, "type": mtype, **fields}


def to_frame(msg: dict) -> bytes:
    """A message's frame: compact UTF-8 JSON."""
    return json.dumps(msg, separators=(",", ":")).encode("utf-8")


def parse_frame(frame: bytes) -> Any:
    """The JSON value of one frame, checked for size only. Raises ProtocolError."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        return json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not UTF-8 JSON: {str(exc)[:80]}") from None


def submit_in_chunks(ask: Callable[[dict], dict], job: dict, assets: list[dict], chunk: int = SUBMIT_CHUNK) -> dict:
    """Submit one job: its assets in SUBMITs of `chunk` (frames stay far below the size cap, and the
    broker never stalls long on one), the later ones `append_to` the first's job. `ask(fields)`
    sends one SUBMIT and returns its SUBMITTED reply. Returns the replies summed."""
    reply = ask({"job": job, "assets": assets[:chunk]})
    total = dict(reply)
    for start in range(chunk, len(assets), chunk):
        more = ask({"job": job, "assets": assets[start:start + chunk], "append_to": reply["job_id"]})
        for key in ("objects", "queued", "skipped"):
            total[key] += more[key]
    return total
