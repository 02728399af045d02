"""Draco-compressed glTF (the KHR_draco_mesh_compression extension): which files need a Draco
decoder, and what to tell the artist when the running Blender has none (Debian's Blender is built
without the libextern_draco.so that its glTF importer loads, and no Debian package provides it).
Pure Python: the file's JSON is read before any importer runs."""
from __future__ import annotations

import os
import struct

from .asset_refs import gltf_json

DRACO_EXTENSION = "KHR_draco_mesh_compression"


def uses_draco(doc: dict) -> bool:
    """True when a glTF document declares Draco, or a mesh primitive carries it anyway."""
    if not isinstance(doc, dict):
        return False
    declared = [*(_list(doc.get("extensionsUsed"))), *(_list(doc.get("extensionsRequired")))]
    if DRACO_EXTENSION in declared:
        return True
    for mesh in _list(doc.get("meshes")):
        for primitive in _list(mesh.get("primitives") if isinstance(mesh, dict) else None):
            extensions = primitive.get("extensions") if isinstance(primitive, dict) else None
            if isinstance(extensions, dict) and DRACO_EXTENSION in extensions:
                return True
    return False


def _list(value) -> list:
    return value if isinstance(value, list) else []


def draco_compressed(path: str | os.PathLike) -> bool:
    """Whether the .glb or .gltf at `path` holds Draco-compressed meshes (False if unreadable)."""
    try:
        return uses_draco(gltf_json(path))
    except (OSError, ValueError, struct.error):
        return False


def no_decoder_message(name: str) -> str:
    """The one line an artist sees when this Blender cannot decode the Draco file `name`."""
    return (f"{name}: this Blender build cannot decode Draco-compressed glTF; open it with a Blender "
            f"from blender.org (its glTF importer has the decoder) or re-export it without Draco compression")
