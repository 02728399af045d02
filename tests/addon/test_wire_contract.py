"""The add-on's farm link and the farm speak one wire protocol: blender_addon/contract/wire.py."""
from __future__ import annotations

import ast

import pytest

from blender_addon.contract import wire
from farm import protocol

from .conftest import REPO

pytest.importorskip("bpy")  # blender_addon.ui imports bpy

from blender_addon.ui import farm_link  # noqa: E402


def test_both_sides_use_the_contract():
    assert farm_link.wire is wire and protocol.wire is wire
    assert protocol.VERSION == wire.VERSION and protocol.MAX_MESSAGE_BYTES == wire.MAX_MESSAGE_BYTES
    assert protocol.ProtocolError is wire.ProtocolError
    assert set(protocol.SCHEMAS) == wire.MESSAGE_TYPES
    # no private copy of a contract constant can come back in the add-on
    tree = ast.parse((REPO / "blender_addon" / "ui" / "farm_link.py").read_text(encoding="utf-8"))
    assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert not assigned & {"VERSION", "MAX_MESSAGE_BYTES"}, assigned


def test_what_the_addon_sends_the_broker_accepts():
    job = {"out_root": "/tmp/out", "name": "blender", "spec": {}, "caption": False}
    assets = [{"uid": "chair", "path": "/tmp/chair.glb", "category": "chair"}]
    for frame in (farm_link.encode("SUBMIT", job=job, assets=assets), farm_link.encode("STATUS", job_id="j1")):
        msg = protocol.decode(frame, wire.CLIENT_TYPES)
        assert msg["v"] == wire.VERSION


def test_what_the_broker_answers_the_addon_reads():
    replies = [protocol.encode("SUBMITTED", job_id="j1", objects=2, queued=2, skipped=0),
               protocol.encode("STATUS_REPLY", jobs=[{"job_id": "j1", "state": "running"}], workers=[]),
               protocol.encode("ERROR", error="no such job")]
    for frame in replies:
        assert farm_link.decode(frame) == protocol.decode(frame)
    other = protocol.encode("OK").replace(b'"v":1', b'"v":%d' % (wire.VERSION + 1))
    with pytest.raises(farm_link.FarmError, match="another protocol"):
        farm_link.decode(other)
