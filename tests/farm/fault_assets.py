"""Hostile assets for the fault tests, made on the spot: tiny files that abort or bloat an importer."""
from __future__ import annotations

import json
import struct
from pathlib import Path


def corrupt_ply(path: Path) -> Path:
    """251 bytes whose header claims 4e9 vertices: Blender's PLY importer aborts (SIGABRT)."""
    header = (b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\n"
              b"property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
              b"end_header\n")
    path.write_bytes(header + b"\0" * (251 - len(header)))
    return path


def huge_buffer_glb(path: Path, claimed_bytes: int = 10_000_000_000) -> Path:
    """A few hundred bytes of GLB whose buffer and accessor claim `claimed_bytes`: the importer
    allocates for the claim (gigabytes a second) before it notices the data is not there."""
    count = claimed_bytes // 12
    gltf = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
            "buffers": [{"byteLength": claimed_bytes}],
            "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": claimed_bytes}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": count, "type": "VEC3",
                           "min": [0, 0, 0], "max": [1, 1, 1]}]}
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = b"\0" * 8
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return path


def assert_views(out: Path, uid: str, views: int = 2) -> None:
    """OUT/views/<uid> holds exactly the views and transforms.json (any resolution)."""
    d = out / "views" / uid
    assert sorted(p.name for p in d.iterdir()) == [f"{i:03d}.png" for i in range(views)] + ["transforms.json"]
    frames = json.loads((d / "transforms.json").read_text())["frames"]
    assert [f["file_path"] for f in frames] == [f"{i:03d}.png" for i in range(views)]
