"""Asset files for the `folder` source, shared by the farm and the add-on (which must not import
farm): which files are meshes, what makes a safe uid, and how files become asset records."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

MESH_EXTENSIONS = (".glb", ".gltf", ".obj", ".fbx", ".ply", ".stl", ".blend")


class AssetListError(ValueError):
    """Bad asset paths (missing, not a mesh, clashing uids). One line."""


MAX_NAME_BYTES = 255  # a file or folder name (NAME_MAX)


def identifier_problem(value: str) -> str | None:
    """Why an identifier (uid, category, folder name) could escape the output folder or cannot be
    a file name, or None."""
    if not value or value in (".", ".."):
        return "empty or a dot name"
    if "/" in value or "\\" in value or ".." in value or os.path.isabs(value):
        return "it contains '/', '\\' or '..'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "it contains control characters"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long; a name may have {MAX_NAME_BYTES}"
    return None


def mesh_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Mesh files given directly or found under folders, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MESH_EXTENSIONS))
        elif p.is_file():
            if p.suffix.lower() not in MESH_EXTENSIONS:
                raise AssetListError(f"{p}: not a supported mesh file ({', '.join(MESH_EXTENSIONS)})")
            found.append(p)
        else:
            raise AssetListError(f"{p}: no such file or folder")
    return found


def folder_asset_records(
    paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None
) -> list[dict]:
    """The `folder` source's assets: uid = file stem, category = the mapping's entry or the parent
    folder's name (then `category_from` is "folder", else "categories"), output under views/<uid>."""
    records: list[dict] = []
    seen: dict[str, Path] = {}
    for f in mesh_files(paths):
        path, uid = f.resolve(), f.stem
        problem = identifier_problem(uid)
        if problem:
            raise AssetListError(f"uid {uid!r} is not allowed: {problem}")
        if uid in seen and seen[uid] != path:
            raise AssetListError(f"uid {uid!r} appears twice: {seen[uid]} and {f}")
        seen[uid] = path
        category = (categories or {}).get(uid)
        category_from = "categories" if category else "folder"
        records.append({"uid": uid, "path": str(path), "category": category or path.parent.name, "source": "folder",
                        "out_rel": f"views/{uid}", "category_from": category_from})
    return records
