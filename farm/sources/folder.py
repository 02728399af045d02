"""The `folder` source: mesh files under the given paths; uid = file stem; category from the
--categories mapping or the parent folder's name (rules shared with the add-on: rig/assets.py)."""
from __future__ import annotations

import os
from typing import Iterable

from blender_addon.rig.assets import AssetListError, folder_asset_records

from .base import Asset, SourceError


def folder_assets(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None) -> list[Asset]:
    try:
        return [Asset(**record) for record in folder_asset_records(paths, categories)]
    except AssetListError as exc:
        raise SourceError(str(exc)) from None
