"""Asset sources: each turns a root (or list) into Assets."""
from __future__ import annotations

from .base import Asset, SourceError
from .categories import load_categories
from .folder import folder_assets

SOURCES = ("folder", "objaverse", "im3d", "mvimgnet")


def resolve_assets(source: str, paths: list[str], categories_path: str | None = None, **options) -> list[Asset]:
    """Dispatch to one source. Raises SourceError (one line) on bad input."""
    categories = load_categories(categories_path) if categories_path else None
    if source == "folder":
        return folder_assets(paths, categories)
    raise SourceError(f"--source: {source!r} is not available yet; allowed: folder")


__all__ = ["Asset", "SourceError", "SOURCES", "load_categories", "folder_assets", "resolve_assets"]
