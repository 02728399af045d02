"""Assets read only their own files: an external reference (a glTF buffer or image, an OBJ's
material library or texture, a .blend's linked library) must resolve inside the asset's folder
or a folder the user allows. Pure Python, so the checks run before Blender reads anything.

This module holds the rule and the glTF side; obj_refs.py and blend_refs.py use the rule.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import quote, unquote

OUTSIDE = "outside the asset's folder"


@dataclass(frozen=True)
class Ref:
    """One external reference: who makes it (label), the text as written (uri), and where it
    leads (path, symlinks resolved), or None when a reading of it leaves the allowed folders."""

    label: str
    uri: str
    path: str | None

    @property
    def inside(self) -> bool:
        return self.path is not None

    def refusal(self) -> str:
        return f"{self.label} uri '{self.uri}' is {OUTSIDE}"


def asset_roots(asset_path: str | os.PathLike, allowed_dirs: Iterable[str | os.PathLike] = ()) -> tuple[str, ...]:
    """The folders an asset may read from: its own and the allowed ones, symlinks resolved."""
    folders = [Path(asset_path).parent, *(Path(d) for d in allowed_dirs)]
    return tuple(os.path.realpath(folder) for folder in folders)


def is_inside(path: str, roots: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def resolve(base_dir: str | os.PathLike, raw: str, roots: Iterable[str]) -> str | None:
    """Where `raw`, written in a file in `base_dir`, leads, or None when any reading of it leaves
    `roots`. Importers join (an absolute path wins, or is glued on), normalise '..' before or
    after following symlinks, and may take '\\' as a separator: every reading must stay inside."""
    if "\0" in raw:
        return None
    base = os.fspath(base_dir)
    readings = set()
    for text in {raw, raw.replace("\\", "/")}:
        for joined in (os.path.join(base, text), base.rstrip("/") + "/" + text):
            readings.update((os.path.realpath(joined), os.path.realpath(os.path.normpath(joined))))
    roots = tuple(roots)
    if not all(is_inside(reading, roots) for reading in readings):
        return None
    return os.path.realpath(os.path.join(base, raw))


# --- glTF ------------------------------------------------------------------------------------------
def gltf_json(path: str | os.PathLike) -> dict:
    """The JSON of a .gltf, or the JSON chunk of a .glb (already checked by the importer)."""
    with open(path, "rb") as fh:
        if fh.read(4) == b"glTF":
            fh.seek(12)
            (length,) = struct.unpack("<I", fh.read(4))
            fh.seek(20)
            return json.loads(fh.read(length).decode("utf-8"))
        fh.seek(0)
        return json.loads(fh.read().decode("utf-8"))


def _embedded(uri: str) -> bool:
    # glTF-Blender-IO decodes only 'data:...;base64,'; any other uri is read as a path
    return uri.startswith("data:") and ";base64," in uri


def _uri_path(uri: str) -> str:
    """A uri as glTF-Blender-IO turns it into a path (io/com/path.py: uri_to_path)."""
    return os.path.normpath(unquote(uri.replace("\\", "/")))


def _file_uris(doc: dict):
    """(section, index, item, uri) for every buffer and image that names a file."""
    for section in ("buffers", "images"):
        items = doc.get(section)
        for i, item in enumerate(items if isinstance(items, list) else []):
            uri = item.get("uri") if isinstance(item, dict) else None
            if isinstance(uri, str) and uri and not _embedded(uri):
                yield section, i, item, uri


def gltf_refs(doc: dict, base_dir: str | os.PathLike, roots: Iterable[str]) -> list[Ref]:
    """The files a glTF document names, labelled 'buffer N' and 'image N'."""
    roots = tuple(roots)
    return [Ref(f"{section[:-1]} {i}", uri, resolve(base_dir, _uri_path(uri), roots))
            for section, i, _, uri in _file_uris(doc)]


def confined_gltf(doc: dict, base_dir: str | os.PathLike, roots: Iterable[str]) -> dict:
    """A copy of `doc` to import from another folder: each image outside loses its uri (the
    importer then skips it), every other file uri becomes the absolute path that was checked."""
    doc = copy.deepcopy(doc)
    roots = tuple(roots)
    for section, _, item, uri in _file_uris(doc):
        path = resolve(base_dir, _uri_path(uri), roots)
        if path is None and section == "images":
            del item["uri"]
        elif path is not None:
            item["uri"] = quote(path)
    return doc


def write_gltf(doc: dict, source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Write `doc` as `target`: plain JSON for a .gltf, or the .glb `source` with its JSON chunk
    replaced (the binary chunks are copied as they are)."""
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if Path(source).suffix.lower() != ".glb":
        Path(target).write_bytes(raw)
        return
    raw += b" " * (-len(raw) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    with open(source, "rb") as src, open(target, "wb") as dst:
        version, total = struct.unpack("<II", src.read(12)[4:])
        (old_len,) = struct.unpack("<I", src.read(4))
        rest = total - 20 - old_len
        dst.write(b"glTF" + struct.pack("<II", version, 20 + len(raw) + rest))
        dst.write(struct.pack("<I", len(raw)) + b"JSON" + raw)
        src.seek(20 + old_len)
        shutil.copyfileobj(src, dst)
