"""The wire protocol's validator: versioned JSON, explicit schemas, no pickle."""
from __future__ import annotations

import json

import pytest

from farm import protocol as P


def test_roundtrip():
    frame = P.encode("PROGRESS", task_id=1, attempt_id=2, done=3, total=4)
    msg = P.decode(frame)
    assert msg == {"v": 1, "type": "PROGRESS", "task_id": 1, "attempt_id": 2, "done": 3, "total": 4}


@pytest.mark.parametrize("frame, reason", [
    (b"\x80\x04\x95 pickle", "not UTF-8 JSON"),
    (b"{not json", "not UTF-8 JSON"),
    (b"[1, 2]", "not an object"),
    (json.dumps({"type": "HEARTBEAT"}).encode(), "version"),
    (json.dumps({"v": 2, "type": "HEARTBEAT"}).encode(), "version"),
    (json.dumps({"v": 1, "type": "EXPLODE"}).encode(), "unknown message type"),
    (json.dumps({"v": 1, "type": "PROGRESS", "task_id": "1", "attempt_id": 2, "done": 0, "total": 1}).encode(),
     "expected int"),
    (json.dumps({"v": 1, "type": "PROGRESS", "task_id": True, "attempt_id": 2, "done": 0, "total": 1}).encode(),
     "expected int"),
    (json.dumps({"v": 1, "type": "RESULT", "task_id": 1, "attempt_id": 2}).encode(), "missing field"),
    (json.dumps({"v": 1, "type": "CAPTION_HEARTBEAT", "attempt_ids": [1, "x"]}).encode(), "expected int"),
    (json.dumps({"v": 1, "type": "SUBMIT", "job": [], "assets": []}).encode(), "expected dict"),
    (b"[" * 100000, "not UTF-8 JSON"),
])
def test_malformed_frames_raise_protocol_error(frame, reason):
    with pytest.raises(P.ProtocolError, match=reason):
        P.decode(frame)


def test_huge_frame_refused():
    with pytest.raises(P.ProtocolError, match="limit"):
        P.decode(b" " * (P.MAX_MESSAGE_BYTES + 1))


def test_allowed_types():
    with pytest.raises(P.ProtocolError, match="not accepted"):
        P.decode(P.encode("TASK", task_id=1, attempt_id=1, job_id="j", kind="render", asset={}, out_root="/o",
                          out_rel="views/a", obj_id=0, timeout_s=1), P.INBOUND_TYPES)


def test_encode_checks_too():
    with pytest.raises(P.ProtocolError):
        P.encode("ACK", task_id="one", attempt_id=1)


def test_encode_with_raw_spec():
    frame = P.encode_with("TASK", {"spec": b'{"camera":{"num_views":2}}'}, task_id=1, attempt_id=2, job_id="j",
                          kind="render", asset={"uid": "a", "spec": None}, out_root="/o", out_rel="views/a",
                          obj_id=0, timeout_s=5.0, options={})
    msg = P.decode(frame)
    assert msg["spec"] == {"camera": {"num_views": 2}} and msg["asset"] == {"uid": "a", "spec": None}
