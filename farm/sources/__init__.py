"""Asset sources: each turns a root (or list) into Assets."""
from __future__ import annotations

from .base import Asset, SourceError
from .categories import load_categories
from .folder import folder_assets
from .im3d import im3d_assets
from .mvimgnet import mvimgnet_assets
from .objaverse import objaverse_assets

SOURCES = ("folder", "objaverse", "im3d", "mvimgnet")
# Options that belong to a task (farm.sources.mvimgnet.sample_task), accepted and left alone here.
TASK_OPTIONS = ("frames", "min_views", "blur_ratio", "blur_threshold", "sharpness_max_side")


def resolve_assets(source: str, paths: list[str], categories_path: str | None = None, **options) -> list[Asset]:
    """Dispatch to one source, then take a deterministic subset.

    options: `max_per_category` (the first N of each category, in the source's uid order) and
    `limit` (the first N after that). Raises SourceError (one line) on bad input.
    """
    unknown = sorted(k for k, v in options.items() if v is not None and k not in ("max_per_category", "limit") + TASK_OPTIONS)
    if unknown:
        raise SourceError(f"{unknown[0]}: unknown source option; allowed: max_per_category, limit")
    if not paths:
        raise SourceError(f"--source {source}: no input paths given")
    if source == "mvimgnet":
        # its --categories maps category ids to names (mvimgnet_category.txt), read by the source
        assets = mvimgnet_assets(paths, categories_path)
    else:
        categories = load_categories(categories_path) if categories_path else None
        if source == "folder":
            assets = folder_assets(paths, categories)
        elif source == "objaverse":
            assets = objaverse_assets(paths, categories)
        elif source == "im3d":
            assets = im3d_assets(paths, categories)
        else:
            raise SourceError(f"--source: {source!r} is unknown; allowed: {', '.join(SOURCES)}")
    return select_subset(assets, options.get("max_per_category"), options.get("limit"))


def select_subset(assets: list[Asset], max_per_category: int | None = None, limit: int | None = None) -> list[Asset]:
    """A deterministic subset: order is kept, so the same input gives the same subset."""
    for name, value in (("--max-per-category", max_per_category), ("--limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SourceError(f"{name}: {value!r} is out of range; must be an integer >= 1")
    if max_per_category is not None:
        counts: dict[str | None, int] = {}
        kept = []
        for asset in assets:
            if counts.get(asset.category, 0) < max_per_category:
                counts[asset.category] = counts.get(asset.category, 0) + 1
                kept.append(asset)
        assets = kept
    return assets[:limit] if limit is not None else assets


__all__ = [
    "Asset",
    "SourceError",
    "SOURCES",
    "load_categories",
    "folder_assets",
    "objaverse_assets",
    "im3d_assets",
    "mvimgnet_assets",
    "resolve_assets",
    "select_subset",
]
