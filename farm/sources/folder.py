"""The `folder` source: mesh files under the given paths; uid = file stem; category from the
--categories mapping or the parent folder's name (rules shared with the add-on: rig/assets.py).
Output goes under `views/<uid>/`, the folder of any generic 3D asset (objaverse's too)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from blender_addon.contract.layout import check_identifier
from blender_addon.rig.assets import AssetListError, folder_asset_records

from .base import Asset, Source, SourceError, subdirs
from .categories import load_categories

VIEWS_DIR = "views"


def views_rel(uid: str) -> str:
    return f"{VIEWS_DIR}/{check_identifier(uid)}"


def folder_assets(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None) -> list[Asset]:
    try:
        return [Asset(**record) for record in folder_asset_records(paths, categories)]
    except AssetListError as exc:
        raise SourceError(str(exc)) from None


class FolderSource(Source):
    name = "folder"
    structure = "views/<uid>/000.png ...            Objaverse and other 3D assets, with transforms.json"

    def assets(self, paths: list[str], categories_path: str | None) -> list[Asset]:
        return folder_assets(paths, load_categories(categories_path))

    def expected_out_rel(self, record: dict) -> str:
        return views_rel(record["uid"])

    def object_folders(self, out: Path) -> list[Path]:
        return subdirs(out / VIEWS_DIR)


SOURCE = FolderSource()
