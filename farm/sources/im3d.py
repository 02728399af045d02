"""The `im3d` source: `<root>/<class>_<NN>/` folders, each holding one mesh file or a .blend.

The uid is the folder name `<class>_<NN>` and the category is `<class>` (a class may contain
underscores: `rocking_chair_03` is class `rocking_chair`). A `--categories` entry for the uid or
the class overrides it (for synset-style class folders). Output goes under `im3d/<class>_<NN>/`.
A path may also be one object folder itself.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from blender_addon.contract.layout import LayoutError, check_identifier
from blender_addon.rig.assets import MESH_EXTENSIONS

from .base import Asset, FoundObject, Source, SourceError, subdirs
from .categories import load_categories

NAME = "im3d"
IM3D_DIR = "im3d"
OBJECT_DIR = re.compile(r"^(?P<cls>.+)_(?P<nn>\d+)$")


def im3d_rel(name: str) -> str:
    return f"{IM3D_DIR}/{check_identifier(name, 'im3d object')}"


def _mesh_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in MESH_EXTENSIONS
    )


def _object_asset(folder: Path, categories: dict[str, str] | None) -> Asset:
    match = OBJECT_DIR.match(folder.name)
    if not match:
        raise SourceError(f"im3d: folder {folder} is not named <class>_<NN>")
    meshes = _mesh_files(folder)
    if not meshes:
        raise SourceError(f"im3d: {folder} holds no mesh file ({', '.join(MESH_EXTENSIONS)})")
    if len(meshes) > 1:
        names = ", ".join(m.name for m in meshes)
        raise SourceError(f"im3d: {folder} holds {len(meshes)} mesh files ({names}); expected exactly one")
    uid, cls = folder.name, match["cls"]
    category = (categories or {}).get(uid) or (categories or {}).get(cls) or cls
    try:
        out_rel = im3d_rel(uid)
    except LayoutError as exc:
        raise SourceError(f"im3d: {exc}") from None
    return Asset(uid=uid, path=str(meshes[0].resolve()), category=category, source=NAME, out_rel=out_rel)


def im3d_assets(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None) -> list[Asset]:
    """Assets for IM3D roots (or single object folders), sorted by uid."""
    assets: dict[str, Asset] = {}
    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            raise SourceError(f"im3d: {root}: no such folder (expected <root>/<class>_<NN>/)")
        if OBJECT_DIR.match(root.name) and _mesh_files(root):
            folders = [root]
        else:
            folders = subdirs(root)
            if not folders:
                raise SourceError(f"im3d: {root} holds no <class>_<NN> folders")
        for folder in folders:
            asset = _object_asset(folder, categories)
            if asset.uid in assets and assets[asset.uid].path != asset.path:
                raise SourceError(f"im3d: object {asset.uid!r} appears twice: {assets[asset.uid].path} and {asset.path}")
            assets[asset.uid] = asset
    return [assets[uid] for uid in sorted(assets)]


class Im3dSource(Source):
    name = NAME
    structure = "im3d/<class>_<NN>/000.png ...      IM3D objects, with transforms.json"

    def assets(self, paths: list[str], categories_path: str | None) -> list[Asset]:
        return im3d_assets(paths, load_categories(categories_path))

    def expected_out_rel(self, record: dict) -> str:
        return im3d_rel(record["uid"])

    def object_folders(self, out: Path) -> list[Path]:
        return subdirs(out / IM3D_DIR)

    def found_object(self, folder: Path, marker: dict) -> FoundObject:
        category = folder.name.rpartition("_")[0] or None  # <class>_<NN>
        return FoundObject(folder, folder.name, category, len(marker.get("frames") or []))


SOURCE = Im3dSource()
