"""Asset sources: each turns a root (or list) into Assets. registry.py knows them by name."""
from __future__ import annotations

from .base import RENDER, SPEC_PROVENANCE, Asset, FoundObject, Source, SourceError
from .categories import load_categories
from .registry import all_sources, get_source, source_names, source_of, task_kind_of, task_kinds, task_source

SUBSET_OPTIONS = ("max_per_category", "limit")


def resolve_assets(source: str, paths: list[str], categories_path: str | None = None, **options) -> list[Asset]:
    """The assets of one source, then a deterministic subset.

    options: `max_per_category` (the first N of each category, in the source's uid order) and
    `limit` (the first N after that); the source's own task options are accepted and left to its
    task. Raises SourceError (one line) on bad input.
    """
    src = get_source(source)
    unknown = sorted(k for k, v in options.items() if v is not None and k not in SUBSET_OPTIONS + src.task_options)
    if unknown:
        raise SourceError(f"{unknown[0]}: unknown source option; allowed: max_per_category, limit")
    if not paths:
        raise SourceError(f"--source {source}: no input paths given")
    assets = src.assets(list(paths), categories_path)
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
    "RENDER", "SPEC_PROVENANCE", "Asset", "FoundObject", "Source", "SourceError", "load_categories",
    "resolve_assets", "select_subset",
    "all_sources", "get_source", "source_names", "source_of", "task_kind_of", "task_kinds", "task_source",
]
