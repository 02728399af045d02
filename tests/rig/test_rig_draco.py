"""Which glTF files are Draco-compressed, read from their JSON before any importer runs."""
from __future__ import annotations

import json

from blender_addon.rig.draco import DRACO_EXTENSION, draco_compressed, no_decoder_message, uses_draco


def test_the_real_draco_and_plain_glbs(glb_dir, broken_dir):
    # Box.glb and BoxTextured.glb (COLLADA2GLTF) declare the extension; the others do not
    assert draco_compressed(glb_dir / "Box.glb") and draco_compressed(glb_dir / "BoxTextured.glb")
    for name in ("Duck.glb", "credit-card.glb", "white-claw-can.glb"):
        assert not draco_compressed(glb_dir / name), name
    for path in broken_dir.iterdir():  # empty, truncated, HTML: unreadable is "no" (the checks say why)
        assert not draco_compressed(path), path.name


def test_a_gltf_and_a_primitive_that_does_not_declare_it(tmp_path):
    primitive = {"attributes": {}, "extensions": {DRACO_EXTENSION: {"bufferView": 0, "attributes": {}}}}
    gltf = tmp_path / "a.gltf"
    gltf.write_text(json.dumps({"asset": {"version": "2.0"}, "meshes": [{"primitives": [primitive]}]}))
    assert draco_compressed(gltf)
    gltf.write_text(json.dumps({"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_texture_transform"]}))
    assert not draco_compressed(gltf)
    assert uses_draco({"extensionsRequired": [DRACO_EXTENSION]})
    for odd in ([], {"extensionsUsed": "KHR_draco_mesh_compression"}, {"meshes": [None, {"primitives": 3}]}):
        assert not uses_draco(odd)
    assert not draco_compressed(tmp_path / "missing.glb")


def test_the_message_says_what_to_do():
    line = no_decoder_message("Box.glb")
    assert line.startswith("Box.glb: this Blender build cannot decode Draco-compressed glTF; ")
    assert "blender.org" in line and "without Draco compression" in line and "\n" not in line
