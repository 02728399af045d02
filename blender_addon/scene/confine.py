"""Assets read only their own files (the Blender side of rig/asset_refs.py).

Before the import: a glTF buffer or .blend library outside the asset's folder fails the asset;
a glTF image or OBJ material library or texture outside is left out of a confined copy of the
asset, which is imported instead. After the import: whatever new data still names a file outside
(an FBX's textures, a .blend's images, an importer's fallback guess) is removed and listed, or,
when it would bring geometry, fails the asset.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import bpy

from ..rig.asset_refs import OUTSIDE, Ref, confined_gltf, gltf_json, gltf_refs, is_inside, write_gltf
from ..rig.blend_refs import BlendFormatError, library_refs
from ..rig.obj_refs import obj_refusals, write_confined_obj
from .errors import AssetError

log = logging.getLogger(__name__)

# New data naming a file outside: dropped and listed (nothing to render from it), or failing the
# asset (it would bring geometry or linked data).
DROPPED = ("images", "sounds", "movieclips")
FAILING = {"libraries": "library", "volumes": "volume", "cache_files": "cache file", "fonts": "font"}


def refusal_note(ref: Ref) -> str:
    """How a refused texture appears in missing_textures()."""
    return f"{ref.uri} (refused: {OUTSIDE})"


# --- before the import ------------------------------------------------------------------------------
def confined_source(path: Path, roots: tuple[str, ...], staging: Path) -> tuple[Path, list[str]]:
    """The file to import (the asset itself, or a confined copy written to `staging`), and what
    to report: refused references and, for a copy, textures inside that are missing."""
    ext = path.suffix.lower()
    if ext in (".gltf", ".glb"):
        return _confined_gltf(path, roots, staging)
    if ext == ".obj":
        refused = obj_refusals(path, roots)
        if not refused:
            return path, []
        missing = write_confined_obj(path, roots, staging)
        return staging / path.name, [refusal_note(ref) for ref in refused] + missing
    if ext == ".blend":
        _check_libraries(path, roots)
    return path, []


def _confined_gltf(path: Path, roots: tuple[str, ...], staging: Path) -> tuple[Path, list[str]]:
    doc = gltf_json(path)
    refs = gltf_refs(doc, path.parent, roots)
    for ref in refs:
        if ref.label.startswith("buffer") and not ref.inside:
            raise AssetError(f"{path.name}: {ref.refusal()}")
        if ref.label.startswith("buffer") and not os.path.isfile(ref.path):
            # the importer would fail deep inside; say which file is missing
            raise AssetError(f"{path.name}: {ref.label} file '{ref.uri}' is missing")
    refused = [ref for ref in refs if not ref.inside]
    if not refused:
        return path, []
    write_gltf(confined_gltf(doc, path.parent, roots), path, staging / path.name)
    return staging / path.name, [refusal_note(ref) for ref in refused]


def _check_libraries(path: Path, roots: tuple[str, ...]) -> None:
    try:
        refs = library_refs(path, roots)
    except BlendFormatError as exc:  # the check after loading still guards
        log.warning("%s: libraries not checked before loading (%s)", path.name, exc)
        return
    for ref in refs:
        if not ref.inside:
            raise AssetError(f"{path.name}: {ref.refusal()}")


# --- after the import -------------------------------------------------------------------------------
def data_snapshot() -> set[int]:
    """The data blocks that exist now; the check after the import looks at the others only."""
    kinds = (*DROPPED, *FAILING, "node_groups")
    return {block.as_pointer() for kind in kinds for block in getattr(bpy.data, kind, ())}


def _file_of(block) -> str | None:
    if getattr(block, "packed_file", None) is not None:
        return None  # its data is in the asset
    if getattr(block, "source", "FILE") not in {"FILE", "SEQUENCE", "TILED", "MOVIE"}:
        return None  # generated images, render results
    filepath = getattr(block, "filepath", "")
    if not filepath or filepath == "<builtin>":
        return None
    return bpy.path.abspath(filepath, library=getattr(block, "library", None))


def refuse_outside(before: set[int], roots: tuple[str, ...], asset_name: str) -> list[str]:
    """Remove new images, sounds and movie clips that name a file outside `roots` and return
    their notes; raise AssetError for anything outside that would bring geometry."""
    for kind, label in FAILING.items():
        for block in getattr(bpy.data, kind, ()):
            path = None if block.as_pointer() in before else _file_of(block)
            if path is not None and not is_inside(path, roots):
                raise AssetError(f"{asset_name}: {label} '{block.name}' file '{block.filepath}' is {OUTSIDE}")
    _check_file_nodes(before, roots, asset_name)
    notes = []
    for kind in DROPPED:
        blocks = getattr(bpy.data, kind, None)
        for block in [b for b in blocks or () if b.as_pointer() not in before]:
            path = _file_of(block)
            if path is not None and not is_inside(path, roots):
                notes.append(refusal_note(Ref(kind, block.filepath, None)))
                blocks.remove(block)
    return notes


def _check_file_nodes(before: set[int], roots: tuple[str, ...], asset_name: str) -> None:
    """Geometry nodes that import a file (OBJ, PLY, STL, CSV, text, VDB) must name one inside."""
    for group in bpy.data.node_groups:
        if group.as_pointer() in before:
            continue
        for node in group.nodes:
            socket = node.inputs.get("Path") if node.bl_idname.startswith("GeometryNodeImport") else None
            if socket is None:
                continue
            if socket.is_linked:
                raise AssetError(f"{asset_name}: node '{node.name}' in '{group.name}' reads a file from a "
                                 f"computed path")
            if not socket.default_value:
                continue
            path = bpy.path.abspath(socket.default_value, library=group.library)
            if not is_inside(path, roots):
                raise AssetError(f"{asset_name}: node '{node.name}' in '{group.name}' file "
                                 f"'{socket.default_value}' is {OUTSIDE}")
