"""The `folder` source: mesh files under the given paths; uid = file stem; category from the
--categories mapping or the parent folder's name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..layout import MESH_EXTENSIONS, LayoutError, check_identifier, views_rel
from .base import Asset, SourceError


def iter_mesh_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MESH_EXTENSIONS))
        elif p.is_file():
            if p.suffix.lower() not in MESH_EXTENSIONS:
                raise SourceError(f"{p}: not a supported mesh file ({', '.join(MESH_EXTENSIONS)})")
            found.append(p)
        else:
            raise SourceError(f"{p}: no such file or folder")
    return found


def folder_assets(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None) -> list[Asset]:
    assets: list[Asset] = []
    seen: dict[str, Path] = {}
    for f in iter_mesh_files(paths):
        uid = f.stem
        try:
            check_identifier(uid)
        except LayoutError as exc:
            raise SourceError(str(exc)) from None
        if uid in seen and seen[uid] != f.resolve():
            raise SourceError(f"uid {uid!r} appears twice: {seen[uid]} and {f}")
        seen[uid] = f.resolve()
        category = (categories or {}).get(uid) or f.resolve().parent.name
        assets.append(Asset(uid=uid, path=str(f.resolve()), category=category, source="folder", out_rel=views_rel(uid)))
    return assets
