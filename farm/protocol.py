"""The farm's wire protocol: versioned JSON messages, one frame each, checked against a schema.

Every message is one UTF-8 JSON object `{"v": 1, "type": "...", ...}`. A DEALER sends `[json]`
and the ROUTER sees `[identity, json]`. Nothing on the wire is ever unpickled: `decode` parses
JSON and checks every field against `SCHEMAS` with a small explicit validator, and raises
`ProtocolError` (one line) for anything else. The version, size cap, message type names and
framing that every peer shares (the add-on included) are blender_addon/contract/wire.py.

See docs/internals.md ("Farm wire protocol") for what each message means.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from blender_addon.contract import wire
from blender_addon.contract.wire import MAX_MESSAGE_BYTES, VERSION, ProtocolError
# who may send what, re-exported for the farm's modules
from blender_addon.contract.wire import CAPTION_TYPES, CLIENT_TYPES, INBOUND_TYPES, WORKER_TYPES  # noqa: F401

FILE_CHUNK_BYTES = 512 * 1024  # raw bytes per FILE_CHUNK (base64 on the wire)

HEARTBEAT_S = 1.0  # both directions


def caption_model_key(model: str | None) -> str | None:
    """How a job's caption model and a captioner's model are compared (CAPTION_LEASE's `model`):
    a local folder by its absolute real path, a hub id as written; None or "" for none."""
    if not model:
        return None
    path = os.path.expanduser(model)
    return os.path.realpath(path) if os.path.isdir(path) else model
LIVENESS = 4  # a peer silent for LIVENESS heartbeats is dead


# --- schema -----------------------------------------------------------------------------------
# A field spec is (type, required). Types: "str", "int", "num", "bool", "dict", "list",
# "list[int]", "list[str]", "list[dict]", and "?T" for "T or null".
_OPT = False
_REQ = True

SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {
    # worker -> broker
    "READY": {
        "worker": ("str", _REQ),
        "host": ("str", _REQ),
        "pid": ("int", _REQ),
        "device": ("str", _REQ),
        "shared_storage": ("bool", _REQ),
        "kinds": ("list[str]", _OPT),
        "running": ("?dict", _OPT),  # {"task_id", "attempt_id"} when it reconnects mid-task
        "results": ("list[list[int]]", _OPT),  # [[task_id, attempt_id]] of results not yet ACKed
        "slurm": ("?dict", _OPT),  # {"job_id", "task_id", "node"} of a worker in a Slurm job
    },
    "HEARTBEAT": {},
    "PROGRESS": {"task_id": ("int", _REQ), "attempt_id": ("int", _REQ), "done": ("int", _REQ), "total": ("int", _REQ)},
    "FILE_CHUNK": {
        "task_id": ("int", _REQ),
        "attempt_id": ("int", _REQ),
        "name": ("str", _REQ),
        "offset": ("int", _REQ),
        "data": ("str", _REQ),  # base64
    },
    "RESULT": {
        "task_id": ("int", _REQ),
        "attempt_id": ("int", _REQ),
        "ok": ("bool", _REQ),
        "error": ("?str", _OPT),
        "error_kind": ("?str", _OPT),  # "asset" (its fault), "timeout" (hung), "worker" (crash, env)
        "result": ("?dict", _OPT),
        "files": ("?list[dict]", _OPT),  # streamed files: [{"name", "size"}] (no shared storage)
    },
    "DISCONNECT": {},
    # broker -> worker
    "TASK": {
        "task_id": ("int", _REQ),
        "attempt_id": ("int", _REQ),
        "job_id": ("str", _REQ),
        "kind": ("str", _REQ),
        "asset": ("dict", _REQ),
        "spec": ("?dict", _OPT),
        "options": ("?dict", _OPT),
        "out_root": ("str", _REQ),
        "out_rel": ("str", _REQ),
        "obj_id": ("int", _REQ),
        "timeout_s": ("num", _REQ),
        # a task that keeps the views on disk: "add_views" (render views first_view.. only) or
        # "rerender" (a whole new set); both are swapped into out_rel when complete (farm/staged.py)
        "mode": ("?str", _OPT),
        "first_view": ("?int", _OPT),
    },
    "ACK": {"task_id": ("int", _REQ), "attempt_id": ("int", _REQ)},
    "CANCEL_TASK": {"task_id": ("int", _REQ), "attempt_id": ("int", _REQ)},
    "RECONNECT": {},  # "I do not know you: send READY again"
    # client -> broker
    "SUBMIT": {"job": ("dict", _REQ), "assets": ("list[dict]", _REQ), "append_to": ("?str", _OPT)},
    "STATUS": {"job_id": ("?str", _OPT)},
    "CANCEL": {"job_id": ("str", _REQ)},
    "RETRY": {"job_id": ("str", _REQ)},
    # broker -> client
    "SUBMITTED": {"job_id": ("str", _REQ), "objects": ("int", _REQ), "queued": ("int", _REQ), "skipped": ("int", _REQ)},
    "STATUS_REPLY": {"jobs": ("list[dict]", _REQ), "workers": ("list[dict]", _OPT)},
    "OK": {"detail": ("?str", _OPT)},
    "ERROR": {"error": ("str", _REQ)},
    # captioner <-> broker (docs/internals.md "Caption hand-off")
    "CAPTION_LEASE": {"max": ("int", _REQ), "model": ("?str", _OPT)},  # model: caption_model_key
    "CAPTION_TASKS": {"tasks": ("list[dict]", _REQ)},
    "CAPTION_HEARTBEAT": {"attempt_ids": ("list[int]", _REQ)},
    "CAPTION_DONE": {"task_id": ("int", _REQ), "attempt_id": ("int", _REQ)},
    "CAPTION_FAILED": {"task_id": ("int", _REQ), "attempt_id": ("int", _REQ), "error": ("str", _REQ)},
}

_MAX_INT = 2**53  # ids and counters stay exact in every JSON reader


def _check_value(name: str, value: Any, tp: str) -> None:
    if tp.startswith("?"):
        if value is None:
            return
        tp = tp[1:]
    ok: bool
    if tp == "str":
        ok = isinstance(value, str)
    elif tp == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and -_MAX_INT <= value <= _MAX_INT
    elif tp == "num":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif tp == "bool":
        ok = isinstance(value, bool)
    elif tp == "dict":
        ok = isinstance(value, dict)
    elif tp.startswith("list"):
        ok = isinstance(value, list)
        if ok and len(value) > 100000:
            raise ProtocolError(f"field {name!r}: list of {len(value)} items is too long")
        if ok and tp != "list":
            inner = tp[5:-1]
            for i, item in enumerate(value):
                _check_value(f"{name}[{i}]", item, inner)
    else:  # pragma: no cover - a schema typo
        raise AssertionError(f"unknown schema type {tp}")
    if not ok:
        raise ProtocolError(f"field {name!r}: expected {tp}, got {type(value).__name__}")


def validate(msg: Any, allowed: set[str] | None = None) -> dict:
    """Check one decoded message against its schema; return it. Raises ProtocolError."""
    if not isinstance(msg, dict):
        raise ProtocolError(f"message is a JSON {type(msg).__name__}, not an object")
    version = msg.get("v")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r}; this broker speaks {VERSION}")
    mtype = msg.get("type")
    if not isinstance(mtype, str) or mtype not in SCHEMAS:
        raise ProtocolError(f"unknown message type {str(mtype)[:40]!r}")
    if allowed is not None and mtype not in allowed:
        raise ProtocolError(f"message type {mtype} is not accepted here")
    schema = SCHEMAS[mtype]
    for name, (tp, required) in schema.items():
        if name not in msg:
            if required:
                raise ProtocolError(f"{mtype}: missing field {name!r}")
            continue
        _check_value(f"{mtype}.{name}", msg[name], tp)
    return msg


def encode(mtype: str, **fields: Any) -> bytes:
    """One message frame. The message is checked too, so a bug never reaches the wire."""
    msg = wire.message(mtype, **fields)
    validate(msg)
    return wire.to_frame(msg)


def encode_with(mtype: str, raw: dict[str, bytes], **fields: Any) -> bytes:
    """Like encode, with some fields given as JSON text already encoded (and checked) by the caller,
    e.g. a job's spec that goes out unchanged in every TASK of the job."""
    msg = {**wire.message(mtype, **fields), **{k: None for k in raw}}
    schema = SCHEMAS[mtype]
    for name in raw:
        if not schema[name][0].startswith("?"):
            raise ProtocolError(f"{mtype}.{name}: a raw field must be optional in the schema")
    validate(msg)
    frame = wire.to_frame(msg)
    # the raw fields are the object's last keys: replace their nulls from the right
    for name, text in reversed(list(raw.items())):
        key = b'"%s":null' % json.dumps(name).strip('"').encode()
        at = frame.rfind(key)
        frame = frame[:at] + key[:-4] + text + frame[at + len(key):]
    return frame


def decode(frame: bytes, allowed: set[str] | None = None) -> dict:
    """Parse and check one frame. Raises ProtocolError with a one-line reason."""
    return validate(wire.parse_frame(frame), allowed)


def configure_socket(sock, security: dict | None = None) -> None:
    """Options every farm socket gets: a message size cap, no lingering, and a peer's credentials
    (`PeerAuth.socket_options()`: CURVE keys or the local token)."""
    import zmq

    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.LINGER, 0)
    for opt, value in (security or {}).items():
        sock.setsockopt(opt, value)


# --- paths and names on the wire ---------------------------------------------------------------
# Whatever the broker stores is read later by the broker and by workers, so the broker checks at
# the door, and a worker again before it touches a TASK's folder, that no file system call will
# choke on it: no NUL or control character, names of at most 255 bytes, paths of at most 4095,
# UTF-8 text.
MAX_PATH_BYTES = 4095  # PATH_MAX less its NUL
MAX_TEXT_BYTES = 4096  # a uid, a category, a job name


def text_problem(value: str, limit: int = MAX_TEXT_BYTES) -> str | None:
    """Why a string cannot be stored and used in file names and paths, or None."""
    if "\x00" in value:
        return "it contains a NUL character"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    return f"it is {size} bytes long; at most {limit}" if size > limit else None


def path_problem(path: str) -> str | None:
    """Why a path cannot be used as one, or None."""
    from blender_addon.rig.assets import MAX_NAME_BYTES

    problem = text_problem(path, MAX_PATH_BYTES)
    if problem:
        return problem
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return "it contains control characters"
    long = next((p for p in path.split("/") if len(p.encode("utf-8")) > MAX_NAME_BYTES), None)
    return f"its part {long[:24]!r}... is over {MAX_NAME_BYTES} bytes" if long else None


def output_folder_problem(out_root: str, out_rel: str) -> str | None:
    """Why OUT/out_rel cannot be an object folder, or None (the worker's check of a TASK)."""
    from blender_addon.rig.assets import identifier_problem

    problem = path_problem(out_root)
    if problem:
        return f"OUT {out_root[:80]!r}: {problem}"
    for part in out_rel.split("/"):
        problem = identifier_problem(part)
        if problem:
            return f"out_rel part {part[:80]!r}: {problem}"
    return None


def attempt_folder(out_root: str, attempt_id: int):
    """OUT/.farm/attempts/<attempt_id>: where a shared-storage worker's child writes an attempt's
    files; the broker moves them into the object's folder when it accepts the RESULT."""
    from blender_addon.contract.layout import confined_path

    from .attempt_paths import attempt_rel

    return confined_path(out_root, attempt_rel(attempt_id))
